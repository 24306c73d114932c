#!/usr/bin/env bash
# Re-parse and response-cache benchmark (issue 25): release `modelcall run-task` scores RECORDS
# records against `serve-sim` (0 ms), then
#  1. the prompt's output_config changes (a new verdict key): the rerun parses every stored
#     reply again offline; its wall time, CPU and peak RSS are measured;
#  2. a second output folder with the same `cache:` answers every request from the cache;
#     answers per second over its processing time.
#
#   bench/reparse.sh RECORDS [PORT]
#
# Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init "$1" 256 0 "${2:-}" 18533
mkdir -p "$work/input"
python3 - "$records" > "$work/input/data.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"r{i:08d}", "text": f"Record {i}: rivers carry silt to the sea, and bread rises."}))
PY
bench_scoring_task bench_reparse
sed -e 's/json_keys: \[score, corpus_type, main_languages, quality_tags, recommended_use_case\]/json_keys: [score, corpus_type]/' \
    configs/prompts/en_corpus_quality_v1.yaml > "$work/prompt.yaml"
sed -i "s|configs/prompts/en_corpus_quality_v1.yaml|$work/prompt.yaml|" "$work/task.yaml"
printf 'cache:\n  path: "%s/cache.sqlite"\n  max_size: 4GB\n' "$work" >> "$work/task.yaml"
bench_run_task "$work/task.yaml"
first_requests=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'])" "$work/out/run_summary.json")
# 1. The parser changed: every stored reply parsed again, no request.
sed -i 's/json_keys: \[score, corpus_type\]/json_keys: [score, corpus_type, quality_tags]/' "$work/prompt.yaml"
start=$(date +%s.%N)
/usr/bin/time -f '%U %S %M' -o "$work/time2" "$bin" run-task "$work/task.yaml" --no-progress > "$work/run2.log" 2>&1 || { cat "$work/run2.log" >&2; exit 1; }
end=$(date +%s.%N)
read -r ruser rsys rrss < "$work/time2"
# 2. Another output folder: every answer from the cache.
/usr/bin/time -f '%U %S %M' -o "$work/time3" "$bin" run-task "$work/task.yaml" --no-progress --output-folder "$work/out2" > "$work/run3.log" 2>&1 || { cat "$work/run3.log" >&2; exit 1; }
python3 - "$work" "$records" "$first_requests" "$start" "$end" "$ruser" "$rsys" "$rrss" <<'PY'
import json, sys
work, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start, end, ruser, rsys, rrss = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
re = json.load(open(f"{work}/out/run_summary.json"))
ca = json.load(open(f"{work}/out2/run_summary.json"))
print(json.dumps({
    "records": n, "first_run_requests": first,
    "reparse": {"reparsed": re["records"]["reparsed"], "requests": re["requests"], "wall_s": round(end - start, 2),
                "cpu_s": round(ruser + rsys, 2), "peak_rss_mb": round(rrss / 1024), "per_s": round(re["records"]["reparsed"] / (end - start))},
    "cache": {"cached": ca["cached"], "requests": ca["requests"], "processing_s": ca["processing_elapsed_s"],
              "answers_per_s": round(ca["cached"] / ca["processing_elapsed_s"]) if ca["processing_elapsed_s"] else None},
}))
PY
