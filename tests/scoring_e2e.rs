//! End-to-end scoring runs: the real `modelcall` binary, the real built-in plugins, and the
//! simulated OpenAI-compatible endpoint as a real HTTP server on 127.0.0.1.

mod common;

use common::{write_records, Scratch};

use common::read_jsonl;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Task files over the scratch folder: a model config, the shipped English prompt, a task YAML.
impl Scratch {
    /// A task over `input/` with the given sim URL and extra YAML lines appended.
    fn task(&self, sim_url: &str, concurrency: usize, extra: &str) -> PathBuf {
        self.scoring_task(sim_url, concurrency, "", extra)
    }
}

fn run(task: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("run-task").arg(task).args(args).arg("--no-progress").stdin(Stdio::null()).output().expect("running modelcall")
}

fn ids(rows: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in rows {
        *counts.entry(r["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "modelcall failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn faults_are_retried_and_every_record_lands_exactly_once() {
    faults_case(10_000, None, "http1");
}

/// The same faults through reqwest, the client of TLS, proxied and HTTP/2 endpoints (forced here
/// on a plain loopback endpoint, which otherwise goes through the lean HTTP/1.1 client).
#[test]
fn faults_are_retried_alike_through_reqwest() {
    faults_case(3_000, Some("reqwest"), "reqwest");
}

/// `records` records against a simulator that throttles, fails, drops connections and sends
/// broken bodies: every record lands once, each cause is retried, `http_client` is `expected`.
fn faults_case(records: usize, http_client: Option<&str>, expected: &str) {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), records);
    let task = s.task("sim://?fault=429:0.05&fault=500:0.02&fault=drop:0.01&fault=malformed:0.01&retry_after_secs=1", 512, "");
    let mut command = Command::new(bin());
    command.arg("run-task").arg(&task).arg("--no-progress").stdin(Stdio::null()).env_remove("MODELCALL_HTTP_CLIENT");
    if let Some(client) = http_client {
        command.env("MODELCALL_HTTP_CLIENT", client);
    }
    let out = command.output().expect("running modelcall");
    assert_success(&out);

    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let counts = ids(&rows);
    assert_eq!(counts.len(), records, "every record is in the output");
    assert!(counts.values().all(|&c| c == 1), "no record twice");
    for r in &rows {
        assert_eq!(r["api_status"], "success");
        let score = r["score"].as_i64().expect("a numeric score");
        assert!((1..=5).contains(&score), "score {score}");
        assert!(r["attempts"].as_u64().unwrap() >= 1);
    }
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty(), "no errors");

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["http_client"], expected);
    let retries = &summary["retries_by_cause"];
    for cause in ["rate_limited", "server_error", "malformed_body"] {
        assert!(retries[cause].as_u64().unwrap_or(0) > 0, "retries by cause should count {cause}: {retries}");
    }
    // A dropped connection is a connection retry, or, where the client cannot tell it from a
    // kept-alive connection the server closed (reqwest does not say whether it reused one), a
    // resend on a fresh connection counted apart.
    let resends = summary["stale_connection_resends"].as_u64().unwrap_or(0);
    assert!(retries["connection"].as_u64().unwrap_or(0) + resends > 0, "dropped connections are retried or resent: {retries}, resends {resends}");
    assert_eq!(summary["records"]["scored"], records);
    assert_eq!(summary["records"]["failed"], 0);
    // The API key never appears in what the user sees.
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("sk-test-secret-1234"), "the key leaked: {all}");
}

#[test]
fn kill_dash_nine_three_times_then_resume_gives_every_key_exactly_once() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 20_000);
    let task = s.task("sim://?latency_ms=20", 256, "");
    // Deterministic "random" kill points, spread over the run.
    let mut seed: u64 = 0x9E3779B97F4A7C15 ^ std::process::id() as u64;
    for round in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(100 + seed % 700);
        let before = common::journal_bytes(&s.path("out/.modelcall"));
        let mut child = common::spawn_run_task(bin(), &task);
        // `wait` after this round journaled something (a loaded machine may take longer than
        // that to start sending): the kill lands mid-run.
        common::wait_for_journal_growth(&s.path("out/.modelcall"), before, &mut child);
        std::thread::sleep(wait);
        let finished_early = child.try_wait().unwrap().is_some();
        if !finished_early {
            // SIGKILL: no chance to flush anything.
            child.kill().unwrap();
        }
        child.wait().unwrap();
        eprintln!("round {round}: killed after {wait:?} (finished early: {finished_early})");
    }
    let out = run(&task, &[]);
    assert_success(&out);
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let counts = ids(&rows);
    assert_eq!(counts.len(), 20_000, "every key present");
    let dupes: Vec<_> = counts.iter().filter(|(_, &c)| c != 1).collect();
    assert!(dupes.is_empty(), "keys more than once: {:?}", &dupes[..dupes.len().min(5)]);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert!(summary["records"]["already_done"].as_u64().unwrap() > 0, "the last run resumed: {summary}");
}

