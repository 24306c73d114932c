//! The Python modelcall's other commands, so its scripts keep working: `api-call` (scoring
//! without a task file), `preprocess github|repomix` (preprocessing alone) and `pipeline` (its
//! toy length scorer). The first two write the task file the flags describe, under the
//! output folder's `.modelcall/`, and run it as `run-task` would: same engine, resume, outputs.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::exit::{exit_code, BadConfig};
use super::run_task_args::RunTaskArgs;

/// `api-call`: the Python modelcall's flags, spelled as it spelled them.
#[derive(Args, Debug)]
pub struct ApiCallArgs {
    /// Folder of the input files (JSONL or Parquet) to score.
    #[arg(long = "input_folder", value_name = "DIR")]
    pub input_folder: PathBuf,
    /// Folder the scored rows and the error rows are written to (and the generated task file, under `.modelcall/`).
    #[arg(long = "output_folder", value_name = "DIR")]
    pub output_folder: PathBuf,
    /// Folder of the per-file statistics (default: beside the outputs).
    #[arg(long = "stat_folder", value_name = "DIR")]
    pub stat_folder: Option<PathBuf>,
    /// The model config YAML (`client_config`, `chat_config`), as for a task's `model.config_path`.
    #[arg(long = "model_config_path", value_name = "MODEL_YAML")]
    pub model_config_path: PathBuf,
    /// The prompt config YAML (`prompt_template`, `output_config`), as for a task's `prompt.config_path`.
    #[arg(long = "prompt_config_path", value_name = "PROMPT_YAML")]
    pub prompt_config_path: PathBuf,
    /// Input files processed at once.
    #[arg(long = "max_concurrent_files", value_name = "N", default_value_t = 2)]
    pub max_concurrent_files: usize,
    /// Requests in flight at once, over all files.
    #[arg(long = "max_concurrent_requests", value_name = "N", default_value_t = 10)]
    pub max_concurrent_requests: usize,
    /// Accepted; there are no chunks here (requests flow continuously).
    #[arg(long = "chunk_size", value_name = "N")]
    pub chunk_size: Option<i64>,
    /// Accepted; outputs are rebuilt from the journal instead.
    #[arg(long = "parquet_save_interval", value_name = "N")]
    pub parquet_save_interval: Option<i64>,
    /// The record field holding the text to score.
    #[arg(long = "input_key", value_name = "FIELD", default_value = "text")]
    pub input_key: String,
    /// The prompt template's placeholder the text goes into.
    #[arg(long = "prompt_format_key", value_name = "KEY", default_value = "code_corpus_description_and_sample")]
    pub prompt_format_key: String,
    /// A trial run: only the first N input files (`debug.max_files`).
    #[arg(long = "debug_files", value_name = "N")]
    pub debug_files: Option<i64>,
    /// A trial run: only the first N records of each file (`debug.max_items_per_file`).
    #[arg(long = "debug_items", value_name = "N")]
    pub debug_items: Option<i64>,
    /// Do not resume: records done by an earlier run are sent again (`options.resume: false`).
    #[arg(long = "no_resume")]
    pub no_resume: bool,
    /// Remove the earlier run's outputs and journal first, then start over (`options.delete_existing`).
    #[arg(long = "delete_existing")]
    pub delete_existing: bool,
    /// Do not ask again when a reply is not in the expected format: the record fails instead
    /// (`retry.enable_format_validation_retry: false`).
    #[arg(long = "disable_format_validation_retry")]
    pub disable_format_validation_retry: bool,
    /// This run's shard index, 0-based (with --world_size): `run-task --shard I/N`.
    #[arg(long = "job_index", value_name = "I")]
    pub job_index: Option<u32>,
    /// The number of shards (with --job_index): `run-task --shard I/N`.
    #[arg(long = "world_size", value_name = "N")]
    pub world_size: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum PreprocessCommand {
    /// Raw GitHub code rows (`builtin:github-raw-code`).
    Github(PreprocessArgs),
    /// Repomix XML / RenderGit CXML packs in language folders (`builtin:repo-xml`).
    Repomix(PreprocessArgs),
}

#[derive(Args, Debug)]
pub struct PreprocessArgs {
    /// Folder of the raw inputs (GitHub code rows, or Repomix/RenderGit packs in language folders).
    #[arg(long = "raw_path", value_name = "DIR")]
    pub raw_path: PathBuf,
    /// Folder the preprocessed JSONL records are written to.
    #[arg(long = "output_dir", value_name = "DIR")]
    pub output_dir: PathBuf,
    /// Folder of the per-file statistics. Required, as by the Python modelcall; preprocessing
    /// resumes from its journal, not from stat files.
    #[arg(long = "stat_dir", value_name = "DIR")]
    pub stat_dir: PathBuf,
    /// Accepted; plugin calls run on every core.
    #[arg(long = "num_proc", value_name = "N")]
    pub num_proc: Option<usize>,
    /// Longest record kept, in tokens; longer ones are cut or split by the preprocessor.
    #[arg(long = "max_tokens", value_name = "N", default_value_t = 32768)]
    pub max_tokens: u64,
    /// Only the first N input files (-1: all).
    #[arg(long = "num_files", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub num_files: i64,
    /// Accepted; nothing is sampled.
    #[arg(long, value_name = "N")]
    pub seed: Option<i64>,
    /// Only these languages (folder names, e.g. python rust); default: all.
    #[arg(long, value_name = "LANG", num_args = 1..)]
    pub languages: Vec<String>,
}

/// `pipeline INPUT OUTPUT`: the Python modelcall's demo scorer.
#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// The JSONL file to score (relative to --root).
    pub input: PathBuf,
    /// The JSONL file to write: each input line with a `score` added (relative to --root).
    pub output: PathBuf,
    /// `local` only (for TOS paths use run-task with tos:// paths).
    #[arg(long, value_name = "FS", default_value = "local")]
    pub fs: String,
    /// Root of relative paths (default: $DATA_ROOT, else the current folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() || p.to_string_lossy().contains("://") {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

fn quoted(p: &Path) -> String {
    serde_json::to_string(&absolute(p).to_string_lossy()).expect("a string serializes")
}

/// Writes the task file under `<output>/.modelcall/` and runs it with `extra` run-task flags.
fn run_generated(output: &Path, name: &str, yaml: String, extra: &[String]) -> ExitCode {
    let dir = absolute(output).join(".modelcall");
    let task = dir.join(name);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&task, yaml)) {
        return exit_code(Err(BadConfig(format!("cannot write {}: {e}", task.display())).into()), false);
    }
    eprintln!("task file for these flags: {} (run it with `modelcall run-task` next time)", task.display());
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunTaskArgs,
    }
    let argv = std::iter::once("run-task".to_string()).chain(std::iter::once(task.display().to_string())).chain(extra.iter().cloned());
    match <Wrapper as clap::Parser>::try_parse_from(argv) {
        Ok(w) => super::run_task::run(w.args),
        Err(e) => exit_code(Err(BadConfig(e.to_string()).into()), false),
    }
}

