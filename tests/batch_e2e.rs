//! `concurrency.mode: batch` end to end: the real binary against the simulator's Batch API
//! (a real HTTP server on 127.0.0.1, hosted by the test so it outlives killed runs and reports
//! how many batches each record went into).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{read_jsonl, write_records, Scratch};
use modelcall_sim::batch::BatchFaults;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

/// A simulator on its own runtime (kept alive with the returned runtime).
fn sim() -> (tokio::runtime::Runtime, modelcall_sim::SimServer) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = rt.block_on(modelcall_sim::start(modelcall_sim::SimOptions::default())).unwrap();
    (rt, server)
}

const BATCH: &str = "  mode: batch\n  batch_poll_secs: 0.1\n";

/// A scoring task over `input/` in `out/`; `concurrency` holds extra `concurrency:` lines.
fn task(s: &Scratch, base_url: &str, concurrency: &str) -> std::path::PathBuf {
    let t = s.scoring_task(base_url, 16, "", "");
    let yaml = std::fs::read_to_string(&t).unwrap().replace("  max_concurrent_requests: 16\n", &format!("  max_concurrent_requests: 16\n{concurrency}"));
    std::fs::write(&t, yaml).unwrap();
    t
}

fn run(task: &Path) -> Output {
    Command::new(bin()).arg("run-task").arg(task).arg("--no-progress").stdin(Stdio::null()).output().expect("running modelcall")
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

/// Output rows per id.
fn ids(rows: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in rows {
        *counts.entry(r["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

fn assert_every_record_once(s: &Scratch, n: usize) {
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let counts = ids(&rows);
    assert_eq!(counts.len(), n, "every record has a row");
    assert!(counts.values().all(|c| *c == 1), "no record has two rows");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty(), "no error rows");
    for r in rows.iter().take(50) {
        assert_eq!(r["api_status"], "success");
        assert!(r["score_value"].is_number(), "parsed by the score parser: {r}");
    }
}

#[test]
fn batch_mode_splits_120k_records_into_three_batches_and_answers_each_once() {
    let (_rt, server) = sim();
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 120_000);
    let t = task(&s, &server.base_url(), &format!("{BATCH}  batch_max_requests: 50000\n"));
    let started = Instant::now();
    let out = run(&t);
    assert_success(&out);
    eprintln!("120k records in batch mode: {:?}", started.elapsed());
    let stats = server.batch_stats();
    let sizes = &stats.batch_sizes;
    assert!(sizes.len() >= 3 && sizes.iter().all(|n| *n <= 50_000), "split by request count, never over 50,000: {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 120_000);
    assert!(stats.in_two_batches().is_empty(), "no record in two batches");
    assert_eq!(stats.batches_per_record.len(), 120_000);
    assert!(stats.answered_twice().is_empty());
    // Nothing went online.
    assert_eq!(server.stats().requests as usize, 120_000, "one request per record, all inside batches");
    assert_every_record_once(&s, 120_000);
    // Every custom_id is a record key that the journal holds.
    let journal = std::fs::read_to_string(s.path("out/.modelcall/data.journal.jsonl")).unwrap();
    assert!(journal.lines().count() >= 120_000);
}

#[test]
fn batch_mode_splits_by_bytes_too() {
    let (_rt, server) = sim();
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 300);
    // Each request line is about 650 bytes: 40 KB holds about 60.
    let t = task(&s, &server.base_url(), &format!("{BATCH}  batch_max_bytes: 40000\n"));
    assert_success(&run(&t));
    let stats = server.batch_stats();
    assert!(stats.batch_sizes.len() >= 3, "split by bytes: {:?}", stats.batch_sizes);
    assert_eq!(stats.batch_sizes.iter().sum::<usize>(), 300);
    assert!(stats.in_two_batches().is_empty());
    assert_every_record_once(&s, 300);
}

/// Kills `modelcall` (kill -9) as soon as the batch journal shows `step`, then runs it again to
/// the end.
fn kill_at(step: &str, lose_journal: bool) {
    let (_rt, server) = sim();
    // Slow enough that every step is seen before the batch completes.
    server.set_batch_faults(BatchFaults { completion_delay: Duration::from_millis(1500), ..BatchFaults::default() });
    let s = Scratch::new();
    let n = 2000;
    write_records(&s.path("input/data.jsonl"), n);
    let t = task(&s, &server.base_url(), &format!("{BATCH}  batch_max_requests: 700\n"));
    let journal = s.path("out/.modelcall/batches/main/journal.jsonl");
    let mut child = common::spawn_run_task(bin(), &t);
    let wanted = format!("\"step\":\"{step}\"");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = false;
    while Instant::now() < deadline {
        if std::fs::read_to_string(&journal).is_ok_and(|j| j.contains(&wanted)) {
            seen = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "the journal reached `{step}` before the run ended");
    if lose_journal {
        std::fs::remove_dir_all(s.path("out/.modelcall/batches")).unwrap();
    }
    server.set_batch_faults(BatchFaults { completion_delay: Duration::from_millis(300), ..BatchFaults::default() });
    let out = run(&t);
    assert_success(&out);
    let stats = server.batch_stats();
    assert!(
        stats.in_two_batches().is_empty(),
        "kill at `{step}`: records in two batches: {:?}",
        &stats.in_two_batches()[..stats.in_two_batches().len().min(5)]
    );
    assert!(stats.answered_twice().is_empty(), "kill at `{step}`: a record answered twice");
    assert_eq!(stats.batches_per_record.len(), n, "every record went into a batch");
    assert_every_record_once(&s, n);
}

#[test]
fn kill_nine_at_each_remote_step_then_rerun_gives_every_record_once_in_one_batch() {
    for step in ["planned", "uploaded", "creating", "created", "status", "downloaded"] {
        eprintln!("--- kill -9 at `{step}`");
        kill_at(step, false);
    }
}

#[test]
fn a_lost_batch_journal_is_recovered_from_the_batches_metadata() {
    kill_at("created", true);
}

#[test]
fn a_lost_create_answer_and_an_upload_5xx_make_no_second_batch() {
    let (_rt, server) = sim();
    server.set_batch_faults(BatchFaults { upload_errors: 1, lose_creates: 1, ..BatchFaults::default() });
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 500);
    let t = task(&s, &server.base_url(), BATCH);
    assert_success(&run(&t));
    let stats = server.batch_stats();
    assert_eq!(stats.batches_created, 1, "the lost create was found by its metadata, not made again");
    assert!(stats.in_two_batches().is_empty());
    assert_every_record_once(&s, 500);
}

#[test]
fn an_expired_batch_with_60_percent_done_resubmits_only_the_other_40_percent() {
    let (_rt, server) = sim();
    server.set_batch_faults(BatchFaults { expire_batches: 1, expire_done: 0.6, ..BatchFaults::default() });
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 1000);
    let t = task(&s, &server.base_url(), BATCH);
    let out = run(&t);
    assert_success(&out);
    let stats = server.batch_stats();
    assert_eq!(stats.batch_sizes, vec![1000, 400], "only the unanswered 40 % went into a new batch");
    assert!(stats.answered_twice().is_empty(), "no answer bought twice");
    assert_every_record_once(&s, 1000);
}

#[test]
fn failed_lines_are_retried_in_the_next_batch_or_become_typed_error_rows() {
    // A 5xx line is retried (the next round answers it).
    let (_rt, server) = sim();
    server.set_batch_faults(BatchFaults { fail_rate: 0.1, fail_status: 500, ..BatchFaults::default() });
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 400);
    let t = task(&s, &server.base_url(), BATCH);
    assert_success(&run(&t));
    let sizes = server.batch_stats().batch_sizes;
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes[1] > 10 && sizes[1] < 80, "about 10 % retried: {sizes:?}");
    assert_every_record_once(&s, 400);

    // A 4xx line is the record's error row (model_rejected), as online.
    let (_rt2, server) = sim();
    server.set_batch_faults(BatchFaults { fail_rate: 0.1, fail_status: 400, ..BatchFaults::default() });
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 400);
    let t = task(&s, &server.base_url(), BATCH);
    let out = run(&t);
    assert_eq!(out.status.code(), Some(3), "finished with failed records: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.batch_stats().batch_sizes.len(), 1, "a 4xx is not retried");
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert!(!errors.is_empty() && errors.len() < 80, "{}", errors.len());
    assert!(errors.iter().all(|e| e["cause"] == "model_rejected"), "{:?}", errors[0]);
    assert_eq!(read_jsonl(&s.path("out/data.jsonl")).len() + errors.len(), 400);
}

