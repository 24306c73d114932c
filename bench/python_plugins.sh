#!/usr/bin/env bash
# Python plugin cost (issue 28.7): the examples' judge and prompt builder built with
# componentize-py and the SDK of plugins/sdk-python, against the Rust built-ins doing the same
# job, all through `modelcall plugin bench` (a warm instance, the real limits; per call
# mean / p50 / p99 and fuel); then the load of a 19 MB Python component by two fresh
# `modelcall plugin check` processes sharing an empty compile cache (the first compiles, the
# second must be served by wasmtime's on-disk cache), wall time of each and the loader's own
# line saying which it was.
#
#   bench/python_plugins.sh [ITERATIONS]        (default 2000 passes over 10 records)
#
# Needs componentize-py 0.25 on PATH (`pip install componentize-py==0.25.1`).
# BENCH_NO_BUILD=1 uses target/release/modelcall as it is; SDK=DIR measures another copy of
# the SDK's `modelcall_plugin` package (e.g. an older one, for a before/after).
# Prints one JSON line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-2000}
bin=target/release/modelcall
sdk=${SDK:-plugins/sdk-python/modelcall_plugin}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release -p modelcall >&2
fi
command -v componentize-py >/dev/null || { echo "componentize-py is not on PATH" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 10 records of ~1 KB: {"id", "text" (900 chars), "source"} and a reply with a `<think>` block
# and a fenced JSON verdict in `completion`.
python3 - > "$work/records.jsonl" <<'PY'
import json
text = ("Rivers carry silt to the sea, and the quick brown fox jumps over the lazy dog. " * 12)[:900]
reply = ("<think>The text is clear and informative.</think>\nVerdict:\n```json\n"
         '{"score": 4, "corpus_type": "general", "main_languages": ["en"], "quality_tags": ["clear"], '
         '"recommended_use_case": "pretraining", "label": "general", "rationale": "clear prose"}\n```')
for i in range(10):
    print(json.dumps({"id": f"r{i:03d}", "text": text, "source": "bench", "completion": reply}))
PY
echo '{"require_json": true, "json_keys": ["score", "corpus_type", "main_languages", "quality_tags", "recommended_use_case"], "json_key_must_exists": ["score"]}' > "$work/oc.json"

build() { # name world
    mkdir -p "$work/src/$1"
    cp "examples/python/$1/app.py" "$work/src/$1/"
    cp -r "$sdk" "$work/src/$1/modelcall_plugin"
    rm -rf "$work/src/$1/modelcall_plugin/__pycache__"
    local t=$(date +%s.%N)
    (cd "$work/src/$1" && componentize-py -d "$OLDPWD/wit" -w "$2" componentize app -p . -o "$work/$1.wasm" >/dev/null)
    echo "{\"build\": \"$1\", \"componentize_py_s\": $(echo "$(date +%s.%N) - $t" | bc), \"bytes\": $(stat -c %s "$work/$1.wasm")}"
}
build judge score-parser-plugin
build prompt prompt-builder-plugin

bench() { # label plugin role [config]
    local cfg=()
    [ -n "${4:-}" ] && cfg=(--config "$4")
    "$bin" plugin bench "$2" --role "$3" "${cfg[@]}" --input "$work/records.jsonl" --iterations "$iterations" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); d["label"] = sys.argv[1]; print(json.dumps(d))' "$1"
}
bench rust-json-score builtin:json-score score-parser "$work/oc.json"
bench python-judge "$work/judge.wasm" score-parser
bench rust-template-prompt builtin:template-prompt prompt-builder configs/prompts/en_corpus_quality_v1.yaml
bench python-prompt "$work/prompt.wasm" prompt-builder

# Instance setup: `plugin run` over 200 records on one warm instance, then with a fresh
# instance (instantiate + `init`) for every record; and what the first call on a new instance
# costs (`elapsed_us` of record 1: pages of CPython's snapshot touched the first time).
for i in $(seq 20); do cat "$work/records.jsonl"; done > "$work/records200.jsonl"
echo 'max_calls_per_instance: 1' > "$work/fresh.yaml"
for mode in warm fresh; do
    lim=()
    [ $mode = fresh ] && lim=(--limits "$work/fresh.yaml")
    t=$(date +%s.%N)
    "$bin" plugin run "$work/judge.wasm" --role score-parser --input "$work/records200.jsonl" "${lim[@]}" > "$work/run.jsonl"
    wall=$(echo "$(date +%s.%N) - $t" | bc)
    python3 - "$mode" "$wall" "$work/run.jsonl" <<'PY'
import json, sys
mode, wall, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
us = [json.loads(l)["elapsed_us"] for l in open(path)]
print(json.dumps({"instances": mode, "records": len(us), "plugin_run_wall_s": round(wall, 3),
                  "first_call_us": us[0], "call_us_p50": sorted(us)[len(us) // 2]}))
PY
done

# First and second load of one Python component, each a new process, one empty cache.
for run in first second; do
    t=$(date +%s.%N)
    XDG_CACHE_HOME="$work/cache" MODELCALL_LOG=modelcall_plugin_host=debug "$bin" plugin check "$work/judge.wasm" >/dev/null 2>"$work/check.log"
    wall=$(echo "$(date +%s.%N) - $t" | bc)
    how=$(grep -m1 -o 'component ready: [^"]*plugin=' "$work/check.log" | sed 's/ plugin=$//; s/component ready: //' || true)
    ms=$(grep -m1 -o ' ms=[0-9]*' "$work/check.log" | cut -d= -f2 || true)
    echo "{\"load\": \"$run\", \"plugin_check_wall_s\": $wall, \"component_ms\": ${ms:-null}, \"how\": \"$how\"}"
done
