//! Keys of the reference that change what is sent, paid or written are honoured or refused,
//! never silently accepted: `execution.dry_run: true` is a dry run (no request, no output) for
//! every task type, a key whose effect is not implemented stops the run (exit 2, file:line and
//! key), and the harmless ones are one note per task file.
//!
//! The endpoint is a plain HTTP server in the test that counts every request it gets.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Scratch;
use serde_json::json;

fn modelcall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelcall")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// An OpenAI-compatible endpoint that answers every request with a fixed chat completion (a
/// verdict the shipped English prompt accepts) and counts the requests, all of them and the chat
/// completions (one per connection: it answers `Connection: close`).
struct CountingEndpoint {
    url: String,
    requests: Arc<AtomicUsize>,
    completions: Arc<AtomicUsize>,
}

impl CountingEndpoint {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let completions = Arc::new(AtomicUsize::new(0));
        let (counter, chat) = (requests.clone(), completions.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (counter, chat) = (counter.clone(), chat.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut length = 0usize;
                    let mut first = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if first.is_empty() {
                            first = line.clone();
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    counter.fetch_add(1, Ordering::SeqCst);
                    if first.starts_with("POST") && first.contains("/chat/completions") {
                        chat.fetch_add(1, Ordering::SeqCst);
                    }
                    let content = r#"{"score": 4, "corpus_type": "general", "main_languages": ["en"], "quality_tags": [], "recommended_use_case": "general text corpus"}"#;
                    let reply = json!({
                        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                    })
                    .to_string();
                    let mut conn = conn;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = conn.flush();
                });
            }
        });
        CountingEndpoint { url, requests, completions }
    }

    /// Every request, whatever it asked.
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn completions(&self) -> usize {
        self.completions.load(Ordering::SeqCst)
    }
}

/// A batch task (the reference's `batch_distillation_submit`) of two teachers at `url` over 8
/// conversations, with `extra` appended.
fn batch_task(s: &Scratch, url: &str, extra: &str) -> PathBuf {
    let chats: String =
        (0..8).map(|i| format!("{}\n", json!({"uid": format!("u{i:04}"), "messages": [{"role": "user", "content": format!("question {i}")}]}))).collect();
    s.write("data/chats.jsonl", chats.as_bytes());
    for m in ["teacher-a", "teacher-b"] {
        let model =
            format!("client_config:\n  base_url: \"{url}\"\n  api_key: \"sk-test-1234\"\n  timeout: 5\n  max_retries: 0\nchat_config:\n  model: \"m\"\n");
        s.write(&format!("models/{m}.yaml"), model.as_bytes());
    }
    let yaml = format!(
        "task_name: opc\ntask_type: batch_distillation_submit\n\
         data_split:\n  input_file: \"{data}\"\n  num_chunks: 2\n  output_dir: \"{split}\"\n\
         batch_submit:\n  output_base_dir: \"{out}\"\n  name_prefix: opc2\n  concurrency: 4\n  models:\n    - {{config_path: \"{a}\", alias: a}}\n    - {{config_path: \"{b}\", alias: b}}\n\
         post_processing:\n  auto_merge: false\n  merge_errors: true\n{extra}",
        data = s.path("data/chats.jsonl").display(),
        split = s.path("split").display(),
        out = s.path("out").display(),
        a = s.path("models/teacher-a.yaml").display(),
        b = s.path("models/teacher-b.yaml").display(),
    );
    s.write("batch.yaml", yaml.as_bytes())
}

fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file).unwrap().lines().position(|l| l.contains(needle)).expect(needle) + 1
}

fn note_lines(o: &Output) -> Vec<String> {
    text(o).lines().filter(|l| l.trim_start().starts_with("note")).map(str::to_string).collect()
}

