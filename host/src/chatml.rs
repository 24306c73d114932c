//! `chatml_conversion`: datasets in six format styles to ChatML `messages`, through the
//! `builtin:chatml` plugin (a style is the plugin's config, so new styles can ship as plugins).
//!
//! Inputs: a `.jsonl` file per dataset key, or a dataset saved on disk in the Hugging Face
//! layouts (a folder per dataset, per-config sub-folders, per-split JSONL or Parquet files such
//! as `train.jsonl` or `data/train-00000-of-00002.parquet`). Output names follow the reference:
//! `<out>/<basename(key)>/<key with / → _>[-<config>]-<split>[-with_system].jsonl`. Each output
//! is written under a temporary name and renamed when complete, so `continue_mode` never skips
//! a partial file; rows that are not JSON objects go to `<output>.errors.jsonl` with file, line
//! and cause and never stop the split.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use modelcall_config::distill::{ChatmlConversion, DatasetSpec, DatasetsConfig};
use modelcall_io::SourceItem;
use modelcall_plugin_host::{PluginRuntime, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Role};
use serde_json::{json, Value};

/// The split a data file belongs to: `train.jsonl`, `train-00000-of-00001.parquet` → `train`.
pub fn split_of(file: &Path) -> String {
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let end = name.find(['-', '.']).unwrap_or(name.len());
    name[..end].to_string()
}