#[test]
fn switching_a_half_done_task_from_online_to_batch_sends_only_the_rest() {
    let (_rt, server) = sim();
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 1000);
    // Half of it online…
    let all = std::fs::read_to_string(s.path("input/data.jsonl")).unwrap();
    let half: String = all.lines().take(500).map(|l| format!("{l}\n")).collect();
    std::fs::write(s.path("input/data.jsonl"), &half).unwrap();
    let online = task(&s, &server.base_url(), "");
    assert_success(&run(&online));
    assert_eq!(server.stats().requests, 500);
    assert_eq!(server.batch_stats().batches_created, 0);
    let online_rows = read_jsonl(&s.path("out/data.jsonl"));
    // …then the whole input, in batch mode.
    std::fs::write(s.path("input/data.jsonl"), &all).unwrap();
    let batch = task(&s, &server.base_url(), BATCH);
    assert_success(&run(&batch));
    let stats = server.batch_stats();
    assert_eq!(stats.batch_sizes, vec![500], "only the records not done online");
    let first_half: BTreeSet<String> = online_rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert!(stats.batches_per_record.keys().all(|k| !first_half.contains(k)), "no record done online went into a batch");
    assert_every_record_once(&s, 1000);
    // The same outputs in shape: the batch rows have the online rows' columns.
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let columns = |r: &Value| r.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    let online_columns = columns(&online_rows[0]);
    for r in rows.iter().filter(|r| !first_half.contains(r["id"].as_str().unwrap())).take(20) {
        assert_eq!(columns(r), online_columns, "a batch row has the columns of an online row");
    }
}

