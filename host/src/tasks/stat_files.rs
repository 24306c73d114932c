//! The reference's per-input stat files (`<stat_folder>/<input name>.json`, its key spellings
//! kept), written after a scoring run that was not stopped.

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
        let name = stat_name(&input, plan);
        let path = stat_folder.join(format!("{name}.json"));
        let output = unit.unit.paths.output.display().to_string();
        let mut stat: Value = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| {
            json!({
                "prompt_conf": plan.prompt_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                "model_conf": model_conf.display().to_string(), "rating_times": 0,
                "voting_status": false, "raw_file_path": input, "formatted_file_path": output,
                "taged_file_paths": [], "voting_file_path": "",
            })
        });
        if let Some(list) = stat["taged_file_paths"].as_array_mut() {
            if !list.iter().any(|v| v == &json!(output)) {
                list.push(json!(output));
            }
        }
        let fs = &unit.stats;
        stat["n_sample"] = json!(fs.seen - fs.debug_limited);
        stat["n_sucess_sample"] = json!(fs.scored + fs.already_done + fs.adopted);
        let text = serde_json::to_string_pretty(&stat)? + "\n";
        modelcall_io::write_atomically(&path, text.as_bytes())?;
    }
    Ok(())
}
