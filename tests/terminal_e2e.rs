//! What a person sees on the terminal during and after a run (issue 20, items 2–4): the start
//! banner, the progress lines when stderr is not a terminal (and a capture of the bar under a
//! 30 % 429 mix in tmux, kept as target/progress-capture.txt), the end summary with the output
//! and error files, causes, tokens, cost and the next command, and an all-failed run that is
//! not "completed".

mod common;

use common::{write_records, Scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A model config at `url` with `max_retries`, no backoff to speak of, and a price.
fn model(s: &Scratch, url: &str, max_retries: u32) -> PathBuf {
    s.write(
        "model.yaml",
        format!(
            "client_config:\n  base_url: \"{url}\"\n  api_key: \"sk-test-secret-1234\"\n  timeout: 5\n  max_retries: {max_retries}\n  backoff_base_ms: 1\n  backoff_max_ms: 5\n\
             chat_config:\n  model: \"judge-m\"\n  temperature: 0\n  max_tokens: 64\n\
             pricing:\n  prompt_per_million: 2.5\n  completion_per_million: 10\n"
        )
        .as_bytes(),
    )
}

/// A scoring task over `input/` at `url`; `retries` overrides the task's `retry.max_retries`.
fn task(s: &Scratch, url: &str, retries: u32, concurrency: usize) -> PathBuf {
    let m = model(s, url, retries);
    let t = s.scoring_task_for(&m, concurrency, "", "");
    let yaml = std::fs::read_to_string(&t).unwrap().replace("retry:\n  max_retries: 2\n", &format!("retry:\n  max_retries: {retries}\n"));
    std::fs::write(&t, yaml).unwrap();
    t
}

fn run(task: &Path, progress: bool, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.arg("run-task").arg(task).stdin(Stdio::null());
    if !progress {
        c.arg("--no-progress");
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("running modelcall")
}

fn summary(s: &Scratch) -> Value {
    serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap()
}

/// Appends `n` records numbered from `from` to `path`.
fn append_records(path: &Path, from: usize, n: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for i in from..from + n {
        writeln!(f, "{}", serde_json::json!({"id": format!("r{i:06}"), "text": format!("Record number {i} talks about rivers.")})).unwrap();
    }
}

#[test]
fn banner_names_model_endpoint_records_to_send_and_done_concurrency_and_cost() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 40);
    let t = task(&s, "sim://?latency_ms=1", 0, 8);
    let o = run(&t, false, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("model       judge-m"), "banner names the model:\n{err}");
    assert!(err.contains("endpoint    sim://?latency_ms=1"), "banner names the endpoint:\n{err}");
    assert!(err.contains("records     40 to send · 0 already done"), "banner counts what is sent:\n{err}");
    assert!(err.contains("concurrency 8 requests in flight"), "{err}");
    assert!(err.contains("tokens      ~"), "estimated tokens:\n{err}");
    assert!(err.contains("cost        ~"), "estimated cost with pricing:\n{err}");
    // The banner comes before the end summary (one block, before the first request).
    assert!(err.find("records     ").unwrap() < err.find("output:").unwrap(), "{err}");
    assert!(!err.contains("sk-test-secret-1234"), "{err}");

    // Resumed: what is done is counted, only the new records are sent.
    append_records(&s.path("input/data.jsonl"), 40, 15);
    let o = run(&t, false, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("records     15 to send · 40 already done"), "banner on resume:\n{err}");
}

/// Lines `progress: …` of a run whose stderr is a pipe.
fn progress_lines(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("progress: ")).collect()
}

#[test]
fn piped_progress_prints_plain_lines_with_total_rate_and_429s() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 3000);
    let t = task(&s, "sim://?fault=429=0.3&retry_after_secs=0&latency_ms=20", 8, 16);
    let o = run(&t, true, &[("MODELCALL_PROGRESS_INTERVAL_MS", "250")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let lines = progress_lines(&err);
    assert!(!lines.is_empty(), "periodic progress lines on a pipe:\n{err}");
    for l in &lines {
        assert!(l.contains("/3,000 ("), "done/total and %: {l}");
        assert!(l.contains(" %)"), "percent: {l}");
        // The rate has one decimal at most (`150.2/s`, never `268.8015/s`).
        let rate = l.split(" · ").find(|p| p.ends_with("/s") && !p.contains("tok")).unwrap_or_else(|| panic!("a rate: {l}"));
        let number = rate.trim_end_matches("/s");
        let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 1 && number.parse::<f64>().is_ok(), "rate with at most 1 decimal: {l}");
        assert!(l.contains("in flight "), "{l}");
        assert!(l.contains("tok/s"), "{l}");
        assert!(l.contains("cost "), "cost so far with pricing: {l}");
    }
    assert!(
        lines.iter().any(|l| l.contains("retries ") && !l.contains("retries 0 (429s 0)")),
        "a 30 % 429 mix shows retries and 429s over the window:\n{}",
        lines.join("\n")
    );
    assert!(
        err.lines().any(|l| l.starts_with("warning: ") && l.contains("retried or failed") && l.contains("rate_limited")),
        "30 % of attempts retried: a warning line with the top cause:\n{err}"
    );
    capture_in_tmux(&s);
}

