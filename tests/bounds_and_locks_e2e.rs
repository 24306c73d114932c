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
    let replies = format!("{}\n{}\n", serde_json::json!({"match": "big\\d", "reply": big}), serde_json::json!({"default": "```json\n{\"score\": 4}\n```"}));
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

/// Runs `modelcall run-task TASK` with every file it writes limited to `max_bytes` (RLIMIT_FSIZE,
/// SIGXFSZ ignored, so a write past it fails with EFBIG like one on a full disk).
fn run_with_file_size_limit(task: &Path, max_bytes: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin());
    cmd.arg("run-task").arg(task).arg("--no-progress").stdin(Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: max_bytes as libc::rlim_t, rlim_max: max_bytes as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().expect("running modelcall")
}

/// Every `.modelcall-tmp.*` file or folder under `dir`.
fn temp_files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with(modelcall_io::atomic::TEMP_PREFIX) {
            found.push(path);
        } else if path.is_dir() {
            found.extend(temp_files_under(&path));
        }
    }
    found
}

/// A journal that cannot grow (the disk full; here a file size limit) is the failure the run
/// names, not the run summary written after it, and no temporary file is left behind. Before:
/// the message named `.modelcall-tmp.run_summary.json.NNN` and left that file.
#[test]
fn a_full_disk_names_the_journal_that_failed_first_and_leaves_no_temp_file() {
    let s = Scratch::new();
    // 150 one-record files first (each a line of the summary, so the summary outgrows the
    // limit too, as every file does on a full disk), then one whose journal outgrows it.
    for i in 0..150 {
        write_input(&s, &format!("input/s{i:03}.jsonl"), &[&format!("s{i}")]);
    }
    let long = "x".repeat(1000);
    let lines: String = (0..200).map(|i| format!("{}\n", serde_json::json!({"id": format!("big{i}"), "text": long}))).collect();
    s.write("input/zz_big.jsonl", lines.as_bytes());
    let task = s.task_for_sim();
    // Above what the plugins' code images need (~30 KB), below the big journal and the summary.
    let out = run_with_file_size_limit(&task, 60_000);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let last = err.lines().rev().find(|l| l.contains("error")).unwrap_or_default();
    assert!(last.contains("zz_big.journal.jsonl"), "the journal is named: {err}");
    assert!(!last.contains("modelcall-tmp"), "no temp name in the message: {err}");
    let left = temp_files_under(&s.path("out"));
    assert!(left.is_empty(), "temp files left: {left:?}");
}

/// SIGTERM at any time after start (right away, while plugins load, during preprocessing) ends
/// the run with "interrupted" and exit 130, soon. Before: the handler came after plugin
/// loading, so an early SIGTERM killed the process (exit 143, no line).
#[test]
fn sigterm_at_any_time_during_preprocessing_ends_interrupted_and_soon() {
    for delay in [0.05, 0.3, 1.5] {
        let s = Scratch::new();
        let body: String = (0..300_000).map(|i| format!("{{\"id\":\"p{i}\",\"text\":\"Record {i} is plain prose about rivers.\"}}\n")).collect();
        s.write("in/data.jsonl", body.as_bytes());
        let task = common::preprocess_task(s.dir.path(), &s.path("in"), "builtin:universal", "    config: {}\n");
        let child = Command::new(bin())
            .arg("run-task")
            .arg(&task)
            .args(["--stage", "preprocess", "--no-progress"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(delay));
        let sent = std::time::Instant::now();
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        let took = sent.elapsed();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "SIGTERM after {delay} s: {err}");
        assert!(err.contains("interrupted"), "SIGTERM after {delay} s: {err}");
        assert!(took < Duration::from_millis(1500), "SIGTERM after {delay} s took {took:?} to end: {err}");
    }
}

/// `data.recursive: true`: files in sub-folders are read, their outputs named after the
/// relative path (`a__b`), every record scored once; a rerun sends nothing.
#[test]
fn a_recursive_input_folder_reads_sub_folders_with_relative_output_names() {
    let s = Scratch::new();
    write_input(&s, "input/a/b.jsonl", &["b1", "b2"]);
    write_input(&s, "input/c.jsonl", &["c1"]);
    let task = s.scoring_task("sim://", 4, "  recursive: true\n", "");
    let out = run(&task);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("sub-folders"), "no skipped-files warning: {err}");
    let ids = |rel: &str| -> Vec<String> {
        let mut v: Vec<String> = read_jsonl(&s.path(rel)).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(ids("out/a__b.jsonl"), vec!["b1", "b2"]);
    assert_eq!(ids("out/c.jsonl"), vec!["c1"]);
    let summary = |s: &Scratch| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap() };
    assert_eq!(summary(&s)["records"]["scored"], 3);

    let again = run(&task);
    assert!(again.status.success(), "{}", stderr(&again));
    let doc = summary(&s);
    assert_eq!(doc["records"]["scored"], 0, "nothing is sent again: {doc}");
    assert_eq!(doc["records"]["already_done"], 3);
}
