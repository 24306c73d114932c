//! Upgrades never strand a user: output folders written by the version before journal entries
//! said what each result was made from (tests/assets/folder-v0.2-scoring, written by that
//! version's binary) resume with this one without re-sending anything.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{copy_dir, read_jsonl};
use serde_json::Value;

fn run(dir: &Path, task: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelcall")).current_dir(dir).args(["run-task", task, "--no-progress"]).stdin(Stdio::null()).output().unwrap()
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let asset = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/assets/folder-v0.2-scoring");
    copy_dir(&asset, dir.path());
    dir
}

fn by_id(rows: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    rows.into_iter().map(|r| (r["id"].as_str().unwrap().to_string(), r)).collect()
}

#[test]
fn a_finished_folder_of_the_previous_version_resumes_with_nothing_sent() {
    let dir = fixture();
    let before = by_id(read_jsonl(&dir.path().join("out/data.jsonl")));
    assert_eq!(before.len(), 20);
    let o = run(dir.path(), "task.yaml");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&dir.path().join("out/run_summary.json"));
    assert_eq!(s["requests"], 0, "{s}");
    assert_eq!(s["records"]["already_done"], 20);
    assert_eq!((s["records"]["changed"].as_u64(), s["records"]["adopted"].as_u64()), (Some(0), Some(0)), "{s}");
    assert_eq!(by_id(read_jsonl(&dir.path().join("out/data.jsonl"))), before, "the rows are kept as they were");
    // The dry run agrees.
    let dry = Command::new(env!("CARGO_BIN_EXE_modelcall")).current_dir(dir.path()).args(["run-task", "task.yaml", "--dry-run"]).output().unwrap();
    assert!(String::from_utf8_lossy(&dry.stdout).contains("done 20 · changed 0"), "{}", String::from_utf8_lossy(&dry.stdout));
}

#[test]
fn a_partly_done_folder_of_the_previous_version_sends_only_what_is_missing() {
    let dir = fixture();
    // Its first run was limited to 12 records (debug); the rest is new work now.
    let task = std::fs::read_to_string(dir.path().join("task_partial.yaml")).unwrap();
    let unlimited: String = task.lines().take_while(|l| !l.starts_with("debug:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("task_partial.yaml"), unlimited).unwrap();
    let o = run(dir.path(), "task_partial.yaml");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&dir.path().join("out_partial/run_summary.json"));
    assert_eq!((s["requests"].as_u64(), s["records"]["already_done"].as_u64()), (Some(8), Some(12)), "{s}");
    assert_eq!(read_jsonl(&dir.path().join("out_partial/data.jsonl")).len(), 20);
}
