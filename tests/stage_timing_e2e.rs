//! `run_summary.json` says where the records' time went (`stage_timing_ms`): waiting for a slot,
//! building the prompt, on the wire, parsing, the rest of the job, the handoff and the journal,
//! p50/p99/mean each, and the share of the time in flight that was on the wire. Checked against
//! the simulator's fixed latency and against retries (a backoff is not wire time).

mod common;

use std::process::{Command, Stdio};

use common::Scratch;
use serde_json::Value;

fn run(s: &Scratch, base_url: &str, concurrency: usize, extra: &str) -> Value {
    common::write_records(&s.path("input/data.jsonl"), 200);
    let task = s.scoring_task(base_url, concurrency, "", extra);
    let o = Command::new(env!("CARGO_BIN_EXE_modelcall")).args(["run-task", task.to_str().unwrap(), "--no-progress"]).stdin(Stdio::null()).output().unwrap();
    // Exit 3: some records failed (the 429 test may exhaust a record's retries); the summary
    // is written either way.
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap()
}

fn ms(v: &Value, stage: &str, q: &str) -> f64 {
    v["stage_timing_ms"][stage][q].as_f64().unwrap_or_else(|| panic!("{stage}.{q} in {}", v["stage_timing_ms"]))
}

#[test]
fn every_stage_is_timed_and_the_wire_holds_the_endpoints_latency() {
    let s = Scratch::new();
    let v = run(&s, "sim://?latency_ms=40", 8, "");
    let t = &v["stage_timing_ms"];
    assert_eq!(t["records"], 200, "{t}");
    // Every stage is there (`ms` panics on a missing one), with its p50 at most its p99.
    for stage in ["slot_wait", "prompt", "wire", "parse", "other", "handoff", "journal"] {
        assert!(ms(&v, stage, "p50") <= ms(&v, stage, "p99"), "{stage}: {t}");
        let _ = ms(&v, stage, "mean");
    }
    // The simulator answers after 40 ms: the wire holds it; the plugins take a sliver of it.
    assert!((40.0..400.0).contains(&ms(&v, "wire", "p50")), "{t}");
    assert!(ms(&v, "prompt", "p50") < ms(&v, "wire", "p50") && ms(&v, "parse", "p50") < ms(&v, "wire", "p50"), "{t}");
    // 200 records through 8 slots: the dispatcher waits for a slot about once per answer (the
    // records behind it wait in the read-ahead, not for a slot).
    assert!(ms(&v, "slot_wait", "mean") > 1.0, "{t}");
    let share = t["wire_share_in_flight"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&share), "{t}");
}

#[test]
fn a_backoff_between_attempts_is_not_wire_time() {
    // Half the attempts are refused with 429 and Retry-After: 1, so half the records wait about
    // a second between attempts: that wait is the job's `other`, not the wire's.
    let s = Scratch::new();
    let v = run(&s, "sim://?latency_ms=5&fault=429:0.5&retry_after_secs=1", 64, "");
    let t = &v["stage_timing_ms"];
    if v["retries_by_cause"].as_object().is_none_or(|m| m.is_empty()) {
        panic!("the simulator URL did not make the first attempts fail: {v}");
    }
    assert!(ms(&v, "wire", "p99") < 200.0, "{t}");
    assert!(ms(&v, "other", "p99") > 900.0, "the backoff is the rest of the job: {t}");
    assert!(ms(&v, "other", "mean") > 300.0, "{t}");
}

/// Every plugin role is named with its hash in `run.plugins`, the preprocessor included, and
/// `plugin_calls` gives each role's call count and time per call.
#[test]
fn every_plugin_role_has_its_hash_and_its_time_per_call() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("in")).unwrap();
    let body: String = (0..30).map(|i| format!("{{\"id\":\"p{i}\",\"text\":\"Record {i} is plain prose about rivers.\"}}\n")).collect();
    std::fs::write(s.path("in/data.jsonl"), body).unwrap();
    let task = common::preprocess_task(s.dir.path(), &s.path("in"), "builtin:universal", "");
    let o = Command::new(env!("CARGO_BIN_EXE_modelcall")).args(["run-task", task.to_str().unwrap(), "--no-progress"]).stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    let roles: Vec<&str> = v["run"]["plugins"].as_array().unwrap().iter().map(|p| p["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["preprocessor", "prompt-builder", "score-parser"], "{}", v["run"]["plugins"]);
    for p in v["run"]["plugins"].as_array().unwrap() {
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64), "{p}");
    }
    for role in ["preprocessor", "prompt-builder", "score-parser"] {
        let calls = &v["plugin_calls"][role];
        assert_eq!(calls["calls"], 30, "{role}: {}", v["plugin_calls"]);
        let (p50, p99) = (calls["p50_us"].as_u64().unwrap(), calls["p99_us"].as_u64().unwrap());
        assert!(p50 >= 1 && p50 <= p99, "{role}: {calls}");
    }
}
