#!/usr/bin/env python3
"""Where `metalgate-proxy`'s CPU above the Pingora floor goes: both proxies in front of the same
backend (an nginx answering 64 bytes, on loopback) and the same store, `oha -c 50` over plain
HTTP/1.1, HTTP/1.1 over TLS or HTTP/2 over TLS (PROTO; the same self-signed certificate for
both), with `perf` attached to the proxy's PID (not to oha, the backend or the store).

  stat (default): ROUNDS interleaved rounds of DUR seconds; per proxy and round req/s, CPU µs per
      request (task-clock), system calls and context switches per request; medians and
      metalgate ÷ floor.
  record: one round each under `perf record -e cpu-clock` (software clock: works on VMs without
      hardware counters), then samples per 10 000 requests by symbol, grouped (our crate,
      Pingora's timers, header maps, allocator, tokio, Pingora, kernel…), metalgate − floor, and
      the symbols whose share grew most. The data files stay in OUT for `perf report -i`.
  instr: both proxies under valgrind's callgrind: after REQS/4 requests to warm up, the counters
      are zeroed, REQS requests sent (`oha -c 10`), and the counters dumped: user-space
      instructions per request by function (exact, unlike the samples above: no other load on
      the machine moves them), grouped as above, metalgate − floor, and the functions that grew
      most. For changes too small to see in req/s. The dumps stay in OUT for callgrind_annotate.

Usage: python3 bench/proxy_profile.py [stat|record|instr]   (as root, or perf_event_paranoid ≤ 1)
Env: MG (metalgate, for the store), MGPROXY, FLOOR (binaries; default target/release/…, as
bench/proxy.sh builds them), ROUNDS=5, DUR=5, PROTO=h1 (or tls, h2), REQS=4000 (instr), OUT (the
data's directory; default a new one in /tmp). Needs perf (valgrind for instr), nginx, oha, curl,
openssl.
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from common import (backend, free_port, oha_target, proxy_flags, route_yaml, routed,
                    self_signed, stop, store_argv, store_kubeconfig)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = f"{ROOT}/target/release"
MG = os.environ.get("MG", f"{REL}/metalgate")
MGPROXY = os.environ.get("MGPROXY", f"{REL}/metalgate-proxy")
FLOOR = os.environ.get("FLOOR", f"{REL}/pingora-floor")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DUR = int(os.environ.get("DUR", "5"))
PROTO = os.environ.get("PROTO", "h1")
REQS = int(os.environ.get("REQS", "4000"))
TITLE = {"h1": "HTTP/1.1", "tls": "HTTP/1.1 over TLS", "h2": "HTTP/2 over TLS"}
HOST = "bench.local"
BODY = "0123456789012345678901234567890123456789012345678901234567890123"
GROUPS = [("metalgate's crate", r"metalgate_proxy"), ("Pingora's timers", r"pingora_timeout|Notif"),
          ("header maps", r"header::|HeaderMap|HdrName|HeaderName|HeaderValue|pingora_http"),
          ("allocator", r"rjem|alloc|malloc|dealloc"), ("tokio", r"tokio"),
          ("Pingora", r"pingora_proxy|pingora_core"), ("mem*", r"^U (__)?mem"),
          ("user space, all", r"^U "), ("kernel, all", r"^K ")]


def load(oha_json):
    j = json.loads(oha_json)
    codes = j["statusCodeDistribution"]
    if set(codes) != {"200"}:
        sys.exit(f"proxy_profile: answers other than 200: {codes}")
    return sum(codes.values()), j["summary"]["requestsPerSec"]


def symbols(data):
    """Samples by symbol ("U name" / "K name") from `perf report`."""
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "sym", "-g",
                          "none", "-n", "--percent-limit", "0"],
                         capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+\[(.)\]\s+(.*)", line)
        if m:
            key = ("K " if m.group(2) == "k" else "U ") + m.group(3).strip()
            got[key] = got.get(key, 0) + int(m.group(1))
    return got


def instructions(dump):
    """Instructions by function ("U name") from a callgrind dump, and the dump's total."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", dump],
                         capture_output=True, text=True, check=True).stdout
    got, total = {}, 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(.*)", line)
        if not m:
            continue
        n, what = int(m.group(1).replace(",", "")), m.group(2).strip()
        if what.startswith("PROGRAM TOTALS"):
            total = n
        elif ":" in what and not what.startswith("file:"):
            # "file:function [object]" → the function
            name = re.sub(r"\s+\[[^]]*\]$", "", what.split(":", 1)[1])
            got["U " + name] = got.get("U " + name, 0) + n
    # A dump taken while threads run charges their outermost frames (thread start, the
    # runtime's block_on) with everything below them: not anyone's own cost.
    return {k: v for k, v in got.items() if v < total / 2}, total


