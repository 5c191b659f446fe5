#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo test --workspace --all-targets
# The vendored pingora-http's own unit tests (they need no dependency the crate does not have):
# they cover its metalgate patch. The other vendored crates' tests need their dropped
# dev-dependencies.
cargo test -p pingora-http --lib
