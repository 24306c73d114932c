//! The `jsonl_merge` preset: groups of JSONL files concatenated, in input order, into one file
//! each: pure I/O on the same pipeline (an identity job and a single-file records sink), with
//! atomic outputs and bad lines reported like every task. A merge is rebuilt from its inputs on
//! every run (they may have changed since), so it does not resume.
//!
//! Unlike the reference, a missing input fails the task before anything is written (listing every
//! missing file), and lines that are not JSON objects or not UTF-8 are never silently dropped:
//! each goes to `<output stem>.bad_lines.jsonl` with its file, line and cause. With `dedup_key`,
//! only the first record of each value of that field is kept (later ones are counted).

use std::path::PathBuf;
use std::sync::Arc;

use modelcall_config::distill::MergeConfig;
use modelcall_config::step::JsonlMerge;
use modelcall_config::task::DuplicateIds;
use modelcall_io::{FilePaths, RecordsTarget};

use super::preprocess_job::IdentityJob;
use super::{print_dry_run, TaskRun};
use crate::cli::exit::{BadConfig, Finish};
use crate::engine::{self, EngineOptions, ReadOptions, SinkKind, StopSignal, Unit, UnitInputs};

pub async fn run(run: &TaskRun<'_>, step: &JsonlMerge) -> anyhow::Result<Finish> {
    let file = run.task.source_path.display();
    let config = MergeConfig::load(&step.merge_config_path).map_err(|e| BadConfig(e.to_string()))?;
    let (groups, unknown) = config.select(&step.merge_groups);
    // As the reference: a name the merge config lacks is a warning and the others are merged;
    // with none left there is nothing to do, which is an error here.
    for u in &unknown {
        eprintln!("warning: {file}: distillation.merge_groups: {u}; skipped");
    }
    if groups.is_empty() && !unknown.is_empty() {
        return Err(BadConfig(format!("{file}: distillation.merge_groups: none of the named groups is in {}", config.path.display())).into());
    }
    // Every input of every selected group must exist before anything is written.
    let missing: Vec<String> = groups
        .iter()
        .flat_map(|g| g.input_files.iter().map(move |f| (g, f)))
        .filter(|(_, f)| !step.base_input_dir.join(f).is_file())
        .map(|(g, f)| format!("  {} (group `{}`)", step.base_input_dir.join(f).display(), g.name))
        .collect();
    if !missing.is_empty() {
        return Err(BadConfig(format!("{file}: {} input file(s) of the merge are missing; nothing was written:\n{}", missing.len(), missing.join("\n"))).into());
    }
    if run.dry_run {
        print_dry_run(run, &[], None);
        return Ok(Finish::Done);
    }
    let _lock = run.lock(&step.base_output_dir)?;
    let units: Vec<Unit> = groups
        .iter()
        .map(|g| {
            let output = step.base_output_dir.join(&g.output_file);
            let inputs: Vec<PathBuf> = g.input_files.iter().map(|f| step.base_input_dir.join(f)).collect();
            Unit {
                name: g.name.clone(),
                inputs: UnitInputs::Records(inputs),
                paths: FilePaths::beside(&output, "bad_lines.jsonl"),
                sink: SinkKind::Records(RecordsTarget::File { path: output, ordered: true }),
            }
        })
        .collect();
    let options = EngineOptions {
        task_name: run.plan.task_name.clone(),
        // Without a dedup key, content-hash keys keep every record (repeats under ordinals).
        read: ReadOptions {
            key_fields: step.dedup_key.iter().cloned().collect(),
            on_duplicate_id: if step.dedup_key.is_some() { DuplicateIds::Skip } else { DuplicateIds::Keep },
            warn_missing_id: step.dedup_key.is_some(),
            ..run.read_options()
        },
        concurrency: 4096,
        max_concurrent_units: 1,
        flush_interval: run.plan.flush_interval,
        // A merge is always rebuilt from its inputs: they may have changed since the last run.
        fresh_start: true,
        ..EngineOptions::default()
    };
    let outcome = engine::run(options, Arc::new(IdentityJob), engine::feed(units), StopSignal::with_ctrl_c(), None).await?;
    for u in &outcome.units {
        let s = &u.stats;
        let bad = if s.bad_lines > 0 { format!("; {} bad line(s) in {}", s.bad_lines, u.unit.paths.errors.display()) } else { String::new() };
        // Without a dedup key every repeat is kept (the Python tool's behaviour); with one, the later copies are dropped.
        let dups = match (s.duplicate_ids, &step.dedup_key) {
            (0, _) => String::new(),
            (n, Some(k)) => format!("; {n} duplicate(s) of `{k}` dropped"),
            (n, None) => format!("; {n} repeated record(s) kept (distillation.dedup_key drops them)"),
        };
        let n = u.unit.inputs.files().len();
        eprintln!("merged `{}`: {n} file(s) → {} record(s) in {}{bad}{dups}", u.unit.name, s.records_out, u.unit.paths.output.display());
    }
    Ok(Finish::from_outcome(&outcome))
}