#[test]
fn execution_dry_run_in_a_scoring_task_sends_nothing_and_writes_nothing() {
    let endpoint = CountingEndpoint::start();
    let s = Scratch::new();
    common::write_records(&s.path("input/data.jsonl"), 12);
    let task = s.scoring_task(&endpoint.url, 4, "", "execution:\n  dry_run: true\n");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(endpoint.requests(), 0, "a dry run sends nothing: {}", text(&o));
    assert!(!s.path("out").exists(), "a dry run writes nothing: {}", text(&o));
    assert!(!s.path("stat").exists() || std::fs::read_dir(s.path("stat")).unwrap().next().is_none(), "{}", text(&o));
    assert!(text(&o).contains("dry run: no request sent, nothing written"), "the plan is printed: {}", text(&o));
    assert!(text(&o).contains("execution.dry_run"), "{}", text(&o));
}

#[test]
fn execution_dry_run_in_a_batch_task_sends_nothing_for_any_model_and_notes_once() {
    let endpoint = CountingEndpoint::start();
    let s = Scratch::new();
    let task = batch_task(&s, &endpoint.url, "execution:\n  dry_run: true\n  auto_split: true\n");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(endpoint.requests(), 0, "a dry run sends nothing: {}", text(&o));
    assert!(!s.path("out").exists() && !s.path("split").exists(), "a dry run writes nothing: {}", text(&o));
    let out = text(&o);
    assert_eq!(out.matches("dry run: no request sent, nothing written").count(), 2, "one plan per model: {out}");
    // The batch's harmless keys are one note for the task file, not one per key or per model run.
    let notes = note_lines(&o);
    assert_eq!(notes.len(), 1, "{out}");
    for key in ["data_split.output_dir", "batch_submit.name_prefix", "post_processing.auto_merge", "execution.auto_split"] {
        assert!(notes[0].contains(key), "{key}: {out}");
    }
    assert!(!notes[0].contains("execution.dry_run"), "it is honoured, not ignored: {out}");
}

#[test]
fn without_dry_run_the_same_batch_sends_every_record_to_every_model() {
    // The counting endpoint does see requests when the task does not ask for a dry run.
    let endpoint = CountingEndpoint::start();
    let s = Scratch::new();
    let task = batch_task(&s, &endpoint.url, "execution:\n  dry_run: false\n");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(endpoint.completions(), 16, "{}", text(&o));
}

#[test]
fn keys_whose_effect_is_not_implemented_stop_with_exit_2_naming_file_line_and_key() {
    let endpoint = CountingEndpoint::start();
    let s = Scratch::new();
    // The reference read pre-split chunk files instead of the input file.
    let task = batch_task(&s, &endpoint.url, "execution:\n  auto_split: false\n");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let want = format!("{}:{}", task.display(), line_of(&task, "auto_split: false"));
    assert!(text(&o).contains(&want) && text(&o).contains("execution.auto_split"), "{want}: {}", text(&o));
    assert_eq!(endpoint.requests(), 0);
    assert!(!s.path("out").exists());

    // Debug limits on a generation task would have limited what is sent (and paid).
    let s = Scratch::new();
    let chats = format!("{}\n", json!({"uid": "u1", "messages": [{"role": "user", "content": "hi"}]}));
    s.write("chats.jsonl", chats.as_bytes());
    let model = s.model(&endpoint.url);
    let yaml = format!(
        "task_name: g\ntask_type: generate_response\ndistillation:\n  model_config: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\ndebug:\n  enabled: true\n  max_items_per_file: 1\n",
        model.display(),
        s.path("chats.jsonl").display(),
        s.path("gen").display()
    );
    let task = s.write("gen.yaml", yaml.as_bytes());
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let want = format!("{}:{}", task.display(), line_of(&task, "enabled: true"));
    assert!(text(&o).contains(&want) && text(&o).contains("debug.enabled"), "{want}: {}", text(&o));
    assert_eq!(endpoint.requests(), 0);

    // The other schema's spelling of `resume` was never applied: refused, not ignored.
    let yaml = yaml.replace("debug:\n  enabled: true\n  max_items_per_file: 1\n", "").replace("  output_path:", "  resume_mode: false\n  output_path:");
    let task = s.write("gen.yaml", yaml.as_bytes());
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let want = format!("{}:{}", task.display(), line_of(&task, "resume_mode"));
    assert!(text(&o).contains(&want) && text(&o).contains("distillation.resume_mode") && text(&o).contains("`distillation.resume`"), "{}", text(&o));
    assert_eq!(endpoint.requests(), 0);
}

