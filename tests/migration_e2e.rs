//! Moving over from the Python modelcall: output folders it wrote (no journal) are adopted,
//! so only the missing records are sent and the final files hold every key once; and its
//! retry configuration (`retry_mode: true`, `resume_mode: false`) retries only the failures,
//! keeps the successes and loses nothing when killed part-way.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{read_jsonl, write_records, Scratch};
use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn run(task: &Path, extra: &[&str]) -> Output {
    Command::new(bin()).arg("run-task").arg(task).arg("--no-progress").args(extra).stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The md5 of a string as the reference's `ensure_uid` computes it (hex).
fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn question(i: usize) -> String {
    format!("Question {i}: how do tides work?")
}

/// `n` conversations without a uid (the reference keys them by the md5 of the first message).
fn write_conversations(path: &Path, n: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    for i in 0..n {
        writeln!(f, "{}", json!({"messages": [{"role": "user", "content": question(i)}], "format": "chatml"})).unwrap();
    }
}

/// A success line as the reference writes it: the record, its uid, the response.
fn reference_success(i: usize) -> Value {
    let q = question(i);
    json!({"messages": [{"role": "user", "content": q}], "format": "chatml", "uid": md5_hex(&q),
           "response": format!("OLD ANSWER {i}"),
           "final_messages": [{"role": "user", "content": q}, {"role": "assistant", "content": format!("OLD ANSWER {i}")}]})
}

fn reference_error(i: usize) -> Value {
    let q = question(i);
    json!({"messages": [{"role": "user", "content": q}], "format": "chatml", "uid": md5_hex(&q),
           "error": "Task failed: timeout", "error_type": "Exception", "traceback": "…", "timestamp": "2026-11-30T10:00:00", "task_index": i})
}

fn write_lines(path: &Path, rows: &[Value], torn_tail: Option<&str>) {
    let mut text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    if let Some(t) = torn_tail {
        text.push_str(t);
    }
    std::fs::write(path, text).unwrap();
}

fn generate_task(s: &Scratch, sim: &str, extra_step: &str) -> PathBuf {
    let model = s.write(
        "teacher.yaml",
        format!("client_config:\n  base_url: \"{sim}\"\n  api_key: k\n  timeout: 5\n  max_retries: 2\nchat_config:\n  model: teacher\n").as_bytes(),
    );
    s.write(
        "task.yaml",
        format!(
            "task_name: gen\ntask_type: data_distillation\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: 4\n  flush_interval_secs: 0.05\n{extra_step}",
            model.display(),
            s.path("in/chats.jsonl").display(),
            s.path("out").display()
        )
        .as_bytes(),
    )
}

/// Every first question of the final success file, with how often it appears and its answer.
fn answers(path: &Path) -> HashMap<String, (usize, String)> {
    let mut seen: HashMap<String, (usize, String)> = HashMap::new();
    for row in read_jsonl(path) {
        let q = row["messages"][0]["content"].as_str().unwrap().to_string();
        let e = seen.entry(q).or_insert((0, String::new()));
        e.0 += 1;
        e.1 = row["response"].as_str().unwrap_or("").to_string();
    }
    seen
}

#[test]
fn a_half_finished_generation_folder_of_the_python_tool_is_adopted_not_resent() {
    let s = Scratch::new();
    write_conversations(&s.path("in/chats.jsonl"), 40);
    std::fs::create_dir_all(s.path("out")).unwrap();
    // Killed mid-write: 25 results, then a torn line (whose record must be sent again).
    let successes: Vec<Value> = (0..25).map(reference_success).collect();
    write_lines(&s.path("out/chats.jsonl"), &successes, Some("{\"messages\": [{\"role\": \"user\", \"content\": \"Question 25"));
    let task = generate_task(&s, "sim://", "");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("adopted 25 result(s)"), "{}", stderr(&o));
    let sum = summary(&s.path("out/run_summary.json"));
    assert_eq!(sum["records"]["adopted"], 25, "{sum}");
    assert_eq!(sum["requests"], 15, "only the 15 missing conversations are sent: {sum}");
    let final_answers = answers(&s.path("out/chats.jsonl"));
    assert_eq!(final_answers.len(), 40);
    for i in 0..40 {
        let (count, answer) = &final_answers[&question(i)];
        assert_eq!(*count, 1, "question {i} once");
        assert_eq!(answer.starts_with("OLD ANSWER"), i < 25, "question {i}: {answer}");
    }
    // A rerun sends nothing and changes nothing.
    let before = std::fs::read(s.path("out/chats.jsonl")).unwrap();
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&s.path("out/run_summary.json"))["requests"], 0);
    assert_eq!(std::fs::read(s.path("out/chats.jsonl")).unwrap(), before);
}

