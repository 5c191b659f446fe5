#!/usr/bin/env bash
# Proxy benchmark, three parts, one run:
#  1. side by side (bench/proxy_peers.py): nginx, HAProxy and Caddy (Debian's packages), the bare
#     Pingora floor (`pingora-floor`, in metalgate-proxy's layout of a runtime per core, and
#     `floor-stock`: Pingora as released — its `Server` with the work-stealing runtime, its own
#     upstream pool and body buffers instead of third_party's patched ones) and metalgate (`metalgate-proxy`,
#     `metalgate proxy` from the image's binary, and `metalgate run` with the store in the same
#     process), each the same reverse proxy in front of the same backend
#     (an nginx answering a fixed 64-byte body), on loopback, with the same certificate: plain
#     HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS; ROUNDS interleaved rounds each, medians of
#     req/s, CPU per request, p50/p99 at saturation and at RATE req/s, then PSS and RSS;
#  2. route change → live: a new host through the API (metalgate) vs a server block + reload
#     (nginx), RUNS times each; and metalgate's change → live and memory as the number of
#     Ingresses grows (GROW, e.g. "1 100 1000 10000");
#  3. a node's memory (bench/node_memory.py): the proxy as the image runs it, sharing the one
#     binary's code with the speaker (and the controller and GitOps module), against the proxy
#     crate's own binary — the proxy's PSS as deployed.
# Usage: bench/proxy.sh   (env: DUR=5 CONN=50 RATE=5000 ROUNDS=10 PROTOCOLS=h1,tls,h2 RUNS=20
#                          GROW="1 100 1000 10000" PARTS="1 2 3")
# Needs nginx, haproxy, caddy, openssl (apt-get install -y nginx haproxy caddy openssl), oha
# (cargo install oha --locked), python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
export DUR=${DUR:-5} CONN=${CONN:-50} RATE=${RATE:-5000} ROUNDS=${ROUNDS:-10}
export PROTOCOLS=${PROTOCOLS:-h1,tls,h2}
RUNS=${RUNS:-20}
GROW=${GROW:-1 100 1000 10000}
PARTS=${PARTS:-1 2 3}
for t in nginx haproxy caddy openssl oha python3 curl; do
  command -v "$t" >/dev/null || { echo "bench/proxy.sh needs $t" >&2; exit 1; }
done
cargo build --release --quiet --bin metalgate -p metalgate
cargo build --release --quiet --bin metalgate-proxy -p metalgate-proxy
# The floor as Pingora releases it (its `Server`, its own upstream pool, not
# third_party/pingora-proxy's), then the floor as metalgate builds and runs Pingora; the same binary name, so the first is copied aside.
cargo build --release --quiet -p metalgate-bench --bin pingora-floor --features stock
cp target/release/pingora-floor target/release/pingora-floor-stock
cargo build --release --quiet -p metalgate-bench --bin proxy-route-latency --bin pingora-floor
# The image's binary (static, code ordered) for `metalgate proxy`, as the DaemonSet runs it.
./scripts/static-build.sh
MG=$PWD/target/release/metalgate
MGIMAGE=$PWD/target/static/metalgate.stripped
MGPROXY=$PWD/target/release/metalgate-proxy
LAT=$PWD/target/release/proxy-route-latency
FLOOR=$PWD/target/release/pingora-floor
FLOOR_STOCK=$PWD/target/release/pingora-floor-stock
W=$(mktemp -d /tmp/mg-proxy-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$W"/*.pid; do p=$(cat "$f" 2>/dev/null) && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# Part 1: side by side (the script starts and ends its own processes).
if [[ " $PARTS " == *" 1 "* ]]; then
  mkdir -p "$W/peers"
  W=$W/peers MG=$MG MGIMAGE=$MGIMAGE MGPROXY=$MGPROXY FLOOR=$FLOOR FLOOR_STOCK=$FLOOR_STOCK python3 -u bench/proxy_peers.py
fi
# Part 3 (before part 2, whose growth to 10 000 Ingresses takes longest): a node's memory.
if [[ " $PARTS " == *" 3 "* ]]; then
  echo
  echo "a node's memory (bench/node_memory.py):"
  python3 bench/node_memory.py
fi
[[ " $PARTS " == *" 2 "* ]] || exit 0

# Part 2: route change → live. A backend, nginx with a conf.d for new server blocks, and a
# store with the bench Ingress and the metalgate-proxy binary against it.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BE=127.0.0.1:$(free_port); NG=127.0.0.1:$(free_port); MGP=127.0.0.1:$(free_port)
API=127.0.0.1:$(free_port); ADMIN=127.0.0.1:$(free_port); TLS=127.0.0.1:$(free_port)
mkdir -p "$W/be" "$W/ng/conf.d"
cat >"$W/be/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $W/be.pid; error_log $W/be/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen $BE; location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123"; } } }
EOF
nginx -c "$W/be/nginx.conf" -p "$W/be" & PIDS+=($!)
cat >"$W/ng/nginx.conf" <<EOF
worker_processes 2; daemon off; pid $W/ng.pid; error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off;
  upstream be { server $BE; keepalive 320; keepalive_requests 10000; }
  server { listen $NG; server_name bench.local;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  include $W/ng/conf.d/*.conf; }
EOF
nginx -c "$W/ng/nginx.conf" -p "$W/ng" & PIDS+=($!)
BEIP=${BE%:*}; BEPORT=${BE#*:}
cat >"$W/route.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Service
metadata: {name: be, namespace: bench}
spec: {ports: [{name: http, port: 80, targetPort: $BEPORT}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: be-1, namespace: bench, labels: {kubernetes.io/service-name: be}}
addressType: IPv4
ports: [{name: http, port: $BEPORT}]
endpoints: [{addresses: ["$BEIP"], conditions: {ready: true}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: bench}
spec:
  ingressClassName: metalgate
  rules:
  - host: bench.local
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: be, port: {number: 80}}}}]}
EOF
RUST_LOG=warn "$MG" run --data-dir "$W/store" --api-listen "$API" --components none \
  --manifests "$W/route.yaml" >"$W/store.out" 2>"$W/store.err" & PIDS+=($!)
for _ in $(seq 100); do [ -f "$W/store/kubeconfig" ] && grep -q ready "$W/store.out" && break; sleep 0.1; done
RUST_LOG=warn "$MGPROXY" --kubeconfig "$W/store/kubeconfig" --node-name bench \
  --http-listen "$MGP" --https-listen "$TLS" --admin-listen "$ADMIN" --no-access-log \
  --publish-service "" 2>"$W/proxy.err" & MGPID=$!; PIDS+=("$MGPID")
up() { for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: bench.local" "http://$1/")" = 200 ] && return; sleep 0.1; done; echo "$1 never answered 200" >&2; exit 1; }
up "$BE"; up "$NG"; up "$MGP"
echo
echo "route change → live, $RUNS changes each:"
"$LAT" metalgate "$W/store/kubeconfig" "$MGP" "$RUNS"
"$LAT" nginx "$W/ng/conf.d" "$W/ng/nginx.conf" "$NG" "$RUNS"
echo
echo "as the Ingresses grow (metalgate-proxy, $RUNS changes at each size):"
# shellcheck disable=SC2086 # one argument per size
"$LAT" grow "$W/store/kubeconfig" "$MGP" "$ADMIN" "$MGPID" "$RUNS" $GROW
