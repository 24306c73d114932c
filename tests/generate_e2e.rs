//! End-to-end response generation (distillation): the real binary against the simulated
//! endpoint on 127.0.0.1, crashes with kill -9, and failure / retry passes.

mod common;

use common::Scratch;

use common::read_jsonl as lines;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

impl Scratch {
    fn conversations(&self, n: usize) {
        std::fs::create_dir_all(self.path("in")).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(self.path("in/chats.jsonl")).unwrap());
        for i in 0..n {
            let messages = json!([
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": format!("Question number {i}: why is the sky blue?")}
            ]);
            writeln!(f, "{}", json!({"uid": format!("u{i:06}"), "messages": messages})).unwrap();
        }
    }
    fn task(&self, sim_url: &str, max_retries: u32, concurrency: usize) -> PathBuf {
        let model = self.path("teacher.yaml");
        std::fs::write(
            &model,
            format!("client_config:\n  base_url: \"{sim_url}\"\n  api_key: k\n  timeout: 5\n  max_retries: {max_retries}\n  backoff_base_ms: 5\n  backoff_max_ms: 50\nchat_config:\n  model: teacher\n"),
        )
        .unwrap();
        let task = self.path("task.yaml");
        std::fs::write(
            &task,
            format!(
                "task_name: gen\ntask_type: data_distillation\ndescription: test\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: {concurrency}\n  flush_interval_secs: 0.05\n",
                model.display(),
                self.path("in/chats.jsonl").display(),
                self.path("out").display()
            ),
        )
        .unwrap();
        task
    }
}

fn run(task: &Path) -> Output {
    Command::new(bin()).arg("run-task").arg(task).arg("--no-progress").stdin(Stdio::null()).output().unwrap()
}

