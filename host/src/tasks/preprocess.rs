//! The preprocessing preset: raw files (Repomix/RenderGit packs) or records through a
//! preprocessor plugin, one JSONL file per group (the language folder of packs; the language of
//! `pt_data_<Lang>` triplet files; else the input file's stem). Groups run one after another,
//! and each group file is handed on (to scoring) as soon as it is complete.

use std::path::PathBuf;
use std::sync::Arc;

use modelcall_config::PreprocessPlan;
use modelcall_io::{FilePaths, RecordsTarget};
use modelcall_plugin_host::Plugin;
use tokio::sync::mpsc;

use super::preprocess_job::PreprocessJob;
use super::TaskRun;
use crate::engine::{self, EngineOptions, ReadOptions, RunOutcome, SinkKind, StopSignal, Unit, UnitInputs};
use crate::plugin_pool::PluginPool;

/// The units of the stage, in order.
pub fn units(plan: &PreprocessPlan) -> anyhow::Result<Vec<Unit>> {
    let root = &plan.input_root;
    let record_files = modelcall_io::list_input_files(root, plan.file_pattern.as_deref())?;
    // `preprocess.input`, else: record inputs (JSONL/Parquet files) go through as records,
    // anything else as raw files.
    let raw = match plan.input {
        Some(modelcall_config::task::PreprocessInputKind::Files) => root.is_dir(),
        Some(modelcall_config::task::PreprocessInputKind::Records) => false,
        None => root.is_dir() && record_files.is_empty(),
    };
    let mut groups: Vec<(String, Vec<PathBuf>)> = Vec::new();
    if raw {
        let mut files = modelcall_io::listing::list_files(root, true, &|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            plan.file_pattern.as_deref().is_none_or(|g| modelcall_io::source::glob_match(g, &name))
        })?;
        if let Some(langs) = &plan.languages {
            files.retain(|p| {
                let rel = modelcall_io::listing::relative_name(root, p);
                rel.contains('/') && langs.iter().any(|l| rel.split('/').next() == Some(l.as_str()))
            });
        }
        if let Some(n) = plan.max_inputs {
            files.truncate(n);
        }
        for f in files {
            let rel = modelcall_io::listing::relative_name(root, &f);
            let group = if rel.contains('/') { rel.split('/').next().unwrap_or_default().to_string() } else { "preprocessed".into() };
            push(&mut groups, group, f);
        }
    } else {
        // `num_files` / `debug.max_files` count files, as the reference's did (first N, sorted).
        let keep = plan.max_inputs.unwrap_or(usize::MAX);
        for f in record_files.into_iter().take(keep) {
            push(&mut groups, group_for_stem(&modelcall_io::input_stem(&f)), f);
        }
    }
    let out = &plan.output_folder;
    Ok(groups
        .into_iter()
        .map(|(group, files)| {
            let stem = modelcall_io::grouped::group_file_stem(&group);
            let paths = FilePaths {
                output: out.join(format!("{stem}.jsonl")),
                errors: out.join(format!("{stem}.preprocess.errors.jsonl")),
                journal: modelcall_io::naming::journal_path(out, &format!("preprocess-{stem}")),
            };
            let inputs = if raw { UnitInputs::RawFiles { root: root.clone(), files } } else { UnitInputs::Records(files) };
            Unit { name: group, inputs, paths, sink: SinkKind::Records(RecordsTarget::Groups(out.clone())) }
        })
        .collect())
}

fn push(groups: &mut Vec<(String, Vec<PathBuf>)>, group: String, file: PathBuf) {
    match groups.iter_mut().find(|(g, _)| *g == group) {
        Some((_, files)) => files.push(file),
        None => groups.push((group, vec![file])),
    }
}

/// The output group of a record file: the language of the reference's triplet files
/// (`pt_data_<Lang>_partNN` → `<Lang>`, `pt_data_<Lang>` → `<Lang>`), else the file's stem.
/// Parsed per file name, so `C` and `C_sharp` stay apart.
pub fn group_for_stem(stem: &str) -> String {
    match stem.strip_prefix("pt_data_") {
        Some(rest) => match rest.rfind("_part") {
            Some(i) if rest[i + 5..].chars().all(|c| c.is_ascii_digit()) => rest[..i].to_string(),
            _ => rest.to_string(),
        },
        None => stem.to_string(),
    }
}