/// `task` with the model's `pricing` (`pricing_extra`: more `pricing:` lines) and `extra` at
/// the end of the task file.
fn priced_task(s: &Scratch, base_url: &str, concurrency: &str, pricing_extra: &str, extra: &str) -> std::path::PathBuf {
    let t = task(s, base_url, concurrency);
    let model = std::fs::read_to_string(s.path("model.yaml")).unwrap() + "pricing:\n  prompt_per_million: 2.0\n  completion_per_million: 8.0\n" + pricing_extra;
    std::fs::write(s.path("model.yaml"), model).unwrap();
    let yaml = std::fs::read_to_string(&t).unwrap() + extra;
    std::fs::write(&t, yaml).unwrap();
    t
}

fn summary(s: &Scratch) -> Value {
    serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap()
}

fn full_price(summary: &Value) -> f64 {
    let t = &summary["tokens"];
    (t["prompt"].as_f64().unwrap() * 2.0 + t["completion"].as_f64().unwrap() * 8.0) / 1e6
}

#[test]
fn batch_discount_prices_the_run_the_dry_run_estimate_and_the_budget() {
    let (_rt, server) = sim();
    // The default discount (0.5): the summary's cost is half the tokens' list price, and says so.
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 200);
    let t = priced_task(&s, &server.base_url(), BATCH, "", "budget:\n  max_cost: 1000\n");
    let out = run(&t);
    assert_success(&out);
    let doc = summary(&s);
    eprintln!("summary tokens: {}", doc["tokens"]);
    assert_eq!(doc["batch_discount"], 0.5, "the summary says the discount applied: {doc}");
    let full = full_price(&doc);
    assert!(full > 0.0);
    assert!((doc["cost"].as_f64().unwrap() - full * 0.5).abs() < 1e-3, "cost {} is half of {full}", doc["cost"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("batch price: pricing.batch_discount 0.5 taken off"), "{stderr}");

    // The budget counts the batch price: a max_cost below the list price, above the batch price,
    // lets the same run finish.
    let s2 = Scratch::new();
    write_records(&s2.path("input/data.jsonl"), 200);
    let t2 = priced_task(&s2, &server.base_url(), BATCH, "", &format!("budget:\n  max_cost: {}\n", full * 0.8));
    let out = run(&t2);
    assert_success(&out);
    assert_every_record_once(&s2, 200);

    // The dry run's estimate is at the batch price, with the configured discount.
    let s3 = Scratch::new();
    write_records(&s3.path("input/data.jsonl"), 50);
    let t3 = priced_task(&s3, &server.base_url(), BATCH, "  batch_discount: 0.25\n", "budget:\n  max_cost: 1\n");
    let out = Command::new(bin()).arg("run-task").arg(&t3).arg("--dry-run").stdin(Stdio::null()).output().unwrap();
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pricing.batch_discount 0.25 taken off"), "{stdout}");
    assert!(stdout.contains("at the batch price"), "{stdout}");
    assert_eq!(server.batch_stats().batches_created, 2, "the dry run sent nothing");

    // Online, the same pricing has no discount.
    let s4 = Scratch::new();
    write_records(&s4.path("input/data.jsonl"), 200);
    let t4 = priced_task(&s4, &server.base_url(), "", "", "budget:\n  max_cost: 1000\n");
    assert_success(&run(&t4));
    let doc = summary(&s4);
    assert!(doc["batch_discount"].is_null(), "{doc}");
    assert!((doc["cost"].as_f64().unwrap() - full_price(&doc)).abs() < 1e-3);
}