#[test]
fn no_adopt_sends_everything_again() {
    let s = Scratch::new();
    write_conversations(&s.path("in/chats.jsonl"), 10);
    std::fs::create_dir_all(s.path("out")).unwrap();
    write_lines(&s.path("out/chats.jsonl"), &(0..10).map(reference_success).collect::<Vec<_>>(), None);
    let o = run(&generate_task(&s, "sim://", ""), &["--no-adopt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&s.path("out/run_summary.json"))["requests"], 10);
}

#[test]
fn a_scoring_folder_with_the_reference_parquet_is_adopted_and_only_the_rest_scored() {
    let s = Scratch::new();
    // The reference's output: `<stem>.parquet` holding its successful rows, no journal.
    // Made here by scoring the first 20 records to Parquet and deleting the journal.
    write_records(&s.path("input/data.jsonl"), 20);
    let task = s.scoring_task("sim://", 8, "", "");
    let text = std::fs::read_to_string(&task).unwrap().replace("output_format: jsonl", "output_format: parquet");
    std::fs::write(&task, text).unwrap();
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.path("out/data.parquet").is_file());
    std::fs::remove_dir_all(s.path("out/.modelcall")).unwrap();
    std::fs::remove_file(s.path("out/run_summary.json")).unwrap();

    // Now the whole input, JSONL output (the default here): 20 adopted, 20 scored.
    write_records(&s.path("input/data.jsonl"), 40);
    let task = s.scoring_task("sim://", 8, "", "");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sum = summary(&s.path("out/run_summary.json"));
    assert_eq!((sum["records"]["adopted"].as_u64(), sum["requests"].as_u64()), (Some(20), Some(20)), "{sum}");
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((rows.len(), ids.len()), (40, 40), "every id once");
    assert!(rows.iter().all(|r| r["api_status"] == "success" && r["score"].is_number()), "{rows:?}");
    assert!(s.path("out/data.parquet").is_file(), "the reference's file is left as it was");
}

#[test]
fn the_reference_retry_config_killed_once_loses_nothing_and_retries_only_failures() {
    let s = Scratch::new();
    write_conversations(&s.path("in/chats.jsonl"), 40);
    std::fs::create_dir_all(s.path("out")).unwrap();
    write_lines(&s.path("out/chats.jsonl"), &(0..30).map(reference_success).collect::<Vec<_>>(), None);
    write_lines(&s.path("out/chats_error.jsonl"), &(30..40).map(reference_error).collect::<Vec<_>>(), None);
    // The reference's generate_response_retry.yaml: retry mode, resume off.
    let task = generate_task(&s, "sim://?latency_ms=400", "  retry_mode: true\n  resume_mode: false\n");
    // 10 failures at 4 in flight and 400 ms each: three waves; killed during the second.
    let mut child = common::spawn_run_task(bin(), &task);
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(read_jsonl(&s.path("out/chats.jsonl")).len() == 30, "killed before the end: the original is untouched");
    // Whatever the kill interrupted, the successes are somewhere whole.
    assert_eq!(read_jsonl(&s.path("out/chats_success_retry_1.jsonl")).len(), 30, "archived before any request");
    assert_eq!(read_jsonl(&s.path("out/chats_error_retry_1.jsonl")).len(), 10);

    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let final_answers = answers(&s.path("out/chats.jsonl"));
    assert_eq!(final_answers.len(), 40, "{}", stderr(&o));
    for i in 0..40 {
        let (count, answer) = &final_answers[&question(i)];
        assert_eq!(*count, 1, "question {i} once");
        assert_eq!(answer.starts_with("OLD ANSWER"), i < 30, "question {i}: {answer}");
    }
    assert!(read_jsonl(&s.path("out/chats_error.jsonl")).is_empty(), "no failure left");
    let sum = summary(&s.path("out/run_summary.json"));
    assert_eq!(sum["records"]["adopted"], 30, "{sum}");
    assert!(sum["requests"].as_u64().unwrap() <= 10, "only failures are sent: {sum}");
}

#[test]
fn logging_log_dir_writes_a_json_lines_log_per_run_and_level_is_checked() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 5);
    let task = s.scoring_task("sim://", 4, "", &format!("logging:\n  level: INFO\n  log_dir: \"{}\"\n", s.path("logs").display()));
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let folder = s.path("logs/e2e");
    let logs: Vec<PathBuf> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(stderr(&o).contains(&format!("log: {}", logs[0].display())), "{}", stderr(&o));
    let lines = read_jsonl(&logs[0]);
    assert!(!lines.is_empty() && lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{lines:?}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "run started"), "{lines:?}");

    let bad = s.scoring_task("sim://", 4, "", "logging:\n  level: loud\n");
    let o = run(&bad, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("logging.level: `loud` is not a level"), "{}", stderr(&o));
}

