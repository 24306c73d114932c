//! The reference's per-input stat files (`<stat_folder>/<input name>.json`, its key spellings
//! kept), written after a scoring run that was not stopped, and by `modelcall merge` for the
//! merged outputs (the shards' per-piece stat files, `<input name> [bytes a..b].json`, are
//! merged into the input's own and removed).

use std::path::Path;

use modelcall_config::ScoringPlan;
use serde_json::{json, Value};

use crate::engine::RunOutcome;

/// The input's file name, as the reference named its stat file: the reference's preprocessing
/// wrote `<stem>.parquet`, so a group file this tool's preprocessing wrote (`<stem>.jsonl`)
/// gets the name the reference's would have had.
fn stat_name(input: &str, plan: &ScoringPlan) -> String {
    let path = Path::new(input);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let preprocessed = plan.preprocess.as_ref().is_some_and(|p| path.parent() == Some(p.output_folder.as_path()));
    match name.strip_suffix(".jsonl") {
        Some(stem) if preprocessed => format!("{stem}.parquet"),
        _ => name,
    }
}

pub fn write(stat_folder: &Path, outcome: &RunOutcome, plan: &ScoringPlan, model_conf: &Path) -> anyhow::Result<()> {
    for unit in &outcome.units {
        let input = unit.unit.input_label();
        let fs = &unit.stats;
        let path = stat_folder.join(format!("{}.json", stat_name(&input, plan)));
        let stat = read(&path).unwrap_or_else(|| fresh(plan, model_conf, &input, &unit.unit.paths.output));
        store(&path, stat, &unit.unit.paths.output, fs.seen - fs.debug_limited, fs.scored + fs.already_done + fs.adopted)?;
    }
    Ok(())
}

/// One merged output of `modelcall merge`: its input, the output and its counts.
pub struct Merged<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    /// Records in the output or its error file.
    pub seen: u64,
    /// Records in the output.
    pub ok: u64,
}

/// The stat file of each merged output (`<stat_folder>/<input name>.json`, as an unsharded run
/// writes it), from the one an earlier run wrote or the shards' per-piece ones (whose settings
/// it keeps); the per-piece files (`<input name> [bytes a..b].json`, `[row groups a..b]`) are
/// then removed, so the folder holds one stat file per input. Returns how many were written.
pub fn write_merged(stat_folder: &Path, merged: &[Merged<'_>], plan: &ScoringPlan, model_conf: &Path) -> anyhow::Result<usize> {
    for m in merged {
        let input = m.input.display().to_string();
        let name = stat_name(&input, plan);
        let path = stat_folder.join(format!("{name}.json"));
        let pieces = piece_files(stat_folder, &name);
        let stat = read(&path).or_else(|| pieces.iter().find_map(|p| read(p))).unwrap_or_else(|| fresh(plan, model_conf, &input, m.output));
        let mut stat = stat;
        stat["raw_file_path"] = json!(input);
        stat["formatted_file_path"] = json!(m.output.display().to_string());
        if let Some(list) = stat["taged_file_paths"].as_array_mut() {
            // A piece's list names its shard's output, which the merged output replaces.
            list.retain(|v| !v.as_str().is_some_and(|s| s.contains(".shard-")));
        }
        store(&path, stat, m.output, m.seen, m.ok)?;
        for p in pieces {
            if let Err(e) = std::fs::remove_file(&p) {
                eprintln!("warning: cannot remove the shard stat file {}: {e}", p.display());
            }
        }
    }
    Ok(merged.len())
}

/// The per-piece stat files a sharded run wrote for the input whose stat file is `<name>.json`.
fn piece_files(stat_folder: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let prefix = format!("{name} [");
    let Ok(entries) = std::fs::read_dir(stat_folder) else { return Vec::new() };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix) && n.ends_with("].json")))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok())
}

fn fresh(plan: &ScoringPlan, model_conf: &Path, input: &str, output: &Path) -> Value {
    json!({
        "prompt_conf": plan.prompt_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "model_conf": model_conf.display().to_string(), "rating_times": 0,
        "voting_status": false, "raw_file_path": input, "formatted_file_path": output.display().to_string(),
        "taged_file_paths": [], "voting_file_path": "",
    })
}

fn store(path: &Path, mut stat: Value, output: &Path, n_sample: u64, n_success: u64) -> anyhow::Result<()> {
    let output = json!(output.display().to_string());
    if let Some(list) = stat["taged_file_paths"].as_array_mut() {
        if !list.contains(&output) {
            list.push(output);
        }
    }
    stat["n_sample"] = json!(n_sample);
    stat["n_sucess_sample"] = json!(n_success);
    let text = serde_json::to_string_pretty(&stat)? + "\n";
    modelcall_io::write_atomically(path, text.as_bytes())?;
    Ok(())
}
