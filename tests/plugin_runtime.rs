//! End-to-end tests of the plugin runtime through the real `modelcall` binary
//! (`modelcall plugin list|check|run`), with the fixture plugins of tests/plugins and the
//! built-ins. The library-level sandbox tests live in host/crates/plugin-host/tests.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::preprocess_task;
use modelcall_test_plugins as fx;
use serde_json::{json, Value};

fn modelcall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelcall")).args(args).output().expect("running modelcall")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(o: &Output) -> Vec<Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn write_jsonl(dir: &Path, name: &str, records: &[Value]) -> String {
    let path = dir.join(name);
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn list_shows_the_builtins() {
    let o = modelcall(&["plugin", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // Each built-in with its role and what it does.
    for (b, role) in [("builtin:json-score", "score-parser"), ("builtin:template-prompt", "prompt-builder"), ("builtin:repo-xml", "preprocessor")] {
        assert!(out.lines().any(|l| l.starts_with(b) && l.contains(role) && l.split_whitespace().count() > 3), "{b} missing from:\n{out}");
    }
    assert!(!out.contains("builtin:sdk"), "{out}");
}

#[test]
fn check_builtin_json_score() {
    let o = modelcall(&["plugin", "check", "builtin:json-score"]);
    assert!(o.status.success(), "stdout:\n{}\nstderr:\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("role:        score-parser"), "{out}");
    assert!(out.contains("wit version: 0.2."), "{out}");
    assert!(out.contains("modelcall:plugin/score-parser@0.2.0"), "{out}");
    let sha = out.lines().find_map(|l| l.strip_prefix("sha256:")).expect("sha256 line").trim();
    assert_eq!(sha.len(), 64, "{out}");
}

#[test]
fn check_prints_provenance_of_a_fixture() {
    let o = modelcall(&["plugin", "check", fx::HEALTHY]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("name:        healthy") && out.contains("version:     1.2.3"), "{out}");
    assert!(out.contains("wasi:cli/"), "imports must be listed:\n{out}");
}

#[test]
fn wrong_role_and_wrong_track_fail_check_with_actionable_messages() {
    let o = modelcall(&["plugin", "check", fx::WRONG_ROLE, "--role", "preprocessor"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("fixture_wrong_role.wasm") && err.contains("score-parser"), "{err}");

    let o = modelcall(&["plugin", "check", fx::WRONG_TRACK]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("fixture_wrong_track.wasm") && err.contains("API 0.9") && err.contains("supports 0.1, 0.2"), "{err}");

    let o = modelcall(&["plugin", "check", fx::TRIES_FILES_AND_SOCKETS]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wasi:sockets"), "{}", stderr(&o));
}

#[test]
fn run_reports_each_outcome_with_cost() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_jsonl(dir.path(), "in.jsonl", &[json!({"id": "a", "text": "hello"}), json!({"id": "b", "skip": true}), json!({"id": "c", "bad": true})]);
    let o = modelcall(&["plugin", "run", fx::HEALTHY, "--role", "preprocessor", "--input", &input, "--task-name", "t1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l.len(), 3, "{}", stdout(&o));
    assert_eq!(l[0]["outcome"], "keep");
    assert_eq!(l[0]["records"][0]["record_id"], "a");
    assert_eq!(l[0]["records"][0]["task"], "t1");
    assert!(l[0]["fuel"].as_u64().unwrap() > 0 && l[0]["elapsed_us"].is_u64());
    assert_eq!(l[1]["outcome"], "skip");
    assert_eq!(l[2]["outcome"], "error");
    assert_eq!(l[2]["cause"], "plugin_invalid_input");
}

#[test]
fn a_trap_is_reported_with_stderr_and_the_next_record_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_jsonl(dir.path(), "in.jsonl", &[json!({"id": 1, "attack": true}), json!({"id": 2, "text": "ok"})]);
    let o = modelcall(&["plugin", "run", fx::PANIC, "--role", "preprocessor", "--input", &input]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l[0]["cause"], "plugin_trap_panic", "{}", stdout(&o));
    assert!(l[0]["stderr"].as_str().unwrap().contains("fixture panic: the answer is 42"), "{}", l[0]);
    assert_eq!(l[0]["fatal"], false);
    assert_eq!(l[1]["outcome"], "keep");
    assert_eq!(l[1]["records"][0]["text"], "ok");
}

#[test]
fn consecutive_traps_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let attacks: Vec<Value> = (0..4).map(|i| json!({"id": i, "attack": true})).collect();
    let input = write_jsonl(dir.path(), "in.jsonl", &attacks);
    let limits = dir.path().join("limits.yaml");
    std::fs::write(&limits, "timeout_ms: 50\nfuel: 1000000000000000\nmax_consecutive_traps: 2\n").unwrap();
    let o = modelcall(&["plugin", "run", fx::LOOP_FOREVER, "--role", "preprocessor", "--input", &input, "--limits", limits.to_str().unwrap()]);
    assert!(!o.status.success(), "a disabled plugin must fail the run");
    let l = lines(&o);
    assert_eq!(l.len(), 3, "two traps then the disabled error, then stop:\n{}", stdout(&o));
    assert_eq!(l[0]["cause"], "plugin_trap_deadline");
    assert_eq!(l[1]["cause"], "plugin_trap_deadline");
    assert_eq!(l[2]["cause"], "plugin_disabled");
    assert!(stderr(&o).contains("disabled after 2 consecutive traps"), "{}", stderr(&o));
}

#[test]
fn a_limits_typo_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_jsonl(dir.path(), "in.jsonl", &[json!({"text": "x"})]);
    let limits = dir.path().join("limits.yaml");
    std::fs::write(&limits, "timeout: 50\n").unwrap();
    let o = modelcall(&["plugin", "run", fx::HEALTHY, "--role", "preprocessor", "--input", &input, "--limits", limits.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("timeout"), "{}", stderr(&o));
}

#[test]
fn run_files_gives_raw_bytes_to_a_preprocessor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("a.txt"), b"12345").unwrap();
    std::fs::write(dir.path().join("sub/b.bin"), [0u8, 159, 146, 150]).unwrap();
    let o = modelcall(&["plugin", "run", fx::HEALTHY, "--role", "preprocessor", "--files", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l[0]["records"][0], json!({"path": "a.txt", "len": 5}));
    assert_eq!(l[1]["records"][0], json!({"path": "sub/b.bin", "len": 4}));
}

#[test]
fn score_parser_reads_the_completion_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_jsonl(dir.path(), "in.jsonl", &[json!({"id": "x", "reply": "3.5"}), json!({"id": "y", "reply": "meh"})]);
    let o = modelcall(&["plugin", "run", fx::WRONG_ROLE, "--role", "score-parser", "--input", &input, "--completion-field", "reply"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l[0]["outcome"], "score");
    assert_eq!(l[0]["score"]["value"], 3.5);
    assert_eq!(l[1]["outcome"], "retry");
}

#[test]
fn third_party_plugin_built_with_the_sdk_runs() {
    let Some(upper) = fx::ALL.iter().find(|(n, _)| *n == "third-party-upper").map(|(_, p)| *p) else {
        panic!("tests/plugins/third-party-upper is not built: enable it in tests/plugins/Cargo.toml once plugins/sdk is ready");
    };
    let dir = tempfile::tempdir().unwrap();
    let input = write_jsonl(dir.path(), "in.jsonl", &[json!({"id": 1, "text": "hello sdk"}), json!({"id": 2, "other": 1})]);
    let o = modelcall(&["plugin", "run", upper, "--role", "preprocessor", "--input", &input]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l[0]["records"][0]["text"], "HELLO SDK", "{}", stdout(&o));
    assert_eq!(l[1]["outcome"], "skip");
}

#[test]
fn a_preprocessor_disabled_by_traps_stops_the_task_with_its_error_file_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let records: Vec<Value> = (0..6).map(|i| json!({"id": i, "text": "x", "attack": true})).collect();
    write_jsonl(&input, "data.jsonl", &records);
    let task = preprocess_task(dir.path(), &input, fx::PANIC, "    limits:\n      max_consecutive_traps: 2\n");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("preprocessing stopped"), "{}", stderr(&o));
    // The records that trapped before the plugin was disabled are in the error file, with the cause.
    let errors = std::fs::read_to_string(dir.path().join("pre/data.preprocess.errors.jsonl")).expect("the error file is written");
    let rows: Vec<Value> = errors.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["cause"].as_str().unwrap().starts_with("plugin_trap")), "{errors}");
}

