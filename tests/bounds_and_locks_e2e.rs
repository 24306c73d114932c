//! Issue 21, items 5, 7, 9 and 10 with the real binary and the simulated endpoint: a parser trap
//! on an outsized reply is that record's error (not the breaker's), locks of other hosts go
//! stale once their heartbeat stops, a takeover leaves no file behind, and input files in
//! sub-folders are never skipped without a word.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{read_jsonl, Scratch};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn run(task: &Path) -> Output {
    Command::new(bin()).arg("run-task").arg(task).arg("--no-progress").stdin(Stdio::null()).output().expect("running modelcall")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_input(s: &Scratch, rel: &str, ids: &[&str]) {
    let lines: String = ids.iter().map(|id| format!("{{\"id\":\"{id}\",\"text\":\"{id} record text\"}}\n")).collect();
    s.write(rel, lines.as_bytes());
}

/// Six replies of ~1.2 MB run the parser out of fuel; two ordinary ones do not. Before: five
/// traps in a row disabled the parser and stopped the run (exit 1, records left pending).
#[test]
fn parser_traps_on_outsized_replies_fail_those_records_and_the_run_goes_on() {
    let s = Scratch::new();
    let ids: Vec<String> = (0..8).map(|i| if i < 6 { format!("big{i}") } else { format!("small{i}") }).collect();
    write_input(&s, "input/data.jsonl", &ids.iter().map(String::as_str).collect::<Vec<_>>());
    let big = format!("{}{{\"score\": 3}}", "x ".repeat(600_000));
    let replies = format!(
        "{}\n{}\n",
        serde_json::json!({"match": "big\\d", "reply": big}),
        serde_json::json!({"default": "```json\n{\"score\": 4}\n```"})
    );
    let replies_path = s.write("replies.jsonl", replies.as_bytes());
    let task = s.scoring_task(
        &format!("sim://?replies={}", replies_path.display()),
        1,
        "",
        "plugins:\n  parser:\n    role: score-parser\n    path: builtin:json-score\n    limits:\n      fuel: 3000000\n",
    );
    let out = run(&task);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "finished with failed records, not stopped: {err}");
    assert!(!err.contains("disabled"), "{err}");
    let ok = read_jsonl(&s.path("out/data.jsonl"));
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(ok.len(), 2, "the ordinary replies are scored");
    assert_eq!(errors.len(), 6, "each outsized reply is its record's error");
    for e in &errors {
        assert!(e["api_fail_reason"].as_str().unwrap_or_default().contains("fuel"), "{}", &e.to_string()[..300.min(e.to_string().len())]);
    }
}

fn write_lock(folder: &Path, pid: u32, host: &str, age: Duration) -> std::path::PathBuf {
    let path = folder.join(".modelcall/run.lock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let json = serde_json::json!({"pid": pid, "host": host, "started_at": "2026-12-01T15:00:00Z", "command": "modelcall run-task x.yaml"});
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
    path
}

/// A lock of another host (a node that died) is stale once its heartbeat is 30 s old: the run
/// takes it over and says why; a fresh one still holds the folder, and says when it last beat.
#[test]
fn a_lock_of_another_host_goes_stale_after_three_missed_heartbeats() {
    let s = Scratch::new();
    write_input(&s, "input/data.jsonl", &["a", "b"]);
    let task = s.task_for_sim();
    write_lock(&s.path("out"), 4242, "dead-node.example", Duration::from_secs(5));
    let held = run(&task);
    assert!(!held.status.success());
    let err = stderr(&held);
    assert!(err.contains("dead-node.example") && err.contains("last heartbeat was"), "{err}");

    write_lock(&s.path("out"), 4242, "dead-node.example", Duration::from_secs(45));
    let taken = run(&task);
    let err = stderr(&taken);
    assert!(taken.status.success(), "{err}");
    assert!(err.contains("stale") && err.contains("has not refreshed it"), "the takeover says why: {err}");
    assert_eq!(read_jsonl(&s.path("out/data.jsonl")).len(), 2);
    assert!(!s.path("out/.modelcall/run.lock").exists(), "released at the end");
}

/// A takeover of a dead run's lock leaves no `run.lock.takeover` behind.
#[test]
fn a_stale_lock_takeover_leaves_no_file_behind() {
    let s = Scratch::new();
    write_input(&s, "input/data.jsonl", &["a"]);
    let task = s.task_for_sim();
    write_lock(&s.path("out"), 2_147_483_632, &modelcall_io::lock::hostname(), Duration::ZERO);
    let out = run(&task);
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = std::fs::read_dir(s.path("out/.modelcall"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run.lock"))
        .collect();
    assert!(left.is_empty(), "lock files left: {left:?}");
}

/// A record file in a sub-folder is not read, and the run says so with the count.
#[test]
fn input_files_in_sub_folders_are_counted_in_a_warning() {
    let s = Scratch::new();
    write_input(&s, "input/top.jsonl", &["a"]);
    write_input(&s, "input/a/b.jsonl", &["b"]);
    write_input(&s, "input/a/c/d.jsonl", &["d"]);
    let task = s.task_for_sim();
    let out = run(&task);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("2 input file(s) in sub-folders").count(), 1, "warned once, with the count: {err}");
}

impl Scratch {
    fn task_for_sim(&self) -> std::path::PathBuf {
        self.scoring_task("sim://", 4, "", "")
    }
}

/// A reply carrying a 3 MB string is stored cut to `output.max_field_bytes` (in the reply and
/// in any verdict field it fed), marked, and counted in run_summary.json.
#[test]
fn long_fields_are_cut_marked_and_counted() {
    let s = Scratch::new();
    write_input(&s, "input/data.jsonl", &["a"]);
    let reply = format!("```json\n{{\"score\": 4, \"reason\": \"{}\"}}\n```", "y".repeat(3_000_000));
    let replies_path = s.write("replies.jsonl", format!("{}\n", serde_json::json!({"default": reply})).as_bytes());
    let task = s.scoring_task(&format!("sim://?replies={}", replies_path.display()), 1, "", "output:\n  max_field_bytes: 100000\n");
    let out = run(&task);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = std::fs::metadata(s.path("out/data.jsonl")).unwrap().len();
    assert!(size < 400_000, "the row is bounded: {size} bytes");
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let api_return = rows[0]["api_return"].as_str().unwrap();
    assert!(api_return.ends_with(" bytes]") && api_return.contains("…[cut: "), "{}", &api_return[api_return.len() - 40..]);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    let cut = summary["files"][0]["fields_cut"].as_u64().expect("fields_cut is in the summary");
    assert!(cut >= 1, "the cut fields are counted: {cut}");
}
