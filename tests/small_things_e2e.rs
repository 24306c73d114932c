//! Issue 29's small things, end to end with the real binary: the merge's duplicate message, the
//! warning for an id field no record has, preprocessing errors in the scoring summary, the
//! simulator's plain-text answers, error rows' `record_json`, and `plugin check`'s schema next to
//! a config error.

mod common;

use common::{read_jsonl, write_records, Scratch};

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn modelcall(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn run(task: &Path) -> Output {
    modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Item 4: without `dedup_key` the merge keeps every repeat (as the Python tool), and says so.
#[test]
fn jsonl_merge_says_repeats_are_kept() {
    let s = Scratch::new();
    s.write("in/a.jsonl", b"{\"x\":1}\n{\"x\":2}\n{\"x\":3}\n{\"x\":4}\n");
    s.write("in/b.jsonl", b"{\"x\":1}\n{\"x\":2}\n{\"x\":5}\n{\"x\":6}\n");
    s.write("groups.yaml", b"merge_groups:\n  - name: g\n    output_file: g.jsonl\n    input_files: [a.jsonl, b.jsonl]\n");
    let task = s.write(
        "merge.yaml",
        format!(
            "task_name: m\ntask_type: data_distillation\ndescription: t\ndistillation:\n  step: jsonl_merge\n  merge_config_path: \"{}\"\n  base_input_dir: \"{}\"\n  base_output_dir: \"{}\"\n",
            s.path("groups.yaml").display(),
            s.path("in").display(),
            s.path("merged").display()
        )
        .as_bytes(),
    );
    let o = run(&task);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_jsonl(&s.path("merged/g.jsonl")).len(), 8);
    let err = stderr(&o);
    assert!(err.contains("2 repeated record(s) kept"), "{err}");
    assert!(!err.contains("dropped"), "{err}");
}

/// Item 5: an `id_field` no record has is named once, with the file.
#[test]
fn an_id_field_no_record_has_is_warned_about_once() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 30);
    let task = s.scoring_task("sim://", 4, "", "");
    let yaml = std::fs::read_to_string(&task).unwrap().replace("id_field: id", "id_field: uid");
    std::fs::write(&task, yaml).unwrap();
    let o = run(&task);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("has the id field `uid`")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("data.jsonl") && warnings[0].contains("content hash"), "{err}");
    // Records that have the field: no warning.
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 5);
    let o = run(&s.scoring_task("sim://", 4, "", ""));
    assert!(!stderr(&o).contains("has the id field"), "{}", stderr(&o));
}

/// Item 7: preprocessing's error rows are counted in the scoring run's summary, with their file,
/// and listed in the end block.
#[test]
fn preprocessing_errors_are_counted_in_the_scoring_summary() {
    let s = Scratch::new();
    s.write("in/data.jsonl", b"{\"id\":\"a\",\"text\":\"Plain prose about rivers.\"}\nnot json\n{\"id\":\"b\",\"text\":\"More prose about bread.\"}\n");
    let task = common::preprocess_task(s.dir.path(), &s.path("in"), "builtin:universal", "    config: {}\n");
    let o = run(&task);
    let err = stderr(&o);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).expect(&err)).unwrap();
    let pre = &summary["preprocess_errors"];
    assert_eq!(pre["count"], 1, "{summary}");
    let files = pre["files"].as_array().unwrap();
    assert!(files.len() == 1 && files[0].as_str().unwrap().ends_with("data.preprocess.errors.jsonl"), "{summary}");
    // The end block lists it with the other error files.
    let end = err.rsplit("errors:").next().unwrap();
    assert!(end.contains("data.preprocess.errors.jsonl (1 row(s))"), "{err}");
}

/// Item 8: quoted keys in a prompt that asks for no JSON get a plain-text answer.
#[test]
fn the_simulator_answers_a_prompt_without_json_in_text() {
    let s = Scratch::new();
    let model = s.model("sim://");
    let prompt = s.write(
        "prompt.yaml",
        b"prompt_template:\n  system_text: You rate texts.\n  prompt_text: |\n    Rate this text. Reply with two lines,\n    \"score\": a number from 1 to 5\n    \"reason\": one sentence\n\n    Text: {text}\n",
    );
    write_records(&s.path("input/data.jsonl"), 2);
    let task = s.scoring_task_for(&model, 2, "", "");
    let yaml = std::fs::read_to_string(&task).unwrap();
    let shipped = yaml.lines().find(|l| l.contains("en_corpus_quality_v1.yaml")).unwrap().to_string();
    let yaml = yaml.replace(&shipped, &format!("  config_path: \"{}\"", prompt.display()));
    // The reply is not JSON: the built-in JSON parser fails each record with the text it got.
    std::fs::write(&task, yaml).unwrap();
    let o = run(&task);
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 2, "{}", stderr(&o));
    for e in &errors {
        let reply = e["api_return"].as_str().unwrap_or_default();
        assert!(reply.starts_with("Simulated answer") && !reply.contains('{'), "{e}");
    }
}

/// Item 9: a failed record is kept as its JSON text, so error files of records with mixed
/// field types still have one column type.
#[test]
fn error_rows_keep_the_record_as_json_text() {
    let s = Scratch::new();
    s.write("input/data.jsonl", b"{\"id\":\"a\",\"text\":\"ok text\"}\n{\"id\":\"b\",\"other\":1}\n{\"id\":\"c\",\"other\":\"x\"}\n");
    let o = run(&s.scoring_task("sim://", 2, "", ""));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(e.get("record").is_none(), "{e}");
        let record: Value = serde_json::from_str(e["record_json"].as_str().expect("record_json is a string")).unwrap();
        assert_eq!(record["id"], e["key"], "{e}");
    }
}

/// Item 10: `plugin check` shows the config schema next to a config error.
#[test]
fn plugin_check_shows_the_schema_next_to_a_config_error() {
    let s = Scratch::new();
    let bad = s.write("bad.yaml", b"require_json: \"surely\"\n");
    let o = modelcall(&["plugin", "check", "builtin:json-score", "--config", bad.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("config schema:") && out.contains("\"require_json\""), "{out}\n{}", stderr(&o));
    let err = stderr(&o);
    // The host checks the config against that schema: the key's line in the file, the expectation.
    assert!(err.contains(&format!("{}:1:1: `require_json`: expected boolean, got string \"surely\"", bad.display())), "{err}");
    assert!(!err.contains("config schema:"), "{err}");
}