pub fn api_call(a: ApiCallArgs) -> ExitCode {
    let mut yaml = format!(
        "task_name: api_call\ntask_type: data_scoring\ndescription: written by `modelcall api-call`\ndata:\n  input_folder: {}\n  output_folder: {}\n  input_key: {}\n  prompt_format_key: {}\n  output_format: parquet\n",
        quoted(&a.input_folder),
        quoted(&a.output_folder),
        serde_json::to_string(&a.input_key).unwrap(),
        serde_json::to_string(&a.prompt_format_key).unwrap(),
    );
    if let Some(s) = &a.stat_folder {
        yaml.push_str(&format!("  stat_folder: {}\n", quoted(s)));
    }
    yaml.push_str(&format!(
        "model:\n  config_path: {}\nprompt:\n  config_path: {}\nconcurrency:\n  max_concurrent_files: {}\n  max_concurrent_requests: {}\n",
        quoted(&a.model_config_path),
        quoted(&a.prompt_config_path),
        a.max_concurrent_files,
        a.max_concurrent_requests
    ));
    if a.disable_format_validation_retry {
        yaml.push_str("retry:\n  enable_format_validation_retry: false\n");
    }
    if a.debug_files.is_some() || a.debug_items.is_some() {
        yaml.push_str("debug:\n  enabled: true\n");
        if let Some(n) = a.debug_files {
            yaml.push_str(&format!("  max_files: {n}\n"));
        }
        if let Some(n) = a.debug_items {
            yaml.push_str(&format!("  max_items_per_file: {n}\n"));
        }
    }
    yaml.push_str(&format!("options:\n  resume: {}\n  delete_existing: {}\n", !a.no_resume, a.delete_existing));
    let mut extra = Vec::new();
    if let (Some(i), Some(n)) = (a.job_index, a.world_size) {
        extra.extend(["--job_index".to_string(), i.to_string(), "--world_size".to_string(), n.to_string()]);
    }
    run_generated(&a.output_folder, "api_call.yaml", yaml, &extra)
}