fn data_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            data_files(&p, out)?;
        } else if modelcall_io::is_supported_input(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// (config, split, files) units of work for one dataset.
pub fn dataset_units(path: &Path, spec: &DatasetSpec) -> anyhow::Result<Vec<(Option<String>, String, Vec<PathBuf>)>> {
    if path.is_file() {
        return Ok(vec![(None, "train".into(), vec![path.to_path_buf()])]);
    }
    let mut units = Vec::new();
    let configs = if spec.configs.is_empty() { vec![None] } else { spec.configs.clone() };
    for config in configs {
        let base = match &config {
            Some(c) => path.join(c),
            None => path.to_path_buf(),
        };
        if !base.is_dir() {
            anyhow::bail!("config `{}` of {} has no folder {}", config.as_deref().unwrap_or("default"), path.display(), base.display());
        }
        let mut files = Vec::new();
        data_files(&base, &mut files)?;
        let mut by_split: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for f in files {
            by_split.entry(split_of(&f)).or_default().push(f);
        }
        for (split, mut files) in by_split {
            files.sort();
            units.push((config.clone(), split, files));
        }
    }
    Ok(units)
}

/// The reference's output path for one unit.
pub fn output_path(out_dir: &Path, key: &str, config: Option<&str>, split: &str, with_system: bool) -> PathBuf {
    let base = key.rsplit('/').next().unwrap_or(key);
    let base = base.strip_suffix(".jsonl").unwrap_or(base);
    let flat = key.replace('/', "_");
    let flat = flat.strip_suffix(".jsonl").unwrap_or(&flat);
    let mut name = flat.to_string();
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

pub fn run(task_file: &Path, task_name: &str, step: &ChatmlConversion) -> anyhow::Result<ExitCode> {
    let config = match DatasetsConfig::load(&step.dataset_config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let keys: Vec<String> = match &step.selected_datasets {
        Some(sel) => {
            for k in sel {
                if !config.datasets.contains_key(k) {
                    eprintln!("error: {}: distillation.selected_datasets: `{k}` is not in {}", task_file.display(), config.path.display());
                    return Ok(ExitCode::from(2));
                }
            }
            sel.clone()
        }
        None => config.datasets.keys().cloned().collect(),
    };
    let runtime = PluginRuntime::new()?;
    let mut failures = 0;
    for key in keys {
        let spec = &config.datasets[&key];
        let mut path = step.input_dir.join(&key);
        let leaf = step.input_dir.file_name().map(|n| n.to_string_lossy().to_string());
        if !path.exists() && leaf.as_deref() == key.rsplit('/').next() {
            path = step.input_dir.clone();
        }
        if !path.exists() {
            eprintln!("error: dataset `{key}`: {} does not exist (datasets are read from distillation.input_dir)", path.display());
            failures += 1;
            continue;
        }
        let mut plugin_spec = PluginSpec::new(PluginSource::Builtin("chatml".into()), Role::Preprocessor);
        plugin_spec.task_name = task_name.to_string();
        plugin_spec.config = json!({
            "format_style": spec.format_style,
            "column_mapping": spec.column_mapping,
            "add_system_prompt": step.add_system_prompt,
            "system_prompt": step.system_prompt,
            "keep_raw_data": step.keep_raw_data,
        });
        let plugin = runtime.load(plugin_spec).map_err(|e| anyhow::anyhow!("dataset `{key}` in {}: {e}", config.path.display()))?;
        for (cfg, split, files) in dataset_units(&path, spec).with_context(|| format!("dataset `{key}`"))? {
            let out = output_path(&step.output_dir, &key, cfg.as_deref(), &split, step.add_system_prompt);
            if step.continue_mode && out.exists() {
                eprintln!("skip {} (complete; continue_mode)", out.display());
                continue;
            }
            let (written, dropped, bad) = convert_unit(&plugin, &key, &files, &out)?;
            eprintln!("converted `{key}` {}{split}: {written} conversation(s) → {} ({dropped} row(s) without a conversation, {bad} bad line(s))",
                cfg.as_deref().map(|c| format!("{c}/")).unwrap_or_default(), out.display());
        }
    }
    Ok(if failures > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn convert_unit(plugin: &modelcall_plugin_host::Plugin, key: &str, files: &[PathBuf], out: &Path) -> anyhow::Result<(u64, u64, u64)> {
    std::fs::create_dir_all(out.parent().unwrap())?;
    let name = out.file_name().unwrap().to_string_lossy().to_string();
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let errors = out.with_file_name(format!("{}.errors.jsonl", name.trim_end_matches(".jsonl")));
    let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
    let mut ew: Option<BufWriter<std::fs::File>> = None;
    let (mut written, mut dropped, mut bad) = (0u64, 0u64, 0u64);
    let err_row = |row: Value, ew: &mut Option<BufWriter<std::fs::File>>| -> anyhow::Result<()> {
        if ew.is_none() {
            *ew = Some(BufWriter::new(std::fs::File::create(&errors)?));
        }
        let e = ew.as_mut().unwrap();
        serde_json::to_writer(&mut *e, &row)?;
        e.write_all(b"\n")?;
        Ok(())
    };
    for file in files {
        for item in modelcall_io::open_source(file)? {
            match item? {
                SourceItem::Record { line, record } => {
                    let id = format!("{key}:{}:{line}", file.display());
                    match plugin.preprocess(&id, 1, PreprocessInput::Record(Value::Object(record).to_string())) {
                        Ok(PreprocessOutcome::Keep(records)) => {
                            for r in records {
                                w.write_all(r.as_bytes())?;
                                w.write_all(b"\n")?;
                                written += 1;
                            }
                        }
                        Ok(PreprocessOutcome::Skip(_)) => dropped += 1,
                        Err(e) if e.is_fatal() => anyhow::bail!("{e}"),
                        Err(e) => {
                            bad += 1;
                            err_row(json!({"file": file.display().to_string(), "line": line, "cause": e.cause(), "message": e.to_string()}), &mut ew)?;
                        }
                    }
                }
                SourceItem::Bad { line, cause, raw_excerpt } => {
                    bad += 1;
                    err_row(json!({"file": file.display().to_string(), "line": line, "cause": cause.as_str(), "message": cause.to_string(), "raw_excerpt": raw_excerpt}), &mut ew)?;
                }
            }
        }
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, out)?;
    if let Some(e) = ew {
        e.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    Ok((written, dropped, bad))
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
