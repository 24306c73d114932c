//! The `chatml_conversion` preset: datasets in six format styles to ChatML `messages`, through
//! the `builtin:chatml` preprocessor (a style is the plugin's config, so new styles can ship as
//! plugins), on the same pipeline as every task: per-record journal, resume, error rows.
//!
//! Inputs: a `.jsonl` file per dataset key, or a dataset saved on disk in the Hugging Face
//! layouts (a folder per dataset, per-config sub-folders, per-split JSONL or Parquet files such
//! as `train.jsonl` or `data/train-00000-of-00002.parquet`). Output names follow the reference:
//! `<out>/<basename(key)>/<key with / → _>[-<config>]-<split>[-with_system].jsonl`, in input
//! order; rows that are not JSON objects go to `<output stem>.errors.jsonl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelcall_config::distill::{DatasetSpec, DatasetsConfig};
use modelcall_config::step::ChatmlConversion;
use modelcall_config::PluginRef;
use modelcall_io::{FilePaths, RecordsTarget};
use serde_json::json;

use super::preprocess_job::PreprocessJob;
use super::{load_plugin, print_dry_run, TaskRun};
use crate::cli::exit::{BadConfig, Finish};
use crate::engine::{self, EngineOptions, ReadOptions, SinkKind, StopSignal, Unit, UnitInputs};
use crate::plugin_pool::PluginPool;

pub async fn run(run: &TaskRun<'_>, step: &ChatmlConversion) -> anyhow::Result<Finish> {
    let file = run.task.source_path.display();
    let config = DatasetsConfig::load(&step.dataset_config_path).map_err(|e| BadConfig(e.to_string()))?;
    let keys: Vec<String> = match &step.selected_datasets {
        Some(sel) => {
            if let Some(k) = sel.iter().find(|k| !config.datasets.contains_key(*k)) {
                return Err(BadConfig(format!("{file}: distillation.selected_datasets: `{k}` is not in {}", config.path.display())).into());
            }
            sel.clone()
        }
        None => config.datasets.keys().cloned().collect(),
    };
    if run.dry_run {
        print_dry_run(run, &[], None);
        return Ok(Finish::Done);
    }
    let runtime = modelcall_plugin_host::PluginRuntime::new()?;
    let _lock = run.lock(&step.output_dir)?;
    let stop = StopSignal::with_ctrl_c();
    let mut finish = Finish::Done;
    for key in keys {
        let spec = &config.datasets[&key];
        let mut path = step.input_dir.join(&key);
        let leaf = step.input_dir.file_name().map(|n| n.to_string_lossy().to_string());
        if !path.exists() && leaf.as_deref() == key.rsplit('/').next() {
            path = step.input_dir.clone();
        }
        if !path.exists() {
            // As the reference does: the other datasets are converted.
            eprintln!("warning: dataset `{key}`: {} does not exist (datasets are read from distillation.input_dir); skipped", path.display());
            continue;
        }
        let plugin = PluginRef {
            slot: format!("datasets.{key}"),
            role: "preprocessor",
            source: "builtin:chatml".into(),
            config: json!({
                "format_style": spec.format_style, "column_mapping": spec.column_mapping,
                "add_system_prompt": step.add_system_prompt, "system_prompt": step.system_prompt,
                "keep_raw_data": step.keep_raw_data,
            }),
            limits: serde_json::Value::Null,
            sha256: None,
        };
        let plugin_config = plugin.config.clone();
        let plugin = load_plugin(&runtime, run, &plugin).map_err(|e| BadConfig(format!("dataset `{key}` in {}: {e}", config.path.display())))?;
        // A conversion costs nothing: one made with another style or plugin is redone.
        let settings = engine::settings::Settings::new(json!({"converter": engine::settings::Settings::plugin(&plugin, &plugin_config)}));
        let mut units = Vec::new();
        for (cfg, split, files) in dataset_units(&path, spec).map_err(|e| anyhow::anyhow!("dataset `{key}`: {e}"))? {
            let out = output_path(&step.output_dir, &key, cfg.as_deref(), &split, step.add_system_prompt);
            if step.continue_mode && out.exists() {
                eprintln!("skip {} (complete; continue_mode)", out.display());
                continue;
            }
            let name = format!("`{key}` {}{split}", cfg.as_deref().map(|c| format!("{c}/")).unwrap_or_default());
            let paths = FilePaths::beside(&out, "errors.jsonl");
            units.push(Unit { name, inputs: UnitInputs::Records(files), paths, sink: SinkKind::Records(RecordsTarget::File { path: out, ordered: true }) });
        }
        let pool = PluginPool::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
        let concurrency = pool.threads() * 4;
        let options = EngineOptions {
            task_name: run.plan.task_name.clone(),
            // Content-hash keys: conversions resume per record, repeats kept under ordinals.
            read: ReadOptions { key_fields: Vec::new(), settings: Some(settings), other_settings: engine::OtherSettings::Redo, ..run.read_options() },
            concurrency,
            max_concurrent_units: 1,
            flush_interval: run.plan.flush_interval,
            fresh_start: false,
            ..EngineOptions::default()
        };
        let outcome = engine::run(options, Arc::new(PreprocessJob::new(plugin, pool)), engine::feed(units), stop.clone(), None).await?;
        for u in &outcome.units {
            let s = &u.stats;
            eprintln!(
                "converted {}: {} conversation(s) → {} ({} row(s) without a conversation, {} bad line(s))",
                u.unit.name,
                s.records_out,
                u.unit.paths.output.display(),
                s.skipped,
                s.bad_lines + s.failed
            );
        }
        finish = finish.and(Finish::from_outcome(&outcome));
        if outcome.stopped.is_some() {
            break;
        }
    }
    Ok(finish)
}

