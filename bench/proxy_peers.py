#!/usr/bin/env python3
"""Side by side: nginx, HAProxy, Caddy, the bare Pingora floor, `metalgate-proxy` (the proxy
crate's binary), `metalgate proxy` (the image's one binary, as the proxy DaemonSet runs it) and
`metalgate run`, each as the same reverse proxy in front of the same backend, on loopback, in one
run.

Run by bench/proxy.sh (which builds the binaries and checks the tools); not on its own.
Environment: MG, MGPROXY, FLOOR (binaries), W (a scratch directory it may fill), DUR (seconds per
round), CONN (oha connections), RATE (fixed offered load, req/s), WARM (seconds not counted at
the fixed load), ROUNDS (rounds per protocol), PROTOCOLS (comma-separated subset of h1,tls,h2);
optional: PEERS (comma-separated names to keep), MGIMAGE (the image's binary, for `metalgate proxy`; else MG), FLOOR_STOCK (pingora-floor built
as Pingora releases it, as the peer `floor-stock`),
MGPROXY_B (a second metalgate-proxy binary, e.g. an older build, as the peer `metalgate-B`).

For each protocol (plain HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS) and each round, every
proxy gets `oha -z DUR -c CONN` in an order that rotates per round; the table shows the median of
the rounds: req/s, CPU per request (user + system time of the proxy's processes over the round,
divided by the requests; printed whole and as user + system), p50/p99 at saturation; then
p50/p99 at RATE req/s offered (`--latency-correction`, a third of the rounds), over the whole run and over the requests sent
after its first WARM seconds (default 1: the connections' handshakes are done; the ratios use
this one); then PSS and RSS of each proxy's processes after the load. Every request must be a
200, or the run stops.
"""
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

from common import (backend, free_port, oha_target, proxy_flags, route_yaml, self_signed, stop,
                    store_argv, store_kubeconfig)

W = os.environ["W"]
DUR = int(os.environ.get("DUR", "5"))
CONN = int(os.environ.get("CONN", "50"))
RATE = int(os.environ.get("RATE", "5000"))
WARM = float(os.environ.get("WARM", "1"))
ROUNDS = int(os.environ.get("ROUNDS", "10"))
PROTOCOLS = os.environ.get("PROTOCOLS", "h1,tls,h2").split(",")
HOST = "bench.local"
TCK = os.sysconf("SC_CLK_TCK")
STARTED = []  # Popen objects this script started; ended on exit, by PID.


def start(name, argv, **kw):
    out = open(f"{W}/{name}.log", "w")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
    STARTED.append(p)
    return p


def stop_all():
    stop(reversed(STARTED))


def tree(pid):
    """The PID and its descendants (nginx's workers, the shell-less children of a master)."""
    out = [pid]
    try:
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        kids = []
    for k in kids:
        out += tree(int(k))
    return out


def ticks(pids):
    """User and system clock ticks of the processes, apart: the kernel's part (the loopback TCP
    work, wake-ups) is about the same for every proxy, so the user part is where they differ."""
    u = s = 0
    for p in pids:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        u += int(f[11])
        s += int(f[12])
    return u, s


def smaps(pids, field):
    t = 0
    for p in pids:
        for line in open(f"/proc/{p}/smaps_rollup"):
            if line.startswith(field + ":"):
                t += int(line.split()[1])
    return t


def pss_parts(pids):
    """PSS (KiB) of the processes split by what is mapped: the executable's code, the rest of
    the executable (data, relocations), anonymous memory (heap, arenas, buffers, threads' stacks), the main stack,
    shared libraries and the rest."""
    parts = {"exe code": 0, "exe data": 0, "anon": 0, "main stack": 0, "libs": 0, "other": 0}
    for p in pids:
        exe = os.path.realpath(f"/proc/{p}/exe")
        kind = "other"
        for line in open(f"/proc/{p}/smaps"):
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                path = head[5] if len(head) > 5 else ""
                perms = head[1]
                if path == exe:
                    kind = "exe code" if "x" in perms else "exe data"
                elif path in ("", "[heap]"):
                    kind = "anon"
                elif path.startswith("[stack"):
                    kind = "main stack"
                elif path.startswith("/"):
                    kind = "libs"
                else:
                    kind = "other"
            elif line.startswith("Pss:"):
                parts[kind] += int(head[1])
    return parts


