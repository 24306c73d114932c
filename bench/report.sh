#!/usr/bin/env bash
# Report benchmark: score RECORDS records against `serve-sim` (release build), then time
# `modelcall report` on the output folder and print its time, peak RSS and page size.
#
#   bench/report.sh RECORDS [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init "$1" 512 0 "${2:-}" 18631
mkdir -p "$work/input"
python3 - "$records" > "$work/input/data.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"r{i:08d}", "text": f"Record {i}: a short English paragraph about rivers, bread and tides.", "source": ["web", "books", "code"][i % 3]}))
PY
bench_scoring_task bench_report
bench_run_task "$work/task.yaml"
/usr/bin/time -f '%e %M' -o "$work/report_time" "$bin" report "$work/out" > /dev/null 2>&1
read -r seconds rss_kb < "$work/report_time"
bytes=$(stat -c %s "$work/out/report.html")
echo "{\"records\": $records, \"report_s\": $seconds, \"report_peak_rss_mb\": $((rss_kb / 1024)), \"report_bytes\": $bytes}"
