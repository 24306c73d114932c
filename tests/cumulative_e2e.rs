//! What an output folder has spent over every run: each run (and shard run) keeps a record under
//! `.modelcall/runs/`, the budget counts them all (a rerun does not spend it again), and
//! `run_summary.json` (also after `modelcall merge`) carries the `cumulative` figures.

mod common;

use common::{write_records, Scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn modelcall(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().expect("running modelcall")
}

fn run(task: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run-task", task.to_str().unwrap(), "--no-progress"];
    args.extend_from_slice(extra);
    modelcall(&args)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn run_records(out: &Path) -> Vec<(String, Value)> {
    let mut records: Vec<(String, Value)> = std::fs::read_dir(out.join(".modelcall/runs"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .map(|e| (e.file_name().to_string_lossy().to_string(), serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records
}

/// Rows of an output file (lines, not parsed: only their number matters here).
fn scored_rows(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0)
}

/// A scoring task over `input/` at the simulator with a known price per token.
fn priced_task(s: &Scratch, concurrency: usize, extra: &str) -> PathBuf {
    let task = s.scoring_task("sim://?latency_ms=5", concurrency, "", extra);
    let model = std::fs::read_to_string(s.path("model.yaml")).unwrap() + "pricing: {prompt_per_million: 2.0, completion_per_million: 8.0}\n";
    std::fs::write(s.path("model.yaml"), model).unwrap();
    task
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `budget.max_tokens` counts what the folder spent over its runs: the first run stops
/// part-way, a second run sends nothing and says spent/limit, a raised budget goes on.
#[test]
fn a_budget_counts_every_run_of_the_output_folder() {
    // What the whole task takes, measured on a twin folder.
    let twin = Scratch::new();
    write_records(&twin.path("input/data.jsonl"), 40);
    let task = priced_task(&twin, 2, "");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let whole = summary(&twin.path("out/run_summary.json"));
    let per_record = whole["tokens"]["total"].as_u64().unwrap() / 40;
    assert!(per_record > 0, "{whole}");
    let limit = per_record * 10; // about a quarter of the records

    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 40);
    let task = priced_task(&s, 2, &format!("budget:\n  max_tokens: {limit}\n"));
    let first = run(&task, &[]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    assert!(text(&first).contains("the budget is spent"), "{}", text(&first));
    let sum1 = summary(&s.path("out/run_summary.json"));
    let done1 = scored_rows(&s.path("out/data.jsonl"));
    assert!(done1 > 0 && done1 < 40, "{done1} of 40 after the first run: {sum1}");
    let spent1 = sum1["tokens"]["total"].as_u64().unwrap();
    assert!(spent1 >= limit, "{sum1}");

    // The budget is already spent: nothing is sent, and the message says spent/limit.
    let second = run(&task, &[]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let sum2 = summary(&s.path("out/run_summary.json"));
    assert_eq!(sum2["requests"], 0, "{sum2}");
    assert_eq!(sum2["status"], "stopped", "{sum2}");
    let expected = format!(
        "the budget is spent: {} of {} tokens used by this output folder over 1 run (budget.max_tokens); raise it in {} and run the same command again to go on",
        grouped(spent1),
        grouped(limit),
        task.display()
    );
    assert!(text(&second).contains(&expected), "expected {expected:?} in:\n{}", text(&second));
    assert_eq!(scored_rows(&s.path("out/data.jsonl")), done1, "nothing more was scored");
    assert_eq!(sum2["cumulative"]["runs"], 2, "{sum2}");
    assert_eq!(sum2["cumulative"]["total_tokens"].as_u64(), Some(spent1), "{sum2}");

    // A raised budget goes on from where the folder stopped.
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap().replace(&format!("max_tokens: {limit}"), "max_tokens: 100000000")).unwrap();
    let third = run(&task, &[]);
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(scored_rows(&s.path("out/data.jsonl")), 40);
    let sum3 = summary(&s.path("out/run_summary.json"));
    assert_eq!(sum3["requests"].as_u64().unwrap() as usize, 40 - done1, "{sum3}");
    assert_eq!(sum3["cumulative"]["runs"], 3, "{sum3}");
    assert_eq!(sum3["cumulative"]["requests"].as_u64(), Some(sum1["requests"].as_u64().unwrap() + sum3["requests"].as_u64().unwrap()), "{sum3}");
    assert!(sum3["cumulative"]["cost"].as_f64().unwrap() > sum3["cost"].as_f64().unwrap(), "{sum3}");
    let records = run_records(&s.path("out"));
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|(_, r)| r["status"] != "running"), "{records:?}");
}

/// A rerun of a finished task sends nothing, keeps the folder's cumulative requests and tokens,
/// and the report still shows what was paid and the latency of the run that sent the requests.
#[test]
fn a_rerun_of_a_finished_task_keeps_the_cumulative_figures() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 30);
    let task = priced_task(&s, 4, "");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let first = summary(&s.path("out/run_summary.json"));
    assert_eq!(first["requests"], 30);
    assert_eq!(first["cumulative"]["requests"], 30, "{first}");

    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let again = summary(&s.path("out/run_summary.json"));
    assert_eq!(again["requests"], 0, "this run's own view: {again}");
    let c = &again["cumulative"];
    assert_eq!(c["runs"], 2, "{again}");
    assert_eq!(c["requests"], 30, "{again}");
    assert_eq!(c["prompt_tokens"], first["tokens"]["prompt"], "{again}");
    assert_eq!(c["completion_tokens"], first["tokens"]["completion"], "{again}");
    assert!(c["latency_ms"]["p50"].as_u64().is_some(), "{again}");
    let records = run_records(&s.path("out"));
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].1["requests"], 30);
    assert_eq!(records[1].1["requests"], 0);
    assert_eq!(records[1].1["status"], "completed");

    let o = modelcall(&["report", s.path("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(s.path("out/report.html")).unwrap();
    assert!(page.contains("over every run of this folder"), "the report shows the cumulative figures");
    assert!(page.contains(&c["total_tokens"].as_u64().unwrap().to_string()), "the report shows the tokens paid");
}

/// Two shards, one run twice (stopped by its budget, then resubmitted): the merged summary's
/// cumulative requests are every request the simulator served over the three runs.
#[test]
fn merge_sums_the_run_records_of_every_shard() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 60);
    let task = priced_task(&s, 2, "budget:\n  max_tokens: 600\n");
    let mut served = 0u64;
    let shard0 = s.path("out/run_summary.shard-0-of-2.json");
    let shard1 = s.path("out/run_summary.shard-1-of-2.json");

    let o = run(&task, &["--shard", "0/2"]);
    assert_eq!(o.status.code(), Some(1), "the budget stops shard 0 part-way: {}", text(&o));
    let sum = summary(&shard0);
    served += sum["simulator"]["requests"].as_u64().unwrap();
    assert!(sum["requests"].as_u64().unwrap() > 0, "{sum}");

    // Resubmitted with the budget raised, it finishes; shard 1 runs once.
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap().replace("max_tokens: 600", "max_tokens: 100000000")).unwrap();
    let o = run(&task, &["--shard", "0/2"]);
    assert!(o.status.success(), "{}", text(&o));
    served += summary(&shard0)["simulator"]["requests"].as_u64().unwrap();
    let o = run(&task, &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", text(&o));
    served += summary(&shard1)["simulator"]["requests"].as_u64().unwrap();
    assert_eq!(served, 60, "no faults: one request per record");
    assert_eq!(run_records(&s.path("out")).len(), 3);

    let o = modelcall(&["merge", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let merged = summary(&s.path("out/run_summary.json"));
    assert_eq!(merged["cumulative"]["runs"], 3, "{merged}");
    assert_eq!(merged["cumulative"]["requests"].as_u64(), Some(served), "{merged}");
    assert_eq!(merged["requests"].as_u64(), Some(served), "the merged requests count every run: {merged}");
    let tokens = merged["cumulative"]["total_tokens"].as_u64().unwrap();
    assert_eq!(merged["tokens"]["total"].as_u64(), Some(tokens), "{merged}");
    assert!(merged["cumulative"]["cost"].as_f64().unwrap() > 0.0, "{merged}");
}

/// A run killed with SIGKILL leaves its record with what it had spent a few seconds before; the
/// next run counts it.
#[test]
fn a_killed_run_leaves_its_spend_on_disk() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 400);
    let task = s.scoring_task("sim://?latency_ms=40", 2, "", "");
    let mut child = common::spawn_run_task(bin(), &task);
    std::thread::sleep(std::time::Duration::from_millis(4500));
    child.kill().unwrap(); // SIGKILL: no end of run is written
    child.wait().unwrap();
    let records = run_records(&s.path("out"));
    assert_eq!(records.len(), 1, "{records:?}");
    let killed = &records[0].1;
    assert_eq!(killed["status"], "running", "{killed}");
    let sent = killed["requests"].as_u64().unwrap();
    assert!(sent > 0 && killed["prompt_tokens"].as_u64().unwrap() > 0, "{killed}");

    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let sum = summary(&s.path("out/run_summary.json"));
    assert_eq!(sum["cumulative"]["runs"], 2, "{sum}");
    assert!(sum["cumulative"]["requests"].as_u64().unwrap() >= sent + sum["requests"].as_u64().unwrap(), "{sum}");
}
