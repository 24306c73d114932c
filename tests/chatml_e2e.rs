//! chatml_conversion end to end: one shipped sample dataset per format style (one of them in
//! the Hugging Face folder layout) converted by the real binary through `builtin:chatml`,
//! compared with golden outputs in `tests/golden/chatml/`.

mod common;

use common::copy_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out)
        } else {
            out.push(p)
        }
    }
}

fn rows(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Runs a task; `expected` is the exit code (3: finished, with the sample's deliberate bad line
/// in an error output).
fn run(root: &Path, task: &str, expected: i32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_modelcall")).current_dir(root).args(["run-task", task]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(expected), "{text}");
    text
}

#[test]
fn every_format_style_matches_its_golden_output() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("configs"), &scratch.path().join("configs"));
    run(scratch.path(), "configs/tasks/data_distillation/chatml_conversion.yaml", 3);
    let golden_root = repo.join("tests/golden/chatml");
    let mut golden = Vec::new();
    files(&golden_root, &mut golden);
    assert_eq!(golden.len(), 7, "one golden file per style and split");
    for g in golden {
        let rel = g.strip_prefix(&golden_root).unwrap();
        let got = scratch.path().join("output/distillation/chatml").join(rel);
        assert_eq!(rows(&got), rows(&g), "{}", rel.display());
    }
    // The bad line of the prompt_text sample is reported with its file and line, not dropped.
    let errors = rows(&scratch.path().join("output/distillation/chatml/prompt_text/prompt_text-train.errors.jsonl"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["cause"], "invalid_json");
    // continue_mode: complete outputs are skipped on a second run.
    let again = run(scratch.path(), "configs/tasks/data_distillation/chatml_conversion.yaml", 0);
    assert!(again.contains("skip") && !again.contains("converted"), "{again}");
}

#[test]
fn with_system_prepends_the_system_prompt_only_where_missing() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("configs"), &scratch.path().join("configs"));
    run(scratch.path(), "configs/tasks/data_distillation/chatml_conversion_with_system.yaml", 3);
    let out = scratch.path().join("output/distillation/chatml");
    let pr = rows(&out.join("prompt_response/prompt_response-train-with_system.jsonl"));
    assert_eq!(pr[0]["messages"][0]["role"], "system");
    assert_eq!(pr[0]["messages"][0]["content"], "You are a helpful assistant and an expert coder.");
    let sg = rows(&out.join("sharegpt-chats/demo-org_sharegpt-chats-main-train-with_system.jsonl"));
    assert_eq!(sg[0]["messages"][0]["content"], "You are kind.", "an existing system turn is kept, not doubled");
    assert_eq!(sg[0]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "system").count(), 1);
}

/// Split names come from the dataset card's `configs:` block (as the reference's
/// `get_dataset_split_names` read them), and a dataset missing from the input folder is
/// skipped with a warning while the others are converted (as the reference did).
#[test]
fn card_split_names_and_a_missing_dataset_skipped() {
    let root = tempfile::tempdir().unwrap();
    let raw = root.path().join("raw/demo-org/sft-card");
    for (f, n) in [("SFT/code/code_v1.jsonl", 2), ("SFT/code/code_v2.jsonl", 1), ("SFT/math/math_v1.jsonl", 3)] {
        let p = raw.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let lines: String = (0..n)
            .map(|i| format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"{f} {i}\"}}, {{\"role\": \"assistant\", \"content\": \"ok\"}}]}}\n"))
            .collect();
        std::fs::write(p, lines).unwrap();
    }
    std::fs::write(
        raw.join("README.md"),
        "---\nconfigs:\n- config_name: SFT\n  data_files:\n  - split: code\n    path: SFT/code/*.jsonl\n  - split: math\n    path: SFT/math/*.jsonl\n---\n# demo\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("datasets.yaml"),
        "demo-org/sft-card:\n  configs: [SFT]\n  format_style: messages\n  column_mapping: {messages: messages}\nmissing-org/not-downloaded:\n  format_style: messages\n  column_mapping: {messages: messages}\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("task.yaml"),
        "task_name: card\ntask_type: data_distillation\ndistillation:\n  step: chatml_conversion\n  dataset_config_path: datasets.yaml\n  input_dir: raw\n  output_dir: out\n",
    )
    .unwrap();
    let text = run(root.path(), "task.yaml", 0);
    assert!(text.contains("warning: dataset `missing-org/not-downloaded`") && text.contains("skipped"), "{text}");
    let out = root.path().join("out/sft-card");
    assert_eq!(rows(&out.join("demo-org_sft-card-SFT-code.jsonl")).len(), 3, "both code files are split `code`");
    assert_eq!(rows(&out.join("demo-org_sft-card-SFT-math.jsonl")).len(), 3);
}
