//! The runtime against the fixture plugins of tests/plugins: each hostile fixture yields
//! its documented outcome, the instance is rebuilt and the next record succeeds, and load
//! errors name the plugin.

use modelcall_plugin_host::{
    CallError, ErrorKind, ItemError, Limits, LoadError, Plugin, PluginRuntime, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Role, TrapKind,
};
use modelcall_test_plugins as fx;
use serde_json::json;
use std::sync::OnceLock;
use std::time::Instant;

fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| PluginRuntime::new().expect("engine"))
}

fn spec(path: &str, role: Role) -> PluginSpec {
    let mut s = PluginSpec::new(PluginSource::Path(path.into()), role);
    s.task_name = "sandbox-test".into();
    s
}

fn load(path: &str, limits: Limits) -> Plugin {
    let mut s = spec(path, Role::Preprocessor);
    s.limits = limits;
    runtime().load(s).unwrap_or_else(|e| panic!("{e}"))
}

fn record(json: serde_json::Value) -> PreprocessInput {
    PreprocessInput::Record(json.to_string())
}

fn trap(r: Result<PreprocessOutcome, CallError>) -> (TrapKind, String, String) {
    match r {
        Err(CallError::Trap { kind, message, stderr, .. }) => (kind, message, stderr),
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// After a trap, a plain record goes through (on a fresh instance).
fn next_record_succeeds(p: &Plugin) {
    let (r, stats) = p.preprocess_with_stats("after", 1, record(json!({"text": "fine"})));
    assert_eq!(r.unwrap(), PreprocessOutcome::keep_records(vec![json!({"text": "fine"}).to_string()]));
    assert!(stats.fresh_instance, "the trapped instance must have been replaced");
}

#[test]
fn healthy_plugin_uses_every_host_import() {
    let p = load(fx::HEALTHY, Limits::default());
    assert_eq!(p.info().name, "healthy");
    assert_eq!(p.info().version, "1.2.3");
    assert_eq!(p.info().wit_version, "0.2.0");
    assert_eq!(p.info().sha256.len(), 64);
    assert!(p.info().config_schema.is_some());
    assert!(p.info().exports.iter().any(|e| e == "modelcall:plugin/preprocessor@0.2.0"), "{:?}", p.info().exports);

    let (r, stats) = p.preprocess_with_stats("rec-7", 3, record(json!({"text": "hello wonderful world"})));
    let PreprocessOutcome::Keep(recs) = r.unwrap() else { panic!("keep expected") };
    let out: serde_json::Value = serde_json::from_str(recs[0].as_ref().unwrap()).unwrap();
    assert_eq!(out["record_id"], "rec-7");
    assert_eq!(out["attempt"], 3);
    assert_eq!(out["task"], "sandbox-test");
    assert_eq!(out["tokens"], modelcall_plugin_host::tokenizer::count_tokens("hello wonderful world") as u64);
    assert_eq!(out["first_two_tokens"], modelcall_plugin_host::tokenizer::truncate_tokens("hello wonderful world", 2));
    assert!(stats.fuel > 0 && stats.fuel < 10_000_000, "{stats:?}");
    assert!(!stats.fresh_instance, "the instance from load is reused");

    assert_eq!(p.preprocess("s", 1, record(json!({"skip": true}))).unwrap(), PreprocessOutcome::Skip("asked to skip".into()));
    let e = p.preprocess("b", 1, record(json!({"bad": 1}))).unwrap_err();
    assert!(matches!(e, CallError::Plugin { kind: ErrorKind::InvalidInput, .. }), "{e:?}");
    assert_eq!(e.cause(), "plugin_invalid_input");
    assert!(!e.is_fatal());

    let r = p.preprocess("f", 1, PreprocessInput::File { path: "a/b.txt".into(), bytes: vec![0; 10] }).unwrap();
    assert_eq!(r, PreprocessOutcome::keep_records(vec![json!({"len": 10, "path": "a/b.txt"}).to_string()]));
}

#[test]
fn a_track_0_2_split_keeps_the_good_items_and_returns_each_bad_one_with_its_location() {
    let p = load(fx::HEALTHY, Limits::default());
    let r = p.preprocess("s", 1, record(json!({"split": ["a", null, "c"]}))).unwrap();
    let bad = ItemError { kind: ErrorKind::InvalidInput, message: "a null part".into(), location: Some("split[1]".into()) };
    let expected = vec![Ok(json!({"id": "s-0", "text": "a"}).to_string()), Err(bad), Ok(json!({"id": "s-2", "text": "c"}).to_string())];
    assert_eq!(r, PreprocessOutcome::Keep(expected));
}

#[test]
fn invalid_config_is_a_load_error_naming_the_plugin_and_key() {
    let mut s = spec(fx::HEALTHY, Role::Preprocessor);
    s.config = json!({"fail_init": true});
    let e = runtime().load(s).err().expect("must fail");
    assert!(matches!(e, LoadError::InvalidConfig { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("fixture_healthy.wasm") && msg.contains("fail_init"), "{msg}");
}

#[test]
fn a_config_the_published_schema_rejects_is_refused_even_when_init_accepts_it() {
    // The healthy fixture reads `fail_init` with `as_bool`, so its init takes a string; its
    // schema says boolean.
    let mut s = spec(fx::HEALTHY, Role::Preprocessor);
    s.config = json!({"fail_init": "yes"});
    match runtime().load(s) {
        Err(LoadError::ConfigSchema { plugin, violations, schema }) => {
            assert!(plugin.contains("fixture_healthy.wasm"), "{plugin}");
            assert_eq!(violations.len(), 1, "{violations:?}");
            assert_eq!((violations[0].path.clone(), violations[0].message.as_str()), (vec!["fail_init".to_string()], "expected boolean, got string \"yes\""));
            assert!(schema.contains("fail_init"), "{schema}");
        }
        Err(e) => panic!("expected a schema violation, got {e}"),
        Ok(_) => panic!("expected a schema violation, the plugin loaded"),
    }
    // An SDK plugin refusing the config itself: the schema it appends is checked the same way.
    let mut s = spec(fx::CSV_READER, Role::Preprocessor);
    s.config = json!({"max_rows": "ten", "delimter": ";"});
    let e = runtime().load(s).err().expect("must fail");
    let LoadError::ConfigSchema { violations, .. } = &e else { panic!("{e:?}") };
    let mut got: Vec<String> = violations.iter().map(ToString::to_string).collect();
    got.sort();
    assert_eq!(
        got,
        ["`delimter`: unknown key (did you mean `delimiter`?); the schema allows: delimiter, max_rows", "`max_rows`: expected integer, got string \"ten\""]
    );
    // What the schema allows loads.
    let mut s = spec(fx::CSV_READER, Role::Preprocessor);
    s.config = json!({"max_rows": 2});
    runtime().load(s).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn what_a_plugin_prints_is_captured_per_call() {
    let p = load(fx::CSV_READER, Limits::default());
    let input = PreprocessInput::File { path: "t.csv".into(), bytes: b"a,b\n1,2\n3\n".to_vec() };
    let (r, output) = modelcall_plugin_host::capture_output(|| p.preprocess("t.csv", 1, input));
    assert_eq!(output, "csv-reader: t.csv: 2 row(s), 1 bad\n");
    let PreprocessOutcome::Keep(items) = r.unwrap() else { panic!("a keep") };
    let bad = items[1].as_ref().unwrap_err();
    assert_eq!((bad.location.as_deref(), bad.line()), (Some("line 3"), Some(3)));
    // Outside a capture nothing is collected, and a later capture sees only its own calls.
    p.preprocess("x.csv", 1, PreprocessInput::File { path: "x.csv".into(), bytes: b"a\n1\n".to_vec() }).unwrap();
    let (_, output) =
        modelcall_plugin_host::capture_output(|| p.preprocess("y.csv", 1, PreprocessInput::File { path: "y.csv".into(), bytes: b"a\n".to_vec() }));
    assert_eq!(output, "csv-reader: y.csv: 0 row(s), 0 bad\n");
}

#[test]
fn loop_forever_hits_the_deadline_then_recovers() {
    // The default 1e9 fuel lasts well under a second of a tight loop; lift it so the
    // wall-clock deadline is what fires.
    let p = load(fx::LOOP_FOREVER, Limits { timeout_ms: 100, fuel: 1_000_000_000_000_000, ..Limits::default() });
    let t = Instant::now();
    let (kind, message, _) = trap(p.preprocess("loop", 1, record(json!({"attack": true}))));
    let took = t.elapsed().as_millis();
    assert_eq!(kind, TrapKind::Deadline, "{message}");
    assert!(message.contains("limits.timeout_ms = 100 ms"), "{message}");
    assert!((80..1000).contains(&took), "deadline of 100 ms took {took} ms");
    next_record_succeeds(&p);
}

#[test]
fn loop_forever_runs_out_of_fuel_deterministically() {
    let p = load(fx::LOOP_FOREVER, Limits { fuel: 5_000_000, timeout_ms: 60_000, ..Limits::default() });
    let (r, stats) = p.preprocess_with_stats("loop", 1, record(json!({"attack": true})));
    let (kind, _, _) = trap(r);
    assert_eq!(kind, TrapKind::Fuel);
    assert_eq!(stats.fuel, 5_000_000);
    next_record_succeeds(&p);
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let p = load(fx::MEMORY_BOMB, Limits { memory_mib: 32, ..Limits::default() });
    let (kind, message, _) = trap(p.preprocess("bomb", 1, record(json!({"attack": true}))));
    assert_eq!(kind, TrapKind::Memory, "{message}");
    assert!(message.contains("memory_mib"), "{message}");
    next_record_succeeds(&p);
}

#[test]
fn panic_message_is_captured_from_stderr() {
    let p = load(fx::PANIC, Limits::default());
    let r = p.preprocess("boom", 1, record(json!({"attack": true})));
    let e = r.clone().unwrap_err();
    assert_eq!(e.cause(), "plugin_trap_panic");
    let (kind, message, stderr) = trap(r);
    assert_eq!(kind, TrapKind::Panic);
    assert!(!message.contains("wasm backtrace"), "the message must stay short: {message}");
    assert!(stderr.contains("fixture panic: the answer is 42"), "stderr was: {stderr:?}");
    next_record_succeeds(&p);
}

#[test]
fn huge_output_is_refused() {
    let p = load(fx::HUGE_OUTPUT, Limits::default());
    let (kind, message, _) = trap(p.preprocess("big", 1, record(json!({"attack": true}))));
    assert_eq!(kind, TrapKind::OutputTooLarge);
    assert!(message.contains("max_output_bytes"), "{message}");
    next_record_succeeds(&p);
}

#[test]
fn file_access_is_denied_at_run_time() {
    let p = load(fx::TRIES_FILES, Limits::default());
    let e = p.preprocess("fs", 1, record(json!({"attack": true}))).unwrap_err();
    match &e {
        CallError::Plugin { kind: ErrorKind::InvalidInput, message, .. } => {
            assert!(message.contains("file access denied"), "{message}");
        }
        other => panic!("the plugin must report the denied open, got {other:?}"),
    }
}

#[test]
fn sockets_are_rejected_at_load() {
    let e = runtime().load(spec(fx::TRIES_FILES_AND_SOCKETS, Role::Preprocessor)).err().expect("must be refused");
    let msg = e.to_string();
    assert!(matches!(e, LoadError::ForbiddenImport { .. }), "{msg}");
    assert!(msg.contains("fixture_tries_files_and_sockets.wasm") && msg.contains("wasi:sockets"), "{msg}");
}

#[test]
fn wrong_role_is_rejected_at_load() {
    let e = runtime().load(spec(fx::WRONG_ROLE, Role::Preprocessor)).err().expect("must be refused");
    let msg = e.to_string();
    assert!(matches!(e, LoadError::MissingExport { .. }), "{msg}");
    assert!(msg.contains("fixture_wrong_role.wasm") && msg.contains("modelcall:plugin/preprocessor") && msg.contains("score-parser"), "{msg}");
    // The same component loads as what it is.
    let p = runtime().load(spec(fx::WRONG_ROLE, Role::ScoreParser)).unwrap();
    assert_eq!(p.parse_score("r", 1, "{}", " 4.5 ").unwrap().unwrap().value, 4.5);
}

#[test]
fn wrong_track_is_rejected_at_load() {
    let e = runtime().load(spec(fx::WRONG_TRACK, Role::Preprocessor)).err().expect("must be refused");
    let msg = e.to_string();
    assert!(matches!(e, LoadError::UnsupportedTrack { .. }), "{msg}");
    assert!(msg.contains("fixture_wrong_track.wasm") && msg.contains("API 0.9") && msg.contains("supports 0.1, 0.2"), "{msg}");
}

#[test]
fn consecutive_traps_disable_the_plugin() {
    let p = load(fx::PANIC, Limits { max_consecutive_traps: 3, ..Limits::default() });
    // A success in between resets the count.
    for _ in 0..2 {
        trap(p.preprocess("x", 1, record(json!({"attack": true}))));
    }
    next_record_succeeds(&p);
    for _ in 0..3 {
        trap(p.preprocess("x", 1, record(json!({"attack": true}))));
    }
    assert!(p.is_disabled());
    let e = p.preprocess("y", 1, record(json!({"text": "fine"}))).unwrap_err();
    assert!(matches!(e, CallError::Disabled { consecutive_traps: 3, .. }), "{e:?}");
    assert!(e.is_fatal());
    assert!(e.to_string().contains("fixture_panic.wasm"), "{e}");
}

#[test]
fn instances_are_recycled_after_max_calls() {
    let p = load(fx::HEALTHY, Limits { max_calls_per_instance: 2, ..Limits::default() });
    let fresh: Vec<bool> = (0..5).map(|i| p.preprocess_with_stats(&i.to_string(), 1, record(json!({"text": "t"}))).1.fresh_instance).collect();
    // The load-time instance serves calls 0 and 1; then a new one every two calls.
    assert_eq!(fresh, vec![false, false, true, false, true]);
}

#[test]
fn unknown_builtin_lists_the_available_ones() {
    let e = runtime().load(PluginSpec::new(PluginSource::parse("builtin:nope"), Role::Preprocessor)).err().unwrap();
    let msg = e.to_string();
    assert!(msg.contains("builtin:nope") && msg.contains("json-score"), "{msg}");
}

#[test]
fn missing_file_names_the_path() {
    let e = runtime().load(spec("/nonexistent/p.wasm", Role::Preprocessor)).err().unwrap();
    assert!(e.to_string().contains("/nonexistent/p.wasm"), "{e}");
}

#[test]
fn concurrent_calls_use_separate_instances() {
    let p = load(fx::HEALTHY, Limits::default());
    std::thread::scope(|s| {
        for t in 0..4 {
            let p = p.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let id = format!("{t}-{i}");
                    let PreprocessOutcome::Keep(r) = p.preprocess(&id, 1, record(json!({"text": "x"}))).unwrap() else { panic!() };
                    let v: serde_json::Value = serde_json::from_str(r[0].as_ref().unwrap()).unwrap();
                    assert_eq!(v["record_id"], id.as_str());
                }
            });
        }
    });
}

#[test]
fn a_trap_in_init_is_a_load_error_with_the_panic_message() {
    let mut s = spec(fx::PANIC, Role::Preprocessor);
    s.config = json!({"panic_in_init": true});
    let e = runtime().load(s).err().expect("must fail");
    let msg = e.to_string();
    assert!(matches!(e, LoadError::Init { .. }), "{msg}");
    assert!(msg.contains("fixture_panic.wasm") && msg.contains("fixture panic during init"), "{msg}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let opts = modelcall_plugin_host::RuntimeOptions { compile_cache: true, cache_dir: Some(dir.path().to_path_buf()) };
    let rt = PluginRuntime::with_options(opts.clone()).unwrap();
    assert!(rt.compile_cache_enabled());
    let t = Instant::now();
    rt.load(spec(fx::WRONG_ROLE, Role::ScoreParser)).unwrap();
    let cold = t.elapsed();
    let files = walk(dir.path());
    assert!(files > 0, "the first load must write a cache entry");
    // A second process (a new engine) reuses it.
    let rt2 = PluginRuntime::with_options(opts).unwrap();
    let t = Instant::now();
    rt2.load(spec(fx::WRONG_ROLE, Role::ScoreParser)).unwrap();
    let warm = t.elapsed();
    assert!(warm < cold, "warm {warm:?} should beat cold {cold:?}");
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn every_builtin_is_a_component_exporting_one_role() {
    let names: Vec<&str> = modelcall_plugin_host::builtins::names().collect();
    for expected in ["json-score", "repo-xml", "template-prompt"] {
        assert!(names.contains(&expected), "{expected} not embedded: {names:?}");
    }
    assert!(!names.contains(&"sdk"));
    for name in names {
        let summary = runtime().inspect(&PluginSource::Builtin(name.to_string())).unwrap_or_else(|e| panic!("builtin:{name}: {e}"));
        assert_eq!(summary.roles.len(), 1, "builtin:{name} must export exactly one role, exports: {:?}", summary.exports);
        assert_eq!(summary.wit_version.as_deref().map(|v| v.starts_with("0.2.")), Some(true), "builtin:{name}");
    }
}
