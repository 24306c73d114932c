//! Sharded runs end to end: each shard reads about 1/N of the bytes (a shard plan of
//! line-aligned byte ranges), `status` tells what is done, `merge` joins the shards into the
//! unsharded outputs and verifies every record is there once, and the merged folder resumes
//! like an unsharded run.

mod common;

use common::{read_jsonl, Scratch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn modelcall(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

impl Scratch {
    fn records(&self, rel: &str, from: usize, n: usize) {
        let body: String = (from..from + n).map(|i| format!("{}\n", json!({"id": format!("r{i:06}"), "text": format!("record {i} about rivers")}))).collect();
        self.write(rel, body.as_bytes());
    }

    fn shard_task(&self) -> PathBuf {
        self.write("model.yaml", b"client_config:\n  base_url: \"sim://\"\n  api_key: \"k\"\nchat_config:\n  model: \"m\"\n");
        let prompt = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
        let yaml = format!(
            "task_name: shards\ndata:\n  input_folder: \"{}\"\n  output_folder: \"{}\"\n  input_key: text\n  prompt_format_key: text\n  output_format: jsonl\n\
             model:\n  config_path: \"{}\"\nprompt:\n  config_path: \"{}\"\nconcurrency:\n  max_concurrent_requests: 32\n",
            self.path("input").display(),
            self.path("out").display(),
            self.path("model.yaml").display(),
            prompt.display()
        );
        self.write("task.yaml", yaml.as_bytes())
    }
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn id_counts(rows: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn four_shards_read_a_quarter_each_then_merge_verifies_and_the_folder_resumes() {
    let s = Scratch::new();
    s.records("input/big.jsonl", 0, 3000);
    s.records("input/small.jsonl", 3000, 40);
    let task = s.shard_task();
    let task = task.to_str().unwrap();
    let total_bytes: u64 = ["input/big.jsonl", "input/small.jsonl"].iter().map(|f| std::fs::metadata(s.path(f)).unwrap().len()).sum();

    for i in 0..4 {
        let o = modelcall(&["run-task", task, "--shard", &format!("{i}/4"), "--no-progress"]);
        assert!(o.status.success(), "shard {i}: {}", text(&o));
        let sum = summary(&s.path(&format!("out/run_summary.shard-{i}-of-4.json")));
        let read = sum["records"]["input_bytes_read"].as_u64().unwrap();
        assert!(read <= total_bytes / 4 + total_bytes / 50, "shard {i} read {read} of {total_bytes} bytes");
        assert!(read > 0, "every shard has a share");
        if i == 1 {
            // Another N for the same folder is refused before anything is sent.
            let o = modelcall(&["run-task", task, "--shard", "0/3", "--no-progress"]);
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert!(text(&o).contains("into 4 shards, not 3"), "{}", text(&o));
            // So is an unsharded run before the merge.
            let o = modelcall(&["run-task", task, "--no-progress"]);
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert!(text(&o).contains("not merged yet"), "{}", text(&o));
        }
    }
    let o = modelcall(&["status", task]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("completed"), "{}", text(&o));

    let o = modelcall(&["merge", task]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("verified"), "{}", text(&o));
    let big = id_counts(&read_jsonl(&s.path("out/big.jsonl")));
    let small = id_counts(&read_jsonl(&s.path("out/small.jsonl")));
    assert_eq!(big.len(), 3000);
    assert_eq!(small.len(), 40);
    assert!(big.values().chain(small.values()).all(|&c| c == 1));
    assert_eq!(summary(&s.path("out/run_summary.json"))["records"]["scored"], 3040);

    // The merged folder resumes like an unsharded run: nothing is sent again.
    let o = modelcall(&["run-task", task, "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    let again = summary(&s.path("out/run_summary.json"));
    assert_eq!(again["requests"], 0, "{again}");
    assert_eq!(again["records"]["already_done"], 3040);
}

#[test]
fn merge_refuses_unfinished_shards_and_with_force_names_what_is_missing() {
    let s = Scratch::new();
    s.records("input/data.jsonl", 0, 800);
    let task = s.shard_task();
    let task = task.to_str().unwrap();
    for i in [0, 2] {
        let o = modelcall(&["run-task", task, "--shard", &format!("{i}/3"), "--no-progress"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = modelcall(&["status", task]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("1/3 (not started)"), "{}", text(&o));
    let o = modelcall(&["merge", task]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("shard 1/3: not started"), "{}", text(&o));
    assert!(!s.path("out/data.jsonl").exists(), "nothing merged");

    let o = modelcall(&["merge", task, "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("are in no shard's output (shard 1/3:"), "{}", text(&o));
    let merged = read_jsonl(&s.path("out/data.jsonl")).len();
    assert!(merged > 0 && merged < 800, "{merged}");
    // An unsharded run sends just the missing shard's records.
    let o = modelcall(&["run-task", task, "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    let sum = summary(&s.path("out/run_summary.json"));
    assert_eq!(sum["requests"].as_u64().unwrap() as usize, 800 - merged, "{sum}");
    let ids = id_counts(&read_jsonl(&s.path("out/data.jsonl")));
    assert_eq!(ids.len(), 800);
    assert!(ids.values().all(|&c| c == 1));
    // status reads the merged folder and its unsharded completion: completed, exit 0 (not the
    // forced merge's "stopped").
    let o = modelcall(&["status", task]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("state: completed"), "{}", text(&o));
    let o = modelcall(&["status", s.path("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// One large `.gz` over 4 shards: a compressed stream cannot be cut at a line, so 3 of the 4
/// shards would read nothing. Refused before anything is sent, by `run-task --shard` and by
/// `submit`, saying why and what to do; the same data decompressed splits into four shards of
/// about a quarter of the records each.
#[test]
fn a_single_large_gz_over_four_shards_is_refused_with_what_to_do() {
    use std::io::Write;
    let s = Scratch::new();
    let task = s.shard_task();
    let task = task.to_str().unwrap();
    // ~13 MB of varied text that gzip keeps at ~6 MB; long records keep the run short.
    const N: usize = 16_000;
    std::fs::create_dir_all(s.path("input")).unwrap();
    let gz = s.path("input/big.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..N {
        let words: Vec<String> = (0..110)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:x}", x % 0xffffff)
            })
            .collect();
        writeln!(enc, "{}", json!({"id": format!("r{i:06}"), "text": words.join(" ")})).unwrap();
    }
    enc.finish().unwrap();
    let size = std::fs::metadata(&gz).unwrap().len();
    assert!((5 << 20..=20 << 20).contains(&size), "the .gz is {size} bytes");

    let o = modelcall(&["run-task", task, "--shard", "1/4", "--no-progress"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("big.jsonl.gz is compressed") && said.contains("would leave shard(s)") && said.contains("gunzip -k"), "{said}");
    assert!(!s.path("out/.modelcall/shards.json").exists(), "no plan is written for a refused split");
    assert!(!s.path("out/.modelcall/runs").exists() || std::fs::read_dir(s.path("out/.modelcall/runs")).unwrap().count() == 0, "nothing ran");
    let o = modelcall(&["submit", task, "--scheduler", "slurm", "--shards", "4", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--shards 4:") && text(&o).contains("big.jsonl.gz is compressed"), "{}", text(&o));

    // Decompressed, as the message says: four shards within ±10 % of a quarter of the records.
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()), &mut plain).unwrap();
    std::fs::write(s.path("input/big.jsonl"), plain).unwrap();
    std::fs::remove_file(&gz).unwrap();
    for i in 0..4 {
        let o = modelcall(&["run-task", task, "--shard", &format!("{i}/4"), "--no-progress"]);
        assert!(o.status.success(), "shard {i}: {}", text(&o));
        let rows = read_jsonl(&s.path(&format!("out/.modelcall/shards/big.shard-{i}-of-4.jsonl")));
        let rows = if rows.is_empty() { read_jsonl(&s.path(&format!("out/big.shard-{i}-of-4.jsonl"))) } else { rows };
        let quarter = N / 4;
        assert!(rows.len().abs_diff(quarter) <= quarter / 10, "shard {i} has {} records of {N}", rows.len());
    }
}

#[test]
fn the_reference_batch_and_merge_task_types_run_as_sharded_generation_per_model() {
    let s = Scratch::new();
    let chats: String =
        (0..300).map(|i| format!("{}\n", json!({"uid": format!("u{i:04}"), "messages": [{"role": "user", "content": format!("question {i}")}]}))).collect();
    s.write("data/chats.jsonl", chats.as_bytes());
    for m in ["teacher-a", "teacher-b"] {
        s.write(&format!("models/{m}.yaml"), b"client_config:\n  base_url: \"sim://\"\n  api_key: \"k\"\nchat_config:\n  model: \"m\"\n");
    }
    let batch = s.write(
        "batch.yaml",
        format!(
            "task_name: opc\ntask_type: batch_distillation_submit\n\
             data_split:\n  input_file: \"{data}\"\n  num_chunks: 3\n\
             batch_submit:\n  output_base_dir: \"{out}\"\n  concurrency: 8\n  siflow: {{resource_pool: \"eval-cpu\"}}\n  models:\n    - {{config_path: \"{a}\", alias: a}}\n    - {{config_path: \"{b}\", alias: b}}\n\
             execution:\n  dry_run: false\n",
            data = s.path("data/chats.jsonl").display(),
            out = s.path("out").display(),
            a = s.path("models/teacher-a.yaml").display(),
            b = s.path("models/teacher-b.yaml").display(),
        )
        .as_bytes(),
    );
    let batch = batch.to_str().unwrap();
    // The SiFlow block is reported with its Slurm/Kubernetes equivalents.
    let o = modelcall(&["submit", batch, "--scheduler", "slurm", "--shards", "3", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("SiFlow is not available") && text(&o).contains("--shard \"$shard/3\""), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("--output-folder"), "each model keeps its own folder");
    for i in 0..3 {
        let o = modelcall(&["run-task", batch, "--shard", &format!("{i}/3"), "--no-progress"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let merge = s.write(
        "merge.yaml",
        format!(
            "task_name: opc-merge\ntask_type: merge_distillation_results\nmerge:\n  output_base_dir: \"{}\"\n  models:\n    - {{name: teacher-a}}\n    - {{name: teacher-b}}\n",
            s.path("out").display()
        )
        .as_bytes(),
    );
    let o = modelcall(&["run-task", merge.to_str().unwrap(), "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    for m in ["teacher-a", "teacher-b"] {
        let rows = read_jsonl(&s.path(&format!("out/{m}/chats.jsonl")));
        let mut uids: Vec<&str> = rows.iter().map(|r| r["uid"].as_str().unwrap()).collect();
        uids.sort();
        uids.dedup();
        assert_eq!((rows.len(), uids.len()), (300, 300), "{m}");
    }
    // Merged: the batch resumes like an unsharded run, sending nothing.
    let o = modelcall(&["run-task", batch, "--no-progress"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&s.path("out/teacher-b/run_summary.json"))["requests"], 0);
}
