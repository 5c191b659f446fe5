#!/usr/bin/env python3
"""The image binary's code order: which functions `metalgate proxy` runs, so the linker can put
them next to each other.

Why: a node's memory is mostly the binary's code pages the processes map, and the kernel maps a
file page's 64 KiB neighbourhood on each fault (fault-around). The proxy runs ~3.7 MB of
functions scattered over 39 MB of code, so it mapped 15 MB of it; with those functions packed
first it maps ~6.6 MB (bench/RESULTS.md 2026-12-06). scripts/static-build.sh hands the list to the
linker (lld's --symbol-ordering-file); a name the build no longer has is skipped, so a stale
list costs memory, never correctness.

  python3 scripts/code_order.py record   → scripts/code-order.txt (commit it)
      Builds the image's binary (scripts/static-build.sh: static, without the lab), runs
      `metalgate proxy` under valgrind's callgrind against a store with one Ingress (nginx as its
      backend, on loopback):
      start-up, plain HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS (oha), a metrics scrape;
      then the same natively under `perf record` (PERF_RUNS runs, joined), for code only this
      CPU runs (valgrind's lacks AVX-512, VAES…) or that only load reaches; then the speaker, the controller and the GitOps
      module under callgrind from start-up to ready. Writes the functions run in that order
      (within a run, first run first) by their symbols' names. The names carry rustc's hashes, which change with
      the compiler's and the dependencies' versions: record again after either changes
      (scripts/static-build.sh prints how many it found). Needs valgrind, perf, nginx, oha, curl,
      openssl (as root, or with perf_event_paranoid ≤ 1).
  python3 scripts/code_order.py resolve LIST BINARY   → the linker's list on stdout
      BINARY's symbols named on LIST, in LIST's order (a name not found by its hash is looked up
      without it unless it names a generic function's instances); a summary on stderr.
  python3 scripts/code_order.py check LIST BINARY   (scripts/check-image.sh)
      Fails unless BINARY (unstripped) has ≥ 90 % of LIST's functions by name and ≥ 80 % of
      their code packed at the start of .text — i.e. the list is fresh and the link used it.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, f"{ROOT}/bench")
from common import (backend, free_port, oha_target, proxy_flags, route_yaml,  # noqa: E402
                    routed, self_signed, stop, store_argv, store_kubeconfig)

TARGET = "x86_64-unknown-linux-gnu"
LIST = f"{ROOT}/scripts/code-order.txt"
HOST = "bench.local"
PERF_RUNS = 4  # joined: see record()
HASH = re.compile(r"17h[0-9a-f]{16}E")


def exact(symbol):
    """A symbol's name without LLVM's `.llvm.N` suffix (which changes with the code around it)."""
    return re.sub(r"\.llvm\.\d+$", "", symbol)


def loose(symbol):
    """The same without rustc's hash (`17h<16 hex>E`), which changes with the compiler's and the
    dependencies' versions; generic functions' instances share it."""
    return HASH.sub("E", exact(symbol))


def text_symbols(binary):
    """{name: (address, size)} of BINARY's functions."""
    out = subprocess.run(["nm", "--defined-only", "-S", binary], capture_output=True, text=True,
                         check=True).stdout
    return {f[3]: (int(f[0], 16), int(f[1], 16)) for f in (line.split() for line in out.splitlines())
            if len(f) == 4 and f[2] in "tTwW"}


def ordered(listed, symbols):
    """The symbols named on the list at `listed`, in its order; and how many of its names were
    found by name, how many more without their hash, and how many it has."""
    names = []
    for line in open(listed):
        name = line.strip()
        if name and not name.startswith("#"):
            names.append(name)
    by_exact, by_loose = {}, {}
    for s in symbols:
        by_exact.setdefault(exact(s), []).append(s)
        by_loose.setdefault(loose(s), []).append(s)
    out, seen, exact_found, loose_found = [], set(), 0, 0
    for name in names:
        found = by_exact.get(name)
        if found:
            exact_found += 1
        else:
            # Built by another compiler or dependency version: the name without its hash, if it
            # is not a generic function's (whose many instances the list did not all run).
            found = by_loose.get(loose(name), [])
            if 0 < len(found) <= 2:
                loose_found += 1
            else:
                found = []
        for s in found:
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out, exact_found, loose_found, len(names)


