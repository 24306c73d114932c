//! End-to-end hardening: bad inputs (the `tests/bad_inputs/` corpus), clashing and truncated
//! inputs, the output-folder lock, Ctrl-C, permanent failures, NO_COLOR and ordered outputs.
//! The real `modelcall` binary against the simulated endpoint (`sim://`) on 127.0.0.1, or,
//! where the simulator has no such fault, a tiny local HTTP server that rejects every request.

mod common;

use common::{read_jsonl, write_records, Scratch};

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn corpus() -> PathBuf {
    repo_root().join("tests/bad_inputs")
}

impl Scratch {
    /// A scoring task over `input/` writing JSONL to `out/`, with `data_extra` lines added
    /// under `data:` (indented by the caller) and `extra` appended.
    fn task_with(&self, base_url: &str, concurrency: usize, data_extra: &str, extra: &str) -> PathBuf {
        self.scoring_task(base_url, concurrency, data_extra, extra)
    }

    fn task(&self, base_url: &str, concurrency: usize, extra: &str) -> PathBuf {
        self.task_with(base_url, concurrency, "", extra)
    }

    /// Copies the bad-input corpus into `input/`.
    fn corpus_input(&self) {
        common::copy_dir(&corpus(), &self.path("input"));
    }

    fn summary(&self) -> Value {
        let text = std::fs::read_to_string(self.path("out/run_summary.json")).expect("out/run_summary.json");
        serde_json::from_str(&text).unwrap()
    }

    /// Keys in the journal of input `stem`, in order.
    fn journal_keys(&self, stem: &str) -> Vec<String> {
        read_jsonl(&self.path(&format!("out/.modelcall/{stem}.journal.jsonl"))).iter().map(|e| e["key"].as_str().unwrap().to_string()).collect()
    }

    /// Conversations for a generate_response task, in `in/chats.jsonl`.
    fn conversations(&self, n: usize) {
        let mut text = String::new();
        for i in 0..n {
            let messages = json!([
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": format!("Question number {i}: why is the sky blue?")}
            ]);
            text.push_str(&json!({"uid": format!("u{i:06}"), "messages": messages}).to_string());
            text.push('\n');
        }
        self.write("in/chats.jsonl", text.as_bytes());
    }

    /// A generate_response task (as in `generate_e2e.rs`) with `ordered: true`; its model
    /// config is `teacher.yaml`.
    fn ordered_generate_task(&self, sim_url: &str, concurrency: usize) -> PathBuf {
        self.teacher(sim_url);
        let yaml = format!(
            "task_name: gen\ntask_type: data_distillation\ndescription: test\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: {concurrency}\n  flush_interval_secs: 0.05\n  ordered: true\n",
            self.path("teacher.yaml").display(),
            self.path("in/chats.jsonl").display(),
            self.path("out").display()
        );
        self.write("gen.yaml", yaml.as_bytes())
    }

    fn teacher(&self, sim_url: &str) {
        self.write(
            "teacher.yaml",
            format!("client_config:\n  base_url: \"{sim_url}\"\n  api_key: k\n  timeout: 5\n  max_retries: 3\n  backoff_base_ms: 5\n  backoff_max_ms: 50\nchat_config:\n  model: teacher\n").as_bytes(),
        );
    }
}

fn run(task: &Path, args: &[&str]) -> Output {
    run_env(task, args, &[])
}

fn run_env(task: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("run-task").arg(task).args(args).arg("--no-progress").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running modelcall")
}

/// Starts a run in the background, its stderr going to `stderr_file` (so it can be read after).
fn spawn_run(task: &Path, stderr_file: &Path) -> Child {
    Command::new(bin())
        .arg("run-task")
        .arg(task)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(stderr_file).unwrap()))
        .spawn()
        .unwrap()
}

fn describe(out: &Output) -> String {
    format!("{}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "expected exit {code}: {}", describe(out));
}

/// Non-empty lines of every `*.jsonl` input, by stem.
fn input_lines(dir: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".jsonl") {
            let bytes = std::fs::read(&p).unwrap();
            let n = bytes.split(|b| *b == b'\n').filter(|l| l.iter().any(|b| !b.is_ascii_whitespace())).count();
            m.insert(stem.to_string(), n);
        }
    }
    m
}

/// Output and error rows of `stem`.
fn rows(s: &Scratch, stem: &str) -> (Vec<Value>, Vec<Value>) {
    (read_jsonl(&s.path(&format!("out/{stem}.jsonl"))), read_jsonl(&s.path(&format!("out/{stem}.errors.jsonl"))))
}