def instr(peers, out_dir):
    """`instr`: each peer (name → (plain port, TLS port, its valgrind process)) warmed up, its
    counters zeroed, REQS requests, its counters dumped; then the report."""
    per = {}
    for name, (h, s, p) in peers.items():
        for n, command in ((REQS // 4, "-z"), (REQS, "-d")):
            oha = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-c", "10",
                                  "-n", str(n), *oha_target(PROTO, HOST, h, s)],
                                 capture_output=True, text=True, timeout=600)
            done, _ = load(oha.stdout)
            if done != n:
                sys.exit(f"proxy_profile: {name}: {done} of {n} requests answered")
            subprocess.run(["callgrind_control", command, str(p.pid)], check=True,
                           stdout=subprocess.DEVNULL)
        dumps = sorted(f for f in os.listdir(out_dir)
                       if f.startswith(f"{name}.cg") and f != f"{name}.cg")
        if not dumps:
            sys.exit(f"proxy_profile: no callgrind dump of {name} in {out_dir}")
        fns, total = instructions(f"{out_dir}/{dumps[-1]}")
        per[name] = ({k: v / REQS for k, v in fns.items()}, total / REQS)
    (a, ta), (b, tb) = per["floor"], per["metalgate-proxy"]
    print(f"{TITLE[PROTO]}, oha -c 10, {REQS} requests: user-space instructions per request: "
          f"floor {ta:.0f}, metalgate-proxy {tb:.0f} (÷ {tb / ta:.3f}; {out_dir})")
    for label, pat in GROUPS[:-2]:
        sa = sum(v for k, v in a.items() if re.search(pat, k))
        sb = sum(v for k, v in b.items() if re.search(pat, k))
        print(f"  {label:18s} floor {sa:8.0f}  metalgate-proxy {sb:8.0f}  difference "
              f"{sb - sa:+8.0f}")
    print("grew most (floor → metalgate-proxy, instructions per request):")
    for k in sorted(set(a) | set(b), key=lambda k: a.get(k, 0) - b.get(k, 0))[:30]:
        print(f"  {a.get(k, 0):8.0f} → {b.get(k, 0):8.0f}  {k[:120]}")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "stat"
    if mode not in ("stat", "record", "instr") or PROTO not in TITLE:
        sys.exit(__doc__)
    profiler = ("valgrind", "callgrind_control") if mode == "instr" else ("perf",)
    for tool in (*profiler, "nginx", "oha", "curl", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"proxy_profile: needs {tool}")
    w = tempfile.mkdtemp(prefix="mg-proxy-profile.")
    out_dir = os.environ.get("OUT") or tempfile.mkdtemp(prefix="mg-proxy-profile-data.")
    os.makedirs(out_dir, exist_ok=True)
    procs = []

    def start(argv, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=open(f"{w}/processes.log", "a"), **kw)
        procs.append(p)
        return p

    try:
        be = free_port()
        os.makedirs(f"{w}/be")
        start(backend(f"{w}/be", be, BODY))
        crt, key = f"{w}/tls.crt", f"{w}/tls.key"
        self_signed(crt, key, HOST)
        open(f"{w}/route.yaml", "w").write(
            route_yaml(be, HOST, (open(crt).read(), open(key).read())))
        env = dict(os.environ, RUST_LOG="warn")
        start(store_argv(MG, f"{w}/store", f"{w}/route.yaml"), env=env)
        kubeconfig = store_kubeconfig(f"{w}/store")
        peers = {}

        def under(name):
            if mode != "instr":
                return []
            return ["valgrind", "--tool=callgrind", "--quiet",
                    f"--callgrind-out-file={out_dir}/{name}.cg"]
        h, s = free_port(), free_port()
        peers["floor"] = (h, s, start([*under("floor"), FLOOR, f"127.0.0.1:{h}",
                                       f"127.0.0.1:{be}", f"127.0.0.1:{s}", crt, key]))
        h, s = free_port(), free_port()
        peers["metalgate-proxy"] = (h, s, start(
            [*under("metalgate-proxy"), MGPROXY, *proxy_flags(kubeconfig, "bench", h, s)],
            env=env))
        for name, (h, _, _) in peers.items():
            if not routed(h, HOST, 300, 0.2):
                sys.exit(f"proxy_profile: {name} does not answer 200 in 60 s")
        if mode == "instr":
            return instr(peers, out_dir)
        stats = {n: [] for n in peers}
        reqs = {}
        for rnd in range(ROUNDS if mode == "stat" else 1):
            order = list(peers) if rnd % 2 == 0 else list(peers)[::-1]
            for name in order:
                h, s, p = peers[name]
                if mode == "stat":
                    perf = ["perf", "stat", "-x", ",", "-e",
                            "task-clock,raw_syscalls:sys_enter,context-switches",
                            "-o", f"{w}/{name}.stat", "-p", str(p.pid)]
                else:
                    perf = ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-o",
                            f"{out_dir}/{name}.data", "-p", str(p.pid)]
                perf = subprocess.Popen(perf, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                time.sleep(0.3)
                oha = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-c", "50",
                                      "-z", f"{DUR}s", *oha_target(PROTO, HOST, h, s)],
                                     capture_output=True, text=True, timeout=DUR + 60)
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
                n, rps = load(oha.stdout)
                reqs[name] = n
                if mode == "stat":
                    ev = {}
                    for line in open(f"{w}/{name}.stat"):
                        f = line.strip().split(",")
                        if len(f) > 2 and f[0][:1].isdigit():
                            ev[f[2]] = float(f[0])
                    row = (rps, ev["task-clock"] * 1000 / n, ev["raw_syscalls:sys_enter"] / n,
                           ev["context-switches"] / n)
                    stats[name].append(row)
                    print(f"round {rnd + 1} {name:16s} {rps:8.0f} req/s  {row[1]:5.1f} µs CPU/req  "
                          f"{row[2]:4.2f} syscalls/req  {row[3]:4.2f} switches/req", flush=True)
        if mode == "stat":
            med = {n: [statistics.median(r[i] for r in v) for i in range(4)]
                   for n, v in stats.items()}
            print(f"medians of {ROUNDS} rounds of {DUR} s, {TITLE[PROTO]}, oha -c 50:")
            for n, m in med.items():
                print(f"  {n:16s} {m[0]:8.0f} req/s  {m[1]:5.1f} µs CPU/req  {m[2]:4.2f} "
                      f"syscalls/req  {m[3]:4.2f} switches/req")
            f, mg = med["floor"], med["metalgate-proxy"]
            print(f"metalgate-proxy ÷ floor: req/s {mg[0] / f[0]:.2f}, CPU per request "
                  f"{mg[1] / f[1]:.2f}")
            return
        per = {n: {k: v * 1e4 / reqs[n] for k, v in symbols(f"{out_dir}/{n}.data").items()}
               for n in peers}
        a, b = per["floor"], per["metalgate-proxy"]
        total = sum(b.values())
        print(f"{TITLE[PROTO]}; samples per 10 000 requests: floor {sum(a.values()):.0f}, metalgate-proxy "
              f"{total:.0f} ({out_dir})")
        for label, pat in GROUPS:
            sa = sum(v for k, v in a.items() if re.search(pat, k))
            sb = sum(v for k, v in b.items() if re.search(pat, k))
            print(f"  {label:18s} floor {sa:7.1f}  metalgate-proxy {sb:7.1f}  difference "
                  f"{sb - sa:+7.1f} ({(sb - sa) / total:+.1%} of metalgate-proxy's)")
        print("grew most (floor → metalgate-proxy, per 10 000 requests):")
        grew = sorted(set(a) | set(b), key=lambda k: a.get(k, 0) - b.get(k, 0))
        for k in grew[:25]:
            print(f"  {a.get(k, 0):6.1f} → {b.get(k, 0):6.1f}  {k[:120]}")
    finally:
        stop(procs)
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
