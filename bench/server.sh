#!/bin/sh
# Runs the `gate serve` figures of issue 4 (benches/server.rs). See bench/README.md.
# Knobs: GATE_BENCH_LAT_N (50), GATE_BENCH_POLLERS (1000), GATE_BENCH_SEQ (1500),
# GATE_BENCH_WORKERS (32), GATE_BENCH_HOLD_SECS (5), GATE_BENCH_ONLY, GATE_BENCH_DIR.
set -eu
cd "$(dirname "$0")/.."
# 1,000 long-polls need 1,000 sockets on each side: raise the soft open-file limit if it is low.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
cargo bench --bench server