def resolve(listed, binary):
    out, exact_found, loose_found, total = ordered(listed, text_symbols(binary))
    sys.stdout.write("".join(f"{s}\n" for s in out))
    print(f"code order: {exact_found} of {total} listed functions found by name, "
          f"{loose_found} more without their hash; {len(out)} symbols ordered", file=sys.stderr)


def check(listed, binary):
    """Whether BINARY (unstripped) was linked with the list: most of its names found, and most
    of their code at the start of `.text`, where the linker puts what it is told to order."""
    symbols = text_symbols(binary)
    out, exact_found, _, total = ordered(listed, symbols)
    if exact_found < 0.9 * total:
        sys.exit(f"code order: only {exact_found} of {total} functions of {listed} are in "
                 f"{binary} by name — the list is stale (another compiler or dependency "
                 "versions): record it again (python3 scripts/code_order.py record)")
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                              check=True).stdout
    text = next(line.split() for line in sections.splitlines() if " .text " in line)
    start = int(text[text.index(".text") + 2], 16)
    size = sum(symbols[s][1] for s in out)
    packed = sum(symbols[s][1] for s in out if symbols[s][0] < start + 1.05 * size)
    if packed < 0.8 * size:
        sys.exit(f"code order: {binary} holds only {packed / size:.0%} of the listed functions' "
                 f"{size / 1e6:.1f} MB at the start of .text: it was not linked in their order")
    print(f"code order: ok — {exact_found} of {total} listed functions found, "
          f"{packed / size:.0%} of their {size / 1e6:.1f} MB at the start of .text")


def callgrind(out):
    """valgrind's callgrind, writing to `out` the functions run, by their symbols' names."""
    return ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no",
            "--compress-strings=no", "--compress-pos=no", f"--callgrind-out-file={out}"]


def callgrind_functions(out):
    """The functions in a callgrind output, first run first."""
    for line in open(out):
        if line.startswith(("fn=", "cfn=")):
            # callgrind marks recursion depth as name'N; unnamed code as 0x….
            name = re.sub(r"'\d+$", "", line.split("=", 1)[1].strip())
            if not name.startswith("0x"):
                yield name


