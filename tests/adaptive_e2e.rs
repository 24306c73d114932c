//! Adaptive concurrency against a saturating endpoint: the simulator with `capacity=C` answers
//! up to C requests in flight at its base latency, queues beyond (latency grows, throughput stays
//! at C / latency) and refuses with 429 above 2·C, as a loaded GPU server does. With a ceiling far
//! above the knee, `concurrency.mode: adaptive` must find it: near-best throughput, almost no 429s.

mod common;

use common::Scratch;
use std::process::{Command, Stdio};

use serde_json::Value;

const RECORDS: usize = 4000;

/// The cases measure throughput against a clock: one at a time, so two runs do not share the
/// machine's cores (the test harness runs a file's tests side by side).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}
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
    let _turn = one_at_a_time();
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
    // Near the capacity: between half of it and the refusal line (2·C) plus the probing step
    // past it (the +0.1-a-window probe reaches a few over 2·C before a 429 cuts it back).
    assert!((CAPACITY / 2..=2 * CAPACITY + CAPACITY / 4).contains(&limit), "the limit settles near the capacity: {limit}");
    // The line: under 1 % of requests throttled once the limit has converged.
    let settled = &adaptive["concurrency_limit"]["after_convergence"];
    let (samples, refused) = (settled["samples"].as_u64().unwrap(), settled["throttled"].as_u64().unwrap());
    eprintln!("after convergence (from {} s): {refused} of {samples} throttled", settled["from_s"]);
    assert!(samples > RECORDS as u64 / 2, "most of the run is after convergence: {settled}");
    assert!((refused as f64) < 0.01 * samples as f64, "under 1 % throttled after convergence: {settled}");
}

mod capacity_server;

use capacity_server::{Over, Spec};

/// Runs `records` records against `url` with `mode` and a ceiling; returns the summary and
/// records per second.
fn run_against(s: &Scratch, name: &str, url: &str, mode: &str, ceiling: usize, records: usize) -> (Value, f64) {
    let (v, rate) = run_against_lenient(s, name, url, mode, ceiling, records);
    assert_eq!(v["records"]["scored"], records as u64, "{v}");
    (v, rate)
}

/// [`run_against`] that lets records fail (a fixed ceiling far over a refusing endpoint's
/// capacity spends its retries): records scored per second.
fn run_against_lenient(s: &Scratch, name: &str, url: &str, mode: &str, ceiling: usize, records: usize) -> (Value, f64) {
    let body: String = (0..records).map(|i| format!("{{\"id\":\"r{i}\",\"text\":\"record {i} about tides\"}}\n")).collect();
    s.write(&format!("input-{name}/data.jsonl"), body.as_bytes());
    let model = s.write(
        &format!("model-{name}.yaml"),
        format!(
            "client_config:\n  base_url: \"{url}\"\n  max_retries: 50\n  backoff_base_ms: 5\n  backoff_max_ms: 50\n  timeout: 30\nchat_config:\n  model: m\n"
        )
        .as_bytes(),
    );
    let prompt = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let out = s.path(&format!("out-{name}"));
    let task = s.write(
        &format!("task-{name}.yaml"),
        format!(
            "task_name: adaptive\ndata:\n  input_folder: \"{}\"\n  output_folder: \"{}\"\n  input_key: text\n  prompt_format_key: text\n  output_format: jsonl\n\
             model:\n  config_path: \"{}\"\nprompt:\n  config_path: \"{}\"\nconcurrency:\n  max_concurrent_requests: {ceiling}\n  mode: {mode}\n",
            s.path(&format!("input-{name}")).display(),
            out.display(),
            model.display(),
            prompt.display()
        )
        .as_bytes(),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_modelcall")).arg("run-task").arg(&task).arg("--no-progress").stdin(Stdio::null()).output().unwrap();
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("run_summary.json")).unwrap()).unwrap();
    let rate = v["records"]["scored"].as_f64().unwrap_or(0.0) / v["processing_elapsed_s"].as_f64().unwrap();
    (v, rate)
}

