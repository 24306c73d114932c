//! The reference's cluster task types (§8), mapped onto sharded runs:
//!
//! - `batch_distillation_submit` split one JSONL file into `num_chunks` files and submitted one
//!   SiFlow job per chunk per model. Here it is one `generate_response` run per model over the
//!   file, into `<output_base_dir>/<model config stem>/`, split into `num_chunks` shards by bytes
//!   (no chunk files are written): `run-task` runs them here, `modelcall submit` on Slurm or
//!   Kubernetes (SiFlow itself is not available), `modelcall merge` joins them.
//! - `merge_distillation_results` concatenated each model's chunk outputs; here it is
//!   `modelcall merge` on each model's folder, which also verifies every record is there once.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ConfigError;
use crate::step::{BatchModel, BatchSubmit, DistillationStep, GenerateResponse, MergeResults, ReasoningMode};
use crate::yaml::YamlFile;

impl crate::LoadedTask {
    /// The runs a task stands for: itself, or for `batch_distillation_submit` one
    /// `generate_response` task per model (each with its model config loaded and its own output
    /// folder), so every command handles a batch as the runs it is made of.
    pub fn expand(&self) -> Result<Vec<crate::LoadedTask>, crate::ConfigError> {
        let Some(DistillationStep::BatchSubmit(batch)) = &self.task.distillation else {
            return Ok(vec![self.clone()]);
        };
        let vars = crate::Vars::process();
        batch
            .models
            .iter()
            .map(|m| {
                let mut t = self.clone();
                t.task.task_type = crate::TaskType::GenerateResponse;
                t.task.task_name = format!("{}-{}", self.task.task_name, m.alias);
                t.task.distillation = Some(DistillationStep::GenerateResponse(m.run.clone()));
                t.model = Some(crate::ModelConfig::load(&m.run.model_config_path, &vars, &crate::ModelDefaults::generation())?);
                t.output_folder = Some(m.run.output_path.clone());
                Ok(t)
            })
            .collect()
    }
}

pub const BATCH_KEYS: &[(&str, &[&str])] = &[
    ("data_split", &["input_file", "num_chunks", "output_dir"]),
    ("batch_submit", &["output_base_dir", "name_prefix", "concurrency", "batch_size", "siflow", "models"]),
    ("execution", &["dry_run", "auto_split"]),
    ("post_processing", &["auto_merge", "merge_errors", "merge_command_template"]),
    ("merge", &["output_base_dir", "merge_errors", "models"]),
];

fn err(path: &Path, yaml: &YamlFile, keys: &[&str], msg: String) -> ConfigError {
    ConfigError::new(path, msg).key(keys.join(".")).at(yaml.locate(keys))
}

fn string<'a>(json: &'a Value, path: &Path, yaml: &YamlFile, keys: &[&str]) -> Result<&'a str, ConfigError> {
    let pointer = format!("/{}", keys.join("/"));
    match json.pointer(&pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        None | Some(Value::Null) => Err(err(path, yaml, keys, "missing".into())),
        Some(other) => Err(err(path, yaml, keys, format!("must be a path, found {other}"))),
    }
}

fn resolve(p: &str, base: &Path) -> PathBuf {
    crate::paths::resolve(p, base)
}

pub fn parse_batch(json: &Value, path: &Path, yaml: &YamlFile, task_dir: &Path) -> Result<BatchSubmit, ConfigError> {
    let input_file = resolve(string(json, path, yaml, &["data_split", "input_file"])?, task_dir);
    let shards = match json.pointer("/data_split/num_chunks") {
        None | Some(Value::Null) => 100,
        Some(v) => v.as_u64().filter(|n| *n >= 1 && *n <= 100_000).ok_or_else(|| {
            err(path, yaml, &["data_split", "num_chunks"], format!("must be a whole number from 1 to 100000 (the number of shards), found {v}"))
        })? as u32,
    };
    let output_base_dir = resolve(string(json, path, yaml, &["batch_submit", "output_base_dir"])?, task_dir);
    let number = |key: &str, default: u64| -> Result<usize, ConfigError> {
        match json.pointer(&format!("/batch_submit/{key}")) {
            None | Some(Value::Null) => Ok(default as usize),
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= 1)
                .map(|n| n as usize)
                .ok_or_else(|| err(path, yaml, &["batch_submit", key], format!("must be a positive whole number, found {v}"))),
        }
    };
    let (concurrency, batch_size) = (number("concurrency", 30)?, number("batch_size", 30)?);
    let Some(Value::Array(entries)) = json.pointer("/batch_submit/models") else {
        return Err(err(path, yaml, &["batch_submit", "models"], "missing: a list of {config_path, alias} entries, one per model".into()));
    };
    let mut models = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(config) = entry.get("config_path").and_then(Value::as_str) else {
            return Err(err(path, yaml, &["batch_submit", "models"], format!("entry {i} has no `config_path` (a model config file)")));
        };
        let model_config_path = resolve(config, task_dir);
        if !model_config_path.exists() {
            return Err(err(path, yaml, &["batch_submit", "models"], format!("entry {i}: the model config {} does not exist", model_config_path.display())));
        }
        let stem = model_config_path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let output_path = output_base_dir.join(&stem);
        if models.iter().any(|m: &BatchModel| m.run.output_path == output_path) {
            return Err(err(
                path,
                yaml,
                &["batch_submit", "models"],
                format!("two entries use the model config {}: their outputs would share {}", model_config_path.display(), output_path.display()),
            ));
        }
        models.push(BatchModel {
            alias: entry.get("alias").and_then(Value::as_str).unwrap_or("default").to_string(),
            run: GenerateResponse {
                model_config_path,
                input_path: input_file.clone(),
                output_path,
                concurrency,
                batch_size,
                // The reference's per-chunk worker: resume on, no retry pass, flush every 2 s.
                flush_interval_secs: 2.0,
                retry_mode: false,
                resume: true,
                first_user_only: false,
                reasoning: ReasoningMode::Inline,
                allow_truncated: false,
                n: 1,
                ordered: false,
            },
        });
    }
    if models.is_empty() {
        return Err(err(path, yaml, &["batch_submit", "models"], "is empty: name at least one model config".into()));
    }
    Ok(BatchSubmit { input_file, shards, output_base_dir, models, siflow: json.pointer("/batch_submit/siflow").cloned() })
}

pub fn parse_merge(json: &Value, path: &Path, yaml: &YamlFile, task_dir: &Path) -> Result<MergeResults, ConfigError> {
    let output_base_dir = resolve(string(json, path, yaml, &["merge", "output_base_dir"])?, task_dir);
    let Some(Value::Array(entries)) = json.pointer("/merge/models") else {
        return Err(err(path, yaml, &["merge", "models"], "missing: a list of {name} entries (model config stems)".into()));
    };
    let models = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.get("name").and_then(Value::as_str).map(str::to_string).ok_or_else(|| err(path, yaml, &["merge", "models"], format!("entry {i} has no `name`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MergeResults { output_base_dir, models })
}

/// What the `siflow` block asked for, and what to use instead.
pub fn siflow_note(siflow: &Value) -> String {
    let pool = siflow.get("resource_pool").and_then(Value::as_str).unwrap_or("?");
    format!(
        "SiFlow is not available here; submit the shards to Slurm (`modelcall submit TASK --scheduler slurm --shards N --partition {pool}`) or Kubernetes (`--scheduler k8s --image …`); the resource pool maps to a Slurm partition, count_per_pod to --cpus-per-task"
    )
}
