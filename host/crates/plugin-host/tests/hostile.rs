//! Hostile plugins that stay within their fuel and memory but make the host do the work:
//! one host call on a huge text, a million tiny records, a 10 MB retry hint. Each must be
//! stopped (or cut) by the host at a bounded cost, and the next record must succeed.

use modelcall_plugin_host::{
    CallError, Limits, ParseFailure, Plugin, PluginRuntime, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Role, TrapKind,
};
use modelcall_test_plugins as fx;
use serde_json::json;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| PluginRuntime::new().expect("engine"))
}

fn load(path: &str, role: Role, limits: Limits) -> Plugin {
    let mut s = PluginSpec::new(PluginSource::Path(path.into()), role);
    s.task_name = "hostile-test".into();
    s.limits = limits;
    runtime().load(s).unwrap_or_else(|e| panic!("{e}"))
}

fn record(json: serde_json::Value) -> PreprocessInput {
    PreprocessInput::Record(json.to_string())
}

fn trap(r: Result<PreprocessOutcome, CallError>) -> (TrapKind, String) {
    match r {
        Err(CallError::Trap { kind, message, .. }) => (kind, message),
        Ok(PreprocessOutcome::Keep(v)) => panic!("expected a trap, got {} kept records", v.len()),
        other => panic!("expected a trap, got {other:?}"),
    }
}

fn kept(r: Result<PreprocessOutcome, CallError>) -> usize {
    match r {
        Ok(PreprocessOutcome::Keep(v)) => v.len(),
        other => panic!("expected kept records, got {other:?}"),
    }
}

/// After a trap, a plain record goes through on a fresh instance.
fn next_record_succeeds(p: &Plugin) {
    let (r, stats) = p.preprocess_with_stats("after", 1, record(json!({"text": "fine"})));
    assert_eq!(kept(r), 1);
    assert!(stats.fresh_instance, "the trapped instance must have been replaced");
}

#[test]
fn tokenizer_host_calls_end_at_the_call_deadline() {
    // 10 MB of one repeated character took 6 to 9 s in one host call, whatever the deadline.
    let timeout_ms = 500;
    let p = load(fx::TOKENIZER_BOMB, Role::Preprocessor, Limits { timeout_ms, ..Limits::default() });
    for attack in ["count", "truncate"] {
        let t = Instant::now();
        let (kind, message) = trap(p.preprocess(attack, 1, record(json!({"attack": attack}))));
        let took = t.elapsed();
        eprintln!("{attack}: {kind} after {took:?}");
        assert_eq!(kind, TrapKind::Deadline, "{attack}: {message}");
        assert!(message.contains("limits.timeout_ms = 500 ms"), "{attack}: {message}");
        assert!(took < Duration::from_millis(2 * timeout_ms), "{attack}: the call took {took:?}, over 2 x timeout_ms");
        next_record_succeeds(&p);
    }
}

#[test]
fn a_million_records_from_one_call_are_refused() {
    // 2 MB of output, far under max_output_bytes, but a million rows for the host to handle.
    let p = load(fx::MANY_RECORDS, Role::Preprocessor, Limits::default());
    let t = Instant::now();
    let (kind, message) = trap(p.preprocess("many", 1, record(json!({"attack": 1_000_000}))));
    eprintln!("a million records: {kind} after {:?}", t.elapsed());
    assert_eq!(kind, TrapKind::BadOutput, "{message}");
    assert!(message.contains("1000000 records") && message.contains("max_records_per_call = 100000"), "{message}");
    assert!(t.elapsed() < Duration::from_secs(5), "refusing took {:?}", t.elapsed());
    next_record_succeeds(&p);
    // The default cap itself is allowed.
    assert_eq!(kept(p.preprocess("cap", 1, record(json!({"attack": 100_000})))), 100_000);
}

#[test]
fn the_record_cap_follows_the_limit() {
    let p = load(fx::MANY_RECORDS, Role::Preprocessor, Limits { max_records_per_call: 10, ..Limits::default() });
    assert_eq!(kept(p.preprocess("ten", 1, record(json!({"attack": 10})))), 10);
    let e = p.preprocess("eleven", 1, record(json!({"attack": 11}))).unwrap_err();
    assert_eq!(e.cause(), "plugin_trap_bad_output");
    assert!(e.to_string().contains("kept 11 records, over limits.max_records_per_call = 10"), "{e}");
}

#[test]
fn huge_retry_hints_and_invalid_messages_are_cut_to_4_kib() {
    let p = load(fx::HUGE_HINT, Role::ScoreParser, Limits::default());
    for completion in ["retry", "invalid"] {
        let failure = p.parse_score("h", 1, "{}", completion).expect("a parse failure, not a call error").unwrap_err();
        let text = match (&failure, completion) {
            (ParseFailure::Retry(t), "retry") | (ParseFailure::Invalid(t), "invalid") => t,
            _ => panic!("{completion}: wrong kind of failure"),
        };
        // 1 + 5 Mi two-byte characters: the cut lands inside one and must back off to a boundary.
        assert!(text.len() <= 4096, "{completion}: {} bytes kept", text.len());
        assert!(text.starts_with("xéé"), "{completion}");
        assert!(text.ends_with("é… [cut: 10485761 bytes in all]"), "{completion}: ends {:?}", &text[text.len().saturating_sub(60)..]);
    }
    assert_eq!(p.parse_score("ok", 1, "{}", " 4.5 ").unwrap().unwrap().value, 4.5);
}
