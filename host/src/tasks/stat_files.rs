//! The reference's per-input stat files (`<stat_folder>/<input name>.json`, its key spellings
//! kept), written after a scoring run that was not stopped.

use std::path::Path;

use modelcall_config::ScoringPlan;
use serde_json::{json, Value};

use crate::engine::RunOutcome;

pub fn write(stat_folder: &Path, outcome: &RunOutcome, plan: &ScoringPlan, model_conf: &Path) -> anyhow::Result<()> {
    for unit in &outcome.units {
        let input = unit.unit.input_label();
        let name = Path::new(&input).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
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
