#!/usr/bin/env python3
"""A node's memory, by PSS: metalgate's processes on one node as the image runs them (`metalgate
proxy`, `metalgate speaker`, `metalgate controller`, `metalgate gitops run`: one binary, whose
code pages the processes share) against the same node with the proxy crate's own, smaller
`metalgate-proxy` binary for the proxy (the other processes still `metalgate`).

bench/proxy.sh measures each proxy alone (`metalgate proxy` from a private copy of the binary),
which is its PSS when nothing else maps that file; on a node the speaker DaemonSet (and on the
workshop's one node the controller and the GitOps module too) map the same file, and PSS splits
each shared page between them. This measures what a node holds in both cases.

Usage: python3 bench/node_memory.py   (as root: the speaker opens raw sockets; env ROUNDS=3 DUR=4;
       METALGATE_B=BINARY adds a third layout, `B`: every process from BINARY, e.g. an earlier
       build of the image's binary, printed as B ÷ one)
Needs cargo, nginx, oha, curl, strip. Binaries are built as scripts/image.sh builds the image's
(scripts/static-build.sh: static, without the lab, code ordered, stripped); the store they run
against is `metalgate run` from another copy of the file, so it shares no page with them. All
traffic on loopback.

Node kinds: `worker` (the proxy and speaker DaemonSets) and `workshop` (one node running all
four). For each kind and round, in an order that alternates per round: the node's processes
start against the store, the proxy serves `oha -c 50` for DUR seconds of HTTP/1.1, then the PSS
and RSS of each process are read. Printed: medians of the rounds, and two binaries ÷ one.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import (backend, free_port, proxy_flags, route_yaml, routed, stop as stop_procs,
                    store_argv, store_kubeconfig)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DUR = int(os.environ.get("DUR", "4"))
HOST = "bench.local"
STATIC = f"{ROOT}/target/static"  # BINARY.stripped, from scripts/static-build.sh
B = os.environ.get("METALGATE_B")  # another image binary, run as the layout "B"
LAYOUTS = ["one", "two"] + (["B"] if B else [])
STARTED = []  # Popen objects this script started; ended on exit, by PID.


def start(w, argv, **kw):
    log = open(f"{w}/processes.log", "a")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                         env=dict(os.environ, RUST_LOG="warn"), **kw)
    STARTED.append(p)
    return p


def stop(procs):
    stop_procs(procs)
    for p in procs:
        if p in STARTED:
            STARTED.remove(p)


def memory(pid):
    """PSS and RSS of one process, KiB."""
    got = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        head = line.split()
        if head[0] in ("Pss:", "Rss:"):
            got[head[0][:-1]] = int(head[1])
    return got


def build():
    """Both binaries as the image's is built (static, without the lab, code ordered, stripped)."""
    subprocess.run([f"{ROOT}/scripts/static-build.sh", "metalgate", "metalgate-proxy"],
                   check=True)


def store(w):
    """The backend (nginx) and a store holding one Ingress to it; returns the kubeconfig."""
    be = free_port()
    os.makedirs(f"{w}/be")
    start(w, backend(f"{w}/be", be, "0123456789"))
    open(f"{w}/route.yaml", "w").write(route_yaml(be, HOST))
    # A copy: the store shares no code page with the node's processes.
    shutil.copy(f"{STATIC}/metalgate.stripped", f"{w}/store-metalgate")
    start(w, store_argv(f"{w}/store-metalgate", f"{w}/store", f"{w}/route.yaml"))
    return store_kubeconfig(f"{w}/store")