/// Every input line is accounted for: output rows + error rows + `left_out[stem]` == its
/// non-empty lines.
fn assert_every_line_accounted(s: &Scratch, left_out: &HashMap<&str, usize>) {
    let lines = input_lines(&s.path("input"));
    assert_eq!(lines.len(), 7, "the corpus has 7 JSONL files: {lines:?}");
    for (stem, n) in &lines {
        let (ok, err) = rows(s, stem);
        let skipped = left_out.get(stem.as_str()).copied().unwrap_or(0);
        assert_eq!(
            ok.len() + err.len() + skipped,
            *n,
            "{stem}: {} output + {} error rows (+{skipped} left out) for {n} non-empty lines\noutput: {ok:?}\nerrors: {err:?}",
            ok.len(),
            err.len()
        );
    }
}

fn ids_of(rows: &[Value]) -> Vec<Value> {
    rows.iter().map(|r| r["id"].clone()).collect()
}

/// The error row of `stem` at input line `line`.
fn error_at(errors: &[Value], line: u64) -> &Value {
    let at: Vec<&Value> = errors.iter().filter(|e| e["line"].as_u64() == Some(line)).collect();
    assert_eq!(at.len(), 1, "exactly one error row at line {line}: {errors:?}");
    at[0]
}

/// No `.modelcall-tmp.*` file is left anywhere in the output folder.
fn assert_no_temp_files(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            assert!(!name.starts_with(".modelcall-tmp."), "temporary file left: {}", e.path().display());
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

fn count_ids(rows: &[Value], field: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r[field].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &Child) {
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0, "kill -INT {}", child.id());
}

// ---------------------------------------------------------------------------------------------
// 1. The bad-input corpus.

#[test]
fn every_line_of_the_bad_input_corpus_is_accounted_for() {
    let s = Scratch::new();
    s.corpus_input();
    let task = s.task_with("sim://", 4, "  max_record_bytes: 2000\n", "");
    let out = run(&task, &[]);
    // Finished with failed records.
    assert_code(&out, 3);
    assert_every_line_accounted(&s, &HashMap::new());
    assert_no_temp_files(&s.path("out"));

    // "7" three times: all processed, the repeats under keys 7#2 and 7#3; output and error
    // rows keep the record's own id "7".
    let (ok, err) = rows(&s, "dup_ids");
    assert_eq!(ids_of(&ok).iter().filter(|v| **v == json!("7")).count(), 2, "{ok:?}");
    assert!(ok.iter().any(|r| r["text"] == "The second record with id seven."), "the repeat is scored: {ok:?}");
    assert_eq!(err.len(), 1, "{err:?}");
    let third = error_at(&err, 4);
    assert_eq!(third["cause"], "missing_input_field");
    assert_eq!(third["key"], "7#3", "{third}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(third["record_json"].as_str().unwrap()).unwrap()["id"], "7", "{third}");
    let mut keys = s.journal_keys("dup_ids");
    keys.sort();
    assert_eq!(keys, vec!["7", "7#2", "7#3", "8"]);

    // 7 and "7": the same id value, so the second is 7#2; each row keeps its own id.
    let (ok, err) = rows(&s, "dup_mixed");
    assert!(err.is_empty(), "{err:?}");
    let mut ids: Vec<String> = ids_of(&ok).iter().map(|v| v.to_string()).collect();
    ids.sort();
    assert_eq!(ids, vec!["\"7\"", "7"], "the number stays a number, the string a string");
    let mut keys = s.journal_keys("dup_mixed");
    keys.sort();
    assert_eq!(keys, vec!["7", "7#2"]);

    // A literal id `bad-line:2` next to a bad line at line 2: both accounted for.
    let (ok, err) = rows(&s, "bad_line_id");
    let mut ids: Vec<&str> = ok.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["a1", "bad-line:2"]);
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(error_at(&err, 2)["cause"], "invalid_json");

    // Too deep (150 and 110 levels) and a number out of range.
    let (ok, err) = rows(&s, "limits");
    let mut ids: Vec<&str> = ok.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["l1", "l5"]);
    assert_eq!(err.len(), 3, "{err:?}");
    assert_eq!(error_at(&err, 2)["cause"], "too_deep");
    assert_eq!(error_at(&err, 3)["cause"], "too_deep");
    assert_eq!(error_at(&err, 4)["cause"], "invalid_json");

    // Null, number and list input fields.
    let (ok, err) = rows(&s, "input_types");
    assert_eq!(ids_of(&ok), vec![json!("t1")]);
    assert_eq!(err.len(), 3, "{err:?}");
    assert_eq!(error_at(&err, 2)["cause"], "missing_input_field");
    assert_eq!(error_at(&err, 3)["cause"], "wrong_input_type");
    assert_eq!(error_at(&err, 4)["cause"], "wrong_input_type");
    for line in 2..=4 {
        let e = error_at(&err, line);
        assert_eq!(e["retryable"], false, "an invalid record is a permanent failure: {e}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(e["record_json"].as_str().unwrap()).unwrap()["id"],
            json!(format!("t{line}")),
            "the error row keeps the record: {e}"
        );
    }

    // A BOM at the start of the file: line 1 is a record.
    let (ok, err) = rows(&s, "bom");
    assert!(err.is_empty(), "{err:?}");
    let mut ids: Vec<&str> = ok.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["b1", "b2"]);

    // Over max_record_bytes; the rows after it keep their line numbers (a blank line included).
    let (ok, err) = rows(&s, "too_large");
    let mut ids: Vec<&str> = ok.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["s1", "s3", "s7"]);
    assert_eq!(err.len(), 3, "{err:?}");
    assert_eq!(error_at(&err, 2)["cause"], "record_too_large");
    assert_eq!(error_at(&err, 5)["cause"], "invalid_json");
    let s6 = error_at(&err, 6);
    assert_eq!(s6["cause"], "missing_input_field");
    assert_eq!(serde_json::from_str::<serde_json::Value>(s6["record_json"].as_str().unwrap()).unwrap()["id"], "s6");

    let summary = s.summary();
    let r = &summary["records"];
    assert_eq!(r["scored"], 15, "{summary}");
    assert_eq!(r["bad_lines"], 6, "{summary}");
    assert_eq!(r["failed"], 5, "{summary}");
    assert_eq!(r["duplicate_ids"], 3, "{summary}");
    // Error outputs hold exactly the failed records and bad lines.
    let errors: usize = input_lines(&s.path("input")).keys().map(|stem| rows(&s, stem).1.len()).sum();
    assert_eq!(errors, 11);
}