#[test]
fn unauthorized_stops_the_run_at_once_and_marks_nothing_failed() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 2_000);
    let task = s.task("sim://?fault=401:1", 64, "");
    let started = Instant::now();
    let out = run(&task, &[]);
    let elapsed = started.elapsed();
    assert!(!out.status.success(), "a 401 must fail the run");
    assert!(elapsed < Duration::from_secs(2), "stopped after {elapsed:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1"), "the message names the endpoint: {stderr}");
    assert!(stderr.to_lowercase().contains("401") || stderr.to_lowercase().contains("auth"), "{stderr}");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty());
    let journal = read_jsonl(&s.path("out/.modelcall/data.journal.jsonl"));
    assert!(journal.is_empty(), "no record may be journaled as failed: {} entries", journal.len());
}

#[test]
fn bad_lines_go_to_the_error_output_and_the_rest_is_scored() {
    let s = Scratch::new();
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"id\":\"ok1\",\"text\":\"fine\"}\n");
    input.extend_from_slice(b"{\"id\":\"broken\",\"text\":\n"); // line 2: malformed JSON
    input.extend_from_slice(b"[1,2,3]\n"); // line 3: not an object
    input.extend_from_slice(b"{\"id\":\"nofield\",\"body\":\"no text field\"}\n"); // line 4: missing input field
    input.extend_from_slice(b"{\"id\":\"latin1\",\"text\":\"caf\xe9\"}\n"); // line 5: invalid UTF-8
    input.extend_from_slice(b"\n"); // blank: ignored
    input.extend_from_slice(b"{\"id\":\"ok2\",\"text\":\"also fine\"}\n"); // line 7
    s.write("input/mixed.jsonl", &input);
    let task = s.task("sim://", 8, "");
    let out = run(&task, &[]);
    // Finished, with failed records: exit 3, so schedulers and CI see it.
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    let ok = read_jsonl(&s.path("out/mixed.jsonl"));
    let mut ok_ids: Vec<_> = ok.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ok_ids.sort();
    assert_eq!(ok_ids, vec!["ok1", "ok2"]);

    let errors = read_jsonl(&s.path("out/mixed.errors.jsonl"));
    let by_line: HashMap<u64, &Value> = errors.iter().map(|e| (e["line"].as_u64().unwrap(), e)).collect();
    assert_eq!(by_line.len(), 4, "{errors:?}");
    assert_eq!(by_line[&2]["cause"], "invalid_json");
    assert_eq!(by_line[&3]["cause"], "not_an_object");
    assert_eq!(by_line[&4]["cause"], "missing_input_field");
    assert_eq!(by_line[&5]["cause"], "invalid_utf8");
    for e in &errors {
        assert!(e["file"].as_str().unwrap().ends_with("mixed.jsonl"), "{e}");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["records"]["scored"], 2);
    assert_eq!(summary["records"]["bad_lines"], 3);
    assert_eq!(summary["records"]["failed"], 1);
}

#[test]
fn quickstart_task_runs_and_a_second_run_sends_nothing() {
    let s = Scratch::new();
    // The shipped quickstart task, with its output redirected into the scratch folder.
    let root = repo_root();
    let out = Command::new(bin())
        .current_dir(&root)
        .args(["run-task", "configs/tasks/quickstart/en_corpus_quality_sim.yaml", "--no-progress", "--output-folder"])
        .arg(s.path("out"))
        .output()
        .unwrap();
    assert_success(&out);
    let parquet = s.path("out/english_texts.parquet");
    assert!(parquet.exists(), "{parquet:?}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["records"]["scored"], 40);

    let again = Command::new(bin())
        .current_dir(&root)
        .args(["run-task", "configs/tasks/quickstart/en_corpus_quality_sim.yaml", "--no-progress", "--output-folder"])
        .arg(s.path("out"))
        .output()
        .unwrap();
    assert_success(&again);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["records"]["scored"], 0, "{summary}");
    assert_eq!(summary["records"]["already_done"], 40);
    assert_eq!(summary["requests"], 0);
}

