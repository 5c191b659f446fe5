#!/usr/bin/env bash
# Bring up the workshop VM: k3s at a pinned version, metalgate from manifests/, and a
# kubeconfig for the laptop. Idempotent: run it again after a change or a failure.
#
#   sudo ./scripts/bootstrap.sh          (Vagrant's provisioner runs it as root)
#
# Settings (environment):
#   NODE_IP      the VM's host-only address            (192.168.56.10)
#   VIP          the LoadBalancer IP of the proxy        (192.168.56.200)
#   K3S_VERSION  the k3s release to install              (v1.33.5+k3s1)
#   K3S_UPGRADE  1 = replace another installed k3s version with K3S_VERSION
#   REPO         this repository                          (the script's own; /vagrant in the VM)
#   IMAGE_TAR    metalgate's image (docker-archive tar)  (dist/metalgate-image.tar; built by
#                scripts/image.sh when missing and cargo is here)
set -euo pipefail

NODE_IP=${NODE_IP:-192.168.56.10}
VIP=${VIP:-192.168.56.200}
K3S_VERSION=${K3S_VERSION:-v1.33.5+k3s1}
# Vagrant uploads this script to /tmp and runs it there: it passes REPO=/vagrant.
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
IMAGE_TAR=${IMAGE_TAR:-$REPO/dist/metalgate-image.tar}
KUBECTL="k3s kubectl"
STEP="start"

step() {
  STEP=$1
  printf '\n==> %s\n' "$1"
}
fail() {
  printf '\nbootstrap: FAILED in step "%s": %s\n' "$STEP" "$1" >&2
  exit 1
}
trap 'fail "a command failed (line $LINENO); fix what it printed above and run bootstrap again"' ERR

step "checking the machine"
[ "$(id -u)" -eq 0 ] || fail "run as root (sudo $0)"
command -v ip >/dev/null || fail "iproute2 (ip) is missing"
# The host-only NIC is the one holding NODE_IP: boxes call it eth1 or enp0s8.
NIC=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{split($4, a, "/"); if (a[1] == ip) print $2}' | head -n1)
if [ -z "$NIC" ]; then
  found=$(ip -o -4 addr show | awk '{print $2 " " $4}' | tr '\n' ';')
  fail "no interface holds $NODE_IP (found: $found). Attach the VirtualBox host-only adapter (vboxnet0, 192.168.56.0/24) as the VM's second NIC, or set NODE_IP."
fi
echo "host-only NIC: $NIC ($NODE_IP)"
case "$NIC" in
  eth1 | enp0s8) ;;
  *) echo "note: manifests/workshop-pool.yaml announces on eth1 and enp0s8 only; this VM's NIC is $NIC — add it to the L2Advertisement's interfaces." ;;
esac

step "k3s $K3S_VERSION"
mkdir -p /etc/rancher/k3s
config=$(mktemp)
cat >"$config" <<EOF
# Written by metalgate's scripts/bootstrap.sh.
node-ip: $NODE_IP
advertise-address: $NODE_IP
flannel-iface: $NIC
tls-san:
  - $NODE_IP
write-kubeconfig-mode: "0644"
# metalgate replaces both: the speaker and controller do LoadBalancer IPs, the proxy ingress.
disable:
  - servicelb
  - traefik
EOF
changed=0
if ! cmp -s "$config" /etc/rancher/k3s/config.yaml; then
  install -m 0600 "$config" /etc/rancher/k3s/config.yaml
  changed=1
  echo "wrote /etc/rancher/k3s/config.yaml"
fi
rm -f "$config"
installed=""
if command -v k3s >/dev/null; then
  installed=$(k3s --version | awk 'NR == 1 {print $3}')
fi
if [ -z "$installed" ] || { [ "$installed" != "$K3S_VERSION" ] && [ "${K3S_UPGRADE:-0}" = 1 ]; }; then
  command -v curl >/dev/null || fail "curl is missing (apt-get install curl)"
  echo "installing k3s $K3S_VERSION"
  curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION="$K3S_VERSION" sh -s - ||
    fail "the k3s installer failed: is https://get.k3s.io reachable from the VM?"
elif [ "$installed" != "$K3S_VERSION" ]; then
  echo "k3s $installed is already installed (pinned: $K3S_VERSION): keeping it; K3S_UPGRADE=1 replaces it"
  [ "$changed" = 0 ] || systemctl restart k3s
else
  echo "k3s $installed already installed"
  [ "$changed" = 0 ] || systemctl restart k3s
fi
systemctl is-active --quiet k3s || systemctl start k3s
for _ in $(seq 1 60); do
  $KUBECTL get --raw /readyz >/dev/null 2>&1 && break
  sleep 2
done
$KUBECTL wait --for=condition=Ready node --all --timeout=180s ||
  fail "the node is not Ready: see journalctl -u k3s"

step "metalgate's image"
if [ ! -f "$IMAGE_TAR" ]; then
  if command -v cargo >/dev/null; then
    "$REPO/scripts/image.sh"
  else
    fail "no image at $IMAGE_TAR and no cargo here: run ./scripts/image.sh on the host (the repository is synced into the VM), then bootstrap again"
  fi
fi
k3s ctr -n k8s.io images import "$IMAGE_TAR" >/dev/null ||
  fail "k3s could not import $IMAGE_TAR"
echo "imported $IMAGE_TAR"

step "metalgate (kubectl apply -k manifests/)"
$KUBECTL apply --server-side --force-conflicts -k "$REPO/manifests"
for w in daemonset/metalgate-speaker deployment/metalgate-controller deployment/metalgate-gitops daemonset/metalgate-proxy; do
  $KUBECTL -n metalgate-system rollout status "$w" --timeout=180s ||
    fail "$w did not become ready: kubectl -n metalgate-system describe $w; kubectl -n metalgate-system logs $w"
done

step "the LoadBalancer IP"
got=""
for _ in $(seq 1 30); do
  got=$($KUBECTL -n metalgate-system get svc metalgate-proxy -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true)
  [ -n "$got" ] && break
  sleep 2
done
[ "$got" = "$VIP" ] ||
  fail "the proxy's Service has EXTERNAL-IP '${got:-<pending>}', not $VIP: kubectl -n metalgate-system get events; kubectl get ipaddresspools -A"
echo "metalgate-proxy: EXTERNAL-IP $got"

step "a kubeconfig for the laptop"
sed "s#https://127.0.0.1:6443#https://$NODE_IP:6443#" /etc/rancher/k3s/k3s.yaml >"$REPO/kubeconfig"
chmod 0600 "$REPO/kubeconfig"
echo "wrote $REPO/kubeconfig (export KUBECONFIG=\$PWD/kubeconfig on the host)"

trap - ERR
cat <<EOF

Ready. Next, from the laptop (in this repository):
  export KUBECONFIG=\$PWD/kubeconfig
  kubectl apply -f examples/workshop/apps/root.yaml
Then open:
  http://podinfo.$VIP.nip.io
  http://argocd.$VIP.nip.io
  http://grafana.$VIP.nip.io
EOF