#[test]
fn stringify_input_scores_numbers_and_lists() {
    let s = Scratch::new();
    s.corpus_input();
    let task = s.task_with("sim://", 4, "  max_record_bytes: 2000\n  stringify_input: true\n", "");
    let out = run(&task, &[]);
    assert_code(&out, 3);
    assert_every_line_accounted(&s, &HashMap::new());
    let (ok, err) = rows(&s, "input_types");
    let mut ids: Vec<&str> = ok.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["t1", "t3", "t4"]);
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(error_at(&err, 2)["cause"], "missing_input_field", "null is still missing");
    let summary = s.summary();
    assert_eq!(summary["records"]["scored"], 17, "{summary}");
    assert_eq!(summary["records"]["failed"], 3, "{summary}");
}

#[test]
fn allow_failures_exits_zero_with_the_same_error_rows() {
    let s = Scratch::new();
    s.corpus_input();
    let task = s.task_with("sim://", 4, "  max_record_bytes: 2000\n", "options:\n  allow_failures: true\n");
    let out = run(&task, &[]);
    assert_code(&out, 0);
    assert_every_line_accounted(&s, &HashMap::new());
    let errors: usize = input_lines(&s.path("input")).keys().map(|stem| rows(&s, stem).1.len()).sum();
    assert_eq!(errors, 11);
}

#[test]
fn on_duplicate_id_skip_leaves_the_repeat_out_and_counts_it() {
    let s = Scratch::new();
    s.corpus_input();
    let task = s.task_with("sim://", 4, "  max_record_bytes: 2000\n", "options:\n  on_duplicate_id: skip\n");
    let out = run(&task, &[]);
    assert_code(&out, 3);
    assert_every_line_accounted(&s, &HashMap::from([("dup_ids", 2), ("dup_mixed", 1)]));
    let (ok, err) = rows(&s, "dup_ids");
    assert!(err.is_empty(), "{err:?}");
    assert_eq!(ok.len(), 2);
    let first_seven = ok.iter().find(|r| r["id"] == "7").unwrap();
    assert_eq!(first_seven["text"], "The first record with id seven.", "the first one is kept");
    let (ok, err) = rows(&s, "dup_mixed");
    assert!(err.is_empty(), "{err:?}");
    assert_eq!(ids_of(&ok), vec![json!(7)], "the first (numeric) 7 is kept");
    let summary = s.summary();
    assert_eq!(summary["records"]["duplicate_ids"], 3, "{summary}");
    assert_eq!(summary["records"]["scored"], 13, "{summary}");
}

