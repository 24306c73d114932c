//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Copies a folder tree (e.g. `configs/` into a scratch folder, so tasks run with relative
/// paths as they do for a user in the repository root).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The JSON lines of a file; empty when the file does not exist.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()).unwrap_or_default()
}

/// Writes `n` small scoring records (`id` r000000.., a short `text`) as JSON lines to `path`.
pub fn write_records(path: &Path, n: usize) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let record = serde_json::json!({"id": format!("r{i:06}"), "text": format!("Record number {i} talks about rivers and bread.")});
        writeln!(f, "{record}").unwrap();
    }
}

/// A temporary folder for one test; each test file adds the task builders it needs.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `model.yaml`: a model config at `base_url` (a `sim://` URL, usually) with a fixed test key.
    pub fn model(&self, base_url: &str) -> PathBuf {
        let yaml = format!(
            "client_config:\n  base_url: \"{base_url}\"\n  api_key: \"sk-test-secret-1234\"\n  timeout: 5\n  max_retries: 8\nchat_config:\n  model: \"m\"\n  temperature: 0\n"
        );
        self.write("model.yaml", yaml.as_bytes())
    }

    /// `task.yaml`: a scoring task over `input/` writing JSONL to `out/` with the shipped English
    /// prompt and `model.yaml` at `base_url`; `data_extra` lines go under `data:` (indented by
    /// the caller), `extra` at the end.
    pub fn scoring_task(&self, base_url: &str, concurrency: usize, data_extra: &str, extra: &str) -> PathBuf {
        let model = self.model(base_url);
        self.scoring_task_for(&model, concurrency, data_extra, extra)
    }

    /// [`Scratch::scoring_task`] with a model config written by the caller (e.g. an endpoint pool).
    pub fn scoring_task_for(&self, model: &Path, concurrency: usize, data_extra: &str, extra: &str) -> PathBuf {
        let prompt = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
        let yaml = format!(
            "task_name: e2e\ntask_type: data_scoring\ndescription: e2e test\n\
             data:\n  input_folder: \"{input}\"\n  output_folder: \"{out}\"\n  stat_folder: \"{stat}\"\n  input_key: text\n  prompt_format_key: text\n  id_field: id\n  output_format: jsonl\n{data_extra}\
             model:\n  config_path: \"{model}\"\nprompt:\n  config_path: \"{prompt}\"\n\
             concurrency:\n  max_concurrent_requests: {concurrency}\n\
             retry:\n  max_retries: 2\n{extra}",
            input = self.path("input").display(),
            out = self.path("out").display(),
            stat = self.path("stat").display(),
            model = model.display(),
            prompt = prompt.display(),
        );
        self.write("task.yaml", yaml.as_bytes())
    }

    /// Writes `content` at `rel` (folders created) and returns its path.
    pub fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
}

/// Starts `modelcall run-task TASK --no-progress` with no terminal and no output (for tests
/// that kill it part-way).
pub fn spawn_run_task(bin: &str, task: &Path) -> std::process::Child {
    use std::process::Stdio;
    std::process::Command::new(bin)
        .arg("run-task")
        .arg(task)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A sim:// scoring task in `dir` over `input` (out/, pre/ beside it) whose preprocessor is the
/// plugin at `plugin`; `plugin_extra` is appended under the plugin (e.g. its `limits:`).
pub fn preprocess_task(dir: &Path, input: &Path, plugin: &str, plugin_extra: &str) -> PathBuf {
    std::fs::write(dir.join("model.yaml"), "client_config:\n  base_url: \"sim://\"\nchat_config:\n  model: m\n").unwrap();
    let prompt = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let task = dir.join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "task_name: pre\ndata:\n  input_folder: \"{in_}\"\n  output_folder: \"{out}\"\n  input_key: text\n  output_format: jsonl\n\
             model:\n  config_path: \"{model}\"\nprompt:\n  config_path: \"{prompt}\"\n\
             preprocess:\n  output_folder: \"{pre}\"\n\
             plugins:\n  pre:\n    role: preprocessor\n    path: \"{plugin}\"\n{plugin_extra}",
            in_ = input.display(),
            out = dir.join("out").display(),
            pre = dir.join("pre").display(),
            model = dir.join("model.yaml").display(),
            prompt = prompt.display(),
        ),
    )
    .unwrap();
    task
}

/// `modelcall serve-sim` in its own process (it outlives runs killed against it, and counts the
/// requests of several runs); returns it and its base URL once it listens.
pub fn serve_sim(bin: &str, latency_ms: u64) -> (std::process::Child, String) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(bin)
        .args(["serve-sim", "--port", &port.to_string(), "--latency-ms", &latency_ms.to_string(), "--exit-after-secs", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("listening") => break,
            Some(_) => continue,
            None => panic!("serve-sim ended before listening"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://127.0.0.1:{port}/v1"))
}

/// Stops a [`serve_sim`] with SIGINT and returns the chat requests it served.
pub fn served(mut sim: std::process::Child) -> u64 {
    unsafe { libc::kill(sim.id() as libc::pid_t, libc::SIGINT) };
    let mut text = String::new();
    std::io::Read::read_to_string(sim.stderr.as_mut().unwrap(), &mut text).unwrap();
    sim.wait().unwrap();
    let line = text.lines().find(|l| l.contains("served")).unwrap_or_else(|| panic!("{text}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
}

/// Bytes of every journal directly in `dir` (0 when there is none yet).
pub fn journal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal.jsonl"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Waits (at most 60 s) until the journals in `dir` hold more than `before` bytes or `child`
/// ended: a kill test's kill then lands after the run started sending, however slowly a loaded
/// machine started it.
pub fn wait_for_journal_growth(dir: &Path, before: u64, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while journal_bytes(dir) <= before && std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