fn run_with(task: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("run-task").arg(task).arg("--no-progress").args(args).stdin(Stdio::null()).output().expect("running modelcall")
}

#[test]
fn detach_submits_exits_0_and_a_rerun_collects_exactly_once() {
    let (_rt, server) = sim();
    server.set_batch_faults(BatchFaults { completion_delay: Duration::from_secs(12), ..BatchFaults::default() });
    let s = Scratch::new();
    let n = 500;
    write_records(&s.path("input/data.jsonl"), n);
    let t = task(&s, &server.base_url(), &format!("{BATCH}  batch_max_requests: 300\n"));
    let started = Instant::now();
    let out = run_with(&t, &["--detach"]);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(12), "it did not wait for the batches: {:?}", started.elapsed());
    assert!(stderr.contains("modelcall status") && stderr.contains("left running"), "{stderr}");
    let stats = server.batch_stats();
    assert_eq!(stats.batch_sizes.iter().sum::<usize>(), n, "every record submitted: {:?}", stats.batch_sizes);
    assert!(stats.answers_per_record.is_empty(), "nothing answered yet");
    let journal = std::fs::read_to_string(s.path("out/.modelcall/batches/main/journal.jsonl")).unwrap();
    assert_eq!(journal.matches("\"step\":\"created\"").count(), 2, "both batches in the batch journal");
    assert!(read_jsonl(&s.path("out/data.jsonl")).is_empty(), "no answer yet");
    // `modelcall status` shows them (offline, from the batch journal).
    let status = Command::new(bin()).arg("status").arg(s.path("out")).stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("batches (main): 2 submitted, 0 collected, 2 not yet collected"), "{text}");

    // The same command while they run: nothing new is submitted.
    let out = run_with(&t, &["--detach"]);
    assert_success(&out);
    assert_eq!(server.batch_stats().batches_created, 2, "no second submission");

    // Once they finished, the same command collects them, once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.batch_stats().answers_per_record.len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run_with(&t, &["--detach"]);
    assert_success(&out);
    let stats = server.batch_stats();
    assert_eq!(stats.batches_created, 2, "no second submission");
    assert!(stats.in_two_batches().is_empty() && stats.answered_twice().is_empty());
    assert_every_record_once(&s, n);
    assert_eq!(server.stats().requests as usize, n, "one request per record");
    // And again: nothing changes.
    assert_success(&run_with(&t, &["--detach"]));
    assert_eq!(server.batch_stats().batches_created, 2);
    assert_every_record_once(&s, n);
}

#[test]
fn ctrl_c_cancels_the_batches_this_run_submitted_and_a_rerun_finishes_them_once() {
    let (_rt, server) = sim();
    server.set_batch_faults(BatchFaults { completion_delay: Duration::from_secs(4), ..BatchFaults::default() });
    let s = Scratch::new();
    let n = 400;
    write_records(&s.path("input/data.jsonl"), n);
    let t = task(&s, &server.base_url(), &format!("{BATCH}  batch_max_requests: 200\n"));
    let journal = s.path("out/.modelcall/batches/main/journal.jsonl");
    let child =
        Command::new(bin()).arg("run-task").arg(&t).arg("--no-progress").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && std::fs::read_to_string(&journal).map_or(0, |j| j.matches("\"step\":\"created\"").count()) < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let stats = server.batch_stats();
    assert_eq!(stats.batches_created, 2);
    assert_eq!(stats.cancels, 2, "both batches cancelled: {stderr}");
    assert!(stderr.contains("cancelled 2 batch(es) this run submitted that had no result yet"), "{stderr}");

    // The rerun takes the cancelled batches up: nothing was answered, so every record goes into
    // one new batch, once.
    server.set_batch_faults(BatchFaults::default());
    assert_success(&run(&t));
    let stats = server.batch_stats();
    assert_eq!(stats.cancels, 2, "the rerun cancels nothing");
    assert!(stats.answered_twice().is_empty());
    assert_every_record_once(&s, n);
}

