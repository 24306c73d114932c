//! A loaded task resolved into one typed plan: what is read, which plugins run in which role
//! with which config, where results go, and the limits. The binary runs this plan and
//! `--dry-run` prints it; nothing downstream reads the YAML again.
//!
//! The reference's `preprocess:` block becomes an ordinary preprocessor [`PluginRef`] here,
//! through the [`crate::script_presets::SCRIPT_PRESETS`] table (data, not code per built-in).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::script_presets::{forward, SCRIPT_PRESETS};
use crate::step::{BatchSubmit, ChatmlConversion, DistillationStep, GenerateResponse, JsonlMerge, MergeResults};
use crate::task::{LoadedTask, OutputFormat, TaskType};

/// A plugin the run loads: its role, where it comes from and its config.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRef {
    /// Where the task file sets it (`plugins.judge`, `preprocess.script_type`, or the default).
    pub slot: String,
    /// `preprocessor`, `prompt-builder` or `score-parser`.
    pub role: &'static str,
    /// `builtin:<name>` or a resolved `.wasm` path.
    pub source: String,
    pub config: Value,
    pub limits: Value,
    pub sha256: Option<String>,
}

/// The preprocessing stage of a scoring task.
#[derive(Debug, Clone)]
pub struct PreprocessPlan {
    pub plugin: PluginRef,
    pub input_root: PathBuf,
    pub output_folder: PathBuf,
    /// Only these top-level folders (languages), when given.
    pub languages: Option<Vec<String>>,
    /// Only inputs whose file name matches this glob (e.g. `*.cxml`, `pt_data_*.jsonl`).
    pub file_pattern: Option<String>,
    /// At most this many inputs (`preprocess.num_files`, `debug.max_files`).
    pub max_inputs: Option<usize>,
    /// `preprocess.input`: raw files or records; `None` decides by what the folder holds.
    pub input: Option<crate::task::PreprocessInputKind>,
    pub id_field: String,
}

/// Scoring: `[preprocess] → prompt → model → parse`, one output per input file.
#[derive(Debug, Clone)]
pub struct ScoringPlan {
    /// `data.input_file` or `data.input_folder` (unused when preprocessing feeds scoring).
    pub input: Option<(&'static str, PathBuf)>,
    pub file_pattern: Option<String>,
    pub preprocess: Option<PreprocessPlan>,
    pub output_folder: PathBuf,
    pub output_format: OutputFormat,
    pub stat_folder: Option<PathBuf>,
    pub id_field: String,
    pub prompt_builder: PluginRef,
    pub score_parser: PluginRef,
    pub max_concurrent_files: usize,
    pub max_files: Option<usize>,
    pub max_items_per_file: Option<u64>,
    /// Re-asks after a parser's `retry(hint)`.
    pub parse_retries: u32,
    /// `options.audit_sample`: share of records judged twice.
    pub audit_sample: f64,
    pub input_key: Option<String>,
    /// Score a non-string `input_key` field by its JSON text instead of failing the record.
    pub stringify_input: bool,
    pub require_json: bool,
    pub prompt_file: Option<PathBuf>,
}

/// What a task runs. One per run, built once: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Stages {
    Scoring(ScoringPlan),
    Generate(GenerateResponse),
    Chatml(ChatmlConversion),
    Merge(JsonlMerge),
    /// One generate_response run per model ([`LoadedTask::expand`] gives them).
    Batch(BatchSubmit),
    /// `modelcall merge` on every model folder of a batch.
    MergeResults(MergeResults),
}

impl Stages {
    pub fn name(&self) -> &'static str {
        match self {
            Stages::Scoring(_) => "data_scoring",
            Stages::Generate(_) => "generate_response",
            Stages::Chatml(_) => "chatml_conversion",
            Stages::Merge(_) => "jsonl_merge",
            Stages::Batch(_) => "batch_distillation_submit",
            Stages::MergeResults(_) => "merge_distillation_results",
        }
    }
}

/// Everything a run needs, resolved from the task file.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub task_name: String,
    pub task_file: PathBuf,
    pub stages: Stages,
    pub concurrency: usize,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// `concurrency.mode: adaptive`: `concurrency` is the ceiling of a found limit.
    pub adaptive: bool,
    /// `concurrency.scheduling: prefix_groups`.
    pub prefix_groups: bool,
    pub flush_interval: Duration,
    /// Lines longer than this are `record_too_large` (`data.max_record_bytes`).
    pub max_record_bytes: Option<usize>,
    /// Discard earlier results first (`options.resume: false`, `options.delete_existing`).
    pub fresh_start: bool,
}

/// A task that cannot be turned into a plan; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}", file = file.display())]
pub struct PlanError {
    pub file: PathBuf,
    pub message: String,
}

/// `distributed.num_runs > 1` writes each pass to its own folder, so the output folder must
/// name `{run_index}`; checked once, before the passes resolve it.
pub fn check_num_runs(task: &LoadedTask) -> Result<(), PlanError> {
    let runs = task.task.distributed.num_runs();
    if runs > 1 && !task.output_folder.as_ref().is_some_and(|o| o.to_string_lossy().contains("{run_index}")) {
        return Err(PlanError {
            file: task.source_path.clone(),
            message: format!(
                "`distributed.num_runs: {runs}` writes each pass to its own folder: put `{{run_index}}` in data.output_folder (e.g. output/{}/run{{run_index}})",
                task.task.task_name
            ),
        });
    }
    Ok(())
}