def record():
    for tool in ("valgrind", "perf", "nginx", "oha", "curl", "openssl", "nm"):
        if shutil.which(tool) is None:
            sys.exit(f"code_order: needs {tool}")
    # The image's own build (its symbols kept): which functions run does not depend on their
    # order, so the binary may already be linked with an older list.
    subprocess.run([f"{ROOT}/scripts/static-build.sh", "metalgate"], cwd=ROOT, check=True)
    binary = f"{ROOT}/target/static/{TARGET}/release/metalgate"
    w = tempfile.mkdtemp(prefix="mg-code-order.")
    procs = []

    def start(argv):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=open(f"{w}/processes.log", "a"),
                             env=dict(os.environ, RUST_LOG="warn"))
        procs.append(p)
        return p

    try:
        be = free_port()
        os.makedirs(f"{w}/be")
        start(backend(f"{w}/be", be, "0123456789"))
        self_signed(f"{w}/crt.pem", f"{w}/key.pem", HOST)
        open(f"{w}/route.yaml", "w").write(
            route_yaml(be, HOST, (open(f"{w}/crt.pem").read(), open(f"{w}/key.pem").read())))
        # The store runs from a copy: the proxy's runs are the only ones recorded.
        shutil.copy(binary, f"{w}/store-metalgate")
        start(store_argv(f"{w}/store-metalgate", f"{w}/store", f"{w}/route.yaml"))
        kubeconfig = store_kubeconfig(f"{w}/store")

        def serve(wrapper, load, what):
            """Run the proxy under `wrapper` through start-up, the three protocols (`load`: oha's
            amount per protocol) and a metrics scrape; end it with SIGINT (perf hands it on)."""
            http, https, admin = free_port(), free_port(), free_port()
            proxy = start([*wrapper, binary, "proxy",
                           *proxy_flags(kubeconfig, "n1", http, https, admin)])
            if not routed(http, HOST, 240, 0.5):
                sys.exit(f"code_order: the proxy under {what} did not route in 120 s")
            for name, proto in [("HTTP/1.1", "h1"), ("TLS", "tls"), ("HTTP/2", "h2")]:
                out = subprocess.run(["oha", "--no-tui", *load,
                                      *oha_target(proto, HOST, http, https)],
                                     capture_output=True, text=True, check=True).stdout
                print(f"code_order: {what}, {name}: " + " ".join(
                    line.strip() for line in out.splitlines() if "[200]" in line),
                    file=sys.stderr)
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{admin}/metrics"],
                           check=True)
            proxy.send_signal(signal.SIGINT)
            proxy.wait(timeout=120)

        names, seen = [], set()

        def add(name):
            name = exact(name)
            if name not in seen:
                seen.add(name)
                names.append(name)

        # Every function the proxy runs, cold ones included, under callgrind.
        serve(callgrind(f"{w}/proxy.out"), ["-n", "2000", "-c", "10"], "callgrind")
        for name in callgrind_functions(f"{w}/proxy.out"):
            add(name)
        listed = len(names)
        # Then the ones it runs only on this CPU (valgrind's lacks AVX-512, VAES, …: crypto,
        # memchr and libc pick other code) or only at full speed, as perf samples them. Samples
        # miss a different few of the rarely run ones each time (two recordings of one build,
        # one run each, differed in 55 names and mapped 5.9 vs 6.3 MB of code: bench/RESULTS.md
        # 2026-12-07 a), so the runs' functions are joined.
        for run in range(PERF_RUNS):
            serve(["perf", "record", "-q", "-F", "20000", "-o", f"{w}/perf{run}.data", "--"],
                  ["-z", "3s", "-c", "50"], f"perf, run {run + 1} of {PERF_RUNS}")
            report = subprocess.run(["perf", "report", "-i", f"{w}/perf{run}.data", "--stdio",
                                     "--no-demangle", "--sort", "sym", "-F", "sym"],
                                    capture_output=True, text=True, check=True).stdout
            for line in report.splitlines():
                if "[.] " in line:
                    add(line.split("[.] ", 1)[1].strip())
        print(f"code_order: the proxy: {listed} functions from callgrind, {len(names) - listed} "
              "more from perf", file=sys.stderr)

        # Then what the processes sharing the proxy's node run besides (the speaker on every
        # node; the controller and the GitOps module on the workshop's one), each as
        # bench/node_memory.py starts it, from start-up to ready and a few seconds after, so
        # their code is packed too instead of scattered between.
        common = ["--kubeconfig", kubeconfig, "--node-name", "n1"]
        for what, argv in [
                ("speaker", ["speaker", *common, "--node-ip", "127.0.0.1"]),
                ("controller", ["controller", *common, "--no-gitops",
                                "--data-dir", f"{w}/controller"]),
                ("gitops", ["gitops", "run", *common, "--data-dir", f"{w}/gitops"])]:
            before = len(names)
            admin = free_port()
            p = start([*callgrind(f"{w}/{what}.out"), binary, *argv,
                       "--admin-listen", f"127.0.0.1:{admin}"])
            for _ in range(240):
                r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    f"http://127.0.0.1:{admin}/readyz"],
                                   capture_output=True, text=True)
                if r.stdout == "200" or p.poll() is not None:
                    break
                time.sleep(0.5)
            if r.stdout != "200":
                sys.exit(f"code_order: the {what} under callgrind was not ready in 120 s")
            time.sleep(5)
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{admin}/metrics"],
                           check=True)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
            for name in callgrind_functions(f"{w}/{what}.out"):
                add(name)
            print(f"code_order: the {what}: {len(names) - before} more functions",
                  file=sys.stderr)
        with open(LIST, "w") as f:
            f.write("# scripts/code_order.py record: the functions `metalgate proxy` ran (start-up, "
                    "HTTP/1.1, TLS, HTTP/2, metrics; callgrind's, then perf's), then those the "
                    "speaker, the controller and the GitOps module ran besides\n")
            f.write("".join(f"{n}\n" for n in names))
        print(f"code_order: {len(names)} functions → {LIST}", file=sys.stderr)
    finally:
        stop(procs)
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        record()
    elif sys.argv[1:2] == ["resolve"] and len(sys.argv) == 4:
        resolve(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 4:
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
