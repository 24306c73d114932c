//! Every shipped task file under `configs/tasks/` runs end to end against the simulated endpoint
//! (`--model configs/models/sim.yaml`), in a scratch copy of `configs/` so relative paths resolve
//! as they do for a user in the repository root; a second run resumes and sends nothing.

mod common;

use common::copy_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn task_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            task_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

fn summary_of(root: &Path, stdout_stderr: &str) -> Value {
    let line = stdout_stderr.lines().find_map(|l| l.strip_prefix("summary: ")).expect("a summary line");
    serde_json::from_str(&std::fs::read_to_string(root.join(line.trim())).unwrap()).unwrap()
}

#[test]
fn every_shipped_task_runs_against_the_simulated_endpoint_and_resumes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("configs"), &scratch.path().join("configs"));
    let mut tasks = Vec::new();
    task_files(&scratch.path().join("configs/tasks"), &mut tasks);
    tasks.sort();
    tasks.retain(|t| !t.to_string_lossy().contains("/templates/"));
    assert!(tasks.len() >= 2, "{tasks:?}");
    for task in &tasks {
        let rel = task.strip_prefix(scratch.path()).unwrap();
        let run = || {
            let out = Command::new(env!("CARGO_BIN_EXE_modelcall"))
                .current_dir(scratch.path())
                .arg("run-task")
                .arg(rel)
                .args(["--model", "configs/models/sim.yaml", "--no-progress"])
                .output()
                .unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            // Some shipped samples hold deliberate bad lines: those runs finish with exit 3
            // ("finished with failed records"), every other line done.
            let code = out.status.code();
            assert!(code == Some(0) || (code == Some(3) && text.contains("error output")), "{} failed ({code:?}):\n{text}", rel.display());
            text
        };
        let first = run();
        if first.contains("converted `") {
            // chatml_conversion makes no requests: its golden outputs are checked in chatml_e2e.
            assert!(run().contains("skip"), "{}: a second run skips complete outputs", rel.display());
            continue;
        }
        if first.contains("merged `") {
            // jsonl_merge makes no requests: check the merged file instead, and that a rerun
            // rewrites it identically.
            let line = first.lines().find(|l| l.starts_with("merged `")).unwrap();
            let out = line.rsplit(" in ").next().unwrap().split(';').next().unwrap().trim();
            let merged = std::fs::read_to_string(scratch.path().join(out)).unwrap();
            assert!(merged.lines().count() > 0, "{}: {line}", rel.display());
            run();
            assert_eq!(std::fs::read_to_string(scratch.path().join(out)).unwrap(), merged);
            continue;
        }
        let s = summary_of(scratch.path(), &first);
        // A retry task sharing its output with an earlier task may find nothing failed: it
        // sends nothing and counts every record as not retried.
        let count = |s: &serde_json::Value, k: &str| s["records"][k].as_u64().unwrap_or(0);
        let touched = count(&s, "scored") + count(&s, "already_done") + count(&s, "not_retried");
        assert!(touched > 0, "{}: {s}", rel.display());
        assert_eq!(s["records"]["failed"], 0, "{}: {s}", rel.display());
        assert_eq!(s["run"]["simulated"], true);
        let second = run();
        let s = summary_of(scratch.path(), &second);
        assert_eq!(s["records"]["scored"], 0, "{}: the second run resumes: {s}", rel.display());
        assert!(count(&s, "already_done") + count(&s, "not_retried") > 0, "{}: {s}", rel.display());
    }
}

#[test]
fn stage_preprocess_runs_alone_and_a_later_run_scores_from_it() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("configs"), &scratch.path().join("configs"));
    let task = "configs/tasks/data_scoring/repomix_quality_rating.yaml";
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_modelcall"))
            .current_dir(scratch.path())
            .args(["run-task", task, "--model", "configs/models/sim.yaml", "--no-progress"])
            .args(extra)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        text
    };
    let first = run(&["--stage", "preprocess"]);
    assert!(first.contains("6 input(s) now"), "{first}");
    let pre = scratch.path().join("output/repomix_quality_rating/preprocessed");
    let rust = std::fs::read_to_string(pre.join("Rust.jsonl")).unwrap();
    assert_eq!(rust.lines().count(), 4, "two Rust repositories, each packed twice");
    assert!(!first.contains("summary:"), "nothing scored in --stage preprocess");
    let second = run(&[]);
    assert!(second.contains("6 done before") && second.contains("scored 6"), "{second}");
}
