//! The one printer of a [`RunPlan`], for `--dry-run` and logs, whatever the task type. Secrets
//! are masked (the model config's Display masks its key); nothing here reads inputs or calls a
//! model.

use std::fmt::Write as _;

use crate::run_plan::{PluginRef, RunPlan, Stages};
use crate::task::{LoadedTask, OutputFormat};

impl RunPlan {
    /// The plan as text. `plugin_facts` adds what only loading tells (name, version, sha256).
    pub fn render(&self, task: &LoadedTask, plugin_facts: &dyn Fn(&PluginRef) -> String) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "task        {} ({}) from {}", self.task_name, self.stages.name(), self.task_file.display());
        if let Some(d) = &task.task.description {
            let _ = writeln!(s, "            {d}");
        }
        match &self.stages {
            Stages::Scoring(p) => {
                if let Some((key, input)) = &p.input {
                    let pattern = p.file_pattern.as_deref().map(|g| format!(" ({g})")).unwrap_or_default();
                    let _ = writeln!(s, "inputs      {}{pattern} ({key})", input.display());
                }
                if let Some(pre) = &p.preprocess {
                    let _ = writeln!(s, "preprocess  {} → {}", pre.input_root.display(), pre.output_folder.display());
                }
                let fmt = match p.output_format {
                    OutputFormat::Parquet => "parquet",
                    OutputFormat::Jsonl => "jsonl",
                };
                let resumed = if task.resumed_earlier_run { " (resuming an earlier run)" } else { "" };
                let _ = writeln!(s, "outputs     {} ({fmt}){resumed}", p.output_folder.display());
                if let Some(st) = &p.stat_folder {
                    let _ = writeln!(s, "stats       {}", st.display());
                }
                if let Some(prompt) = &task.prompt {
                    let _ = writeln!(s, "prompt      {} (json keys: {})", prompt.path.display(), prompt.output.json_keys.join(", "));
                }
                let _ = writeln!(
                    s,
                    "concurrency {} requests in flight, {} files at once{}{}",
                    self.concurrency,
                    p.max_concurrent_files,
                    if self.adaptive { "; adaptive (that is the ceiling)" } else { "" },
                    if self.prefix_groups { "; records sharing a prompt prefix sent together" } else { "" }
                );
                if let Some(n) = p.max_files {
                    let _ = writeln!(s, "debug       at most {n} file(s)");
                }
                if let Some(n) = p.max_items_per_file {
                    let _ = writeln!(s, "debug       at most {n} record(s) per file");
                }
            }
            Stages::Generate(g) => {
                let _ = writeln!(s, "step        generate_response: {} → {}", g.input_path.display(), g.output_path.display());
                let _ = writeln!(s, "concurrency {} requests in flight; n {}; ordered {}", self.concurrency, g.n, g.ordered);
            }
            Stages::Chatml(c) => {
                let _ = writeln!(s, "step        chatml_conversion: {} → {}", c.input_dir.display(), c.output_dir.display());
                let _ = writeln!(s, "datasets    {}", c.dataset_config_path.display());
            }
            Stages::Batch(b) => {
                let _ = writeln!(s, "batch       {} → {} in {} shard(s) per model", b.input_file.display(), b.output_base_dir.display(), b.shards);
                for m in &b.models {
                    let _ = writeln!(s, "model run   {} ({}) → {}", m.run.model_config_path.display(), m.alias, m.run.output_path.display());
                }
            }
            Stages::MergeResults(m) => {
                let _ = writeln!(s, "merge       {} for {}", m.output_base_dir.display(), m.models.join(", "));
            }
            Stages::Merge(m) => {
                let _ = writeln!(s, "step        jsonl_merge: {} → {}", m.base_input_dir.display(), m.base_output_dir.display());
                let _ = writeln!(s, "groups      {}", if m.merge_groups.is_empty() { "all".to_string() } else { m.merge_groups.join(", ") });
            }
        }
        if let Some(m) = &task.model {
            let _ = writeln!(s, "model       {m}");
        }
        for p in self.plugins() {
            let facts = plugin_facts(p);
            let config = serde_json::to_string(&p.config).unwrap_or_default();
            let facts = if facts.is_empty() { String::new() } else { format!(" {facts}") };
            let _ = writeln!(s, "plugin      {} {} [{}]{facts}", p.role, p.source, p.slot);
            let _ = writeln!(s, "              config {}", excerpt(&config, 300));
        }
        // The ignored keys are not repeated here: the runner prints them once per task file as one
        // note (`schema::notes_block`), not once per run of a batch.
        for w in &task.warnings {
            let _ = writeln!(s, "warning     {w}");
        }
        s
    }
}

/// What a loaded task will do, without loading its plugins (logs and tests).
pub fn dry_run_plan(t: &LoadedTask) -> String {
    match RunPlan::from_task(t) {
        Ok(plan) => plan.render(t, &|_| String::new()),
        Err(e) => format!("error: {e}\n"),
    }
}

fn excerpt(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    format!("{}…", text.chars().take(max_chars).collect::<String>())
}