#[test]
fn harmless_keys_are_one_note_block_listing_each_key_and_line() {
    let endpoint = CountingEndpoint::start();
    let s = Scratch::new();
    common::write_records(&s.path("input/data.jsonl"), 3);
    let extra = "logging:\n  batch_size: 20\n  progress_report_interval: 3\n\
                 environment:\n  conda_env: py311\n  api_provider: openai\n\
                 options:\n  preprocess_resume: true\n";
    let task = s.scoring_task(&endpoint.url, 4, "", extra);
    let yaml = std::fs::read_to_string(&task).unwrap().replace("concurrency:\n", "concurrency:\n  chunk_size: 32\n  parquet_save_interval: 100\n");
    std::fs::write(&task, yaml).unwrap();
    for dry in [true, false] {
        let mut args = vec!["run-task", task.to_str().unwrap(), "--no-progress"];
        if dry {
            args.push("--dry-run");
        }
        let o = modelcall(&args);
        assert!(o.status.success(), "{}", text(&o));
        let notes = note_lines(&o);
        assert_eq!(notes.len(), 1, "one note block, dry run {dry}: {}", text(&o));
        assert!(notes[0].starts_with("note: 7 keys of the reference are accepted and have no effect here: "), "{}", notes[0]);
        for key in [
            "concurrency.chunk_size",
            "concurrency.parquet_save_interval",
            "logging.batch_size",
            "logging.progress_report_interval",
            "environment.conda_env",
            "environment.api_provider",
            "options.preprocess_resume",
        ] {
            assert!(notes[0].contains(key), "{key}: {}", notes[0]);
        }
        let at = format!("{}:{}", task.display(), line_of(&task, "chunk_size"));
        assert!(notes[0].contains(&at), "{at}: {}", notes[0]);
        // The reasons come with a dry run, indented under the one note.
        assert_eq!(text(&o).contains("      concurrency.chunk_size: records are scheduled one by one"), dry, "{}", text(&o));
    }
    assert_eq!(endpoint.completions(), 3, "the second run scores the records");
}

/// A data_distillation task reads generation's concurrency from `distillation.concurrency`, as the
/// reference does; a `concurrency.max_concurrent_requests` there is named as not read, with the
/// key that is, instead of being silently ignored.
#[test]
fn max_concurrent_requests_in_a_generate_response_task_is_named_as_not_read() {
    let s = Scratch::new();
    std::fs::write(s.path("questions.jsonl"), "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n").unwrap();
    let model = s.model("sim://");
    let task = s.write(
        "gen.yaml",
        format!(
            "task_name: gen\ntask_type: data_distillation\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: 12\nconcurrency:\n  max_concurrent_requests: 3\n",
            model.display(),
            s.path("questions.jsonl").display(),
            s.path("out").display()
        )
        .as_bytes(),
    );
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    let notes = note_lines(&o);
    assert_eq!(notes.len(), 1, "{}", text(&o));
    assert!(notes[0].contains("concurrency.max_concurrent_requests"), "{}", notes[0]);
    assert!(notes[0].contains(&format!("{}:{}", task.display(), line_of(&task, "max_concurrent_requests"))), "{}", notes[0]);
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress", "--dry-run"]);
    assert!(text(&o).contains("`distillation.concurrency` (12)"), "the reason names the key that is read: {}", text(&o));
}