def oha(url, port, proto, extra, dur=DUR):
    argv = ["oha", "--no-tui", "-w", "--output-format", "json", "-c", str(CONN), "-z", f"{dur}s"]
    out = subprocess.run(argv + extra + oha_target(proto, HOST, port, port),
                         capture_output=True, text=True, timeout=dur + 60)
    if out.returncode != 0:
        sys.exit(f"oha {url} ({proto}) failed: {out.stderr.strip()}")
    d = json.loads(out.stdout)
    codes = d["statusCodeDistribution"]
    # oha cancels the requests in flight at the deadline (its HTTP/2 client a few per
    # connection); anything else, or more than that, is a failure.
    errs = {k: v for k, v in d["errorDistribution"].items()
            if not (k in ("operation was canceled", "aborted due to deadline") and v <= 4 * CONN)}
    if errs or list(codes) != ["200"]:
        sys.exit(f"{url} ({proto}): not all 200: {codes} {d['errorDistribution']}")
    return d


def steady(db):
    """p50 and p99 (ms) of the requests a fixed-load run sent after its first WARM seconds, from
    the requests oha recorded: over TLS the CONN handshakes at the start hold back the requests
    scheduled meanwhile, and with `--latency-correction` those carry the wait, so the whole run's
    p99 is the client's handshakes (16–64 ms for every proxy), not the proxy's steady latency."""
    with sqlite3.connect(db) as c:
        xs = sorted(r[0] for r in c.execute(
            "SELECT duration FROM oha WHERE status = 200 AND start_latency_correction >= ?",
            (WARM,)))
    if not xs:
        sys.exit(f"{db}: no request after the first {WARM} s")
    return (xs[len(xs) // 2] * 1e3, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e3)


class Peer:
    def __init__(self, name, what, http, https, proc):
        self.name, self.what, self.http, self.https, self.proc = name, what, http, https, proc
        self.res = {}

    def pids(self):
        return tree(self.proc.pid)

    def url(self, proto):
        if proto == "h1":
            return f"http://127.0.0.1:{self.http}/", self.http
        return (f"https://{HOST}:{self.https}/", self.https) if self.https else (None, None)


def wait_200(peer):
    for proto in ("h1", "tls"):
        url, port = peer.url(proto)
        if not url:
            continue
        argv = ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {HOST}",
                "--resolve", f"{HOST}:{port}:127.0.0.1", url]
        for _ in range(150):
            if subprocess.run(argv, capture_output=True, text=True).stdout == "200":
                break
            if peer.proc.poll() is not None:
                sys.exit(f"{peer.name} exited: see {W}/{peer.name}.log")
            time.sleep(0.1)
        else:
            sys.exit(f"{peer.name} never answered 200 on {url}")


def main():
    be = free_port()
    crt, key, pem = f"{W}/tls.crt", f"{W}/tls.key", f"{W}/tls.pem"
    self_signed(crt, key, HOST)
    open(pem, "w").write(open(crt).read() + open(key).read())
    body = "0123456789" * 6 + "0123"
    os.makedirs(f"{W}/be", exist_ok=True)
    backend_proc = start("backend", backend(f"{W}/be", be, body))
    peers = []

    # nginx as ingress-nginx configures it: upstream keep-alive, the forwarding headers, no log.
    h, s = free_port(), free_port()
    os.makedirs(f"{W}/ng", exist_ok=True)
    open(f"{W}/ng/nginx.conf", "w").write(f"""worker_processes 2; daemon off; pid {W}/ng/pid;
error_log {W}/ng/error.log; events {{ worker_connections 8192; }}
http {{ access_log off;
  upstream be {{ server 127.0.0.1:{be}; keepalive 320; keepalive_requests 10000; }}
  server {{ listen 127.0.0.1:{h}; listen 127.0.0.1:{s} ssl http2; server_name {HOST};
    ssl_certificate {crt}; ssl_certificate_key {key};
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $host; proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme; }} }} }}
""")
    peers.append(Peer("nginx", "nginx 1.22 (Debian), 2 workers", h, s,
                      start("nginx", ["nginx", "-c", f"{W}/ng/nginx.conf", "-p", f"{W}/ng"])))

    # HAProxy: two threads, connection reuse to the backend, the same headers.
    h, s = free_port(), free_port()
    open(f"{W}/haproxy.cfg", "w").write(f"""global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:{h}
  bind 127.0.0.1:{s} ssl crt {pem} alpn h2,http/1.1
  unique-id-format %[uuid()]
  http-request set-header X-Request-ID %[unique-id]
  option forwardfor
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
  http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
  default_backend be
backend be
  server s1 127.0.0.1:{be}
""")
    peers.append(Peer("haproxy", "HAProxy 2.6 (Debian), 2 threads", h, s,
                      start("haproxy", ["haproxy", "-db", "-f", f"{W}/haproxy.cfg"])))

    # Caddy: reverse_proxy sets X-Forwarded-For/Proto/Host itself.
    h, s = free_port(), free_port()
    proxy = f"""reverse_proxy 127.0.0.1:{be} {{
    header_up X-Real-IP {{remote_host}}
    header_up X-Request-ID {{http.request.uuid}}
    header_up X-Forwarded-Port {{http.request.port}}
  }}"""
    open(f"{W}/Caddyfile", "w").write(f"""{{
  admin off
  auto_https off
}}
http://:{h} {{
  {proxy}
}}
https://{HOST}:{s} {{
  tls {crt} {key}
  {proxy}
}}
""")
    peers.append(Peer("caddy", "Caddy 2.6 (Debian), GOMAXPROCS=2", h, s,
                      start("caddy", ["caddy", "run", "--adapter", "caddyfile",
                                      "--config", f"{W}/Caddyfile"],
                            env=dict(os.environ, GOMAXPROCS="2", HOME=W,
                                     XDG_DATA_HOME=W, XDG_CONFIG_HOME=W))))

    # The floor: Pingora with one fixed upstream and the same headers; over TLS with the same
    # certificate (Pingora's rustls listener, h2 by ALPN).
    h, s = free_port(), free_port()
    peers.append(Peer("floor", "pingora-floor (bench/src/bin), a runtime per core", h, s,
                      start("floor", [os.environ["FLOOR"], f"127.0.0.1:{h}", f"127.0.0.1:{be}",
                                      f"127.0.0.1:{s}", crt, key])))
    # The same as Pingora releases it: its `Server` (the work-stealing runtime), its own upstream
    # pool and body buffers instead of third_party's patched ones (the stock feature).
    if os.environ.get("FLOOR_STOCK"):
        h = free_port()
        peers.append(Peer("floor-stock", "pingora-floor, Pingora as released (Server, own pool and body buffers)", h, None,
                          start("floor-stock", [os.environ["FLOOR_STOCK"], f"127.0.0.1:{h}",
                                                f"127.0.0.1:{be}"])))

    # metalgate: a store with the route (Service, EndpointSlice, Ingress with TLS), then the
    # proxy binary alone against it, and `metalgate run` (store + proxy in one process).
    open(f"{W}/route.yaml", "w").write(route_yaml(be, HOST, (open(crt).read(), open(key).read())))
    env = dict(os.environ, RUST_LOG="warn")
    # A store left by an earlier run in the same W has a kubeconfig naming its old port: the
    # proxies would read it before the new store writes its own.
    shutil.rmtree(f"{W}/store", ignore_errors=True)
    start("store", store_argv(os.environ["MG"], f"{W}/store", f"{W}/route.yaml"), env=env)
    kubeconfig = store_kubeconfig(f"{W}/store")
    h, s = free_port(), free_port()
    peers.append(Peer("metalgate-proxy", "metalgate-proxy (the proxy crate's own binary)", h, s,
                      start("metalgate-proxy",
                            [os.environ["MGPROXY"], *proxy_flags(kubeconfig, "bench", h, s)],
                            env=env)))
    # What the proxy DaemonSet runs: `metalgate proxy`, the one binary of the image (MGIMAGE,
    # from scripts/static-build.sh; else MG). From a copy, so its code pages are not shared with
    # the store's (PSS would split them).
    image = "MGIMAGE" in os.environ
    shutil.copy(os.environ.get("MGIMAGE", os.environ["MG"]), f"{W}/metalgate-copy")
    h, s = free_port(), free_port()
    peers.append(Peer("metalgate-cmd", "metalgate proxy (the DaemonSet's command; a copy of "
                      + ("the image's binary: static, code ordered)" if image else "the binary)"),
                      h, s, start("metalgate-cmd", [f"{W}/metalgate-copy", "proxy",
                                                    *proxy_flags(kubeconfig, "bench-cmd", h, s)],
                                  env=env)))
    h, s = free_port(), free_port()
    peers.append(Peer("metalgate-run", "metalgate run --components proxy (store + proxy)", h, s,
                      start("metalgate-run", [
                          os.environ["MG"], "run", "--data-dir", f"{W}/run", "--api-listen",
                          f"127.0.0.1:{free_port()}", "--components", "proxy", "--manifests",
                          f"{W}/route.yaml", "--node-name", "bench", "--http-listen",
                          f"127.0.0.1:{h}", "--https-listen", f"127.0.0.1:{s}",
                          "--no-access-log", "--publish-service", ""], env=env)))

    if os.environ.get("MGPROXY_B"):
        h, s = free_port(), free_port()
        peers.append(Peer("metalgate-B", f"metalgate-proxy from {os.environ['MGPROXY_B']}", h, s,
                          start("metalgate-B", [os.environ["MGPROXY_B"],
                                                *proxy_flags(kubeconfig, "bench-b", h, s)],
                                env=env)))
    if os.environ.get("PEERS"):
        keep = os.environ["PEERS"].split(",")
        for p in peers:
            if p.name not in keep:
                p.proc.terminate()
        peers = [p for p in peers if p.name in keep]
    for p in peers:
        wait_200(p)
    wait_200(Peer("backend", "", be, None, backend_proc))

    nproc = os.cpu_count()
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1048576
    print(f"machine: {nproc} cores, {mem} GiB, {os.uname().release}; oha -c {CONN} -z {DUR}s, "
          f"{ROUNDS} rounds per protocol, medians; fixed load {RATE} req/s")
    for p in peers:
        print(f"  {p.name:16} {p.what}")
    d = oha(f"http://127.0.0.1:{be}/", be, "h1", [])
    print(f"direct to the backend (nginx, 1 worker): {round(d['summary']['requestsPerSec'])} req/s")

    for proto in PROTOCOLS:
        runs = [p for p in peers if p.url(proto)[0]]
        for p in runs:  # warm-up
            url, port = p.url(proto)
            oha(url, port, proto, [], dur=2)
        for r in range(ROUNDS):
            for p in runs[r % len(runs):] + runs[:r % len(runs)]:
                url, port = p.url(proto)
                pids = p.pids()
                a = ticks(pids)
                d = oha(url, port, proto, [])
                b = ticks(pids)
                n = d["statusCodeDistribution"]["200"]
                lat = d["latencyPercentiles"]
                user, system = ((y - x) / TCK * 1e6 / n for x, y in zip(a, b))
                p.res.setdefault(proto, []).append((d["summary"]["requestsPerSec"],
                                                    user + system,
                                                    lat["p50"] * 1e3, lat["p99"] * 1e3,
                                                    user, system))
        for r in range(max(1, ROUNDS // 3)):
            for p in runs:
                url, port = p.url(proto)
                # Kept in W, every request of the run, for a closer look.
                db = os.path.join(W, f"fixed-{proto}-{p.name}-{r}.db")
                if os.path.exists(db):
                    os.remove(db)
                d = oha(url, port, proto, ["-q", str(RATE), "--latency-correction", "--db-url", db])
                lat = d["latencyPercentiles"]
                p.res.setdefault(proto + "-fixed", []).append(
                    (lat["p50"] * 1e3, lat["p99"] * 1e3) + steady(db))
        report(proto, runs)

    print("\nmemory after the load (KiB; whole process trees — PSS counts shared pages once):")
    for p in peers:
        pids = p.pids()
        print(f"  {p.name:16} PSS {smaps(pids, 'Pss'):7d}  RSS {smaps(pids, 'Rss'):7d}  "
              f"({len(pids)} process{'es' if len(pids) > 1 else ''})")
        print("  " + " " * 16 + " PSS by mapping: " +
              ", ".join(f"{k} {v}" for k, v in pss_parts(pids).items()))


def med(xs):
    return statistics.median(xs)


def report(proto, runs):
    title = {"h1": "plain HTTP/1.1", "tls": "HTTP/1.1 over TLS", "h2": "HTTP/2 over TLS"}[proto]
    print(f"\n{title}: medians of {ROUNDS} rounds (min–max of req/s)")
    print(f"  {'':16} {'req/s':>8} {'min–max':>13} {'CPU µs/req':>10} {'user+sys':>11} "
          f"{'p50 ms':>7} {'p99 ms':>7} | at {RATE}/s: {'p50':>6} {'p99':>6} | after {WARM:g} s: "
          f"{'p50':>6} {'p99':>6}")
    row = {}
    for p in runs:
        rs = p.res[proto]
        fx = p.res[proto + "-fixed"]
        row[p.name] = (med([x[0] for x in rs]), med([x[1] for x in rs]), med([x[3] for x in fx]))
        print(f"  {p.name:16} {row[p.name][0]:8.0f} {min(x[0] for x in rs):6.0f}–"
              f"{max(x[0] for x in rs):<6.0f} {row[p.name][1]:10.1f} "
              f"{med([x[4] for x in rs]):5.1f}+{med([x[5] for x in rs]):<5.1f} "
              f"{med([x[2] for x in rs]):7.3f} {med([x[3] for x in rs]):7.3f} |"
              f"          {med([x[0] for x in fx]):6.3f} {med([x[1] for x in fx]):6.3f} |"
              f"             {med([x[2] for x in fx]):6.3f} {med([x[3] for x in fx]):6.3f}")
    if "floor" in row and "floor-stock" in row:
        a, b = row["floor"], row["floor-stock"]
        print(f"  floor ÷ floor-stock: req/s {a[0] / b[0]:.2f}, CPU per request "
              f"{a[1] / b[1]:.2f}, p99 at {RATE}/s after {WARM:g} s {a[2] / b[2]:.2f}")
    for mg in ("metalgate-proxy", "metalgate-cmd", "metalgate-run"):
        for peer in ("floor", "floor-stock", "nginx", "haproxy", "caddy", "metalgate-B"):
            if mg in row and peer in row:
                a, b = row[mg], row[peer]
                print(f"  {mg} ÷ {peer}: req/s {a[0] / b[0]:.2f}, CPU per request "
                      f"{a[1] / b[1]:.2f}, p99 at {RATE}/s after {WARM:g} s {a[2] / b[2]:.2f}")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
