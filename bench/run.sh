#!/bin/sh
# Runs gate's benchmarks and prints the figures of issue 2. See bench/README.md.
# Knobs: GATE_BENCH_N (allow-path runs, default 200), GATE_BENCH_CHECK_N (default 30).
set -eu
cd "$(dirname "$0")/.."
cargo bench --no-run
echo "== whole-process figures (benches/process.rs) =="
cargo bench --bench process
echo
echo "== in-process figures (benches/classify.rs, divan) =="
cargo bench --bench classify