/// Runs the stage; each finished group file goes to `ready` (when given) at once.
pub async fn run(
    run: &TaskRun<'_>,
    plan: &PreprocessPlan,
    plugin: Plugin,
    stop: StopSignal,
    ready: Option<mpsc::UnboundedSender<PathBuf>>,
    call_times: Arc<std::sync::Mutex<crate::stage_timing::PluginCallTimes>>,
) -> anyhow::Result<RunOutcome> {
    let units = units(plan)?;
    if run.show_progress {
        eprintln!("preprocessing {} group(s) with {}", units.len(), plugin.info().source);
    }
    let pool = PluginPool::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let threads = pool.threads();
    // Preprocessing costs nothing but time: inputs preprocessed by another plugin or config
    // are simply preprocessed again (and what scores them sees their records change).
    let settings = engine::settings::Settings::new(serde_json::json!({"preprocessor": engine::settings::Settings::plugin(&plugin, &plan.plugin.config)}));
    let job = Arc::new(PreprocessJob { call_times, ..PreprocessJob::new(plugin, pool) });
    let options = EngineOptions {
        task_name: run.plan.task_name.clone(),
        read: ReadOptions {
            key_fields: vec![plan.id_field.clone()],
            settings: Some(settings),
            other_settings: engine::OtherSettings::Redo,
            ..run.read_options()
        },
        concurrency: threads * 2,
        max_concurrent_units: 1,
        flush_interval: std::time::Duration::from_millis(200),
        fresh_start: false,
        ..EngineOptions::default()
    };
    engine::run(options, job, engine::feed(units), stop, ready).await
}

/// The preprocessing error files of the folder `out` that hold rows, and their row counts
/// (what the scoring run's summary counts as `preprocess_errors`).
pub fn error_files(out: &std::path::Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".preprocess.errors.jsonl")))
        .filter_map(|p| {
            let rows = std::fs::read_to_string(&p).ok()?.lines().filter(|l| !l.trim().is_empty()).count() as u64;
            (rows > 0).then_some((p, rows))
        })
        .collect();
    files.sort();
    files
}

/// The `preprocess_errors` fact of the scoring run's summary: the rows and their files.
pub fn errors_fact(out: &std::path::Path) -> serde_json::Value {
    let files = error_files(out);
    serde_json::json!({
        "count": files.iter().map(|(_, n)| n).sum::<u64>(),
        "files": files.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
    })
}

/// One line about the stage, and where its error files are.
pub fn report(outcome: &RunOutcome, out: &std::path::Path) {
    let t = outcome.stats.totals();
    eprintln!(
        "preprocessed: {} input(s) now, {} done before, {} skipped, {} failed → {} record(s){}; {} group file(s) in {}{}",
        t.scored + t.skipped + t.failed,
        t.already_done,
        t.skipped,
        t.failed + t.bad_lines,
        t.records_out,
        if t.item_errors > 0 { format!(" and {} item error(s)", t.item_errors) } else { String::new() },
        outcome.units.iter().map(|u| u.files_written.len()).sum::<usize>(),
        out.display(),
        if t.changed > 0 {
            format!("; {} of them changed since the last run (or were made with another preprocessor or config)", t.changed)
        } else {
            String::new()
        },
    );
    for u in &outcome.units {
        if u.stats.failed + u.stats.bad_lines + u.stats.item_errors > 0 {
            eprintln!("preprocessing errors: {}", u.unit.paths.errors.display());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn triplet_file_names_group_by_exact_language() {
        assert_eq!(super::group_for_stem("pt_data_C_part01"), "C");
        assert_eq!(super::group_for_stem("pt_data_C_sharp_part02"), "C_sharp");
        assert_eq!(super::group_for_stem("pt_data_Go"), "Go");
        assert_eq!(super::group_for_stem("english_texts"), "english_texts");
    }
}