impl RunPlan {
    pub fn from_task(task: &LoadedTask) -> Result<RunPlan, PlanError> {
        let t = &task.task;
        let err = |message: String| PlanError { file: task.source_path.clone(), message };
        let stages = match (&t.task_type, &t.distillation) {
            (TaskType::DataScoring, _) => Stages::Scoring(scoring_plan(task)?),
            (_, Some(DistillationStep::GenerateResponse(step))) => Stages::Generate(step.clone()),
            (_, Some(DistillationStep::ChatmlConversion(step))) => Stages::Chatml(step.clone()),
            (_, Some(DistillationStep::JsonlMerge(step))) => Stages::Merge(step.clone()),
            (_, Some(DistillationStep::BatchSubmit(b))) => Stages::Batch(b.clone()),
            (_, Some(DistillationStep::MergeResults(m))) => Stages::MergeResults(m.clone()),
            (_, step) => {
                return Err(err(format!(
                    "distillation step `{}` is not available in this version (generate_response, chatml_conversion and jsonl_merge are)",
                    step.as_ref().map(|s| s.name()).unwrap_or("none")
                )))
            }
        };
        if t.distributed.num_runs() > 1 && !matches!(stages, Stages::Scoring(_)) {
            return Err(err(format!("`distributed.num_runs: {}` repeats scoring passes; {} tasks run once", t.distributed.num_runs(), stages.name())));
        }
        let (concurrency, flush_interval, fresh_start) = match &stages {
            // Retry mode keeps what is done (the reference turned resume off there because it
            // took its input from the error file instead).
            Stages::Generate(g) => (g.concurrency, Duration::from_secs_f64(g.flush_interval_secs.clamp(0.01, 60.0)), !g.resume && !g.retry_mode),
            _ => (t.concurrency.max_concurrent_requests.unwrap_or(64), Duration::from_millis(200), !t.options.resume() || t.options.delete_existing()),
        };
        Ok(RunPlan {
            task_name: t.task_name.clone(),
            task_file: task.source_path.clone(),
            stages,
            concurrency: concurrency.max(1),
            requests_per_minute: t.concurrency.requests_per_minute,
            tokens_per_minute: t.concurrency.tokens_per_minute,
            adaptive: t.concurrency.mode == Some(crate::task::ConcurrencyMode::Adaptive),
            prefix_groups: t.concurrency.scheduling == Some(crate::task::Scheduling::PrefixGroups),
            flush_interval,
            max_record_bytes: t.data.max_record_bytes,
            fresh_start,
        })
    }

    /// Every plugin the plan loads, in pipeline order.
    pub fn plugins(&self) -> Vec<&PluginRef> {
        match &self.stages {
            Stages::Scoring(s) => s.preprocess.iter().map(|p| &p.plugin).chain([&s.prompt_builder, &s.score_parser]).collect(),
            _ => Vec::new(),
        }
    }
}

fn scoring_plan(task: &LoadedTask) -> Result<ScoringPlan, PlanError> {
    let t = &task.task;
    let err = |message: String| PlanError { file: task.source_path.clone(), message };
    let data = &t.data;
    let input = match (&data.input_file, &data.input_folder) {
        (Some(f), _) => Some(("data.input_file", task.resolve(f))),
        (None, Some(d)) => Some(("data.input_folder", task.resolve(d))),
        (None, None) => None,
    };
    let by_role = |role: &str| t.plugins.values().find(|p| p.role == role);
    let mut prompt_config = task.prompt.as_ref().map(|p| p.raw.clone()).unwrap_or_else(|| json!({}));
    if let Some(obj) = prompt_config.as_object_mut() {
        if let Some(k) = &data.input_key {
            obj.insert("input_key".into(), json!(k));
        }
        if let Some(k) = &data.prompt_format_key {
            obj.insert("prompt_format_key".into(), json!(k));
        }
    }
    let output_config = task.prompt.as_ref().map(|p| p.output_config()).unwrap_or_else(|| json!({}));
    let prompt_builder = plugin_ref(task, "prompt-builder", by_role("prompt-builder"), "builtin:template-prompt", prompt_config);
    let score_parser = plugin_ref(task, "score-parser", by_role("score-parser"), "builtin:json-score", output_config);
    let preprocess = preprocess_plan(task)?;
    if preprocess.is_none() && input.is_none() {
        return Err(err("data.input_folder is missing".into()));
    }
    let debug = &t.debug;
    Ok(ScoringPlan {
        input,
        file_pattern: data.file_pattern.clone(),
        preprocess,
        output_folder: task.output_folder.clone().ok_or_else(|| err("data.output_folder is missing".into()))?,
        output_format: data.output_format(),
        stat_folder: task.stat_folder.clone(),
        id_field: data.id_field.clone().unwrap_or_else(|| "id".into()),
        prompt_builder,
        score_parser,
        max_concurrent_files: t.concurrency.max_concurrent_files.unwrap_or(2).max(1),
        max_files: if debug.enabled { debug.max_files.filter(|n| *n >= 0).map(|n| n as usize) } else { None },
        max_items_per_file: if debug.enabled { debug.max_items_per_file.filter(|n| *n >= 0).map(|n| n as u64) } else { None },
        parse_retries: if t.retry.enable_format_validation_retry.unwrap_or(true) { t.retry.max_retries.unwrap_or(2) } else { 0 },
        audit_sample: match t.options.audit_sample {
            None => 0.0,
            Some(p) if (0.0..=1.0).contains(&p) => p,
            Some(p) => return Err(err(format!("options.audit_sample: {p} is not a share between 0 and 1 (e.g. 0.01 for 1 % of the records)"))),
        },
        input_key: data.input_key.clone(),
        stringify_input: data.stringify_input.unwrap_or(false),
        require_json: task.prompt.as_ref().map(|p| p.require_json()).unwrap_or(true),
        prompt_file: task.prompt.as_ref().map(|p| p.path.clone()),
    })
}

