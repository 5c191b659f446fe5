#!/usr/bin/env bash
# The image's binary: metalgate built static (+crt-static, no libc on disk), without the `lab`
# feature (the lab and its node agent never run from the image), its code ordered, stripped.
#
#   ./scripts/static-build.sh [BINARY…]   → target/static/BINARY.stripped   (default: metalgate)
#
# Used by scripts/image.sh; bench/node_memory.py and bench/proxy.sh build the image's binary
# (and, to compare, metalgate-proxy: each binary is its package's) with it too.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-gnu
# A separate target dir: RUSTFLAGS differ from the normal build's, which would otherwise be
# rebuilt from scratch every time one follows the other.
export RUSTFLAGS="-C target-feature=+crt-static"
[ $# -gt 0 ] || set -- metalgate
for bin in "$@"; do
  static=(--release --locked --no-default-features --target "$TARGET" --target-dir target/static
    -p "$bin" --bin "$bin")
  cargo build "${static[@]}"
  BIN=target/static/$TARGET/release/$bin
  # Linked again with the functions `metalgate proxy` runs packed first (scripts/code-order.txt,
  # from scripts/code_order.py): the kernel maps code in 64 KiB neighbourhoods, so functions
  # scattered over the binary cost a node megabytes of mapped code (bench/RESULTS.md
  # 2026-12-06). The list names symbols; resolving it against this build drops those it lacks.
  # Only the final link changes (the flags are the binary's own, not RUSTFLAGS), and the list is
  # named by its content: cargo tells builds apart by their flags, not by the files they name.
  # Its relative relocations packed (DT_RELR; glibc ≥ 2.36 applies them in a static PIE): as
  # RELA entries they were 2 MB the start-up reads and every process keeps mapped; packed, 23 KB
  # (bench/RESULTS.md, 2026-12-06 b).
  python3 scripts/code_order.py resolve scripts/code-order.txt "$BIN" >"target/static/$bin.sym"
  sym=target/static/$bin-$(sha256sum "target/static/$bin.sym" | cut -c1-16).sym
  rm -f "target/static/$bin"-????????????????.sym
  mv "target/static/$bin.sym" "$sym"
  cargo rustc "${static[@]}" -- -C link-arg=-Wl,--symbol-ordering-file="$PWD/$sym" \
    -C link-arg=-Wl,--no-warn-symbol-ordering -C link-arg=-Wl,-z,pack-relative-relocs
  # Stripped into a copy: the build's own keeps its symbols for the next resolve.
  strip -o "target/static/$bin.stripped" "$BIN"
done
