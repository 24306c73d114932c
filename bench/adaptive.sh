#!/usr/bin/env bash
# Adaptive concurrency vs a fixed ceiling, side by side, against the capacity server the tests
# start (tests/capacity_server: written apart from the product's simulator; a service time drawn
# uniformly from a range, a capacity K past which it queues or answers 429 at once).
#
#   bench/adaptive.sh            # every case, one at a time (the machine is not shared by cases)
#   BENCH_CARGO_ARGS=--release bench/adaptive.sh   # the same on an optimised build
#
# Cases (each prints `BENCH …` lines: records/s, 429s, final limit):
#   uniform 50-500 ms, no capacity in reach, ceiling 128 (fixed vs adaptive)
#   capacity 64 at 100 ms, queueing (fixed 512 vs adaptive under 512)
#   capacity 64 at 100 ms, refusing with 429 (fixed 512 vs adaptive under 512)
#   capacity 256 at 100 ms, queueing and refusing (the same; tests ignored in the suite)
#   capacity dropping 256 -> 64 mid-run, refusing: adapted within 3 s
#   two replicas, 64 in flight, one refusing past 4 (fixed pool vs adaptive pool)
set -euo pipefail
cd "$(dirname "$0")/.."
args=(${BENCH_CARGO_ARGS:-})
run() {
    ADAPTIVE_BENCH=1 cargo test "${args[@]}" --test "$1" -- --test-threads=1 --nocapture --include-ignored --exact "$2" 2>&1 |
        grep -E '^(test .*\.\.\. )?BENCH|panicked' | sed -E 's/^test .*\.\.\. //'
}
run adaptive_e2e variable_service_time_is_not_congestion
run adaptive_e2e capacity_64_queueing_reaches_the_knee
run adaptive_e2e capacity_64_refusing_reaches_the_knee_with_few_429s
run adaptive_e2e capacity_256_queueing_reaches_the_knee
run adaptive_e2e capacity_256_refusing_reaches_the_knee_with_few_429s
run adaptive_e2e a_capacity_drop_from_256_to_64_is_adapted_within_3_s
run pool_e2e a_throttling_replica_loses_its_share_in_a_fixed_pool
run pool_e2e a_throttling_replica_does_not_hold_an_adaptive_pool_down