#[test]
fn an_unknown_key_stops_before_any_request_naming_file_line_and_key() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 10);
    let task = s.task("sim://", 8, "concurrency_typo:\n  max_concurrent_requests: 3\n");
    let out = run(&task, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("task.yaml"), "{stderr}");
    assert!(stderr.contains("concurrency_typo"), "{stderr}");
    assert!(!s.path("out/data.jsonl").exists());
}

#[test]
fn two_shards_cover_every_record_exactly_once() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 3_000);
    let task = s.task("sim://", 128, "");
    for shard in ["0/2", "1/2"] {
        assert_success(&run(&task, &["--shard", shard]));
    }
    // Each shard's own files are kept under the state folder, not beside the outputs.
    assert!(!s.path("out/data.shard-0-of-2.jsonl").exists());
    let a = read_jsonl(&s.path("out/.modelcall/shards/data.shard-0-of-2.jsonl"));
    let b = read_jsonl(&s.path("out/.modelcall/shards/data.shard-1-of-2.jsonl"));
    assert!(!a.is_empty() && !b.is_empty(), "both shards got work: {} / {}", a.len(), b.len());
    let mut all = a.clone();
    all.extend(b);
    let counts = ids(&all);
    assert_eq!(counts.len(), 3_000);
    assert!(counts.values().all(|&c| c == 1));
}

#[test]
fn dry_run_loads_everything_and_sends_nothing() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 10);
    let task = s.task("sim://", 8, "");
    let out = run(&task, &["--dry-run"]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("template-prompt") && stdout.contains("json-score"), "{stdout}");
    assert!(stdout.contains("no request sent"), "{stdout}");
    assert!(!stdout.contains("sk-test-secret-1234"), "{stdout}");
    assert!(!s.path("out/data.jsonl").exists());
}

#[test]
fn parquet_and_compressed_inputs_are_scored_into_parquet() {
    let s = Scratch::new();
    // A gzip JSONL input and a Parquet input made from a first run's Parquet output.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..50 {
        writeln!(gz, "{}", json!({"id": format!("g{i}"), "text": format!("gzip record {i}")})).unwrap();
    }
    s.write("input/part.jsonl.gz", &gz.finish().unwrap());
    let task = s.task("sim://", 16, "").to_string_lossy().to_string();
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap().replace("output_format: jsonl", "output_format: parquet")).unwrap();
    assert_success(&run(Path::new(&task), &[]));
    let parquet = s.path("out/part.parquet");
    let rows: Vec<_> = modelcall_io::open_source(&parquet).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 50);
    // Score the Parquet output again as an input: Parquet in, Parquet out.
    std::fs::create_dir_all(s.path("input2")).unwrap();
    std::fs::copy(&parquet, s.path("input2/again.parquet")).unwrap();
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap().replace("/input\"", "/input2\"")).unwrap();
    assert_success(&run(Path::new(&task), &[]));
    let again: Vec<_> = modelcall_io::open_source(&s.path("out/again.parquet")).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(again.len(), 50);
    if let modelcall_io::SourceItem::Record { record, .. } = &again[0] {
        assert!(record.contains_key("score") && record.contains_key("usage"), "{record:?}");
    }
}

#[test]
fn resume_off_starts_over_and_still_writes_each_record_once() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 200);
    let task = s.task("sim://", 32, "");
    assert_success(&run(&task, &[]));
    let fresh = s.task("sim://", 32, "options:\n  resume: false\n");
    let out = run(&fresh, &[]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("starting over"));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["records"]["scored"], 200, "every record scored again: {summary}");
    let counts = ids(&read_jsonl(&s.path("out/data.jsonl")));
    assert_eq!(counts.len(), 200);
    assert!(counts.values().all(|&c| c == 1));
}

#[test]
fn a_placeholder_no_record_can_fill_stops_before_any_request() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 5);
    let prompt = std::fs::read_to_string(repo_root().join("configs/prompts/en_corpus_quality_v1.yaml")).unwrap();
    let typo = s.write("typo_prompt.yaml", prompt.replace("{text}", "{txet}").as_bytes());
    let task = s.task("sim://", 4, "");
    let text = std::fs::read_to_string(&task).unwrap();
    let text = text.replace(&repo_root().join("configs/prompts/en_corpus_quality_v1.yaml").display().to_string(), &typo.display().to_string());
    let text = text.replace("  prompt_format_key: text\n", "");
    std::fs::write(&task, text).unwrap();
    for args in [&["--dry-run"][..], &[][..]] {
        let out = run(&task, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("{txet}") && err.contains("its fields are: id, text"), "{err}");
    }
    assert!(!s.path("out/data.jsonl").exists(), "nothing was scored");
}

