//! Plugin API tracks end to end through the real binary: a component built for track 0.1
//! and kept as a binary (`tests/assets/track-v0.1/`) runs beside 0.2 plugins in one task,
//! and a 0.2 preprocessor's per-item errors become error rows while the rest is kept.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{preprocess_task, read_jsonl};
use modelcall_test_plugins as fx;
use serde_json::{json, Value};

fn modelcall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelcall")).args(args).output().expect("running modelcall")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The committed 0.1 component (never rebuilt by the tests).
fn track_v0_1_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/assets/track-v0.1/track_v0_1_fixture.wasm")
}

fn write_input(dir: &Path, records: &[Value]) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("data.jsonl"), records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    input
}

#[test]
fn the_0_1_fixture_is_still_a_0_1_component() {
    let fixture = track_v0_1_fixture();
    let o = modelcall(&["plugin", "check", fixture.to_str().unwrap(), "--role", "score-parser"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("wit version: 0.1.0") && out.contains("modelcall:plugin/score-parser@0.1.0"), "{out}");
}

#[test]
fn a_0_1_plugin_and_0_2_plugins_run_in_one_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut records: Vec<Value> = (0..5).map(|i| json!({"id": format!("r{i}"), "text": format!("record number {i} of a corpus")})).collect();
    records.push(json!({"id": "skipped", "text": "x", "skip": true}));
    records.push(json!({"id": "broken", "text": "y", "bad": true}));
    let input = write_input(dir.path(), &records);
    let fixture = track_v0_1_fixture();
    // Preprocessor and score parser: the 0.1 binary; prompt builder: the built-in (0.2).
    let judge = format!("  judge:\n    role: score-parser\n    path: \"{}\"\n", fixture.display());
    let task = preprocess_task(dir.path(), &input, fixture.to_str().unwrap(), &judge);

    let dry = modelcall(&["run-task", task.to_str().unwrap(), "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));

    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(3), "one record fails in the 0.1 preprocessor: {}", stderr(&o));
    let rows = read_jsonl(&dir.path().join("out/data.jsonl"));
    assert_eq!(rows.len(), 5, "{}", stderr(&o));
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        assert_eq!(r["v01_pre"], format!("pre/{id}"), "the 0.1 preprocessor saw the task and the key: {r}");
        assert_eq!(r["parsed_by"], "v0.1", "the 0.1 parser's extra reached the row: {r}");
        assert_eq!(r["score_label"], "v0.1", "{r}");
        assert!(r["score_value"].as_f64().is_some(), "{r}");
    }
    let errors = read_jsonl(&dir.path().join("pre/data.preprocess.errors.jsonl"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0]["input"].as_str(), errors[0]["cause"].as_str()), (Some("broken"), Some("plugin_invalid_input")), "{errors:?}");
}

#[test]
fn a_0_2_split_writes_one_error_row_per_bad_item_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let records = vec![
        json!({"id": "a", "split": ["first part of a", null, "third part of a"]}),
        json!({"id": "b", "split": ["only part of b"]}),
        json!({"id": "c", "split": [null, null]}),
    ];
    let input = write_input(dir.path(), &records);
    let task = preprocess_task(dir.path(), &input, fx::HEALTHY, "");
    let run = || modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    let o = run();
    assert_eq!(o.status.code(), Some(3), "item errors are failures: {}", stderr(&o));
    assert!(stderr(&o).contains("3 record(s) and 3 item error(s)"), "{}", stderr(&o));

    let mut scored: Vec<String> = read_jsonl(&dir.path().join("out/data.jsonl")).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    scored.sort();
    assert_eq!(scored, ["a-0", "a-2", "b-0"]);
    let mut errors: Vec<(String, String, String)> = read_jsonl(&dir.path().join("pre/data.preprocess.errors.jsonl"))
        .iter()
        .map(|e| {
            assert_eq!(e["message"], "a null part", "{e}");
            assert_eq!(e["retryable"], false, "{e}");
            (e["input"].as_str().unwrap().to_string(), e["cause"].as_str().unwrap().to_string(), e["location"].as_str().unwrap().to_string())
        })
        .collect();
    errors.sort();
    let expected = [("a#item1", "split[1]"), ("c#item0", "split[0]"), ("c#item1", "split[1]")]
        .map(|(k, l)| (k.to_string(), "plugin_invalid_input".to_string(), l.to_string()));
    assert_eq!(errors, expected);

    // A rerun resends nothing and writes the same rows once.
    let o = run();
    assert!(stderr(&o).contains("0 input(s) now, 3 done before"), "{}", stderr(&o));
    assert_eq!(read_jsonl(&dir.path().join("pre/data.preprocess.errors.jsonl")).len(), 3);
    assert_eq!(read_jsonl(&dir.path().join("out/data.jsonl")).len(), 3);
}
