#!/usr/bin/env bash
# metalgate's container image, built without a Docker daemon: a static binary in an image
# FROM scratch, packed with umoci and written by skopeo as a docker-archive tar that k3s
# imports (`k3s ctr images import`, or drop it into /var/lib/rancher/k3s/agent/images/).
#
#   ./scripts/image.sh            → dist/metalgate-image.tar   (localhost/metalgate:VERSION)
#
# Inside: /metalgate (the one binary, statically linked: no libc, no shell), /etc/passwd and
# /etc/group naming the non-root users the manifests run as, and the licence. Reproducible:
# every timestamp is SOURCE_DATE_EPOCH (the last commit's time).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
NAME=${IMAGE_NAME:-localhost/metalgate}
OUT=${OUT:-dist/metalgate-image.tar}
TARGET=x86_64-unknown-linux-gnu
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)

for tool in umoci skopeo; do
  command -v "$tool" >/dev/null || {
    echo "image.sh: $tool is missing (apt-get install -y umoci skopeo)" >&2
    exit 1
  }
done

echo "==> building a static metalgate $VERSION ($TARGET, +crt-static, code ordered)"
./scripts/static-build.sh
# Exported only now: the cc crate reruns every C build script when SOURCE_DATE_EPOCH changes,
# and with them nearly every crate, so a build with the commit's time set would rebuild the
# static tree that scripts/static-build.sh (and the benches) keep, and the next of those again.
export SOURCE_DATE_EPOCH=$epoch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "==> packing the image (umoci)"
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$VERSION"
umoci unpack --rootless --image "$work/oci:$VERSION" "$work/bundle"
root=$work/bundle/rootfs
install -D -m 0755 target/static/metalgate.stripped "$root/metalgate"
install -D -m 0644 LICENSE "$root/usr/share/doc/metalgate/LICENSE"
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
umoci repack --image "$work/oci:$VERSION" "$work/bundle"
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
umoci config --image "$work/oci:$VERSION" \
  --config.user 65532:65532 \
  --config.entrypoint /metalgate \
  --config.cmd --help \
  --config.workingdir / \
  --config.env PATH=/ \
  --created "$created" \
  --history.created "$created" \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label "org.opencontainers.image.revision=$REVISION" \
  --config.label "org.opencontainers.image.source=https://github.com/metalgate/metalgate" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0" \
  --config.label "org.opencontainers.image.title=metalgate"
umoci gc --layout "$work/oci"

mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
skopeo copy --quiet "oci:$work/oci:$VERSION" "docker-archive:$OUT:$NAME:$VERSION"
size=$(du -h "$OUT" | cut -f1)
gz=$(gzip -c "$OUT" | wc -c)
echo "==> $OUT: $NAME:$VERSION, $size ($((gz / 1024 / 1024)) MiB compressed)"
