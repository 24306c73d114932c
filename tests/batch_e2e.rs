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