#[test]
fn on_duplicate_id_error_sends_the_repeat_to_the_error_output() {
    let s = Scratch::new();
    s.corpus_input();
    let task = s.task_with("sim://", 4, "  max_record_bytes: 2000\n", "options:\n  on_duplicate_id: error\n");
    let out = run(&task, &[]);
    assert_code(&out, 3);
    assert_every_line_accounted(&s, &HashMap::new());
    let (ok, err) = rows(&s, "dup_ids");
    assert_eq!(ok.len(), 2, "{ok:?}");
    assert_eq!(err.len(), 2, "{err:?}");
    assert_eq!(error_at(&err, 3)["cause"], "duplicate_id");
    assert_eq!(error_at(&err, 4)["cause"], "duplicate_id", "a repeat is refused before its fields are checked");
    let (ok, err) = rows(&s, "dup_mixed");
    assert_eq!(ids_of(&ok), vec![json!(7)]);
    assert_eq!(error_at(&err, 2)["cause"], "duplicate_id");
    let summary = s.summary();
    assert_eq!(summary["records"]["duplicate_ids"], 3, "{summary}");
    assert_eq!(summary["records"]["scored"], 13, "{summary}");
}

// ---------------------------------------------------------------------------------------------
// 2. Two inputs sharing a stem.

#[test]
fn two_inputs_sharing_a_stem_are_refused_before_any_request() {
    let s = Scratch::new();
    write_records(&s.path("input/a.jsonl"), 5);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    writeln!(gz, "{}", json!({"id": "g1", "text": "gzip record"})).unwrap();
    s.write("input/a.jsonl.gz", &gz.finish().unwrap());
    let task = s.task("sim://", 4, "");
    let started = Instant::now();
    let out = run(&task, &[]);
    assert_code(&out, 2);
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let gz_path = s.path("input/a.jsonl.gz").display().to_string();
    let plain_path = s.path("input/a.jsonl").display().to_string();
    assert!(stderr.contains(&gz_path), "names {gz_path}: {stderr}");
    // The plain path is a prefix of the gz one: it must appear on its own as well.
    assert!(stderr.replace(&gz_path, "").contains(&plain_path), "names {plain_path}: {stderr}");
    assert!(!s.path("out/a.jsonl").exists(), "nothing written");
    assert!(!s.path("out/.modelcall/a.journal.jsonl").exists(), "no journal");
    assert!(!s.path("out/run_summary.json").exists(), "no summary: the run never started");
}

// ---------------------------------------------------------------------------------------------
// 3. A truncated .gz input.

fn truncated_gz(s: &Scratch, rel: &str, n: usize) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..n {
        writeln!(gz, "{}", json!({"id": format!("z{i:04}"), "text": format!("Compressed record {i} about {} rivers.", i * 7919 % 1013)})).unwrap();
    }
    let bytes = gz.finish().unwrap();
    s.write(rel, &bytes[..bytes.len() / 2]);
}

#[test]
fn a_truncated_gz_is_read_up_to_the_cut_and_reported() {
    let s = Scratch::new();
    truncated_gz(&s, "input/cut.jsonl.gz", 200);
    let task = s.task("sim://", 8, "");
    let out = run(&task, &[]);
    let (ok, err) = rows(&s, "cut");
    let source_errors: Vec<&Value> = err.iter().filter(|e| e["cause"] == "source_read_error").collect();
    assert_eq!(source_errors.len(), 1, "{err:?}\n{}", describe(&out));
    let message = source_errors[0]["message"].as_str().unwrap();
    let after = message.split("after line ").nth(1).unwrap_or_else(|| panic!("the message names the line reached: {message}"));
    let reached: usize = after.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap();
    assert!(reached > 0 && reached < 200, "{message}");
    // The run went on: every complete line before the cut is scored.
    assert_eq!(ok.len(), reached, "records scored up to the cut");
    assert_eq!(count_ids(&ok, "id").len(), reached);
    assert_eq!(err.len(), 1, "only the source error: {err:?}");
    assert!(s.summary()["failures_by_cause"]["source_read_error"] == 1, "{}", s.summary());
}

