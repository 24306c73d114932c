#!/usr/bin/env bash
# Scoring-engine benchmark: the release `modelcall` against the SIMULATED endpoint running as a
# separate process on 127.0.0.1, so the client's own CPU time and memory can be measured.
#
#   bench/scoring.sh RECORDS CONCURRENCY LATENCY_MS [PORT]
#
# Prints one JSON line: requests/s, client CPU ms per request (user+sys of the modelcall
# process over the requests it sent), peak RSS (MB) of the client, and efficiency against the
# ideal concurrency / latency (when LATENCY_MS > 0).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init "$@" 18431
mkdir -p "$work/input"
python3 - "$records" > "$work/input/data.jsonl" <<'PY'
import json, sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write(json.dumps({"id": f"r{i:08d}", "text": f"Record {i}: a short English paragraph about rivers, bread and tides, long enough to look like real data."}) + "\n")
PY
bench_scoring_task bench

bench_run_task "$work/task.yaml"
python3 - "$work/out/run_summary.json" "$user" "$sys" "$maxrss_kb" "$concurrency" "$latency_ms" "$records" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
user, sys_t, rss_kb, conc, lat, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
req = s["requests"]
elapsed = s["processing_elapsed_s"]  # first dispatch to last response; finalizing outputs is reported apart
rps = req / elapsed if elapsed else 0
out = {
    "records": n, "concurrency": conc, "latency_ms": lat,
    "scored": s["records"]["scored"], "failed": s["records"]["failed"], "requests": req,
    "processing_s": elapsed, "total_s_incl_finalize": s["elapsed_s"], "requests_per_s": round(rps, 1),
    "client_cpu_ms_per_request": round((user + sys_t) * 1000 / max(req, 1), 4),
    "client_peak_rss_mb": round(rss_kb / 1024, 1),
    "latency_p50_ms": s["latency_ms"]["p50"], "latency_p99_ms": s["latency_ms"]["p99"],
    # Where the time in flight went (run_summary.json's stage_timing_ms): p50 per stage, and
    # the wire's share of the time in flight.
    "stage_p50_ms": {k: v["p50"] for k, v in (s.get("stage_timing_ms") or {}).items() if isinstance(v, dict)},
    "wire_share_in_flight": (s.get("stage_timing_ms") or {}).get("wire_share_in_flight"),
}
if lat > 0:
    ideal = conc / (lat / 1000)
    out["ideal_requests_per_s"] = ideal
    out["efficiency"] = round(rps / ideal, 4)
print(json.dumps(out))
PY
