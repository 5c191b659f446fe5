#!/usr/bin/env bash
# Speaker benchmarks in the lab (root; they build and take down a lab of their own):
#  1. ARP reply latency: the same arping asks for the VIP (metalgate's speaker answers, in user
#     space) and for the owner's own address (the kernel answers), in the same run; ratio.
#  2. Failover gap: SIGKILL the VIP owner's metalgate while `lab arp-probe` asks every 20 ms;
#     the longest gap between replies, median of RUNS runs.
# Usage: bench/speaker.sh [RUNS]    Record the output in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
cargo build --release --quiet
MG=$PWD/target/release/metalgate
trap '$MG lab down >/dev/null 2>&1 || true' EXIT

owner() {
  for _ in $(seq 50); do
    o=$($MG lab exec -- kubectl get svc metalgate-proxy -n metalgate-system -o jsonpath='{.metadata.annotations.metalgate\.io/announcing-node}' 2>/dev/null || true)
    [ -n "$o" ] && { echo "$o"; return; }
    sleep 0.1
  done
  echo "nobody announces the VIP" >&2; exit 1
}
avg_rtt() { # arping output -> mean reply time in ms
  awk '/reply from/ { for (i=1;i<=NF;i++) if ($i ~ /ms$/) { sub("ms","",$i); s+=$i; n++ } } END { if (n) printf "%.3f %d\n", s/n, n; else print "nan 0" }'
}

$MG lab up --nodes 3 >/dev/null
O=$(owner)
case $O in ops-demo) OIP=192.168.56.10;; node2) OIP=192.168.56.11;; node3) OIP=192.168.56.12;; esac
# Warm both paths, then measure them interleaved.
$MG lab exec -- arping -c 2 -w 3 -I vboxnet0 192.168.56.200 >/dev/null || true
$MG lab exec -- arping -c 2 -w 3 -I vboxnet0 "$OIP" >/dev/null || true
read -r SPK SN < <($MG lab exec -- arping -c 20 -w 25 -I vboxnet0 192.168.56.200 | avg_rtt)
read -r KRN KN < <($MG lab exec -- arping -c 20 -w 25 -I vboxnet0 "$OIP" | avg_rtt)
echo "ARP reply latency (owner $O): speaker ${SPK} ms (n=$SN), kernel ${KRN} ms (n=$KN), ratio $(awk -v a="$SPK" -v b="$KRN" 'BEGIN{printf "%.2f", a/b}')"
$MG lab down >/dev/null

GAPS=()
for r in $(seq "$RUNS"); do
  $MG lab up --nodes 3 >/dev/null
  O=$(owner)
  $MG lab exec -- "$MG" lab arp-probe --count 200 --interval-ms 20 > /tmp/mg-probe.json &
  P=$!
  sleep 1.5
  kill -9 "$(awk -v n="metalgate@$O" '$1==n {print $2}' "${METALGATE_LAB_DIR:-/run/metalgate-lab}/pids")"
  wait $P
  # A gap means nothing unless another node answered after it: the report must show the
  # killed owner's MAC, then a different one answering to the end.
  if ! python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if len(r["macs"]) >= 2 and r["macs"][-1] != r["macs"][0] and r["replies"] > 0 else 1)' /tmp/mg-probe.json; then
    echo "run $r: no successor answered after SIGKILL of $O: $(cat /tmp/mg-probe.json)" >&2
    $MG lab down >/dev/null
    exit 1
  fi
  G=$(sed -E 's/.*"max_gap_ms":([0-9]+).*/\1/' /tmp/mg-probe.json)
  echo "run $r: SIGKILL $O, gap ${G} ms"
  GAPS+=("$G")
  $MG lab down >/dev/null
done
MED=$(printf '%s\n' "${GAPS[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
echo "failover gap after SIGKILL: median ${MED} ms over $RUNS runs (${GAPS[*]})"
rm -f /tmp/mg-probe.json
