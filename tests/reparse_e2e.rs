//! Changing the parser, not the bill (issue 25): stored replies parsed again with a changed
//! score parser, offline; `modelcall reparse` into another folder; the response cache across
//! output folders and concurrent runs. The real binary, the built-in plugins and a fixture
//! parser, and the simulated endpoint (`serve-sim` in its own process where requests are
//! counted across runs).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{read_jsonl, write_records, Scratch};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn modelcall(args: &[&str]) -> Output {
    Command::new(bin()).args(args).arg("--no-progress").stdin(Stdio::null()).output().unwrap()
}

fn run(task: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run-task", task.to_str().unwrap()];
    args.extend_from_slice(extra);
    modelcall(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn summary(folder: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(folder.join("run_summary.json")).unwrap()).unwrap()
}

/// A scoring task over `input/` (id `r000000`…) whose prompt is `prompt.yaml` (written by the
/// caller), against the simulator with every reply `reply`.
fn task_with_prompt(s: &Scratch, reply: &str) -> PathBuf {
    s.write("replies.jsonl", serde_json::json!({"default": reply}).to_string().as_bytes());
    let url = format!("sim://?replies={}", s.path("replies.jsonl").display());
    let task = s.scoring_task(&url, 4, "", "");
    let yaml = std::fs::read_to_string(&task).unwrap();
    let prompt_line = yaml.lines().find(|l| l.trim_start().starts_with("config_path:") && l.contains("prompts")).unwrap().to_string();
    std::fs::write(&task, yaml.replace(&prompt_line, &format!("  config_path: \"{}\"", s.path("prompt.yaml").display()))).unwrap();
    task
}

fn prompt(s: &Scratch, output_config: &str) {
    let text = format!("prompt_template:\n  system_text: \"Judge the text.\"\n  prompt_text: \"Text: {{text}}\"\noutput_config:\n{output_config}");
    s.write("prompt.yaml", text.as_bytes());
}

#[test]
fn a_changed_output_config_re_parses_the_stored_replies_with_no_request() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 12);
    prompt(&s, "  require_json: true\n  json_keys: [score]\n  checks:\n    score: {type: integer, min: 1, max: 5}\n");
    let task = task_with_prompt(&s, "```json\n{\"score\": 4, \"tone\": \"calm\"}\n```");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&s.path("out"))["requests"], 12);
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert!(rows.iter().all(|r| r.get("tone").is_none()), "tone is not a verdict key yet");

    // A new verdict key and a default: the parser changed, the prompt and the request did not.
    prompt(&s, "  require_json: true\n  json_keys: [score, tone, topic]\n  json_default_values: {topic: \"none\"}\n  checks:\n    score: {type: integer, min: 1, max: 5}\n");
    let dry = run(&task, &["--dry-run"]);
    let shown = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(shown.contains("to send 0") && shown.contains("re-parse 12"), "{shown}");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("re-parsed 12 from stored replies (parser changed), 0 requests"), "{}", stderr(&o));
    let sum = summary(&s.path("out"));
    assert_eq!(sum["requests"], 0, "{sum}");
    assert_eq!(sum["records"]["reparsed"], 12);
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!((r["tone"].as_str(), r["topic"].as_str(), r["score"].as_i64()), (Some("calm"), Some("none"), Some(4)), "{r}");
    }

    // A stricter range: the same stored replies now fail, with their reply kept; nothing sent.
    prompt(&s, "  require_json: true\n  json_keys: [score, tone, topic]\n  json_default_values: {topic: \"none\"}\n  checks:\n    score: {type: integer, min: 1, max: 3}\n");
    let o = run(&task, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(summary(&s.path("out"))["requests"], 0);
    assert!(read_jsonl(&s.path("out/data.jsonl")).is_empty(), "no verdict outside the new range stays");
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 12);
    assert!(errors.iter().all(|e| e["cause"] == "reparse_failed" && e["api_return"].as_str().unwrap().contains("\"score\": 4")), "{errors:?}");
    // Unchanged since: nothing parsed again, nothing sent.
    let o = run(&task, &[]);
    assert_eq!(summary(&s.path("out"))["requests"], 0, "{}", stderr(&o));
    assert_eq!(summary(&s.path("out"))["records"]["reparsed"], 0);
}