#[test]
fn a_raw_file_changed_after_preprocessing_is_preprocessed_again() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw/Rust/lib.rs.txt");
    std::fs::create_dir_all(raw.parent().unwrap()).unwrap();
    std::fs::write(&raw, "fn a() {}\n").unwrap();
    std::fs::write(dir.path().join("raw/Rust/other.txt"), "x").unwrap();
    let task = preprocess_task(dir.path(), &dir.path().join("raw"), fx::HEALTHY, "");
    let lens = || -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(dir.path().join("pre/Rust.jsonl")).unwrap();
        let mut v: Vec<(String, u64)> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|r| (r["path"].as_str().unwrap().to_string(), r["len"].as_u64().unwrap()))
            .collect();
        v.sort();
        v
    };
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--stage", "preprocess", "--no-progress"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lens(), vec![("Rust/lib.rs.txt".to_string(), 10), ("Rust/other.txt".to_string(), 1)]);
    // A line appended to one raw file: that file (only) is preprocessed again.
    std::fs::write(&raw, "fn a() {}\nfn b() {}\n").unwrap();
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--stage", "preprocess", "--no-progress"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("changed since the last run"), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 input(s) now, 1 done before"), "{}", stderr(&o));
    assert_eq!(lens(), vec![("Rust/lib.rs.txt".to_string(), 20), ("Rust/other.txt".to_string(), 1)]);
}

#[test]
fn check_works_without_a_config_and_prints_the_schema_it_publishes() {
    // template-prompt needs a config: without one, what can be checked still is.
    let o = modelcall(&["plugin", "check", "builtin:template-prompt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("init skipped") && stdout(&o).contains("sha256:"), "{}", stdout(&o));
    let o = modelcall(&["plugin", "check", "builtin:json-score"]);
    let out = stdout(&o);
    assert!(!out.contains("published") || out.contains('{'), "the schema itself is printed, not only that one exists:\n{out}");
}
