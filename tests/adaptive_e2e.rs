//! Adaptive concurrency against a saturating endpoint: the simulator with `capacity=C` answers
//! up to C requests in flight at its base latency, queues beyond (latency grows, throughput stays
//! at C / latency) and refuses with 429 above 2·C, as a loaded GPU server does. With a ceiling far
//! above the knee, `concurrency.mode: adaptive` must find it: near-best throughput, almost no 429s.

mod common;

use common::Scratch;
use std::process::{Command, Stdio};

use serde_json::Value;

const RECORDS: usize = 4000;
const CAPACITY: u64 = 32;
const LATENCY_MS: u64 = 50;

fn run(s: &Scratch, mode: &str) -> Value {
    let body: String = (0..RECORDS).map(|i| format!("{{\"id\":\"r{i}\",\"text\":\"record {i} about tides\"}}\n")).collect();
    s.write("input/data.jsonl", body.as_bytes());
    s.write(
        "model.yaml",
        format!(
            "client_config:\n  base_url: \"sim://?latency_ms={LATENCY_MS}&capacity={CAPACITY}&retry_after_secs=0\"\n  max_retries: 50\n  backoff_base_ms: 5\n  backoff_max_ms: 50\nchat_config:\n  model: m\n"
        )
        .as_bytes(),
    );
    let prompt = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let out = s.path(&format!("out-{mode}"));
    let task = s.write(
        &format!("task-{mode}.yaml"),
        format!(
            "task_name: adaptive\ndata:\n  input_folder: \"{}\"\n  output_folder: \"{}\"\n  input_key: text\n  prompt_format_key: text\n  output_format: jsonl\n\
             model:\n  config_path: \"{}\"\nprompt:\n  config_path: \"{}\"\nconcurrency:\n  max_concurrent_requests: 512\n  mode: {mode}\n",
            s.path("input").display(),
            out.display(),
            s.path("model.yaml").display(),
            prompt.display()
        )
        .as_bytes(),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_modelcall")).arg("run-task").arg(&task).arg("--no-progress").stdin(Stdio::null()).output().unwrap();
    // A fixed 512 may exhaust retries on some records (exit 3); adaptive must not.
    let allowed: &[i32] = if mode == "fixed" { &[0, 3] } else { &[0] };
    assert!(o.status.code().is_some_and(|c| allowed.contains(&c)), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("run_summary.json")).unwrap()).unwrap()
}

#[test]
fn adaptive_mode_finds_the_knee_of_a_saturating_endpoint() {
    let s = Scratch::new();
    let fixed = run(&s, "fixed");
    // The fixed run's outputs are in their own folder; the adaptive run starts from nothing.
    let adaptive = run(&s, "adaptive");
    let throttled = |v: &Value| v["retries_by_cause"]["rate_limited"].as_u64().unwrap_or(0) as f64 / v["requests"].as_u64().unwrap() as f64;
    let records_per_s = |v: &Value| v["records"]["scored"].as_f64().unwrap() / v["processing_elapsed_s"].as_f64().unwrap();
    let ideal = CAPACITY as f64 / (LATENCY_MS as f64 / 1000.0);
    eprintln!(
        "fixed 512: {:.0} records/s, {:.1} % throttled; adaptive: {:.0} records/s, {:.2} % throttled, final limit {}; ideal {ideal:.0}/s",
        records_per_s(&fixed),
        throttled(&fixed) * 100.0,
        records_per_s(&adaptive),
        throttled(&adaptive) * 100.0,
        adaptive["concurrency_limit"]["final"]
    );
    assert_eq!(adaptive["records"]["scored"], RECORDS as u64);
    assert!(throttled(&fixed) > 0.2, "a fixed 512 overloads the endpoint: {}", throttled(&fixed));
    // Refusals happen only while the limit first overshoots the knee (a round trip of feedback).
    // The target is under 1 % once converged; this counts the whole run, overshoot included
    // (measured 0.6-0.7 % here), so 2 % leaves room for a slower machine and nothing more.
    assert!(throttled(&adaptive) < 0.02, "adaptive stays under the refusal line: {}", throttled(&adaptive));
    // The line: within 10 % of the best setting (the knee; measured 97 % here).
    assert!(records_per_s(&adaptive) >= 0.9 * ideal, "adaptive reaches the knee's throughput: {} of {ideal}", records_per_s(&adaptive));
    let limit = adaptive["concurrency_limit"]["final"].as_u64().unwrap();
    assert!((CAPACITY / 2..=2 * CAPACITY).contains(&limit), "the limit settles near the capacity: {limit}");
    // The line: under 1 % of requests throttled once the limit has converged.
    let settled = &adaptive["concurrency_limit"]["after_convergence"];
    let (samples, refused) = (settled["samples"].as_u64().unwrap(), settled["throttled"].as_u64().unwrap());
    eprintln!("after convergence (from {} s): {refused} of {samples} throttled", settled["from_s"]);
    assert!(samples > RECORDS as u64 / 2, "most of the run is after convergence: {settled}");
    assert!((refused as f64) < 0.01 * samples as f64, "under 1 % throttled after convergence: {settled}");
}
