# Shared by the bench scripts: arguments, a fresh release build, a scratch folder, the
# SIMULATED endpoint as its own process on 127.0.0.1, and a measured run of modelcall.
#
#   source bench/lib.sh; bench_init RECORDS CONCURRENCY LATENCY_MS [PORT] DEFAULT_PORT

bench_init() {
    records=${1:?records}
    concurrency=${2:?concurrency}
    latency_ms=${3:?latency_ms}
    port=${4:-$5}
    # BENCH_PROFILE=profiling: the release build with symbols and line tables, for
    # `perf record` (the release profile ships stripped).
    profile=${BENCH_PROFILE:-release}
    bin=target/$profile/modelcall
    # Always build: measuring a stale binary would report the old code's figures.
    cargo build --profile "$profile" -p modelcall >&2
    work=$(mktemp -d)
    trap 'pkill -P $sim_pid 2>/dev/null || true; kill $sim_pid 2>/dev/null || true; rm -rf "$work"' EXIT
}

# The model config of a bench, pointing at the simulated endpoint.
bench_model_yaml() {
    cat <<YAML
client_config:
  base_url: "http://127.0.0.1:$port/v1"
  api_key: "bench"
  timeout: 60
  max_retries: 5
chat_config:
  model: "$1"
YAML
}

# Starts the endpoint and runs `modelcall run-task $1` under /usr/bin/time; sets user, sys and
# maxrss_kb (client CPU seconds and peak RSS). The endpoint is `serve-sim`, or with
# BENCH_SERVER=aiohttp a minimal OpenAI-compatible server on another HTTP stack
# (bench/aiohttp_server.py, Python aiohttp on uvloop), or BENCH_SERVER=uvicorn the stack vLLM
# and SGLang serve with (bench/fastapi_server.py, FastAPI on uvicorn); both installed into
# target/bench-venv; BENCH_SERVER_WORKERS processes share its port.
bench_run_task() {
    case "${BENCH_SERVER:-sim}" in
        sim) "$bin" serve-sim --port "$port" --latency-ms "$latency_ms" --exit-after-secs 3600 > "$work/sim.log" 2>&1 & ;;
        aiohttp)
            if [ ! -x target/bench-venv/bin/python ] || ! target/bench-venv/bin/python -c 'import aiohttp, uvloop' 2>/dev/null; then
                python3 -m venv target/bench-venv >&2
                target/bench-venv/bin/pip install -q aiohttp==3.11.18 uvloop==0.21.0 >&2
            fi
            target/bench-venv/bin/python bench/aiohttp_server.py "$port" "$latency_ms" 3600 "${BENCH_SERVER_WORKERS:-1}" > "$work/sim.log" 2>&1 & ;;
        uvicorn)
            if [ ! -x target/bench-venv/bin/python ] || ! target/bench-venv/bin/python -c 'import fastapi, uvicorn, uvloop, httptools' 2>/dev/null; then
                python3 -m venv target/bench-venv >&2
                target/bench-venv/bin/pip install -q fastapi==0.115.12 uvicorn==0.34.2 uvloop==0.21.0 httptools==0.6.4 >&2
            fi
            target/bench-venv/bin/python bench/fastapi_server.py "$port" "$latency_ms" 3600 "${BENCH_SERVER_WORKERS:-1}" > "$work/sim.log" 2>&1 & ;;
        *) echo "BENCH_SERVER must be sim, aiohttp or uvicorn" >&2; exit 2 ;;
    esac
    sim_pid=$!
    # A server left over from an interrupted bench would answer in this one's place.
    sleep 0.3
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        echo "the endpoint did not start (is port $port taken?):" >&2; cat "$work/sim.log" >&2; exit 1
    fi
    for _ in $(seq 1 100); do grep -q listening "$work/sim.log" 2>/dev/null && break; sleep 0.05; done
    /usr/bin/time -f '%U %S %M' -o "$work/time" "$bin" run-task "$1" --no-progress > "$work/run.log" 2>&1 || { cat "$work/run.log" >&2; exit 1; }
    read -r user sys maxrss_kb < "$work/time"
}

# model.yaml on the simulated endpoint and task.yaml scoring $work/input into $work/out (JSONL)
# with the shipped English prompt, $concurrency requests in flight; $1 is the task name.
bench_scoring_task() {
    bench_model_yaml bench > "$work/model.yaml"
    cat > "$work/task.yaml" <<YAML
task_name: $1
task_type: data_scoring
data:
  input_folder: "$work/input"
  output_folder: "$work/out"
  input_key: text
  id_field: id
  output_format: jsonl
model:
  config_path: "$work/model.yaml"
prompt:
  config_path: "configs/prompts/en_corpus_quality_v1.yaml"
concurrency:
  max_concurrent_requests: $concurrency
YAML
}
