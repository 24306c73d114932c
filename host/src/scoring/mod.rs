//! The scoring engine: source → (preprocess) → prompt → model → parse → journal → outputs.

pub mod generate;
pub mod pipeline;
pub mod record;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use modelcall_io::OutputFormat;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::progress::Progress;
use crate::summary::{write_json_atomically, RunStats};
use pipeline::{FilePaths, RunContext, StopSignal};
use record::Stages;

/// What a run reads: files known up front, or files handed over while the run is going (the
/// preprocessing stage sends each group file as soon as it is complete, so scoring starts
/// before preprocessing ends).
pub enum Inputs {
    Files(Vec<PathBuf>),
    Stream(tokio::sync::mpsc::UnboundedReceiver<PathBuf>),
}

impl Inputs {
    /// The files, when known up front (dry runs and progress totals).
    pub fn known(&self) -> Option<&[PathBuf]> {
        match self {
            Inputs::Files(v) => Some(v),
            Inputs::Stream(_) => None,
        }
    }
}

/// Everything a scoring run needs, resolved from the task file and the command line.
pub struct ScoringPlan {
    pub task_name: String,
    pub inputs: Inputs,
    pub output_folder: PathBuf,
    pub stat_folder: Option<PathBuf>,
    pub output_format: OutputFormat,
    pub key_fields: Vec<String>,
    pub naming: pipeline::Naming,
    /// Discard earlier results of these inputs first (`options.resume: false` or
    /// `options.delete_existing: true`): every record is processed again.
    pub fresh_start: bool,
    /// Generation with `n: k`: k work items (and output lines) per record.
    pub samples_per_record: u32,
    /// JSONL outputs in input order instead of completion order.
    pub ordered: bool,
    pub concurrency: usize,
    pub max_concurrent_files: usize,
    pub max_items_per_file: Option<u64>,
    pub shard: Option<(u32, u32)>,
    pub flush_interval: Duration,
    pub show_progress: bool,
    /// Facts for `run_summary.json` (endpoint, model, plugins with versions and hashes).
    pub provenance: Value,
    /// Stat-file fields of the reference (`prompt_conf`, `model_conf`).
    pub prompt_conf: String,
    pub model_conf: String,
}

/// How a run ended.
pub struct RunOutcome {
    pub stats: RunStats,
    pub stopped: Option<String>,
    pub summary_path: PathBuf,
}