/// The bar as a person sees it, in a tmux pane, under the same 30 % 429 mix: saved as
/// target/progress-capture.txt (skipped when tmux is not installed).
fn capture_in_tmux(s: &Scratch) {
    let Ok(status) = Command::new("tmux").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status() else { return };
    if !status.success() {
        return;
    }
    write_records(&s.path("input/data.jsonl"), 6000);
    for p in ["out", "stat"] {
        let _ = std::fs::remove_dir_all(s.path(p));
    }
    let t = task(s, "sim://?fault=429=0.3&retry_after_secs=0&latency_ms=20", 8, 16);
    let socket = format!("modelcall-capture-{}", std::process::id());
    let done = s.path("done.flag");
    let script = format!("{} run-task {} ; touch {} ; sleep 30", bin(), t.display(), done.display());
    let tmux = |args: &[&str]| Command::new("tmux").args(["-L", &socket]).args(args).output();
    if tmux(&["new-session", "-d", "-s", "cap", "-x", "160", "-y", "30", &script]).map(|o| o.status.success()).ok() != Some(true) {
        return;
    }
    let mut capture = String::from("# modelcall run-task under a 30 % 429 mix (sim://?fault=429=0.3&latency_ms=20), tmux pane 160x30\n");
    let start = std::time::Instant::now();
    let mut shots = 0;
    while start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let finished = done.exists();
        if let Ok(o) = tmux(&["capture-pane", "-p", "-t", "cap"]) {
            shots += 1;
            capture.push_str(&format!("\n--- {:.1} s{} ---\n", start.elapsed().as_secs_f64(), if finished { " (run ended)" } else { "" }));
            capture.push_str(String::from_utf8_lossy(&o.stdout).trim_end());
            capture.push('\n');
        }
        if finished {
            break;
        }
    }
    let _ = tmux(&["kill-server"]);
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target");
    let _ = std::fs::create_dir_all(&target);
    std::fs::write(target.join("progress-capture.txt"), &capture).unwrap();
    assert!(shots > 0, "tmux captured the pane");
    assert!(capture.contains("in flight"), "the bar shows the live facts:\n{capture}");
}

#[test]
fn end_summary_names_files_causes_examples_tokens_cost_and_the_next_command() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 60);
    // Records without the input field: a permanent failure.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(s.path("input/data.jsonl")).unwrap();
        for i in 0..3 {
            writeln!(f, "{}", serde_json::json!({"id": format!("nofield{i}"), "body": "no text here"})).unwrap();
        }
    }
    // 500s with no retry: retryable failures.
    let t = task(&s, "sim://?fault=500=0.2&seed=7", 0, 4);
    let o = run(&t, false, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "finished with failed records:\n{err}");
    let out = s.path("out/data.jsonl");
    let errors = s.path("out/data.errors.jsonl");
    assert!(err.contains(&format!("output:\n  {}", out.display())), "the output file:\n{err}");
    assert!(err.contains(&format!("errors:\n  {} (", errors.display())), "the error file:\n{err}");
    let cause_line = |cause: &str| err.lines().find(|l| l.trim_start().starts_with(&format!("{cause} "))).map(str::to_string);
    let missing = cause_line("missing_input_field").unwrap_or_else(|| panic!("missing_input_field counted:\n{err}"));
    assert!(missing.contains("missing_input_field 3 (permanent): e.g. \""), "{missing}");
    let server = cause_line("model_server_error").unwrap_or_else(|| panic!("model_server_error counted:\n{err}"));
    assert!(server.contains("(retryable): e.g. \""), "{server}");
    assert!(err.contains("tokens: "), "tokens:\n{err}");
    assert!(err.lines().any(|l| l.starts_with("tokens: ") && l.contains("cost 0.")), "cost with pricing:\n{err}");
    assert!(err.contains(&format!("next: modelcall run-task {} --no-progress   (sends the ", t.display())), "a plain rerun for the retryable ones:\n{err}");
    assert!(
        err.contains(&format!("modelcall run-task {} --no-progress --retry-failed   (also sends the 3 permanent", t.display())),
        "--retry-failed for the permanent ones:\n{err}"
    );

    // Rerun without faults: the 500s are done, the missing fields stay: only --retry-failed.
    let t = task(&s, "sim://", 0, 4);
    let o = run(&t, false, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("next: modelcall run-task {} --no-progress --retry-failed   (the 3 failure(s) are permanent", t.display())),
        "only permanent failures left:\n{err}"
    );
    assert!(err.contains("this output folder over 2 run(s)"), "cumulative spend:\n{err}");

    // Everything done: no next command.
    std::fs::write(
        s.path("input/data.jsonl"),
        std::fs::read_to_string(s.path("input/data.jsonl")).unwrap().lines().filter(|l| !l.contains("nofield")).map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let o = run(&t, false, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("next: "), "nothing to do next:\n{err}");
    assert!(err.contains("run completed"), "{err}");
}

#[test]
fn a_run_where_every_record_fails_is_not_completed() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 12);
    let t = task(&s, "sim://?fault=500=1.0", 0, 4);
    let o = run(&t, false, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "finished with failed records keeps exit 3:\n{err}");
    let doc = summary(&s);
    assert_eq!(doc["records"]["failed"], 12, "{doc}");
    assert_ne!(doc["status"], "completed", "an all-failed run is not completed: {}", doc["status"]);
    assert_eq!(doc["status"], "failed");
    assert!(err.contains("run FAILED: every record failed"), "the printed line says so:\n{err}");
    assert!(!err.contains("run completed"), "{err}");
}
