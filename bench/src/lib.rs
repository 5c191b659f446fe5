//! Side-by-side benchmarks (binaries under `src/bin/`); results go to `bench/RESULTS.md`.
#![forbid(unsafe_code)]