#[test]
fn replies_whose_re_asks_ran_out_are_recovered_by_a_fixed_parser_last_reply_first() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 5);
    prompt(&s, "  require_json: true\n  json_keys: [score]\n  checks:\n    score: {type: integer, min: 1, max: 5}\n");
    // Every reply is out of range: two re-asks each, then parse_retries_exhausted.
    let task = task_with_prompt(&s, "{\"score\": 9}");
    let o = run(&task, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(summary(&s.path("out"))["requests"], 15, "3 replies each");
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert!(errors.iter().all(|e| e["cause"] == "parse_retries_exhausted" && e["replies"].as_array().map(Vec::len) == Some(3)), "every reply kept: {errors:?}");

    prompt(&s, "  require_json: true\n  json_keys: [score]\n  checks:\n    score: {type: integer, min: 1, max: 10}\n");
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sum = summary(&s.path("out"));
    assert_eq!((sum["requests"].as_u64(), sum["records"]["recovered"].as_u64()), (Some(0), Some(5)), "{sum}");
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["score"] == 9 && r["parse_attempts"] == 3), "the last reply parsed: {rows:?}");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty());
}

#[test]
fn a_fixed_parser_plugin_recovers_its_failures_from_the_stored_replies() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 6);
    s.write("replies.jsonl", b"{\"match\": \"Record number 2 \", \"reply\": \"PANIC 4\"}\n{\"default\": \"3\"}\n");
    let url = format!("sim://?replies={}", s.path("replies.jsonl").display());
    let judge =
        |config: &str| format!("plugins:\n  judge:\n    role: score-parser\n    path: \"{}\"\n    config: {config}\n", modelcall_test_plugins::PARSER_PANIC);
    let task = s.scoring_task(&url, 2, "", &judge("{}"));
    let o = run(&task, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(read_jsonl(&s.path("out/data.errors.jsonl")).len(), 1);

    let task = s.scoring_task(&url, 2, "", &judge("{fixed: true}"));
    let o = run(&task, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sum = summary(&s.path("out"));
    assert_eq!((sum["requests"].as_u64(), sum["records"]["recovered"].as_u64()), (Some(0), Some(1)), "{sum}");
    assert_eq!(read_jsonl(&s.path("out/data.jsonl")).len(), 6);
}

#[test]
fn reparse_into_another_folder_compares_two_parsers_without_a_request() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 10);
    prompt(&s, "  require_json: true\n  json_keys: [score]\n  checks:\n    score: {type: integer, min: 1, max: 5}\n");
    let task = task_with_prompt(&s, "```json\n{\"score\": 2, \"alt\": 5}\n```");
    assert!(run(&task, &[]).status.success());
    let before = std::fs::read(s.path("out/data.jsonl")).unwrap();

    // The other parser reads `alt` as the score.
    let config = r#"{"require_json": true, "json_keys": ["alt"], "score_key": "alt"}"#;
    let b = s.path("out_b");
    let o =
        modelcall(&["reparse", task.to_str().unwrap(), "--parser", "builtin:json-score", "--parser-config", config, "--output-folder", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&b)["requests"], 0);
    assert_eq!(std::fs::read(s.path("out/data.jsonl")).unwrap(), before, "the task's own outputs are untouched");
    let rows = read_jsonl(&b.join("data.jsonl"));
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r["score_value"] == 5.0), "{rows:?}");

    let o = Command::new(bin()).args(["report", s.path("out").to_str().unwrap(), b.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The rows of a JSONL output by id, without what differs between two runs of one answer.
fn answers(path: &Path) -> std::collections::BTreeMap<String, Value> {
    read_jsonl(path)
        .into_iter()
        .map(|mut r| {
            let m = r.as_object_mut().unwrap();
            for volatile in ["latency_ms", "attempts"] {
                m.remove(volatile);
            }
            (m["id"].as_str().unwrap().to_string(), r)
        })
        .collect()
}

#[test]
fn a_second_output_folder_with_the_cache_sends_nothing_and_writes_the_same_rows() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 40);
    let (sim, url) = common::serve_sim(bin(), 5);
    let cache = s.path("cache.sqlite");
    let extra = format!("cache:\n  path: \"{}\"\n  max_size: 50MB\n", cache.display());
    let task = s.scoring_task(&url, 8, "", &extra);
    assert!(run(&task, &[]).status.success());
    assert_eq!(summary(&s.path("out"))["requests"], 40);

    let o = run(&task, &["--output-folder", s.path("out2").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sum = summary(&s.path("out2"));
    assert_eq!((sum["requests"].as_u64(), sum["cached"].as_u64()), (Some(0), Some(40)), "{sum}");
    assert_eq!(sum["tokens"]["total"], 0, "cached answers are not billed: {sum}");
    assert!(stderr(&o).contains("answered from the response cache: 40"), "{}", stderr(&o));
    assert_eq!(answers(&s.path("out/data.jsonl")), answers(&s.path("out2/data.jsonl")));

    // --no-cache: sent again.
    let o = run(&task, &["--output-folder", s.path("out3").to_str().unwrap(), "--no-cache"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&s.path("out3"))["requests"], 40);
    assert_eq!(common::served(sim), 80, "the server saw the first run and the --no-cache run only");

    let stats = Command::new(bin()).args(["cache", "stats", "--path", cache.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&stats.stdout).contains("40 answer(s)"), "{}", String::from_utf8_lossy(&stats.stdout));
    // A damaged cache stops the run before any request, saying how to clear it.
    std::fs::write(&cache, vec![9u8; 4096]).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", cache.display()));
    let o = run(&task, &["--output-folder", s.path("out4").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("modelcall cache clear"), "{}", stderr(&o));
    let cleared = Command::new(bin()).args(["cache", "clear", "--path", cache.to_str().unwrap()]).output().unwrap();
    assert!(cleared.status.success(), "{}", String::from_utf8_lossy(&cleared.stderr));
}

#[test]
fn concurrent_runs_sharing_a_cache_keep_it_whole_and_every_record_once() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 400);
    let cache = s.path("shared.sqlite");
    let extra = format!("cache:\n  path: \"{}\"\n", cache.display());
    let task = s.scoring_task("sim://?latency_ms=2", 32, "", &extra);
    let spawn = |out: &str| {
        Command::new(bin())
            .args(["run-task", task.to_str().unwrap(), "--no-progress", "--output-folder", s.path(out).to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs: Vec<_> = ["a", "b", "c"].iter().map(|o| spawn(o)).collect();
    for r in runs {
        let o = r.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for out in ["a", "b", "c"] {
        let rows = read_jsonl(&s.path(&format!("{out}/data.jsonl")));
        let ids: std::collections::BTreeSet<String> = rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        assert_eq!((rows.len(), ids.len()), (400, 400), "{out}");
    }
    let sent: u64 = ["a", "b", "c"].iter().map(|o| summary(&s.path(o))["requests"].as_u64().unwrap()).sum();
    let cached: u64 = ["a", "b", "c"].iter().map(|o| summary(&s.path(o))["cached"].as_u64().unwrap()).sum();
    assert_eq!(sent + cached, 1200, "every answer either sent or cached");
    let stats = Command::new(bin()).args(["cache", "stats", "--path", cache.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&stats.stdout).contains("400 answer(s)"), "{}", String::from_utf8_lossy(&stats.stdout));
}

#[test]
fn a_changed_reasoning_handling_re_derives_generation_outputs_with_no_request() {
    let s = Scratch::new();
    let body: String = (0..8)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"uid": format!("u{i}"), "messages": [{"role": "user", "content": format!("Question {i}: why is the sea salty?")}]})
            )
        })
        .collect();
    s.write("in/chats.jsonl", body.as_bytes());
    s.write("teacher.yaml", b"client_config:\n  base_url: \"sim://?reasoning=true\"\nchat_config:\n  model: teacher\n");
    let task = |reasoning: &str| {
        s.write(
            "gen.yaml",
            format!(
                "task_name: gen\ntask_type: data_distillation\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: 4\n  reasoning: {reasoning}\n",
                s.path("teacher.yaml").display(),
                s.path("in/chats.jsonl").display(),
                s.path("gen").display()
            )
            .as_bytes(),
        )
    };
    let o = run(&task("separate"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&s.path("gen"))["requests"], 8);
    let rows = read_jsonl(&s.path("gen/chats.jsonl"));
    let reasoning_of: std::collections::BTreeMap<String, String> =
        rows.iter().map(|r| (r["uid"].as_str().unwrap().to_string(), r["reasoning"].as_str().expect("separate keeps reasoning apart").to_string())).collect();
    let answer_of: std::collections::BTreeMap<String, String> =
        rows.iter().map(|r| (r["uid"].as_str().unwrap().to_string(), r["response"].as_str().unwrap().to_string())).collect();

    let o = run(&task("inline"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sum = summary(&s.path("gen"));
    assert_eq!((sum["requests"].as_u64(), sum["records"]["reparsed"].as_u64()), (Some(0), Some(8)), "{sum}");
    for r in read_jsonl(&s.path("gen/chats.jsonl")) {
        let uid = r["uid"].as_str().unwrap();
        assert_eq!(r["response"].as_str().unwrap(), format!("<think>\n{}\n</think>\n\n{}", reasoning_of[uid], answer_of[uid]), "{r}");
        assert!(r.get("reasoning").is_none());
        assert_eq!(r["final_messages"].as_array().unwrap().last().unwrap()["content"], r["response"]);
    }

    let o = run(&task("drop"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&s.path("gen"))["requests"], 0);
    for r in read_jsonl(&s.path("gen/chats.jsonl")) {
        assert_eq!(r["response"].as_str().unwrap(), answer_of[r["uid"].as_str().unwrap()], "{r}");
    }
}
