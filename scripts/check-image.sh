#!/usr/bin/env bash
# CI's check of the image: scripts/image.sh builds it, and its binary must answer --version in
# an empty root (no libc on disk: the binary is static) as the image's non-root user, be linked
# in scripts/code-order.txt's order with its relocations packed, and stay under 20 MiB compressed.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/image.sh
tar=dist/metalgate-image.tar
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xf "$tar" -C "$work"
mkdir "$work/root"
for layer in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$work/manifest.json"); do
  tar -xf "$work/$layer" -C "$work/root"
done
if find "$work/root" -name 'libc.so*' -o -name 'ld-linux*' | grep -q .; then
  echo "check-image: a libc is in the image" >&2
  exit 1
fi
want="metalgate $(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)"
got=$(chroot --userspec=65532:65532 "$work/root" /metalgate --version)
if [ "$got" != "$want" ]; then
  echo "check-image: /metalgate --version said '$got', not '$want'" >&2
  exit 1
fi
# Its code in the order scripts/code-order.txt gives (what keeps a node's mapped code small):
# the list still names this build's functions, and the link used it.
python3 scripts/code_order.py check scripts/code-order.txt \
  target/static/x86_64-unknown-linux-gnu/release/metalgate
# Its relative relocations packed (DT_RELR, scripts/static-build.sh): as 24-byte RELA entries
# they were 2 MB, read at every start and left mapped in every process.
if ! readelf -d "$work/root/metalgate" | grep -q '(RELR)'; then
  echo "check-image: /metalgate has no DT_RELR: linked without -z pack-relative-relocs" >&2
  exit 1
fi
gz=$(gzip -c "$tar" | wc -c)
limit=$((20 * 1024 * 1024))
if [ "$gz" -ge "$limit" ]; then
  echo "check-image: $((gz / 1024 / 1024)) MiB compressed, over the 20 MiB goal" >&2
  exit 1
fi
echo "check-image: ok — '$got' in an empty root as 65532, $((gz / 1024 / 1024)) MiB compressed"
