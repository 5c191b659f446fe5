#!/usr/bin/env bash
# The main job in one command: installs what the lab needs, builds metalgate, and runs
# `metalgate lab ARGS` (default: `up`). As root: ./scripts/lab.sh up [--nodes 3]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --quiet
exec ./target/release/metalgate lab "${@:-up}"