#[test]
fn num_runs_makes_independent_passes_each_in_its_run_index_folder() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 20);
    let task = s.task("sim://", 4, "distributed:\n  num_runs: 2\n");
    let text = std::fs::read_to_string(&task).unwrap();
    let out = s.path("out").display().to_string();
    std::fs::write(&task, text.replace(&format!("output_folder: \"{out}\""), &format!("output_folder: \"{out}/run{{run_index}}\""))).unwrap();
    let o = run(&task, &[]);
    assert_success(&o);
    for i in [1, 2] {
        let rows = read_jsonl(&s.path(&format!("out/run{i}/data.jsonl")));
        assert_eq!(ids(&rows).len(), 20, "pass {i}");
    }
    // Without `{run_index}` the passes would overwrite each other: refused.
    std::fs::write(&task, text).unwrap();
    let o = run(&task, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("{run_index}"));
}

#[test]
fn error_rows_carry_the_real_number_of_attempts() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 3);
    let task = s.task("sim://?fault=500:1", 4, "");
    let model = std::fs::read_to_string(s.path("model.yaml")).unwrap().replace("max_retries: 8", "max_retries: 2\n  backoff_base_ms: 1\n  backoff_max_ms: 2");
    std::fs::write(s.path("model.yaml"), model).unwrap();
    let out = run(&task, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 3);
    for e in &errors {
        assert_eq!(e["cause"], "model_server_error", "{e}");
        assert_eq!(e["attempts"], 3, "one try and two retries: {e}");
        assert_eq!(e["retryable"], true, "{e}");
    }
}

#[test]
fn a_budget_stops_the_run_cleanly_and_a_dry_run_estimates_what_it_costs() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 300);
    let task = s.task("sim://?latency_ms=20", 4, "budget:\n  max_tokens: 3000\n");
    let model = std::fs::read_to_string(s.path("model.yaml")).unwrap() + "pricing: {prompt_per_million: 2.0, completion_per_million: 8.0}\n";
    std::fs::write(s.path("model.yaml"), model).unwrap();
    let dry = run(&task, &["--dry-run"]);
    let shown = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{shown}");
    assert!(shown.contains("estimate    300 records to send ×") && shown.contains("cost ") && shown.contains("budget      max_tokens 3000"), "{shown}");

    let out = run(&task, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the budget is spent"), "{err}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    let scored = summary["records"]["scored"].as_u64().unwrap();
    assert!(scored > 0 && scored < 300, "{summary}");
    assert!(summary["cost"].as_f64().unwrap() > 0.0, "{summary}");
    // A larger budget resumes where the run stopped.
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap().replace("max_tokens: 3000", "max_tokens: 10000000")).unwrap();
    let out = run(&task, &[]);
    assert_success(&out);
    assert_eq!(ids(&read_jsonl(&s.path("out/data.jsonl"))).len(), 300);
}

/// A model config with `http2_prior_knowledge: true` runs over HTTP/2 without TLS: the summary
/// names reqwest as the client and the simulator counts every request as HTTP/2.
#[test]
fn http2_prior_knowledge_runs_the_task_over_h2c() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 300);
    let model = s.write(
        "h2c-model.yaml",
        b"client_config:\n  base_url: \"sim://\"\n  api_key: \"sk-test-secret-1234\"\n  http2_prior_knowledge: true\n  timeout: 5\nchat_config:\n  model: \"m\"\n",
    );
    let task = s.scoring_task_for(&model, 64, "", "");
    assert_success(&run(&task, &[]));
    assert_eq!(ids(&read_jsonl(&s.path("out/data.jsonl"))).len(), 300);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["http_client"], "reqwest");
    assert_eq!(summary["simulator"]["http2_requests"], summary["simulator"]["requests"]);
    assert_eq!(summary["simulator"]["requests"], 300);
}

/// An unknown `MODELCALL_HTTP_CLIENT` stops the run before any request, saying what it takes.
#[test]
fn an_unknown_http_client_stops_before_any_request() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 10);
    let task = s.task("sim://", 4, "");
    let out = Command::new(bin()).arg("run-task").arg(&task).arg("--no-progress").env("MODELCALL_HTTP_CLIENT", "curl").stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MODELCALL_HTTP_CLIENT is `curl`: it must be `auto`"), "{stderr}");
    assert!(!s.path("out/data.jsonl").exists(), "nothing was scored");
}
