#!/usr/bin/env bash
# Proxy benchmark: metalgate's proxy against nginx (Debian's package) configured as the same
# reverse proxy (upstream keep-alive, the forwarding headers ingress-nginx sets, no access log),
# and against the floor of its engine (`pingora-floor`: the plainest Pingora proxy, one fixed
# upstream, the same forwarding headers), all in front of the same backend (a separate nginx answering a fixed 64-byte body), on
# loopback, same oha settings, same run:
#  1. req/s at full load (oha -c CONN -z DUR), each proxy twice, interleaved; and direct to the
#     backend, for proxied ÷ direct;
#  2. p99 latency at the same offered rate (oha -q RATE --latency-correction);
#  3. memory: peak RSS (VmHWM), and PSS and RSS after the load (nginx: master + workers summed —
#     PSS counts the pages they share once, RSS once per process), and CPU time per request at
#     full load;
#  4. route change → live: a new host through the API (metalgate) vs a server block + reload
#     (nginx).
# Usage: bench/proxy.sh        (env: DUR=10 CONN=50 RATE=5000 RUNS=20)
# Needs nginx and oha (apt-get install -y nginx; cargo install oha --locked) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
CONN=${CONN:-50}
RATE=${RATE:-5000}
RUNS=${RUNS:-20}
for t in nginx oha python3 curl; do
  command -v "$t" >/dev/null || { echo "bench/proxy.sh needs $t" >&2; exit 1; }
done
cargo build --release --quiet --bin metalgate -p metalgate
cargo build --release --quiet --bin metalgate-proxy -p metalgate-proxy
cargo build --release --quiet -p metalgate-bench --bin proxy-route-latency --bin pingora-floor
MG=$PWD/target/release/metalgate
MGPROXY=$PWD/target/release/metalgate-proxy
LAT=$PWD/target/release/proxy-route-latency
FLOOR=$PWD/target/release/pingora-floor
W=$(mktemp -d /tmp/mg-proxy-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BE=127.0.0.1:$(free_port); NG=127.0.0.1:$(free_port); MGP=127.0.0.1:$(free_port)
API=127.0.0.1:$(free_port); ADMIN=127.0.0.1:$(free_port); TLS=127.0.0.1:$(free_port)
FL=127.0.0.1:$(free_port)

# The backend: nginx answering a fixed body.
mkdir -p "$W/be" "$W/ng/conf.d"
cat >"$W/be/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $W/be.pid; error_log $W/be/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen $BE; location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123"; } } }
EOF
nginx -c "$W/be/nginx.conf" -p "$W/be" & PIDS+=($!)