#[test]
fn a_spent_budget_cancels_the_batches_still_running_and_keeps_what_was_answered() {
    let (_rt, server) = sim();
    // The first batch answers at once, the other two take a while.
    server.set_batch_faults(BatchFaults { slow_after: 1, slow_delay: Duration::from_secs(3), ..BatchFaults::default() });
    let s = Scratch::new();
    let n = 300;
    write_records(&s.path("input/data.jsonl"), n);
    let t = task(&s, &server.base_url(), &format!("{BATCH}  batch_max_requests: 100\n"));
    let yaml = std::fs::read_to_string(&t).unwrap() + "budget:\n  max_tokens: 2000\n";
    std::fs::write(&t, yaml).unwrap();
    let out = run(&t);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stopped by the budget: {stderr}");
    assert!(stderr.contains("budget"), "{stderr}");
    let stats = server.batch_stats();
    assert_eq!(stats.batches_created, 3, "{stderr}");
    assert_eq!(stats.cancels, 2, "the two batches still running are cancelled: {stderr}");
    assert!(stderr.contains("cancelled 2 batch(es)"), "{stderr}");
    // What the first batch answered is kept, once.
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 100, "the first batch's answers are in the outputs");
    assert_eq!(stats.answers_per_record.len(), 100, "nothing else was answered");
    assert!(ids(&rows).values().all(|c| *c == 1));
}