/// A truncated input writes a `source_read_error` row, is counted (`records.source_errors`) and
/// makes the run exit 3 like any other row in the error output.
#[test]
fn a_truncated_gz_makes_the_run_exit_3() {
    let s = Scratch::new();
    truncated_gz(&s, "input/cut.jsonl.gz", 200);
    let out = run(&s.task("sim://", 8, ""), &[]);
    assert_eq!(rows(&s, "cut").1.len(), 1, "one error row");
    assert_code(&out, 3);
}

// ---------------------------------------------------------------------------------------------
// 4. The output-folder lock.

#[test]
fn a_second_run_on_a_locked_folder_is_refused_and_a_stale_lock_is_taken_over() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 20);
    let task = s.task("sim://?latency_ms=2000", 2, "");
    let first_err = s.path("first.stderr");
    let mut first = spawn_run(&task, &first_err);
    let lock = s.path("out/.modelcall/run.lock");
    wait_for("the lock file", Duration::from_secs(10), || lock.exists() && std::fs::metadata(&lock).map(|m| m.len() > 0).unwrap_or(false));

    let started = Instant::now();
    let second = run(&task, &[]);
    let elapsed = started.elapsed();
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(still_running, "the first run was still running: {}", std::fs::read_to_string(&first_err).unwrap_or_default());
    assert!(!second.status.success(), "the second run must be refused: {}", describe(&second));
    assert!(elapsed < Duration::from_secs(10), "refused after {elapsed:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another modelcall run"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "names pid {}: {stderr}", first.id());

    // The first run was killed: its lock is stale and the third run takes it over.
    assert!(lock.exists(), "a killed run leaves its lock file");
    s.model("sim://");
    let third = run(&task, &[]);
    assert_code(&third, 0);
    let counts = count_ids(&read_jsonl(&s.path("out/data.jsonl")), "id");
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|&c| c == 1));
    assert_no_temp_files(&s.path("out"));
}

// ---------------------------------------------------------------------------------------------
// 5. Ctrl-C.

#[test]
fn ctrl_c_exits_130_keeps_what_is_done_and_a_rerun_completes() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 2_000);
    let task = s.task("sim://?latency_ms=500", 4, "");
    let err_file = s.path("run.stderr");
    let mut child = spawn_run(&task, &err_file);
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "still running after 2 s");
    sigint(&child);
    let sent = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(3));
    let Some(status) = status else {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("no exit within 3 s of SIGINT: {}", std::fs::read_to_string(&err_file).unwrap_or_default());
    };
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "after {:?}: {stderr}", sent.elapsed());

    let done = read_jsonl(&s.path("out/data.jsonl"));
    assert!(!done.is_empty(), "the records done so far are in the output: {stderr}");
    assert!(done.len() < 2_000);
    let counts = count_ids(&done, "id");
    assert!(counts.values().all(|&c| c == 1), "no record twice");

    // Rerun the same task (the endpoint now answers at once, to keep the test short).
    s.model("sim://");
    let again = run(&task, &[]);
    assert_code(&again, 0);
    let counts = count_ids(&read_jsonl(&s.path("out/data.jsonl")), "id");
    assert_eq!(counts.len(), 2_000, "every id");
    assert!(counts.values().all(|&c| c == 1), "every id exactly once");
    let summary = s.summary();
    assert!(summary["records"]["already_done"].as_u64().unwrap() >= done.len() as u64, "{summary}");
    assert_no_temp_files(&s.path("out"));
}

// ---------------------------------------------------------------------------------------------
// 6. Permanent failures.

/// An OpenAI-compatible endpoint that answers every request with 400; returns its base URL
/// and a request counter. The simulator has no 400 fault (`host/crates/sim/src/options.rs`
/// knows 429, 500, drop, malformed, hang and 401 only).
fn rejecting_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let c = c.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                // Read the head, then the body (Content-Length), then answer and close.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
                while buf.len() < head_end + len {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                // Requests for completions (not the pre-flight `GET /models`).
                if head.starts_with("post ") {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                let body = r#"{"error":{"message":"this model does not accept the request","type":"invalid_request_error"}}"#;
                let resp =
                    format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(resp.as_bytes());
                let _ = stream.flush();
            });
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), count)
}

