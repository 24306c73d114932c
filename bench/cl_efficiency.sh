#!/usr/bin/env bash
# Concurrency ÷ latency efficiency of the client, side by side in one run, against our
# simulator (`serve-sim`) and against a server stack we did not write (FastAPI on uvicorn, as
# vLLM and SGLang serve; bench/fastapi_server.py). The same records, concurrency and latency
# for both; each prints bench/scoring.sh's JSON line (requests/s, efficiency, client CPU and
# RSS, p50 per stage and the wire's share of the time in flight).
#
#   bench/cl_efficiency.sh [RECORDS] [CONCURRENCY] [LATENCY_MS]
#
# Defaults: 76,800 records at 256 in flight × 200 ms (1,280 requests/s: a 60 s run). uvicorn
# runs BENCH_SERVER_WORKERS processes on the port (default 2: one Python process is itself the
# limit at these rates on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-76800}
concurrency=${2:-256}
latency=${3:-200}
for server in sim uvicorn; do
    printf '%s ' "$server"
    BENCH_SERVER=$server BENCH_SERVER_WORKERS=${BENCH_SERVER_WORKERS:-2} bench/scoring.sh "$records" "$concurrency" "$latency"
done