/// The lines of a batch input file run through the simulator's Batch API, as `vllm run-batch`
/// would: its output file.
fn run_batch_file(rt: &tokio::runtime::Runtime, server: &modelcall_sim::SimServer, input: &[u8]) -> Vec<u8> {
    rt.block_on(async {
        let settings = modelcall_model::ClientSettings::new(server.base_url(), "m");
        let client = modelcall_model::batch::BatchClient::new(&settings).unwrap();
        let file = client.upload("requests.jsonl", input).await.unwrap();
        let batch = client.create(&file, "/v1/chat/completions", &serde_json::Map::new()).await.unwrap();
        loop {
            let info = client.get(&batch.id).await.unwrap();
            if info.is_final() {
                return client.content(info.output_file_id.as_deref().unwrap()).await.unwrap().to_vec();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn batch(args: &[&str]) -> Output {
    Command::new(bin()).arg("batch").args(args).stdin(Stdio::null()).output().expect("running modelcall batch")
}

#[test]
fn batch_export_writes_what_is_left_and_import_reads_vllm_output_exactly_once() {
    let (rt, server) = sim();
    let s = Scratch::new();
    let n = 300;
    write_records(&s.path("input/data.jsonl"), n);
    // An online task: export and import need no batch mode.
    let t = task(&s, &server.base_url(), "");
    let task_arg = t.to_str().unwrap();
    let requests = s.path("requests.jsonl");
    let out = batch(&["export", task_arg, "--out", requests.to_str().unwrap()]);
    assert_success(&out);
    let lines: Vec<Value> = read_jsonl(&requests);
    assert_eq!(lines.len(), n, "{}", String::from_utf8_lossy(&out.stderr));
    let keys: BTreeSet<String> = lines.iter().map(|l| l["custom_id"].as_str().unwrap().to_string()).collect();
    let inputs: BTreeSet<String> = read_jsonl(&s.path("input/data.jsonl")).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, inputs, "custom_id is the record's key");
    for l in &lines {
        assert_eq!(l["method"], "POST");
        assert_eq!(l["url"], "/v1/chat/completions");
        assert_eq!(l["body"]["model"], "m");
        assert!(l["body"]["messages"].is_array() && l["body"].get("stream").is_none());
    }
    assert_eq!(server.stats().requests, 0, "export sends nothing");
    assert_eq!(server.batch_stats().uploads, 0);

    // `vllm run-batch` over it (here: the simulator's batch endpoints, the same format).
    let output = run_batch_file(&rt, &server, &std::fs::read(&requests).unwrap());
    let output_lines: Vec<&[u8]> = output.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(output_lines.len(), n);
    // Half of it first, with a line no record has.
    let mut half: Vec<u8> = output_lines[..n / 2].join(&b'\n');
    half.extend_from_slice(b"\n");
    let mut stray: Value = serde_json::from_slice(output_lines[0]).unwrap();
    stray["custom_id"] = "no-such-record".into();
    half.extend_from_slice(format!("{stray}\n").as_bytes());
    std::fs::write(s.path("half.jsonl"), &half).unwrap();
    let out = batch(&["import", task_arg, s.path("half.jsonl").to_str().unwrap()]);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("150 answer(s) imported") && stderr.contains("1 with an unknown custom_id") && stderr.contains("no-such-record"), "{stderr}");
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), n / 2, "{stderr}");
    assert!(rows.iter().all(|r| r["api_status"] == "success" && r["score_value"].is_number()), "parsed by the task's parser: {:?}", rows[0]);

    // What is left: the other half.
    let out = batch(&["export", task_arg, "--out", requests.to_str().unwrap()]);
    assert_success(&out);
    assert_eq!(read_jsonl(&requests).len(), n - n / 2, "only what is left");

    // The whole output: only the rest is added; a second import adds nothing.
    std::fs::write(s.path("results.jsonl"), &output).unwrap();
    for (round, imported) in [(1, n - n / 2), (2, 0)] {
        let out = batch(&["import", task_arg, s.path("results.jsonl").to_str().unwrap()]);
        assert_success(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{imported} answer(s) imported")), "import {round}: {stderr}");
        assert_every_record_once(&s, n);
    }
    assert_eq!(server.stats().requests as usize, n, "the only requests are the ones run-batch made");
    let out = batch(&["export", task_arg, "--out", requests.to_str().unwrap()]);
    assert_success(&out);
    assert!(read_jsonl(&requests).is_empty(), "nothing left to do");
}

#[test]
fn generate_response_runs_in_batch_mode_with_the_online_rows() {
    let (_rt, server) = sim();
    let s = Scratch::new();
    let n = 60;
    std::fs::create_dir_all(s.path("in")).unwrap();
    let chats: String = (0..n)
        .map(|i| {
            let messages = serde_json::json!([{"role": "system", "content": "You are helpful."}, {"role": "user", "content": format!("Question {i}: why is the sky blue?")}]);
            format!("{}\n", serde_json::json!({"uid": format!("u{i:04}"), "messages": messages}))
        })
        .collect();
    std::fs::write(s.path("in/chats.jsonl"), chats).unwrap();
    let model = s.write(
        "teacher.yaml",
        format!("client_config:\n  base_url: \"{}\"\n  api_key: k\n  timeout: 5\n  max_retries: 2\nchat_config:\n  model: teacher\n", server.base_url())
            .as_bytes(),
    );
    let t = s.write(
        "task.yaml",
        format!(
            "task_name: gen\ntask_type: data_distillation\ndescription: test\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: 8\n  flush_interval_secs: 0.05\nconcurrency:\n{BATCH}",
            model.display(),
            s.path("in/chats.jsonl").display(),
            s.path("out").display()
        )
        .as_bytes(),
    );
    let out = run(&t);
    assert_success(&out);
    let stats = server.batch_stats();
    assert_eq!(stats.batch_sizes, vec![n], "every conversation in one batch");
    assert_eq!(server.stats().requests as usize, n, "nothing went online");
    let rows = read_jsonl(&s.path("out/chats.jsonl"));
    assert_eq!(rows.len(), n);
    let uids: BTreeSet<&str> = rows.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), n, "each conversation once");
    for r in &rows {
        assert!(r["response"].as_str().unwrap().contains("SIMULATED"), "{r}");
        let fm = r["final_messages"].as_array().unwrap();
        assert_eq!(fm.len(), 3, "system + user + assistant: {fm:?}");
        assert_eq!(fm[2]["role"], "assistant");
    }
    let custom_ids: BTreeSet<&String> = stats.batches_per_record.keys().collect();
    assert_eq!(custom_ids.len(), n);
    // A rerun sends nothing.
    assert_success(&run(&t));
    assert_eq!(server.batch_stats().batches_created, 1);
}