#[test]
fn variable_service_time_is_not_congestion() {
    let _turn = one_at_a_time();
    // Uniform 50–500 ms and no capacity limit in reach: the old controller sank to 4 in flight
    // (1.6 % of a fixed ceiling's throughput); adaptive must reach 90 % of the fixed ceiling.
    let s = Scratch::new();
    let server = capacity_server::start(Spec { capacity: u64::MAX, over: Over::Queue, latency_ms: (50, 500) });
    let (_, fixed) = run_against(&s, "fixed", &server.url, "fixed", 128, 6000);
    let (adaptive, rate) = run_against(&s, "adaptive", &server.url, "adaptive", 128, 6000);
    eprintln!(
        "BENCH uniform 50-500 ms, no capacity limit, ceiling 128: fixed {fixed:.0}/s, adaptive {rate:.0}/s ({:.0} %), final limit {}",
        100.0 * rate / fixed,
        adaptive["concurrency_limit"]["final"]
    );
    assert!(rate >= 0.9 * fixed, "adaptive {rate:.0}/s against fixed {fixed:.0}/s: {}", adaptive["concurrency_limit"]);
    assert!(
        adaptive["concurrency_limit"]["after_convergence"]["samples"].as_u64().unwrap_or(0) > 0,
        "the limit converges (at the ceiling): {}",
        adaptive["concurrency_limit"]
    );
}

/// Capacity `k` at 100 ms (queueing or refusing): adaptive under a ceiling of 512 must reach 90 %
/// of k / latency over the whole run (convergence included) and stay under 1 % 429s once
/// converged.
fn capacity_case(k: u64, over: Over, name: &str, records: usize) {
    let s = Scratch::new();
    let server = capacity_server::start(Spec { capacity: k, over, latency_ms: (100, 100) });
    let (adaptive, rate) = run_against(&s, name, &server.url, "adaptive", 512, records);
    let ideal = k as f64 / 0.1;
    let settled = &adaptive["concurrency_limit"]["after_convergence"];
    // `bench/adaptive.sh` (ADAPTIVE_BENCH=1): the fixed ceiling side by side, on a fresh server.
    if std::env::var_os("ADAPTIVE_BENCH").is_some() {
        let server = capacity_server::start(Spec { capacity: k, over, latency_ms: (100, 100) });
        let (fixed, rate) = run_against_lenient(&s, &format!("{name}-fixed"), &server.url, "fixed", 512, records);
        eprintln!(
            "BENCH capacity {k} ({name}), 100 ms: fixed 512 {rate:.0}/s of {ideal:.0} ({:.0} %), 429s {}, records failed {}",
            100.0 * rate / ideal,
            server.stats.refused.load(std::sync::atomic::Ordering::Relaxed),
            fixed["records"]["failed"]
        );
    }
    eprintln!(
        "BENCH capacity {k} ({name}), 100 ms: adaptive {rate:.0}/s of {ideal:.0} ({:.0} %), final limit {}, server peak {}, 429s {}; after convergence {settled}",
        100.0 * rate / ideal,
        adaptive["concurrency_limit"]["final"],
        server.stats.peak.load(std::sync::atomic::Ordering::Relaxed),
        server.stats.refused.load(std::sync::atomic::Ordering::Relaxed),
    );
    // The line, "90 % of K / latency within 20 s": the server's own count of answers
    // between 20 % and 90 % of the records (after the ramp, before the tail), which must start
    // within 20 s; the whole run, ramp and tail included, at 70 % (a loaded CI machine slows the ramp).
    let (steady, from_s) = steady_rate(&server.timeline(), records as u64);
    eprintln!("BENCH capacity {k} ({name}): steady {steady:.0}/s of {ideal:.0} ({:.0} %) from {from_s:.1} s", 100.0 * steady / ideal);
    assert!(from_s <= 20.0, "the ramp took {from_s} s");
    assert!(steady >= 0.9 * ideal, "steady {steady:.0}/s of {ideal:.0}: {}", adaptive["concurrency_limit"]);
    assert!(rate >= 0.7 * ideal, "{rate:.0}/s of {ideal:.0}: {}", adaptive["concurrency_limit"]);
    let (samples, refused) = (settled["samples"].as_u64().unwrap_or(0), settled["throttled"].as_u64().unwrap_or(0));
    assert!(samples > records as u64 / 2, "converged for most of the run: {settled} {}", adaptive["concurrency_limit"]);
    assert!((refused as f64) < 0.01 * samples as f64, "under 1 % throttled after convergence: {settled}");
}

