//! The typed task file: one struct per section, with the reference's key names.
//!
//! Loading (key checks, env, interpolation, linked configs) is in [`crate::load`]. Every key is
//! optional here unless the loader says otherwise; accessors apply the reference's defaults and
//! fix its bugs where noted (e.g. `-1` debug limits mean "no limit").

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::model::ModelConfig;
use crate::paths;
use crate::prompt::PromptConfig;
use crate::schema::IgnoredKey;
use crate::step::DistillationStep;
pub use crate::task_options::{BudgetSection, ConcurrencyMode, DuplicateIds, PreprocessInputKind, Scheduling};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskType {
    DataScoring,
    DataDistillation,
    /// The reference's top-level `generate_response` (same engine as the distillation step,
    /// its own key names; see [`crate::distill`]).
    GenerateResponse,
    /// The reference's SiFlow batch: sharded generate_response runs, one per model.
    BatchSubmit,
    /// The reference's merge of a batch's chunk outputs.
    MergeResults,
}

impl TaskType {
    pub const NAMES: [&'static str; 5] = ["data_scoring", "data_distillation", "generate_response", "batch_distillation_submit", "merge_distillation_results"];

    pub fn parse(name: &str) -> Option<TaskType> {
        Some(match name {
            "data_scoring" => TaskType::DataScoring,
            "data_distillation" => TaskType::DataDistillation,
            "generate_response" => TaskType::GenerateResponse,
            "batch_distillation_submit" => TaskType::BatchSubmit,
            "merge_distillation_results" => TaskType::MergeResults,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::DataScoring => "data_scoring",
            TaskType::DataDistillation => "data_distillation",
            TaskType::GenerateResponse => "generate_response",
            TaskType::BatchSubmit => "batch_distillation_submit",
            TaskType::MergeResults => "merge_distillation_results",
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `data.output_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Jsonl,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DataSection {
    pub input_folder: Option<String>,
    /// One input file instead of a folder (new here).
    pub input_file: Option<String>,
    /// May hold `{timestamp}`, `{task_name}`, `{run_index}`; see `LoadedTask::output_folder`.
    pub output_folder: Option<String>,
    pub stat_folder: Option<String>,
    pub input_key: Option<String>,
    pub prompt_format_key: Option<String>,
    /// The record field that identifies a record (new here; records without it get a content hash).
    pub id_field: Option<String>,
    /// `parquet` (default, the reference's only format) or `jsonl`; checked by the loader.
    pub output_format: Option<String>,
    /// Glob of input names inside `input_folder` (new here; the reference took `*.parquet` + `*.jsonl`).
    pub file_pattern: Option<String>,
    /// Lines longer than this many bytes go to the error output as `record_too_large`
    /// instead of being read (default 32 MiB).
    pub max_record_bytes: Option<usize>,
    /// Score records whose `input_key` field is a number, list or object by its JSON text
    /// (default: such records fail as `wrong_input_type`).
    pub stringify_input: Option<bool>,
    /// Read the input folder's sub-folders too (default false: only its own files, with a
    /// warning counting those below); `in/a/b.jsonl` writes outputs named `a__b`.
    pub recursive: Option<bool>,
}

impl DataSection {
    pub fn output_format(&self) -> OutputFormat {
        match self.output_format.as_deref() {
            Some("jsonl") => OutputFormat::Jsonl,
            _ => OutputFormat::Parquet,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PathSection {
    pub config_path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConcurrencySection {
    pub max_concurrent_files: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    /// Accepted, ignored (reported).
    pub chunk_size: Option<i64>,
    /// Accepted, ignored (reported).
    pub parquet_save_interval: Option<i64>,
    /// Optional request-rate cap (new here).
    pub requests_per_minute: Option<u32>,
    /// Tokens a minute across requests (prompt estimated with o200k, plus max_tokens).
    pub tokens_per_minute: Option<u32>,
    /// `fixed` (default: `max_concurrent_requests` in flight) or `adaptive` (found from
    /// latency and throttling, `max_concurrent_requests` the ceiling).
    pub mode: Option<ConcurrencyMode>,
    /// `mode: batch`: the most requests and bytes of one batch file (defaults 50,000 and
    /// 200 MB), seconds between polls (first, then doubling up to 60 s), rounds for records a
    /// batch left unanswered (default 3).
    pub batch_max_requests: Option<usize>,
    pub batch_max_bytes: Option<u64>,
    pub batch_poll_secs: Option<f64>,
    pub batch_max_rounds: Option<u32>,
    /// `in_order` (default) or `prefix_groups`.
    pub scheduling: Option<Scheduling>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RetrySection {
    pub enable_format_validation_retry: Option<bool>,
    /// Never read by the reference (its format retry was fixed at 3 attempts); here it is the
    /// number of re-asks when a reply does not parse.
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DebugSection {
    pub enabled: bool,
    pub max_files: Option<i64>,
    pub max_items_per_file: Option<i64>,
}

impl DebugSection {
    /// Files to process at most: only when `enabled`, and a negative value means no limit (the
    /// reference sliced `files[:-1]`, dropping the last file).
    pub fn max_files_limit(&self) -> Option<usize> {
        self.enabled.then_some(self.max_files).flatten().filter(|n| *n >= 0).map(|n| n as usize)
    }

    /// Records per file at most, likewise (the reference processed zero records for `-1`).
    pub fn max_items_limit(&self) -> Option<u64> {
        self.enabled.then_some(self.max_items_per_file).flatten().filter(|n| *n >= 0).map(|n| n as u64)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OptionsSection {
    pub main_resume: Option<bool>,
    pub resume: Option<bool>,
    pub delete_existing: Option<bool>,
    pub preprocess_resume: Option<bool>,
    /// Exit 0 even when some records ended in the error output (default: exit 3 then).
    pub allow_failures: Option<bool>,
    /// What to do with a record whose id was already seen: `keep` (under `id#2`, …), `skip`, `error`.
    pub on_duplicate_id: Option<DuplicateIds>,
    /// Share of scored records asked a second time (0..1), for the report's test-retest
    /// agreement (the second verdict is kept as `audit_score`).
    pub audit_sample: Option<f64>,
}

impl OptionsSection {
    /// `main_resume`, else `resume`, else true (the reference's order).
    pub fn resume(&self) -> bool {
        self.main_resume.or(self.resume).unwrap_or(true)
    }

    pub fn delete_existing(&self) -> bool {
        self.delete_existing.unwrap_or(false)
    }

    pub fn allow_failures(&self) -> bool {
        self.allow_failures.unwrap_or(false)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EnvironmentSection {
    /// An env file (`KEY=VALUE` lines) whose values `${VAR}` sees, over the environment.
    pub config_path: Option<String>,
    pub tos_config_path: Option<String>,
    /// Seconds; the model's HTTP timeout when its `client_config.timeout` is absent.
    pub timeout: Option<f64>,
    pub conda_env: Option<String>,
    pub api_provider: Option<String>,
}

/// `execution:` (the reference's batch task; honoured here by every task type).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecutionSection {
    /// `true`: the run is a dry run, as with `--dry-run` (the plan printed, nothing sent or written).
    pub dry_run: Option<bool>,
    /// Accepted when true (shards are byte ranges, always on); `false` is refused by the loader.
    pub auto_split: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LoggingSection {
    pub level: Option<String>,
    pub batch_size: Option<i64>,
    pub progress_report_interval: Option<f64>,
    pub show_progress: Option<bool>,
    pub log_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DistributedSection {
    pub enabled: Option<bool>,
    /// Shards when `--world_size`/`--shard` are not given.
    pub world_size: Option<u32>,
    /// Independent passes, each into `output_folder` with `{run_index}` = 1..=num_runs.
    pub num_runs: Option<u32>,
}

impl DistributedSection {
    pub fn num_runs(&self) -> u32 {
        self.num_runs.unwrap_or(1).max(1)
    }
}

/// `preprocess.script_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptType {
    #[default]
    Universal,
    GithubRawCode,
    RepoXml,
    TripletFilter,
}

impl ScriptType {
    pub const NAMES: [&'static str; 4] = ["universal", "github_raw_code", "repo_xml", "triplet_filter"];
}

/// The `preprocess:` block (reference §2.2, §6).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PreprocessSection {
    pub enabled: bool,
    pub script_type: ScriptType,
    /// Default: the resolved `data.input_folder`.
    pub input_folder: Option<String>,
    /// Default: `data.input_folder` + `_preprocessed`; scoring then reads from here.
    pub output_folder: Option<String>,
    /// Default 32768; the output column is `content_truncate_{max_tokens / 1024}k`.
    pub max_tokens: Option<u32>,
    pub num_proc: Option<u32>,
    pub seed: Option<i64>,
    /// -1 (default): all files; overridden by `debug.max_files` when debugging.
    pub num_files: Option<i64>,
    pub batch_size: Option<i64>,
    pub languages: Option<Vec<String>>,
    pub group_by_language: Option<bool>,
    pub source_name: Option<String>,
    pub field_mapping: Option<Value>,
    pub filters: Option<Value>,
    pub transformations: Option<Value>,
    pub file_pattern: Option<String>,
    /// What the preprocessor is given: `files` (each file's bytes, e.g. packs) or `records`
    /// (each JSONL/Parquet record). Default: records when the input folder holds record
    /// files, else files.
    pub input: Option<PreprocessInputKind>,
}

impl PreprocessSection {
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(32768)
    }

    /// Where preprocessing writes, and scoring then reads.
    pub fn output_folder_for(&self, data_input_folder: &str) -> String {
        self.output_folder.clone().unwrap_or_else(|| format!("{}_preprocessed", data_input_folder.trim_end_matches('/')))
    }
}

/// One entry of the `plugins:` block.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginEntry {
    /// The entry's key in the block.
    #[serde(skip)]
    pub name: String,
    /// `preprocessor`, `prompt-builder` or `score-parser` (checked by the loader).
    pub role: String,
    /// A `.wasm` component path or `builtin:<name>`.
    pub path: String,
    /// Passed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: Value,
    /// Checked by the plugin runtime.
    #[serde(default)]
    pub limits: Value,
    /// Lower-case hex; when given the runtime refuses a component with another hash.
    #[serde(default)]
    pub sha256: Option<String>,
}

pub const PLUGIN_ROLES: [&str; 3] = ["preprocessor", "prompt-builder", "score-parser"];

#[derive(Debug, Clone, Deserialize)]
pub struct TaskConfig {
    pub task_name: String,
    #[serde(skip, default = "default_type")]
    pub task_type: TaskType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub model: PathSection,
    #[serde(default)]
    pub prompt: PathSection,
    #[serde(default)]
    pub concurrency: ConcurrencySection,
    #[serde(default)]
    pub retry: RetrySection,
    #[serde(default)]
    pub debug: DebugSection,
    #[serde(default)]
    pub options: OptionsSection,
    #[serde(default)]
    pub environment: EnvironmentSection,
    #[serde(default)]
    pub logging: LoggingSection,
    #[serde(default)]
    pub distributed: DistributedSection,
    /// Stop the run cleanly (exit 1, resumable) once it has used this much.
    #[serde(default)]
    pub budget: BudgetSection,
    #[serde(default)]
    pub execution: ExecutionSection,
    #[serde(default)]
    pub preprocess: PreprocessSection,
    /// `output:`: bounds on what is stored.
    #[serde(default)]
    pub output: OutputSection,
    /// The parsed `distillation:` section, for `data_distillation` and `generate_response` tasks.
    #[serde(skip)]
    pub distillation: Option<DistillationStep>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginEntry>,
}

/// `output:`: bounds on what a result row stores.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct OutputSection {
    /// Bytes kept of any one string in a result or error row (default 1 MiB; 0: no cap). A longer
    /// string is cut at a character boundary and marked `…[cut: N bytes]`.
    pub max_field_bytes: Option<usize>,
    /// Rows per Parquet row group (default 100,000; a group also closes at 128 MB), so outputs
    /// stream well and can be sharded when fed back as input. A positive integer.
    pub row_group_rows: Option<std::num::NonZeroUsize>,
    /// Scoring: write each output's rows in input order instead of completion order.
    pub ordered: Option<bool>,
}

impl OutputSection {
    pub const DEFAULT_MAX_FIELD_BYTES: usize = 1024 * 1024;

    /// The cap, `None` for none.
    pub fn max_field_bytes(&self) -> Option<usize> {
        match self.max_field_bytes.unwrap_or(Self::DEFAULT_MAX_FIELD_BYTES) {
            0 => None,
            n => Some(n),
        }
    }
}

impl TaskConfig {
    /// `execution.dry_run: true`: run as with `--dry-run`.
    pub fn dry_run(&self) -> bool {
        self.execution.dry_run.unwrap_or(false)
    }
}

fn default_type() -> TaskType {
    TaskType::DataScoring
}

/// Command-line values that replace task-file values.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--model`: replaces `model.config_path` (or the generation step's model config).
    pub model_config: Option<PathBuf>,
    /// `--output-folder`: replaces `data.output_folder` (no templating, no timestamp resume).
    pub output_folder: Option<PathBuf>,
}

/// Variables for the object store (name, value); `Debug` shows the names only.
#[derive(Clone, Default, PartialEq)]
pub struct StorageEnv(pub Vec<(String, String)>);

impl fmt::Debug for StorageEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(k, _)| k)).finish()
    }
}

