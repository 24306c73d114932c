#!/usr/bin/env bash
# Sharded-run benchmark: a RECORDS-record JSONL input scored in SHARDS shards (one after another,
# each a `run-task --shard I/N` against `serve-sim` in its own process), then `modelcall merge`.
#
#   bench/shards.sh RECORDS SHARDS [PORT]
#
# Prints one JSON line per shard (bytes read by its source vs the input size) and one for the
# merge (wall time and peak RSS under /usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
shards=${2:?shards}
bench_init "$1" 512 0 "${3:-}" 18631
mkdir -p "$work/input"
python3 - "$records" > "$work/input/data.jsonl" <<'PY'
import json, sys
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(json.dumps({"id": f"r{i:09d}", "text": f"Record {i}: a short English paragraph about rivers, bread and tides, long enough to look like real data."}) + "\n")
PY
bench_scoring_task bench_shards
size=$(stat -c %s "$work/input/data.jsonl")
"$bin" serve-sim --port "$port" --latency-ms 0 --exit-after-secs 7200 > "$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/sim.log" 2>/dev/null && break; sleep 0.05; done
for i in $(seq 0 $((shards - 1))); do
    "$bin" run-task "$work/task.yaml" --shard "$i/$shards" --no-progress > "$work/shard-$i.log" 2>&1 || { cat "$work/shard-$i.log" >&2; exit 1; }
    python3 - "$work/out/run_summary.shard-$i-of-$shards.json" "$i" "$shards" "$size" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); i, n, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
read = s["records"]["input_bytes_read"]
print(json.dumps({"shard": f"{i}/{n}", "input_bytes": size, "bytes_read": read, "share": round(read / size, 4),
                  "limit": round(1 / n + 0.02, 4), "scored": s["records"]["scored"], "requests_per_s": s["requests_per_second"]}))
PY
done
/usr/bin/time -f '%e %M' -o "$work/merge.time" "$bin" merge "$work/task.yaml" > "$work/merge.log" 2>&1 || { cat "$work/merge.log" >&2; exit 1; }
read -r wall maxrss_kb < "$work/merge.time"
lines=$(wc -l < "$work/out/data.jsonl")
echo "{\"merge\": \"$shards shards\", \"records\": $records, \"merged_lines\": $lines, \"wall_s\": $wall, \"peak_rss_mb\": $((maxrss_kb / 1024))}"
