#!/usr/bin/env bash
# Response-generation (distillation) benchmark: release `modelcall run-task` with a
# generate_response task against `serve-sim` in its own process on 127.0.0.1.
#
#   bench/generate.sh RECORDS CONCURRENCY LATENCY_MS [PORT]
#
# Prints one JSON line: requests/s over the processing time, efficiency against
# concurrency / latency, client CPU ms per request and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init "$@" 18531
mkdir -p "$work/in"
python3 - "$records" > "$work/in/chats.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"uid": f"u{i:08d}", "messages": [
        {"role": "system", "content": "You are a helpful assistant and an expert coder."},
        {"role": "user", "content": f"[{i}] Explain, with an example, how a hash map resolves collisions."}]}))
PY
bench_model_yaml teacher > "$work/teacher.yaml"
cat > "$work/task.yaml" <<YAML
task_name: bench_generate
task_type: data_distillation
description: benchmark
distillation:
  step: generate_response
  response_config_path: "$work/teacher.yaml"
  input_path: "$work/in/chats.jsonl"
  output_path: "$work/out"
  concurrency: $concurrency
YAML
bench_run_task "$work/task.yaml"
lines=$(wc -l < "$work/out/chats.jsonl")
python3 - "$work/out/run_summary.json" "$user" "$sys" "$maxrss_kb" "$concurrency" "$latency_ms" "$records" "$lines" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
user, sys_t, rss_kb, conc, lat, n, lines = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
req, elapsed = s["requests"], s["processing_elapsed_s"]
rps = req / elapsed if elapsed else 0
out = {"records": n, "success_lines": lines, "concurrency": conc, "latency_ms": lat, "requests": req,
       "processing_s": elapsed, "total_s_incl_finalize": s["elapsed_s"], "requests_per_s": round(rps, 1),
       "client_cpu_ms_per_request": round((user + sys_t) * 1000 / max(req, 1), 4), "client_peak_rss_mb": round(rss_kb / 1024, 1),
       "latency_p50_ms": s["latency_ms"]["p50"], "latency_p99_ms": s["latency_ms"]["p99"]}
if lat > 0:
    out["ideal_requests_per_s"] = conc / (lat / 1000)
    out["efficiency"] = round(rps / out["ideal_requests_per_s"], 4)
print(json.dumps(out))
PY
