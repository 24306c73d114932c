//! A human summary of what a loaded task will do, for `--dry-run` and logs. Secrets are masked
//! (the model config's Display masks its key); nothing here reads inputs or calls a model.

use std::fmt::Write as _;

use crate::distill::DistillationStep;
use crate::task::{LoadedTask, OutputFormat, TaskType};

pub fn dry_run_plan(t: &LoadedTask) -> String {
    let task = &t.task;
    let mut s = String::new();
    let _ = writeln!(s, "task        {} ({}) from {}", task.task_name, task.task_type, t.source_path.display());
    if let Some(d) = &task.description {
        let _ = writeln!(s, "            {d}");
    }
    match task.task_type {
        TaskType::DataScoring => {
            let d = &task.data;
            if let Some(i) = d.input_file.as_ref().or(d.input_folder.as_ref()) {
                let pattern = d.file_pattern.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
                let _ = writeln!(s, "inputs      {}{pattern}", t.resolve(i).display());
            }
            if task.preprocess.enabled {
                let _ = writeln!(s, "preprocess  {:?}, max_tokens {}", task.preprocess.script_type, task.preprocess.max_tokens());
            }
            if let Some(o) = &t.output_folder {
                let fmt = match d.output_format() {
                    OutputFormat::Parquet => "parquet",
                    OutputFormat::Jsonl => "jsonl",
                };
                let resumed = if t.resumed_earlier_run { " (resuming an earlier run)" } else { "" };
                let _ = writeln!(s, "outputs     {} ({fmt}){resumed}", o.display());
            }
            if let Some(st) = &t.stat_folder {
                let _ = writeln!(s, "stats       {}", st.display());
            }
            if let Some(p) = &t.prompt {
                let _ = writeln!(s, "prompt      {} (json keys: {})", p.path.display(), p.output.json_keys.join(", "));
            }
            let c = &task.concurrency;
            let _ = writeln!(
                s,
                "concurrency {} requests in flight, {} files at once",
                c.max_concurrent_requests.map(|n| n.to_string()).unwrap_or_else(|| "default".into()),
                c.max_concurrent_files.map(|n| n.to_string()).unwrap_or_else(|| "default".into())
            );
            if let Some(n) = task.debug.max_files_limit() {
                let _ = writeln!(s, "debug       at most {n} file(s)");
            }
            if let Some(n) = task.debug.max_items_limit() {
                let _ = writeln!(s, "debug       at most {n} record(s) per file");
            }
        }
        TaskType::DataDistillation | TaskType::GenerateResponse => match &task.distillation {
            Some(DistillationStep::ChatmlConversion(c)) => {
                let _ = writeln!(s, "step        chatml_conversion: {} → {}", c.input_dir.display(), c.output_dir.display());
                let _ = writeln!(s, "datasets    {}", c.dataset_config_path.display());
            }
            Some(DistillationStep::JsonlMerge(m)) => {
                let _ = writeln!(s, "step        jsonl_merge: {} → {}", m.base_input_dir.display(), m.base_output_dir.display());
                let _ = writeln!(s, "groups      {}", if m.merge_groups.is_empty() { "all".to_string() } else { m.merge_groups.join(", ") });
            }
            Some(DistillationStep::GenerateResponse(g)) => {
                let _ = writeln!(s, "step        generate_response: {} → {}", g.input_path.display(), g.output_path.display());
                let _ = writeln!(s, "concurrency {} requests in flight", g.concurrency);
            }
            None => {}
        },
    }
    if let Some(m) = &t.model {
        let _ = writeln!(s, "model       {m}");
    }
    for p in task.plugins.values() {
        let _ = writeln!(s, "plugin      {} = {} ({})", p.role, p.path, p.name);
    }
    for i in &t.ignored_keys {
        let _ = writeln!(s, "note        {i}");
    }
    for w in &t.warnings {
        let _ = writeln!(s, "warning     {w}");
    }
    s
}
