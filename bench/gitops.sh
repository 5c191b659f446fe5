#!/usr/bin/env bash
# GitOps module benchmarks (loopback only; a store and the module as separate processes):
#  push -> applied through the webhook and through a 5 s poll; one app of N objects vs N bare
#  server-side applies by one client; the module's peak RSS/PSS holding APPS apps of N objects.
# Usage: bench/gitops.sh [RUNS] [N] [APPS] [module|controller]    Record the output in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p metalgate -p metalgate-bench
METALGATE_BIN=$PWD/target/release/metalgate exec target/release/gitops "${1:-5}" "${2:-1000}" "${3:-50}" "${4:-module}"
