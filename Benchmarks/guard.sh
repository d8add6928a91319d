#!/usr/bin/env bash
# Performance regression guard (run by .ci/run after `swift build -c release`).
#
# For each payload (6-byte responses and 1 MiB bodies), one interleaved `compare` run measures
# the backend direct and Switchyard in every upgrade mode; each mode's req/s is divided by
# INSTANT's and INSTANT's by direct's, all from the same run, and compared with the ratios
# committed in Benchmarks/baseline.json. A ratio below half its baseline fails: a 2x regression
# of any mode on either payload trips it, the noise of a shared machine does not (runs of one
# build vary by about ±15 %). About 30 s per payload; each run is also bounded by `timeout`.
#
# Environment: SWITCHYARD (proxy binary), BENCH (switchyard-bench binary), BASELINE (file),
# GUARD_ROUNDS (2).
set -uo pipefail
cd "$(dirname "$0")/.."
switchyard=${SWITCHYARD:-.build/release/switchyard}
bench=${BENCH:-.build/release/switchyard-bench}
baseline=${BASELINE:-Benchmarks/baseline.json}
rounds=${GUARD_ROUNDS:-2}

failed=0
for path in / /big; do
    timeout 300 "$bench" compare --quick --rounds "$rounds" --path "$path" --baseline "$baseline" --switchyard "$switchyard"
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "guard: $path failed (exit status $status)"
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "guard: FAILED"
    exit 1
fi
echo "guard: passed on both payloads"