#[test]
fn permanent_failures_are_not_resent_until_retry_failed() {
    use std::sync::atomic::Ordering;
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 12);
    let (url, requests) = rejecting_endpoint();
    let task = s.task(&url, 4, "");
    let out = run(&task, &[]);
    assert_code(&out, 3);
    let (ok, err) = rows(&s, "data");
    assert!(ok.is_empty(), "{ok:?}");
    assert_eq!(err.len(), 12, "{err:?}");
    for e in &err {
        assert_eq!(e["cause"], "model_rejected", "{e}");
        assert_eq!(e["retryable"], false, "{e}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 12, "a 400 is not retried");

    // A plain rerun (the endpoint would now answer) sends nothing: the failures are permanent.
    s.model("sim://");
    let out = run(&task, &[]);
    assert_code(&out, 3);
    let summary = s.summary();
    assert_eq!(summary["requests"], 0, "{summary}");
    assert_eq!(summary["records"]["failed_before"], 12, "{summary}");
    assert_eq!(summary["records"]["scored"], 0, "{summary}");
    let (ok, err) = rows(&s, "data");
    assert!(ok.is_empty());
    assert_eq!(err.len(), 12, "the error rows stay");

    // --retry-failed sends them again.
    let out = run(&task, &["--retry-failed"]);
    assert_code(&out, 0);
    let (ok, err) = rows(&s, "data");
    let counts = count_ids(&ok, "id");
    assert_eq!(counts.len(), 12);
    assert!(counts.values().all(|&c| c == 1));
    assert!(err.is_empty(), "no error row left: {err:?}");
    let summary = s.summary();
    assert_eq!(summary["records"]["scored"], 12, "{summary}");
    assert_no_temp_files(&s.path("out"));
}

// ---------------------------------------------------------------------------------------------
// 7. NO_COLOR.

#[test]
fn no_color_keeps_escape_codes_out_of_piped_stderr() {
    let s = Scratch::new();
    s.write("input/good.jsonl", b"{\"id\":\"ok\",\"text\":\"fine\"}\n{\"id\":\"bad\",\"text\":\n");
    truncated_gz(&s, "input/cut.jsonl.gz", 200);
    // A missing env file is a warning; the truncated input logs an error.
    let task = s.task("sim://", 4, "environment:\n  config_path: \"does-not-exist.env\"\n");
    let out = run_env(&task, &[], &[("NO_COLOR", "1"), ("MODELCALL_LOG", "info")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning:"), "the run printed a warning: {}", describe(&out));
    assert!(stderr.contains("after line"), "the run logged the read error: {}", describe(&out));
    assert!(!stderr.contains("\x1b["), "escape codes on stderr: {stderr:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\x1b["), "escape codes on stdout");
}

// ---------------------------------------------------------------------------------------------
// 8. Ordered generation.

#[test]
fn ordered_outputs_never_show_the_sequence_field_nor_leave_temp_files() {
    let s = Scratch::new();
    s.conversations(300);
    let task = s.ordered_generate_task("sim://?latency_ms=100", 8);
    // An interrupted run first: what it leaves has no sequence field either.
    let err_file = s.path("gen.stderr");
    let mut child = spawn_run(&task, &err_file);
    std::thread::sleep(Duration::from_millis(1500));
    if child.try_wait().unwrap().is_none() {
        sigint(&child);
    }
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("the interrupted run exits");
    assert!(matches!(status.code(), Some(130) | Some(0)), "{status}: {}", std::fs::read_to_string(&err_file).unwrap_or_default());
    let partial = s.path("out/chats.jsonl");
    if partial.exists() {
        assert!(!std::fs::read_to_string(&partial).unwrap().contains("_modelcall_seq"), "after the interrupted run");
    }

    // Then a completed run.
    s.teacher("sim://");
    let out = run(&task, &[]);
    assert_code(&out, 0);
    let text = std::fs::read_to_string(&partial).unwrap();
    assert!(!text.contains("_modelcall_seq"), "after the completed run");
    let uids: Vec<String> = read_jsonl(&partial).iter().map(|r| r["uid"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("u{i:06}")).collect();
    assert_eq!(uids, expected, "in input order, each once");
    assert_no_temp_files(&s.path("out"));

    // A run with nothing left to do keeps it that way.
    let out = run(&task, &[]);
    assert_code(&out, 0);
    assert!(!std::fs::read_to_string(&partial).unwrap().contains("_modelcall_seq"));
    assert_eq!(read_jsonl(&partial).len(), 300);
    assert_no_temp_files(&s.path("out"));
}
