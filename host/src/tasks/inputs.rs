//! The input files of a record task, listed and checked before anything runs: a scoring task's
//! (`data.input_folder`, or the group files of its preprocessing stage) and a `generate_response`
//! task's (`distillation.input_path`).
//!
//! Its own module because the presets that run these tasks ([`super::scoring`],
//! [`super::generate`]) and the shard planning that splits them ([`super::shards`], which also
//! serves `status`, `merge` and `submit`) all need the same listing; kept here, none of them
//! imports another for it.

use std::path::{Path, PathBuf};

use modelcall_config::step::GenerateResponse;
use modelcall_config::{LoadedTask, ScoringPlan};

use crate::cli::exit::BadConfig;

/// The group files an earlier `--stage preprocess` wrote, for the shards of a task with
/// preprocessing.
pub fn preprocessed_inputs(task: &LoadedTask, folder: &Path) -> Result<Vec<PathBuf>, BadConfig> {
    let files = modelcall_io::list_input_files(folder, Some("*.jsonl")).unwrap_or_default();
    let files: Vec<PathBuf> = files.into_iter().filter(|f| !f.to_string_lossy().ends_with(".errors.jsonl")).collect();
    if files.is_empty() {
        return Err(BadConfig(format!(
            "{}: a shard of a task with preprocessing scores the preprocessed files, and {} has none yet; run `modelcall run-task {} --stage preprocess` once first",
            task.source_path.display(),
            folder.display(),
            task.source_path.display()
        )));
    }
    Ok(files)
}

/// The record files to score: every supported file of the input folder (or the input file),
/// each with an output name of its own.
pub fn scoring_inputs(task: &LoadedTask, plan: &ScoringPlan) -> Result<Vec<PathBuf>, BadConfig> {
    let file = task.source_path.display();
    let (key, path) = plan.input.as_ref().ok_or_else(|| BadConfig(format!("{file}: data.input_folder is missing")))?;
    if !path.exists() {
        return Err(BadConfig(format!("{file}: `{key}`: {} does not exist", path.display())));
    }
    // `data.recursive: true`: sub-folders too, each output named after its relative path.
    let listed = if task.task.data.recursive == Some(true) {
        modelcall_io::listing::list_input_files_recursive(path, plan.file_pattern.as_deref())
    } else {
        modelcall_io::list_input_files(path, plan.file_pattern.as_deref())
    };
    let mut files = listed.map_err(|e| BadConfig(format!("{file}: `{key}`: {e}")))?;
    if files.is_empty() {
        return Err(BadConfig(format!("{file}: `{key}`: no input files in {} (expected *.jsonl, *.jsonl.gz, *.jsonl.zst or *.parquet)", path.display())));
    }
    if let Some(n) = plan.max_files {
        files.truncate(n);
    }
    modelcall_io::naming::unique_stems(&files).map_err(|e| BadConfig(format!("{file}: `{key}`: {e}")))?;
    Ok(files)
}

/// Every `*.jsonl` of `distillation.input_path` (or that file), each with output names of its own.
pub fn generate_inputs(task: &LoadedTask, step: &GenerateResponse) -> Result<Vec<PathBuf>, BadConfig> {
    let file = task.source_path.display();
    let input = &step.input_path;
    if !input.exists() {
        return Err(BadConfig(format!("{file}: distillation.input_path: {} does not exist", input.display())));
    }
    let inputs = modelcall_io::listing::list_files(input, false, &|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map_err(|e| BadConfig(format!("{file}: distillation.input_path: {e}")))?;
    if inputs.is_empty() {
        return Err(BadConfig(format!("{file}: distillation.input_path: no *.jsonl files in {}", input.display())));
    }
    modelcall_io::naming::unique_stems(&inputs).map_err(|e| BadConfig(format!("{file}: distillation.input_path: {e}")))?;
    Ok(inputs)
}