/// A loaded, checked task with the configs it names.
#[derive(Debug, Clone)]
pub struct LoadedTask {
    pub source_path: PathBuf,
    pub task: TaskConfig,
    /// The interpolated task file as JSON (for sections other stages interpret).
    pub json: Value,
    /// The model config (scoring: `model.config_path`; generation: the step's model config).
    pub model: Option<ModelConfig>,
    pub prompt: Option<PromptConfig>,
    /// Keys accepted but without effect, from the task file and the model config.
    pub ignored_keys: Vec<IgnoredKey>,
    /// Things worth telling the user that do not stop the run (e.g. a missing env file).
    pub warnings: Vec<String>,
    /// Object-storage variables from `environment.tos_config_path` (`TOS_*`, `AWS_*`), which the
    /// runner puts in the process environment (over existing values, as the reference did) for
    /// the `s3://`/`tos://` store. Values are secrets: never print them.
    pub storage_env: StorageEnv,
    /// `data.output_folder` with `{timestamp}`/`{task_name}` resolved (`{run_index}` is kept).
    pub output_folder: Option<PathBuf>,
    pub stat_folder: Option<PathBuf>,
    /// The timestamp put in the folders, when their templates hold `{timestamp}`.
    pub timestamp: Option<String>,
    /// True when that timestamp is an earlier run's, found by the resume rule.
    pub resumed_earlier_run: bool,
    /// The folder of the task file, for resolving relative paths.
    pub task_dir: PathBuf,
}

impl LoadedTask {
    /// Resolves a path written in the task file (see [`paths::resolve`]).
    pub fn resolve(&self, path: &str) -> PathBuf {
        paths::resolve(path, &self.task_dir)
    }

    /// The output folder of run `run_index` (1-based) when `distributed.num_runs > 1`.
    pub fn output_folder_for_run(&self, run_index: u32) -> Option<PathBuf> {
        self.output_folder.as_deref().map(|p| paths::with_run_index(p, run_index))
    }
}