def node(w, kubeconfig, kind, binaries, n):
    """Start one node's processes from fresh copies of the binaries, load its proxy, and return
    {process: memory}."""
    d = f"{w}/{kind}-{binaries}-{n}"
    os.makedirs(d)
    for b in ["metalgate"] + (["metalgate-proxy"] if binaries == "two" else []):
        shutil.copy(B if binaries == "B" else f"{STATIC}/{b}.stripped", f"{d}/{b}")
    http = free_port()
    common = ["--kubeconfig", kubeconfig, "--node-name", "n1"]
    proxy = ([f"{d}/metalgate-proxy"] if binaries == "two" else [f"{d}/metalgate", "proxy"]) + \
        proxy_flags(kubeconfig, "n1", http, free_port())
    argv = {
        "proxy": proxy,
        "speaker": [f"{d}/metalgate", "speaker", *common, "--node-ip", "127.0.0.1",
                    "--admin-listen", f"127.0.0.1:{free_port()}"],
    }
    if kind == "workshop":
        argv["controller"] = [f"{d}/metalgate", "controller", *common, "--no-gitops",
                              "--data-dir", f"{d}/controller",
                              "--admin-listen", f"127.0.0.1:{free_port()}"]
        argv["gitops"] = [f"{d}/metalgate", "gitops", "run", *common, "--data-dir", f"{d}/gitops",
                          "--admin-listen", f"127.0.0.1:{free_port()}"]
    procs = {name: start(w, a) for name, a in argv.items()}
    try:
        url = f"http://127.0.0.1:{http}/"
        if not routed(http, HOST, 100, 0.1):
            sys.exit(f"node_memory: the proxy ({binaries} binaries) did not route in 10 s")
        out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-c", "50", "-z",
                              f"{DUR}s", "-H", f"Host: {HOST}", url],
                             capture_output=True, text=True, check=True).stdout
        codes = json.loads(out)["statusCodeDistribution"]
        if set(codes) != {"200"}:
            sys.exit(f"node_memory: answers other than 200: {codes}")
        time.sleep(2)
        for name, p in procs.items():
            if p.poll() is not None:
                sys.exit(f"node_memory: {name} ({binaries} binaries) exited: {p.returncode}")
        return {name: memory(p.pid) for name, p in procs.items()}
    finally:
        stop(list(procs.values()))
        shutil.rmtree(d, ignore_errors=True)


def main():
    for tool in ("cargo", "nginx", "oha", "curl", "strip", "python3"):
        if shutil.which(tool) is None:
            sys.exit(f"node_memory: needs {tool}")
    build()
    w = tempfile.mkdtemp(prefix="mg-node-memory.")
    try:
        kubeconfig = store(w)
        runs = {}
        for n in range(ROUNDS):
            order = LAYOUTS if n % 2 == 0 else LAYOUTS[::-1]
            for kind in ("worker", "workshop"):
                for binaries in order:
                    runs.setdefault((kind, binaries), []).append(
                        node(w, kubeconfig, kind, binaries, n))
        mb = lambda kib: f"{kib / 1024:.1f}"
        print(f"medians of {ROUNDS} rounds after {DUR} s of HTTP/1.1 through the proxy; PSS / RSS MB")
        for kind in ("worker", "workshop"):
            totals = {}
            for binaries in LAYOUTS:
                rounds = runs[(kind, binaries)]
                names = list(rounds[0])
                parts = []
                for name in names:
                    pss = statistics.median(r[name]["Pss"] for r in rounds)
                    rss = statistics.median(r[name]["Rss"] for r in rounds)
                    parts.append(f"{name} {mb(pss)} / {mb(rss)}")
                total = statistics.median(sum(m["Pss"] for m in r.values()) for r in rounds)
                totals[binaries] = total
                label = {"one": "one binary (the image)", "two": "metalgate-proxy for the proxy",
                         "B": "one binary: METALGATE_B"}[binaries]
                each = ", ".join(mb(sum(m["Pss"] for m in r.values())) for r in rounds)
                print(f"{kind:9s} {label:30s} node PSS {mb(total):>5s}  ({'; '.join(parts)}) "
                      f"[rounds: {each}]")
            print(f"{kind:9s} node PSS, two binaries ÷ one: {totals['two'] / totals['one']:.2f}")
            if B:
                print(f"{kind:9s} node PSS, B ÷ one: {totals['B'] / totals['one']:.2f}  (B: {B})")
    finally:
        stop(list(STARTED))
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