fn uid_counts(rows: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r["uid"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn answers_keep_the_reference_shape_and_the_whole_conversation() {
    let s = Scratch::new();
    s.conversations(20);
    let out = run(&s.task("sim://", 3, 8));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = lines(&s.path("out/chats.jsonl"));
    assert_eq!(rows.len(), 20);
    let r = &rows[0];
    assert!(r["response"].as_str().unwrap().contains("SIMULATED"));
    let fm = r["final_messages"].as_array().unwrap();
    assert_eq!(fm.len(), 3, "system + user + assistant: {fm:?}");
    assert_eq!(fm[0]["role"], "system");
    assert_eq!(fm[2]["role"], "assistant");
    assert!(r["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(r["finish_reason"], "stop");
    assert!(lines(&s.path("out/chats_error.jsonl")).is_empty());
}

#[test]
fn kill_dash_nine_three_times_then_resume_gives_one_line_per_uid() {
    let s = Scratch::new();
    s.conversations(20_000);
    let task = s.task("sim://?latency_ms=20", 5, 256);
    for (round, wait_ms) in [350u64, 700, 1100].into_iter().enumerate() {
        let before = common::journal_bytes(&s.path("out/.modelcall"));
        let mut child = common::spawn_run_task(bin(), &task);
        // Killed `wait_ms` after this round journaled something (a loaded machine may take
        // longer than that to start sending): the kill lands mid-run.
        common::wait_for_journal_growth(&s.path("out/.modelcall"), before, &mut child);
        std::thread::sleep(Duration::from_millis(wait_ms));
        let early = child.try_wait().unwrap().is_some();
        if !early {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        eprintln!("round {round}: killed after {wait_ms} ms (finished early: {early})");
    }
    let out = run(&task);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counts = uid_counts(&lines(&s.path("out/chats.jsonl")));
    assert_eq!(counts.len(), 20_000);
    assert!(counts.values().all(|&c| c == 1), "a uid appears twice");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    assert!(summary["records"]["already_done"].as_u64().unwrap() > 0, "the last run resumed");
}

#[test]
fn twenty_percent_failures_converge_with_retry_passes() {
    let s = Scratch::new();
    s.conversations(2_000);
    // No HTTP retries: every injected 500 fails its record, which the next pass retries.
    let task = s.task("sim://?fault=500:0.2", 0, 128);
    let first = run(&task);
    // Exit 3: the run finished, with failed records in the error file.
    assert_eq!(first.status.code(), Some(3), "{}", String::from_utf8_lossy(&first.stderr));
    let failed_first = lines(&s.path("out/chats_error.jsonl")).len();
    assert!((250..=550).contains(&failed_first), "about 20 % fail: {failed_first}");
    // Success and error files never share a uid.
    let ok = uid_counts(&lines(&s.path("out/chats.jsonl")));
    let err = uid_counts(&lines(&s.path("out/chats_error.jsonl")));
    assert_eq!(ok.len() + err.len(), 2_000);
    assert!(ok.keys().all(|k| !err.contains_key(k)));
    let mut passes = 1;
    let mut last_code = first.status.code();
    while !lines(&s.path("out/chats_error.jsonl")).is_empty() {
        passes += 1;
        assert!(passes <= 12, "did not converge");
        let again = run(&task);
        last_code = again.status.code();
        assert!(matches!(last_code, Some(0) | Some(3)), "{}", String::from_utf8_lossy(&again.stderr));
    }
    assert_eq!(last_code, Some(0), "the pass that leaves no failure exits 0");
    let counts = uid_counts(&lines(&s.path("out/chats.jsonl")));
    assert_eq!(counts.len(), 2_000);
    assert!(counts.values().all(|&c| c == 1));
    eprintln!("converged after {passes} passes");
}

#[test]
fn reasoning_modes_and_first_user_compatibility() {
    let s = Scratch::new();
    s.conversations(5);
    let task = s.task("sim://?reasoning", 3, 4);
    let base = std::fs::read_to_string(&task).unwrap();
    // Separate reasoning, whole conversation.
    std::fs::write(&task, format!("{base}  reasoning: separate\n")).unwrap();
    assert!(run(&task).status.success());
    let rows = lines(&s.path("out/chats.jsonl"));
    assert_eq!(rows.len(), 5);
    assert!(!rows[0]["response"].as_str().unwrap().contains("<think>"));
    assert!(rows[0]["reasoning"].as_str().unwrap().contains("Simulated reasoning"));
    // Inline (the reference's shape) and the reference's first-message-only request, into a new folder.
    let inline = base.replace("/out\"", "/out2\"") + "  reasoning: inline\n  send: first_user\n";
    std::fs::write(&task, inline).unwrap();
    assert!(run(&task).status.success());
    let rows = lines(&s.path("out2/chats.jsonl"));
    assert!(rows[0]["response"].as_str().unwrap().starts_with("<think>\n"));
    let fm = rows[0]["final_messages"].as_array().unwrap();
    assert_eq!(fm.len(), 2);
    assert_eq!(fm[0]["role"], "user");
    assert_eq!(fm[0]["content"], "You are helpful.", "the reference sent the first message's content as the user turn");
    // A typo in a mode names the key.
    std::fs::write(&task, base + "  reasoning: seperate\n").unwrap();
    let out = run(&task);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("distillation.reasoning"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn jsonl_merge_lists_every_missing_input_and_writes_nothing() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("in")).unwrap();
    std::fs::write(s.path("in/a.jsonl"), "{\"x\":1}\n").unwrap();
    std::fs::write(s.path("groups.yaml"), "merge_groups:\n  - name: g\n    output_file: g.jsonl\n    input_files: [a.jsonl, b.jsonl, c.jsonl]\n").unwrap();
    let task = s.path("merge.yaml");
    std::fs::write(
        &task,
        format!(
            "task_name: m\ntask_type: data_distillation\ndescription: t\ndistillation:\n  step: jsonl_merge\n  merge_config_path: \"{}\"\n  base_input_dir: \"{}\"\n  base_output_dir: \"{}\"\n",
            s.path("groups.yaml").display(),
            s.path("in").display(),
            s.path("merged").display()
        ),
    )
    .unwrap();
    let out = run(&task);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("b.jsonl") && err.contains("c.jsonl") && err.contains("nothing was written"), "{err}");
    assert!(!s.path("merged/g.jsonl").exists());
}

#[test]
fn n_answers_per_conversation_each_under_its_own_key() {
    let s = Scratch::new();
    s.conversations(30);
    let task = s.task("sim://", 3, 16);
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap() + "  n: 3\n").unwrap();
    assert!(run(&task).status.success());
    let rows = lines(&s.path("out/chats.jsonl"));
    assert_eq!(rows.len(), 90);
    let counts = uid_counts(&rows);
    assert_eq!(counts.len(), 90, "keys uid#0..2 are distinct");
    assert!(counts.contains_key("u000007#2"));
    let r = rows.iter().find(|r| r["uid"] == "u000007#1").unwrap();
    assert_eq!(r["source_uid"], "u000007");
    assert_eq!(r["sample_index"], 1);
    // A second run has nothing left to do.
    assert!(run(&task).status.success());
    assert_eq!(lines(&s.path("out/chats.jsonl")).len(), 90);
}

#[test]
fn ordered_output_follows_the_input_whatever_the_completion_order() {
    let s = Scratch::new();
    s.conversations(500);
    let task = s.task("sim://?latency_ms=3", 3, 64);
    std::fs::write(&task, std::fs::read_to_string(&task).unwrap() + "  ordered: true\n  n: 2\n").unwrap();
    assert!(run(&task).status.success());
    let uids: Vec<String> = lines(&s.path("out/chats.jsonl")).iter().map(|r| r["uid"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..500).flat_map(|i| (0..2).map(move |k| format!("u{i:06}#{k}"))).collect();
    assert_eq!(uids, expected);
    assert!(!std::fs::read_to_string(s.path("out/chats.jsonl")).unwrap().contains("_modelcall_seq"));
}

#[test]
fn the_top_level_generate_response_schema_runs_the_same_engine() {
    let s = Scratch::new();
    s.conversations(12);
    s.task("sim://", 3, 4); // writes teacher.yaml
    let task = s.path("top.yaml");
    std::fs::write(
        &task,
        format!(
            "task_name: gen_top\ntask_type: generate_response\ndescription: t\ndistillation:\n  step: generate_response\n  model_config: \"{}\"\n  input_path: \"{}\"\n  output_path: \"{}\"\n  concurrency: 4\n  flush_interval: 0.05\n  resume: true\n",
            s.path("teacher.yaml").display(),
            s.path("in").display(), // a directory of *.jsonl
            s.path("out_top").display()
        ),
    )
    .unwrap();
    let out = run(&task);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(uid_counts(&lines(&s.path("out_top/chats.jsonl"))).len(), 12);
}

/// 40 system prompts of 600+ bytes, interleaved across 2,000 conversations, against a server
/// whose prefix cache holds 8: in read order most requests miss it; with
/// `concurrency.scheduling: prefix_groups` nearly all hit, and the outputs are the same.
#[test]
fn prefix_groups_send_conversations_sharing_a_system_prompt_together() {
    let hit_rate = |scheduling: &str| -> (f64, Vec<Value>) {
        let s = Scratch::new();
        std::fs::create_dir_all(s.path("in")).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(s.path("in/chats.jsonl")).unwrap());
        for i in 0..2000u64 {
            // A fixed shuffle of the 40 prompts (a multiplicative hash of the index).
            let persona = (i.wrapping_mul(2654435761) >> 7) % 40;
            let system = format!("You are assistant persona {persona}. {}", "Follow the house style guide closely. ".repeat(16));
            let messages = json!([{"role": "system", "content": system}, {"role": "user", "content": format!("Question {i}?")}]);
            writeln!(f, "{}", json!({"uid": format!("u{i:06}"), "messages": messages})).unwrap();
        }
        drop(f);
        let task = s.task("sim://?prefix_cache=8&latency_ms=2", 2, 16);
        let mut text = std::fs::read_to_string(&task).unwrap();
        text.push_str(&format!("concurrency:\n  scheduling: {scheduling}\n"));
        std::fs::write(&task, text).unwrap();
        let o = run(&task);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
        let cache = &summary["simulator"]["prefix_cache"];
        assert_eq!(cache["lookups"], 2000, "{summary}");
        let mut rows = lines(&s.path("out/chats.jsonl"));
        rows.sort_by(|a, b| a["uid"].as_str().cmp(&b["uid"].as_str()));
        (cache["hit_rate"].as_f64().unwrap(), rows)
    };
    let (in_order, rows_in_order) = hit_rate("in_order");
    let (grouped, rows_grouped) = hit_rate("prefix_groups");
    eprintln!("prefix cache hit rate: in order {in_order}, grouped {grouped}");
    assert!(in_order < 0.4, "{in_order}");
    assert!(grouped > 0.95, "{grouped}");
    let uids = |rows: &[Value]| rows.iter().map(|r| r["uid"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(uids(&rows_in_order), uids(&rows_grouped), "the same conversations answered, each once");
    assert_eq!(rows_grouped.len(), 2000);
}
