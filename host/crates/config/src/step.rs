//! The steps a task resolves to: [`DistillationStep`] and the typed settings of each step
//! (ChatML conversion, JSONL merge, teacher generation, and the cluster batch submit and merge).
//!
//! These are plain data, built by two parsers and read by the engine: [`crate::distill`] parses
//! the `distillation:` section into the first three, [`crate::batch`] parses the cluster task
//! types into the last two (each batch model is itself a [`GenerateResponse`] run). Keeping the
//! types here, apart from either parser, lets each parser depend on the types alone and not on
//! the other parser.

use std::path::PathBuf;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum DistillationStep {
    ChatmlConversion(ChatmlConversion),
    JsonlMerge(JsonlMerge),
    GenerateResponse(GenerateResponse),
    /// `task_type: batch_distillation_submit` (parsed by [`crate::batch`]).
    BatchSubmit(BatchSubmit),
    /// `task_type: merge_distillation_results`.
    MergeResults(MergeResults),
}

impl DistillationStep {
    pub fn name(&self) -> &'static str {
        match self {
            DistillationStep::ChatmlConversion(_) => "chatml_conversion",
            DistillationStep::JsonlMerge(_) => "jsonl_merge",
            DistillationStep::GenerateResponse(_) => "generate_response",
            DistillationStep::BatchSubmit(_) => "batch_distillation_submit",
            DistillationStep::MergeResults(_) => "merge_distillation_results",
        }
    }
}

/// §7.1: many dataset formats to ChatML `messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatmlConversion {
    pub dataset_config_path: PathBuf,
    pub input_dir: PathBuf,
    pub output_dir: PathBuf,
    /// `None`: one per CPU.
    pub num_processes: Option<usize>,
    pub keep_raw_data: bool,
    pub add_system_prompt: bool,
    pub system_prompt: String,
    /// Skip datasets whose output already exists (the reference also skipped partial files;
    /// the engine should check completeness).
    pub continue_mode: bool,
    /// `None`: every dataset in the dataset config.
    pub selected_datasets: Option<Vec<String>>,
}

/// §7.2: merge groups of JSONL files into one file each.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlMerge {
    pub merge_config_path: PathBuf,
    pub base_input_dir: PathBuf,
    pub base_output_dir: PathBuf,
    pub chunk_size: usize,
    /// Empty: every group of the merge config.
    pub merge_groups: Vec<String>,
    /// Keep only the first record of each value of this field (optional de-duplication).
    pub dedup_key: Option<String>,
}

/// §7.3: a teacher model answers every conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateResponse {
    /// A model config (`client_config` + `chat_config`); loaded into `LoadedTask::model`.
    pub model_config_path: PathBuf,
    /// A JSONL file, or a directory whose `*.jsonl` files are processed in name order.
    pub input_path: PathBuf,
    pub output_path: PathBuf,
    pub concurrency: usize,
    pub batch_size: usize,
    pub flush_interval_secs: f64,
    pub retry_mode: bool,
    pub resume: bool,
    /// `send: first_user` reproduces the reference (only the first message, as a user turn);
    /// the default `conversation` sends every turn up to the last user turn.
    pub first_user_only: bool,
    /// `reasoning: inline` (the reference: a `<think>` block in `response`), `separate` (a
    /// `reasoning` field) or `drop`.
    pub reasoning: ReasoningMode,
    /// Keep answers cut by the token limit (`finish_reason: length`) instead of failing them.
    pub allow_truncated: bool,
    /// Answers per conversation; with n > 1 each gets the key `uid#i` (i in 0..n).
    pub n: u32,
    /// Write the success file in input order (default: completion order).
    pub ordered: bool,
}

/// Where a teacher's reasoning goes in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningMode {
    #[default]
    Inline,
    Separate,
    Drop,
}

/// One model of a batch: its alias (the reference used it in job names) and its run.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchModel {
    pub alias: String,
    pub run: GenerateResponse,
}

/// `task_type: batch_distillation_submit`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSubmit {
    pub input_file: PathBuf,
    /// `data_split.num_chunks` (default 100): the number of shards.
    pub shards: u32,
    pub output_base_dir: PathBuf,
    pub models: Vec<BatchModel>,
    /// The `batch_submit.siflow` block, reported as not available with its equivalents.
    pub siflow: Option<Value>,
}

/// `task_type: merge_distillation_results`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeResults {
    pub output_base_dir: PathBuf,
    /// Model folder names (`merge.models[].name`, model config stems).
    pub models: Vec<String>,
}