/// A plugin from the `plugins:` block when the task names one for `role`, else `default`
/// configured with `default_config`. A named plugin without a `config:` gets `{}`, unless it is
/// the default built-in itself (which then reads the prompt file as usual): a third-party
/// plugin is never handed another plugin's config.
fn plugin_ref(task: &LoadedTask, role: &'static str, entry: Option<&crate::PluginEntry>, default: &str, default_config: Value) -> PluginRef {
    match entry {
        Some(e) => PluginRef {
            slot: format!("plugins.{}", e.name),
            role,
            source: if e.path.starts_with("builtin:") { e.path.clone() } else { task.resolve(&e.path).display().to_string() },
            config: match (e.config.is_null(), e.path.trim() == default) {
                (true, true) => default_config,
                (true, false) => json!({}),
                (false, _) => e.config.clone(),
            },
            limits: e.limits.clone(),
            sha256: e.sha256.clone(),
        },
        None => PluginRef { slot: "default".into(), role, source: default.into(), config: default_config, limits: Value::Null, sha256: None },
    }
}

/// The preprocessing stage: a `preprocessor` entry of the `plugins:` block, or the reference's
/// `preprocess:` block (`enabled`, `script_type`, `input_folder`, `output_folder`, `max_tokens`,
/// `languages`, `num_files`, …).
fn preprocess_plan(task: &LoadedTask) -> Result<Option<PreprocessPlan>, PlanError> {
    let t = &task.task;
    let pre = &t.preprocess;
    let err = |message: String| PlanError { file: task.source_path.clone(), message };
    let entry = t.plugins.values().find(|p| p.role == "preprocessor");
    if entry.is_none() && !pre.enabled {
        return Ok(None);
    }
    let data_input = t.data.input_folder.clone().or_else(|| t.data.input_file.clone());
    let input =
        pre.input_folder.clone().or(data_input).ok_or_else(|| err("`preprocess.input_folder` (or data.input_folder) is needed to preprocess".into()))?;
    let input_root = task.resolve(&input);
    if !input_root.exists() {
        return Err(err(format!("`preprocess.input_folder`: {} does not exist", input_root.display())));
    }
    let output_folder =
        pre.output_folder.as_deref().map(|o| task.resolve(o)).unwrap_or_else(|| PathBuf::from(format!("{}_preprocessed", input_root.display())));
    let preset = SCRIPT_PRESETS.iter().find(|p| p.script_type == pre.script_type).expect("every script type has a preset");
    let mut plugin = match entry {
        Some(_) => plugin_ref(task, "preprocessor", entry, "", json!({})),
        None => PluginRef {
            slot: "preprocess.script_type".into(),
            role: "preprocessor",
            source: format!("builtin:{}", preset.builtin),
            config: json!({}),
            limits: Value::Null,
            sha256: None,
        },
    };
    // The `preprocess:` keys reach the built-in they were written for, whichever way it is named.
    if let Some(target) = SCRIPT_PRESETS.iter().find(|p| plugin.source == format!("builtin:{}", p.builtin)) {
        let mut section = task.json.get("preprocess").cloned().unwrap_or_else(|| json!({}));
        if plugin.config.is_null() {
            plugin.config = json!({});
        }
        forward(&mut section, &mut plugin.config, target.forwards);
    }
    let mut max_inputs = pre.num_files.filter(|n| *n > 0).map(|n| n as usize);
    if t.debug.enabled {
        if let Some(n) = t.debug.max_files.filter(|n| *n > 0) {
            max_inputs = Some(n as usize);
        }
    }
    Ok(Some(PreprocessPlan {
        plugin,
        input_root,
        output_folder,
        languages: pre.languages.clone(),
        file_pattern: pre.file_pattern.clone().or_else(|| entry.is_none().then(|| preset.file_pattern.map(str::to_string)).flatten()),
        max_inputs,
        input: pre.input,
        id_field: t.data.id_field.clone().unwrap_or_else(|| "id".into()),
    }))
}