/// The split a data file belongs to: `train.jsonl`, `train-00000-of-00001.parquet` → `train`.
pub fn split_of(file: &Path) -> String {
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let end = name.find(['-', '.']).unwrap_or(name.len());
    name[..end].to_string()
}

/// One unit of work of a dataset: its config (if any), its split and its files.
pub type DatasetUnit = (Option<String>, String, Vec<PathBuf>);

/// The units of work for one dataset.
pub fn dataset_units(path: &Path, spec: &DatasetSpec) -> anyhow::Result<Vec<DatasetUnit>> {
    if path.is_file() {
        return Ok(vec![(None, "train".into(), vec![path.to_path_buf()])]);
    }
    let mut units = Vec::new();
    let configs = if spec.configs.is_empty() { vec![None] } else { spec.configs.clone() };
    for config in configs {
        if let Some(splits) = super::dataset_card::splits(path, config.as_deref()) {
            units.extend(splits.into_iter().map(|(split, files)| (config.clone(), split, files)));
            continue;
        }
        let base = match &config {
            Some(c) => path.join(c),
            None => path.to_path_buf(),
        };
        if !base.is_dir() {
            anyhow::bail!("config `{}` of {} has no folder {}", config.as_deref().unwrap_or("default"), path.display(), base.display());
        }
        let mut by_split: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for f in modelcall_io::listing::list_files(&base, true, &|p| modelcall_io::is_supported_input(p))? {
            by_split.entry(split_of(&f)).or_default().push(f);
        }
        units.extend(by_split.into_iter().map(|(split, files)| (config.clone(), split, files)));
    }
    Ok(units)
}

/// The reference's output path for one unit.
pub fn output_path(out_dir: &Path, key: &str, config: Option<&str>, split: &str, with_system: bool) -> PathBuf {
    let base = key.rsplit('/').next().unwrap_or(key);
    let base = base.strip_suffix(".jsonl").unwrap_or(base);
    let flat = key.replace('/', "_");
    let mut name = flat.strip_suffix(".jsonl").unwrap_or(&flat).to_string();
    if let Some(c) = config {
        name.push('-');
        name.push_str(c);
    }
    name.push('-');
    name.push_str(split);
    if with_system {
        name.push_str("-with_system");
    }
    out_dir.join(base).join(format!("{name}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_splits_follow_the_reference() {
        assert_eq!(split_of(Path::new("x/train-00000-of-00002.parquet")), "train");
        assert_eq!(split_of(Path::new("test.jsonl")), "test");
        assert_eq!(
            output_path(Path::new("out"), "OpenCoder-LLM/opc-sft-stage1", Some("realuser_instruct"), "train", false),
            Path::new("out/opc-sft-stage1/OpenCoder-LLM_opc-sft-stage1-realuser_instruct-train.jsonl")
        );
        assert_eq!(output_path(Path::new("out"), "oo1.jsonl", None, "train", true), Path::new("out/oo1/oo1-train-with_system.jsonl"));
    }
}