/// `num_files` (and `debug.max_files`) keep the first N files, not N records; the stat file of
/// a preprocessed group is named `<stem>.parquet.json`, as the reference's.
#[test]
fn preprocess_num_files_counts_files_not_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["a.jsonl", "b.jsonl"] {
        let lines: String = (0..3).map(|i| format!("{{\"id\": \"{name}-{i}\", \"text\": \"record {i} of {name}\"}}\n")).collect();
        std::fs::write(input.join(name), lines).unwrap();
    }
    let task = common::preprocess_task(dir.path(), &input, modelcall_test_plugins::HEALTHY, "");
    let stat = dir.path().join("stat");
    let text = std::fs::read_to_string(&task)
        .unwrap()
        .replace("preprocess:\n", "preprocess:\n  num_files: 1\n")
        .replace("data:\n", &format!("data:\n  stat_folder: \"{}\"\n", stat.display()));
    std::fs::write(&task, text).unwrap();
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scored: Vec<Value> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|p| read_jsonl(&p))
        .collect();
    assert_eq!(scored.len(), 3, "the first file, whole: {}", stderr(&o));
    assert!(scored.iter().all(|r| r["id"].as_str().unwrap().starts_with("a.jsonl")), "{scored:?}");
    // The stat file is named as the reference's was (its preprocessing wrote Parquet).
    let stats: Vec<String> = std::fs::read_dir(&stat).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert_eq!(stats, ["a.parquet.json"], "{stats:?}");
}

/// The reference's other commands: `api-call` (scoring from flags), `preprocess repomix`,
/// `pipeline` (its demo scorer).
#[test]
fn the_reference_commands_api_call_preprocess_and_pipeline_run() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 10);
    let model = s.model("sim://");
    let prompt = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let o = Command::new(bin())
        .args(["api-call", "--input_folder"])
        .arg(s.path("input"))
        .arg("--output_folder")
        .arg(s.path("scored"))
        .arg("--model_config_path")
        .arg(&model)
        .arg("--prompt_config_path")
        .arg(&prompt)
        .args(["--prompt_format_key", "text", "--chunk_size", "100"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.path("scored/data.parquet").is_file(), "the reference wrote Parquet: {}", stderr(&o));
    assert_eq!(summary(&s.path("scored/run_summary.json"))["records"]["scored"], 10);

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    common::copy_dir(&repo.join("configs/samples/repo-packs"), &s.path("packs"));
    let o = Command::new(bin())
        .args(["preprocess", "repomix", "--raw_path"])
        .arg(s.path("packs"))
        .arg("--output_dir")
        .arg(s.path("pre"))
        .arg("--stat_dir")
        .arg(s.path("stats"))
        .args(["--num_proc", "4", "--max_tokens", "1000"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let groups: Vec<PathBuf> =
        std::fs::read_dir(s.path("pre")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect();
    assert!(!groups.is_empty(), "{}", stderr(&o));
    let rows: Vec<Value> = groups.iter().flat_map(|g| read_jsonl(g)).collect();
    assert!(
        !rows.is_empty()
            && rows.iter().all(|r| r["content_truncate_1k"].is_string() || r.as_object().unwrap().keys().any(|k| k.starts_with("content_truncate"))),
        "{rows:?}"
    );
    assert!(!s.path("pre/.modelcall/scoring-not-run/run_summary.json").exists(), "nothing is scored");

    std::fs::write(s.path("demo.jsonl"), "{\"text\": \"short\"}\n{\"text\": \"".to_string() + &"x".repeat(900) + "\"}\n").unwrap();
    let o = Command::new(bin()).arg("pipeline").arg(s.path("demo.jsonl")).arg(s.path("demo-out.jsonl")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let scores: Vec<f64> = read_jsonl(&s.path("demo-out.jsonl")).iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert_eq!(scores, [0.05, 5.0]);
}