pub fn preprocess(cmd: PreprocessCommand) -> ExitCode {
    let (script, a) = match cmd {
        PreprocessCommand::Github(a) => ("github_raw_code", a),
        PreprocessCommand::Repomix(a) => ("repo_xml", a),
    };
    // A scoring task stopped after its preprocessing stage: its model and prompt are never used.
    let model = absolute(&a.output_dir).join(".modelcall/preprocess-model.yaml");
    let prompt = absolute(&a.output_dir).join(".modelcall/preprocess-prompt.yaml");
    let _ = std::fs::create_dir_all(model.parent().unwrap());
    let _ = std::fs::write(&model, "client_config:\n  base_url: \"sim://\"\nchat_config:\n  model: unused\n");
    let _ = std::fs::write(&prompt, "prompt_template:\n  prompt_text: \"{text}\"\noutput_config:\n  require_json: false\n");
    let mut yaml = format!(
        "task_name: preprocess_{script}\ntask_type: data_scoring\ndescription: written by `modelcall preprocess`\npreprocess:\n  enabled: true\n  script_type: {script}\n  input_folder: {}\n  output_folder: {}\n  max_tokens: {}\n  num_files: {}\n",
        quoted(&a.raw_path),
        quoted(&a.output_dir),
        a.max_tokens,
        a.num_files
    );
    if !a.languages.is_empty() {
        yaml.push_str(&format!("  languages: {}\n", serde_json::to_string(&a.languages).unwrap()));
    }
    yaml.push_str(&format!(
        "data:\n  input_folder: {}\n  output_folder: {}\n  stat_folder: {}\n  input_key: text\nmodel:\n  config_path: {}\nprompt:\n  config_path: {}\n",
        quoted(&a.raw_path),
        quoted(&a.output_dir.join(".modelcall/scoring-not-run")),
        quoted(&a.stat_dir),
        quoted(&model),
        quoted(&prompt)
    ));
    run_generated(&a.output_dir, "preprocess.yaml", yaml, &["--stage".into(), "preprocess".into()])
}

/// The reference's `DummyScorer`: `score = min(5, max(0, len(text) / 100))` on every JSONL line.
pub fn pipeline(a: PipelineArgs) -> ExitCode {
    if a.fs != "local" {
        let e = BadConfig(format!("--fs {}: this command reads local files; for object storage use run-task with s3:// or tos:// paths", a.fs));
        return exit_code(Err(e.into()), false);
    }
    let root = a.root.or_else(|| std::env::var_os("DATA_ROOT").map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("."));
    let at = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { root.join(p) };
    let (input, output) = (at(&a.input), at(&a.output));
    let result = (|| -> anyhow::Result<u64> {
        let reader = std::io::BufReader::new(std::fs::File::open(&input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?);
        let mut out = modelcall_io::AtomicFile::create(&output)?;
        let mut n = 0;
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let mut obj: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("{} line {}: {e}", input.display(), i + 1))?;
            let text = match obj.get("text") {
                Some(serde_json::Value::String(s)) => s.chars().count(),
                Some(v) => v.to_string().chars().count(),
                None => 0,
            };
            obj.insert("score".into(), serde_json::json!((text as f64 / 100.0).clamp(0.0, 5.0)));
            writeln!(out, "{}", serde_json::Value::Object(obj))?;
            n += 1;
        }
        out.commit()?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            eprintln!("scored {n} record(s) into {} (the reference's demo scorer: score = text length / 100, at most 5)", output.display());
            ExitCode::SUCCESS
        }
        Err(e) => exit_code(Err(e), false),
    }
}
