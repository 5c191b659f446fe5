#!/usr/bin/env python3
"""Where `metalgate-proxy`'s CPU above the Pingora floor goes: both proxies in front of the same
backend (an nginx answering 64 bytes, on loopback) and the same store, `oha -c 50` over plain
HTTP/1.1, with `perf` attached to the proxy's PID (not to oha, the backend or the store).

  stat (default): ROUNDS interleaved rounds of DUR seconds; per proxy and round req/s, CPU µs per
      request (task-clock), system calls and context switches per request; medians and
      metalgate ÷ floor.
  record: one round each under `perf record -e cpu-clock` (software clock: works on VMs without
      hardware counters), then samples per 10 000 requests by symbol, grouped (our crate,
      Pingora's timers, header maps, allocator, tokio, Pingora, kernel…), metalgate − floor, and
      the symbols whose share grew most. The data files stay in OUT for `perf report -i`.

Usage: python3 bench/proxy_profile.py [stat|record]   (as root, or perf_event_paranoid ≤ 1)
Env: MG (metalgate, for the store), MGPROXY, FLOOR (binaries; default target/release/…, as
bench/proxy.sh builds them), ROUNDS=5, DUR=5, OUT (record's directory; default a new one in /tmp).
Needs perf, nginx, oha, curl.
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

from common import (backend, free_port, proxy_flags, route_yaml, routed, stop, store_argv,
                    store_kubeconfig)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = f"{ROOT}/target/release"
MG = os.environ.get("MG", f"{REL}/metalgate")
MGPROXY = os.environ.get("MGPROXY", f"{REL}/metalgate-proxy")
FLOOR = os.environ.get("FLOOR", f"{REL}/pingora-floor")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DUR = int(os.environ.get("DUR", "5"))
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


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "stat"
    if mode not in ("stat", "record"):
        sys.exit(__doc__)
    for tool in ("perf", "nginx", "oha", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"proxy_profile: needs {tool}")
    w = tempfile.mkdtemp(prefix="mg-proxy-profile.")
    out_dir = os.environ.get("OUT") or tempfile.mkdtemp(prefix="mg-proxy-profile-data.")
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
        open(f"{w}/route.yaml", "w").write(route_yaml(be, HOST))
        env = dict(os.environ, RUST_LOG="warn")
        start(store_argv(MG, f"{w}/store", f"{w}/route.yaml"), env=env)
        kubeconfig = store_kubeconfig(f"{w}/store")
        peers = {}
        h = free_port()
        peers["floor"] = (h, start([FLOOR, f"127.0.0.1:{h}", f"127.0.0.1:{be}"]))
        h = free_port()
        peers["metalgate-proxy"] = (h, start(
            [MGPROXY, *proxy_flags(kubeconfig, "bench", h, free_port())], env=env))
        for name, (h, _) in peers.items():
            if not routed(h, HOST, 100, 0.2):
                sys.exit(f"proxy_profile: {name} does not answer 200 in 20 s")
        stats = {n: [] for n in peers}
        reqs = {}
        for rnd in range(ROUNDS if mode == "stat" else 1):
            order = list(peers) if rnd % 2 == 0 else list(peers)[::-1]
            for name in order:
                h, p = peers[name]
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
                                      "-z", f"{DUR}s", "-H", f"Host: {HOST}",
                                      f"http://127.0.0.1:{h}/"],
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
            print(f"medians of {ROUNDS} rounds of {DUR} s, HTTP/1.1, oha -c 50:")
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
        print(f"samples per 10 000 requests: floor {sum(a.values()):.0f}, metalgate-proxy "
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