/// Answers per second on the server's timeline between 20 % and 90 % of `records` answered, and
/// when that span began (seconds since the server started).
fn steady_rate(timeline: &[capacity_server::Sample], records: u64) -> (f64, f64) {
    let at = |share: f64| timeline.iter().find(|s| s.answered as f64 >= share * records as f64).copied();
    match (at(0.2), at(0.9)) {
        (Some(a), Some(b)) if b.at_s > a.at_s => ((b.answered - a.answered) as f64 / (b.at_s - a.at_s), a.at_s),
        _ => (0.0, f64::INFINITY),
    }
}

#[test]
fn capacity_64_queueing_reaches_the_knee() {
    let _turn = one_at_a_time();
    capacity_case(64, Over::Queue, "queue", 6000);
}

#[test]
fn capacity_64_refusing_reaches_the_knee_with_few_429s() {
    let _turn = one_at_a_time();
    capacity_case(64, Over::Refuse, "refuse", 6000);
}

// K = 256 needs 2,560 answers a second from the client and the server on one machine: a
// benchmark (an optimised build, nothing else running), not a test of the suite, where a
// debug build shares two cores with other tests. `bench/adaptive.sh` runs them.

#[test]
#[ignore = "a benchmark: bench/adaptive.sh runs it on a release build"]
fn capacity_256_queueing_reaches_the_knee() {
    let _turn = one_at_a_time();
    capacity_case(256, Over::Queue, "queue256", 24000);
}

#[test]
#[ignore = "a benchmark: bench/adaptive.sh runs it on a release build"]
fn capacity_256_refusing_reaches_the_knee_with_few_429s() {
    let _turn = one_at_a_time();
    capacity_case(256, Over::Refuse, "refuse256", 24000);
}

/// The endpoint loses three quarters of its capacity mid-run (256 → 64, refusing past it, as a
/// replica set shrinking behind a load balancer): from 3 s after the drop, under 1 % of the
/// requests are refused and the answers come at ≥ 90 % of the new capacity's rate.
#[test]
#[ignore = "a benchmark: bench/adaptive.sh runs it on a release build"]
fn a_capacity_drop_from_256_to_64_is_adapted_within_3_s() {
    let _turn = one_at_a_time();
    const BEFORE: u64 = 8000;
    const RECORDS: usize = 16000;
    let s = Scratch::new();
    let server = std::sync::Arc::new(capacity_server::start(Spec { capacity: 256, over: Over::Refuse, latency_ms: (100, 100) }));
    let dropped_at = {
        let server = server.clone();
        std::thread::spawn(move || {
            // Bounded: the run ends within a minute or the test fails anyway.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while server.stats.answered.load(std::sync::atomic::Ordering::Relaxed) < BEFORE && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            server.set_capacity(64)
        })
    };
    let (adaptive, _) = run_against(&s, "drop", &server.url, "adaptive", 512, RECORDS);
    let drop_s = dropped_at.join().unwrap();
    let timeline = server.timeline();
    let from = timeline.iter().find(|t| t.at_s >= drop_s + 3.0).copied().expect("the run went on 3 s past the drop");
    let end = timeline.iter().rev().find(|t| t.answered < RECORDS as u64 - 200).copied().unwrap_or(from);
    let (answered, refused) = (end.answered - from.answered, end.refused - from.refused);
    let rate = answered as f64 / (end.at_s - from.at_s).max(0.1);
    let refused_at_drop = from.refused - timeline.iter().rev().find(|t| t.at_s <= drop_s).map_or(0, |t| t.refused);
    eprintln!(
        "BENCH capacity drop 256 -> 64 at {drop_s:.1} s: in the 3 s after it {refused_at_drop} 429s; from then {answered} answers at {rate:.0}/s of 640 ({:.0} %), {refused} 429s ({:.2} %); final limit {}",
        100.0 * rate / 640.0,
        100.0 * refused as f64 / (answered + refused).max(1) as f64,
        adaptive["concurrency_limit"]["final"]
    );
    assert!(end.at_s - from.at_s > 3.0, "a long enough span after the drop: {from:?} .. {end:?}");
    assert!((refused as f64) < 0.01 * (answered + refused) as f64, "{refused} 429s of {}", answered + refused);
    assert!(rate >= 0.9 * 640.0, "{rate:.0}/s of 640");
}