pub async fn run(mut plan: ScoringPlan, stages: Stages) -> anyhow::Result<RunOutcome> {
    let total = plan.inputs.known().and_then(count_inputs);
    let mut feed = match std::mem::replace(&mut plan.inputs, Inputs::Files(Vec::new())) {
        Inputs::Stream(rx) => rx,
        Inputs::Files(files) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for f in files {
                let _ = tx.send(f);
            }
            rx
        }
    };
    std::fs::create_dir_all(&plan.output_folder)
        .with_context(|| format!("creating output folder {}", plan.output_folder.display()))?;
    let progress = Progress::new(total, plan.show_progress);
    let stop = StopSignal::default();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.stop("interrupted (Ctrl-C); run the same command again to resume".into());
            }
        });
    }
    let stats = Arc::new(Mutex::new(RunStats::new()));
    let ctx = Arc::new(RunContext {
        stages: Arc::new(stages),
        in_flight: Arc::new(Semaphore::new(plan.concurrency.max(1))),
        key_fields: plan.key_fields.clone(),
        naming: plan.naming,
        samples_per_record: plan.samples_per_record,
        ordered: plan.ordered,
        shard: plan.shard,
        max_items_per_file: plan.max_items_per_file,
        output_format: plan.output_format,
        flush_interval: plan.flush_interval,
        read_ahead: plan.concurrency.clamp(64, 8192),
        stats: stats.clone(),
        progress: progress.clone(),
        stop: stop.clone(),
    });

    // Files run `max_concurrent_files` at a time, sharing the one bound on requests in flight,
    // so the tail of one file overlaps the head of the next.
    let files_at_once = Arc::new(Semaphore::new(plan.max_concurrent_files.max(1)));
    let mut handles = Vec::new();
    while let Some(input) = feed.recv().await {
        let input = &input;
        let paths = FilePaths::named(input, &plan.output_folder, plan.output_format, plan.shard, plan.naming);
        if plan.fresh_start {
            for p in [&paths.journal, &paths.output, &paths.errors] {
                if p.exists() {
                    eprintln!("warning: starting over (resume off / delete_existing): removing {}", p.display());
                    std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
                }
            }
        }
        let permit = files_at_once.clone().acquire_owned().await?;
        if stop.is_stopped() {
            break;
        }
        let ctx = ctx.clone();
        handles.push(tokio::spawn(async move {
            let result = pipeline::run_file(ctx, paths.clone()).await;
            drop(permit);
            (paths, result)
        }));
    }
    let mut file_error = None;
    let mut finished = Vec::new();
    for h in handles {
        let (paths, result) = h.await?;
        match result {
            Ok(fs) => finished.push((paths, fs)),
            Err(e) => {
                stop.stop(format!("{e:#}"));
                file_error.get_or_insert(e);
            }
        }
    }
    progress.finish();

    // The collectors are done; take the counters out (keeping their start time).
    let mut stats = std::mem::take(&mut *stats.lock().unwrap());
    for (_, fs) in &finished {
        stats.files.push(fs.clone());
    }
    let stopped = stop.reason();

    // Reference-compatible per-file stat JSON.
    if stopped.is_none() {
        if let Some(stat_folder) = &plan.stat_folder {
            for (paths, fs) in &finished {
                write_file_stat(stat_folder, &paths.input, &paths.output, fs, &plan)?;
            }
        }
    }

    let status = if stopped.is_some() { "stopped" } else { "completed" };
    let summary = stats.to_json(&plan.task_name, status, stopped.as_deref(), plan.provenance.clone());
    let summary_path = plan.output_folder.join(match plan.shard {
        Some((i, n)) if n > 1 => format!("run_summary.shard-{i}-of-{n}.json"),
        _ => "run_summary.json".to_string(),
    });
    write_json_atomically(&summary_path, &summary)?;
    if let Some(e) = file_error {
        return Err(e);
    }
    Ok(RunOutcome { stats, stopped, summary_path })
}

/// `<stat_folder>/<input basename>.json` in the reference's shape (its key spellings kept).
fn write_file_stat(
    stat_folder: &std::path::Path,
    input: &std::path::Path,
    output: &std::path::Path,
    fs: &crate::summary::FileStats,
    plan: &ScoringPlan,
) -> anyhow::Result<()> {
    let name = input.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let path = stat_folder.join(format!("{name}.json"));
    let mut stat: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| {
            json!({
                "prompt_conf": plan.prompt_conf, "model_conf": plan.model_conf, "rating_times": 0,
                "voting_status": false, "raw_file_path": input.display().to_string(),
                "formatted_file_path": output.display().to_string(), "taged_file_paths": [],
                "voting_file_path": "",
            })
        });
    let out = output.display().to_string();
    if let Some(list) = stat["taged_file_paths"].as_array_mut() {
        if !list.iter().any(|v| v == &json!(out)) {
            list.push(json!(out));
        }
    }
    stat["n_sample"] = json!(fs.seen - fs.other_shards - fs.debug_limited);
    stat["n_sucess_sample"] = json!(fs.scored + fs.already_done);
    write_json_atomically(&path, &stat)
}

/// Records expected across the inputs, when cheap to know (plain JSONL line counts, Parquet
/// metadata); `None` for compressed inputs. Only used for the progress bar's ETA.
fn count_inputs(inputs: &[PathBuf]) -> Option<u64> {
    let mut total = 0u64;
    for input in inputs {
        total += crate::input_count::count_records_fast(input)?;
    }
    Some(total)
}