# The peer: nginx as the reverse proxy ingress-nginx would configure.
cat >"$W/ng/nginx.conf" <<EOF
worker_processes auto; daemon off; pid $W/ng.pid; error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off;
  upstream be { server $BE; keepalive 320; keepalive_requests 10000; }
  server { listen $NG; server_name bench.local;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Request-ID \$request_id;
      proxy_set_header X-Real-IP \$remote_addr; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host \$host; proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Forwarded-Proto \$scheme; } }
  include $W/ng/conf.d/*.conf; }
EOF
nginx -c "$W/ng/nginx.conf" -p "$W/ng" & PIDS+=($!)

# metalgate: a store with the route, and the proxy alone — the `metalgate-proxy` binary, what a
# proxy Deployment runs (its RSS is the proxy's only).
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
  --publish-service "" 2>"$W/proxy.err" & MGPID=$!; PIDS+=($MGPID)

up() { for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: bench.local" "http://$1/")" = 200 ] && return; sleep 0.1; done; echo "$1 never answered 200" >&2; exit 1; }
# The engine's floor.
"$FLOOR" "$FL" "$BE" 2>"$W/floor.err" & FLPID=$!; PIDS+=($FLPID)

up "$BE"; up "$NG"; up "$MGP"; up "$FL"

oha_json() { oha --no-tui -w --output-format json -H "Host: bench.local" "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# CPU time (user + system, clock ticks) the given processes have used so far.
ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') )); done; echo "$t"; }
TCK=$(getconf CLK_TCK)
# rps ADDR [PID...]: req/s at full load, and the CPU the PIDs spent per request (µs). CPU per
# request is the steadier number on a shared machine: it does not move with what else runs.
rps() {
  local addr=$1 a b out; shift
  a=$(ticks "$@")
  out=$(oha_json -z "${DUR}s" -c "$CONN" "http://$addr/" | field '"%d %d" % (round(d["summary"]["requestsPerSec"]), d["statusCodeDistribution"]["200"]) if not d["errorDistribution"] and list(d["statusCodeDistribution"])==["200"] else "ERR "+str(d["statusCodeDistribution"])+str(d["errorDistribution"])')
  b=$(ticks "$@")
  case $out in ERR*) echo "$out" >&2; exit 1 ;; esac
  set -- $out
  echo "$1 $(python3 -c "print(round(($b - $a) / $TCK * 1e6 / $2, 1))")"
}
p99() { oha_json -z "${DUR}s" -c "$CONN" -q "$RATE" --latency-correction "http://$1/" | field 'round(d["latencyPercentiles"]["p99"]*1000, 3)'; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
ng_hwm() { local m; m=$(cat "$W/ng.pid"); echo $(( $(hwm "$m") $(for c in $(pgrep -P "$m"); do printf ' + %s' "$(hwm "$c")"; done) )); }
# smaps FIELD PID...: a smaps_rollup field (Pss, Rss; KiB) summed over the given processes.
smaps() { local f=$1 t=0 p; shift; for p in "$@"; do t=$(( t + $(awk -v f="$f:" '$1 == f {print $2}' "/proc/$p/smaps_rollup") )); done; echo "$t"; }

# Warm up both.
for a in "$NG" "$MGP" "$FL"; do oha_json -z 2s -c "$CONN" "http://$a/" >/dev/null; done

DIRECT=$(rps "$BE" | cut -d' ' -f1)
ng_pids() { local m; m=$(cat "$W/ng.pid"); echo "$m" $(pgrep -P "$m"); }
# shellcheck disable=SC2046 # one argument per PID
{
  r=$(rps "$NG" $(ng_pids)); read -r N1 NC1 <<<"$r"
  r=$(rps "$FL" "$FLPID"); read -r F1 FC1 <<<"$r"
  r=$(rps "$MGP" "$MGPID"); read -r M1 MC1 <<<"$r"
  r=$(rps "$NG" $(ng_pids)); read -r N2 NC2 <<<"$r"
  r=$(rps "$FL" "$FLPID"); read -r F2 FC2 <<<"$r"
  r=$(rps "$MGP" "$MGPID"); read -r M2 MC2 <<<"$r"
}
NP=$(p99 "$NG"); FP=$(p99 "$FL"); MP=$(p99 "$MGP")
NR=$(ng_hwm); FR=$(hwm "$FLPID"); MR=$(hwm "$MGPID")
# shellcheck disable=SC2046 # one argument per PID
{ NPSS=$(smaps Pss $(ng_pids)); NRSS=$(smaps Rss $(ng_pids)); }
FPSS=$(smaps Pss "$FLPID"); FRSS=$(smaps Rss "$FLPID"); MPSS=$(smaps Pss "$MGPID"); MRSS=$(smaps Rss "$MGPID")
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
NA=$(( (N1 + N2) / 2 )); MA=$(( (M1 + M2) / 2 )); FA=$(( (F1 + F2) / 2 ))
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); oha -c $CONN -z ${DUR}s"
echo "direct to the backend:  $DIRECT req/s"
echo "nginx:                  $N1, $N2 req/s (mean $NA); p99 at $RATE req/s: $NP ms; peak RSS $NR KiB (master + workers)"
echo "Pingora floor:          $F1, $F2 req/s (mean $FA); p99 at $RATE req/s: $FP ms; peak RSS $FR KiB"
echo "metalgate:              $M1, $M2 req/s (mean $MA); p99 at $RATE req/s: $MP ms; peak RSS $MR KiB"
echo "ratios metalgate/nginx: req/s $(ratio "$MA" "$NA") (target ≥ 1.0), p99 $(ratio "$MP" "$NP") (target ≤ 0.5), RSS $(ratio "$MR" "$NR") (target ≤ 0.5)"
echo "ratios floor/nginx:     req/s $(ratio "$FA" "$NA"), p99 $(ratio "$FP" "$NP"), RSS $(ratio "$FR" "$NR")"
echo "ratios metalgate/floor: req/s $(ratio "$MA" "$FA"), p99 $(ratio "$MP" "$FP"), RSS $(ratio "$MR" "$FR")"
echo "memory after the load:  PSS / RSS KiB: nginx $NPSS / $NRSS (master + workers), floor $FPSS / $FRSS, metalgate $MPSS / $MRSS"
echo "ratios by PSS:          metalgate/nginx $(ratio "$MPSS" "$NPSS"), floor/nginx $(ratio "$FPSS" "$NPSS"), metalgate/floor $(ratio "$MPSS" "$FPSS")"
echo "proxied ÷ direct:       metalgate $(ratio "$MA" "$DIRECT"), floor $(ratio "$FA" "$DIRECT"), nginx $(ratio "$NA" "$DIRECT")"
NCA=$(python3 -c "print(($NC1 + $NC2) / 2)"); MCA=$(python3 -c "print(($MC1 + $MC2) / 2)"); FCA=$(python3 -c "print(($FC1 + $FC2) / 2)")
echo "CPU per request:        nginx $NC1, $NC2 µs; floor $FC1, $FC2 µs; metalgate $MC1, $MC2 µs; metalgate/nginx $(ratio "$MCA" "$NCA"), floor/nginx $(ratio "$FCA" "$NCA")"
"$LAT" metalgate "$W/store/kubeconfig" "$MGP" "$RUNS"
"$LAT" nginx "$W/ng/conf.d" "$W/ng/nginx.conf" "$NG" "$RUNS"
