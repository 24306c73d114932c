//! The one record pipeline: `source → job (preprocess | prompt → model → parse | convert) →
//! journal → sink`. Every task type is a preset (see `crate::tasks`) that picks a [`Job`] and a
//! [`SinkKind`] per [`Unit`]; none brings its own loop, journal or writer.
//!
//! Threads and tasks, per unit:
//! - a reader on a blocking thread parses lines, assigns stable keys, drops keys already done or
//!   failed permanently before, and sends work through a bounded channel;
//! - one task per item, admitted by the run-wide semaphore (the bound on requests in flight), so
//!   a slow request never holds up the others;
//! - one collector that owns the journal (its single writer) and the counters;
//! - at the end, the sink turns the journal into the output and error files, atomically.
//!
//! Units run `max_concurrent_units` at a time, sharing the one bound on work in flight, so the
//! tail of one file overlaps the head of the next.

pub mod adaptive;
pub mod adopt;
pub mod collect;
pub mod job;
pub mod prefix_groups;
pub mod read_item;
pub mod reader;
pub mod resume;
pub mod settings;
pub mod stop;
pub mod survey;
pub mod unit;
mod unit_run;
pub use unit_run::finalize;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

pub use job::{CallTally, Failure, FailureSite, ItemFailure, Job, JobInput, Outcome, Produced};
pub use read_item::{OtherSettings, ReadOptions};
pub use stop::{StopReason, StopSignal};
pub use unit::{SinkKind, Unit, UnitInputs};

use crate::progress::Progress;
use crate::run_records::{RunRecord, Spent};
use crate::summary::{FileStats, RunStats};

/// How a run schedules its units, and what it reports. The defaults are a local run (no
/// summary, no budget, a fixed bound) for presets that make no model calls.
#[derive(Default)]
pub struct EngineOptions {
    pub task_name: String,
    pub read: ReadOptions,
    /// Items in flight at once, across units (the concurrency bound).
    pub concurrency: usize,
    pub max_concurrent_units: usize,
    pub flush_interval: Duration,
    /// Discard earlier results of each unit first (`resume: false`, `delete_existing: true`).
    pub fresh_start: bool,
    pub show_progress: bool,
    /// Records expected across all units, when known (drives the ETA).
    pub expected_records: Option<u64>,
    /// `run_summary.json` here, with these facts (endpoint, model, plugins) under `run`.
    pub summary: Option<(PathBuf, Value)>,
    /// Stop cleanly once this much is spent.
    pub budget: Option<Budget>,
    /// Find the bound on requests in flight (`concurrency.mode: adaptive`), with `concurrency`
    /// as the ceiling.
    pub adaptive: bool,
    /// Send records whose prompts begin alike together (`concurrency.scheduling:
    /// prefix_groups`; see [`prefix_groups`]).
    pub prefix_groups: bool,
    /// `--metrics-file` / `--metrics-listen`.
    pub metrics: crate::metrics::MetricsTarget,
    /// Facts known only at the end (per-endpoint counts, the simulator's, the judge's quality
    /// read from the finalized outputs), merged into the summary's top level. Given the summary
    /// as it stands (status, files).
    pub end_facts: Option<EndFacts>,
}

/// See [`EngineOptions::end_facts`].
pub type EndFacts = Box<dyn Fn(&Value) -> serde_json::Map<String, Value> + Send + Sync>;

/// `budget:` of the task, with the model's `pricing` for `max_cost`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub max_tokens: Option<u64>,
    pub max_cost: Option<f64>,
    pub pricing: Option<modelcall_config::model::Pricing>,
}

impl Budget {
    /// Why the run must stop, once `earlier` runs of the output folder and this run's `stats`
    /// together have spent the budget; `task_file` is named in the message (where to raise it).
    pub fn exceeded_over(&self, earlier: &Spent, stats: &RunStats, task_file: &str) -> Option<String> {
        let this_run = stats.prompt_tokens + stats.completion_tokens;
        let runs = earlier.runs_spending + (this_run > 0) as u64;
        let over = format!("used by this output folder over {runs} run{}", if runs == 1 { "" } else { "s" });
        let tail = format!("raise it in {task_file} and run the same command again to go on");
        let tokens = earlier.tokens() + this_run;
        if let Some(max) = self.max_tokens.filter(|m| tokens >= *m) {
            return Some(format!(
                "the budget is spent: {} of {} tokens {over} (budget.max_tokens); {tail}",
                crate::numbers::grouped(tokens),
                crate::numbers::grouped(max)
            ));
        }
        let pricing = self.pricing?;
        let cost = earlier.cost.unwrap_or(0.0) + pricing.cost(stats.prompt_tokens, stats.completion_tokens);
        let max = self.max_cost.filter(|m| cost >= *m)?;
        Some(format!("the budget is spent: a cost of {cost:.4} of {max} {over} (budget.max_cost); {tail}"))
    }

    /// [`Budget::exceeded_over`] for a run with nothing spent before it.
    pub fn exceeded(&self, stats: &RunStats) -> Option<String> {
        self.exceeded_over(&Spent::default(), stats, "the task file")
    }
}

/// The budget of a run: the task's limits, what earlier runs of the same output folder spent
/// (their run records, every shard's), and the task file to raise it in.
#[derive(Debug, Clone, Default)]
pub struct RunBudget {
    pub limits: Budget,
    pub earlier: Spent,
    pub task_file: String,
}

impl RunBudget {
    /// Why the run must stop, once the earlier runs and this one (`stats`) spent the budget.
    pub fn exceeded(&self, stats: &RunStats) -> Option<String> {
        self.limits.exceeded_over(&self.earlier, stats, &self.task_file)
    }
}

/// Aborts a background task when dropped (the run record's writer, on every way out of `run`).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often a running run rewrites its run record.
const RUN_RECORD_EVERY: Duration = Duration::from_secs(2);

/// State shared by every unit of a run.
pub struct RunShared {
    pub in_flight: Arc<Semaphore>,
    pub stats: Arc<Mutex<RunStats>>,
    pub progress: Progress,
    pub stop: StopSignal,
    pub read: ReadOptions,
    pub flush_interval: Duration,
    pub read_ahead: usize,
    pub budget: Option<RunBudget>,
    pub adaptive: Option<adaptive::AdaptiveLimit>,
    pub prefix_groups: bool,
}

/// A unit that ran to its end (or to the stop), with its counters and the files it wrote.
pub struct FinishedUnit {
    pub unit: Unit,
    pub stats: FileStats,
    pub files_written: Vec<PathBuf>,
    /// Not cut short by a stop.
    pub complete: bool,
}

/// How a run ended.
pub struct RunOutcome {
    pub stats: RunStats,
    pub units: Vec<FinishedUnit>,
    pub stopped: Option<StopReason>,
    pub summary_path: Option<PathBuf>,
}

impl RunOutcome {
    /// Items in the error outputs: failed records, bad lines and unreadable inputs of this run,
    /// and records that failed permanently before and were not sent again.
    pub fn failed_items(&self) -> u64 {
        let t = self.stats.totals();
        t.failed + t.bad_lines + t.failed_before + t.source_errors + t.item_errors
    }
}

/// Runs `job` over every unit received from `units` until the channel closes (or the run
/// stops). `on_finalized` receives the files of each unit as soon as they are in place (the
/// preprocessing stage feeds scoring through it).
pub async fn run<J: Job>(
    options: EngineOptions,
    job: Arc<J>,
    mut units: mpsc::UnboundedReceiver<Unit>,
    stop: StopSignal,
    on_finalized: Option<mpsc::UnboundedSender<PathBuf>>,
) -> anyhow::Result<RunOutcome> {
    let progress = Progress::new(options.expected_records, options.show_progress);
    let stats = Arc::new(Mutex::new(RunStats::new()));
    let pricing = options.budget.and_then(|b| b.pricing);
    // A run that writes a summary keeps a record of what it spends in the output folder
    // (`.modelcall/runs/`); the budget counts what the folder's earlier runs spent.
    let mut earlier = Spent::default();
    let record = options.summary.as_ref().map(|(path, provenance)| {
        let folder = path.parent().unwrap_or(std::path::Path::new(".")).to_path_buf();
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let suffix = name.strip_prefix("run_summary").and_then(|n| n.strip_suffix(".json")).unwrap_or("");
        earlier = Spent::of(&crate::run_records::load(&folder), pricing);
        (folder, Arc::new(RunRecord::new(path.parent().unwrap_or(std::path::Path::new(".")), suffix, &options.task_name, provenance, pricing)))
    });
    let budget = options.budget.map(|limits| RunBudget {
        limits,
        earlier: earlier.clone(),
        task_file: options.summary.as_ref().and_then(|(_, p)| p["task_file"].as_str()).unwrap_or("the task file").to_string(),
    });
    let _record_writer = record.as_ref().map(|(_, record)| {
        record.write_or_warn("running", record.spend(&stats.lock().unwrap()), None);
        let (record, stats) = (record.clone(), stats.clone());
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RUN_RECORD_EVERY).await;
                let spend = record.spend(&stats.lock().unwrap());
                record.write_or_warn("running", spend, None);
            }
        }))
    });
    // Spent before this run sends anything: nothing is sent.
    if let Some(why) = budget.as_ref().and_then(|b| b.exceeded(&stats.lock().unwrap())) {
        eprintln!("nothing is sent: the earlier runs of this output folder spent the budget");
        stop.fatal(why);
    }
    let ceiling = options.concurrency.max(1);
    // Adaptive: the endpoints' own limits bound what is in flight; the semaphore is the ceiling.
    let in_flight = Arc::new(Semaphore::new(ceiling));
    let shared = Arc::new(RunShared {
        adaptive: options.adaptive.then(|| adaptive::AdaptiveLimit::new(ceiling)),
        in_flight,
        stats: stats.clone(),
        progress: progress.clone(),
        stop: stop.clone(),
        read: options.read.clone(),
        flush_interval: options.flush_interval,
        read_ahead: options.concurrency.clamp(64, 8192),
        budget,
        prefix_groups: options.prefix_groups,
    });
    let exporter = if options.metrics.is_empty() {
        None
    } else {
        Some(crate::metrics::Exporter::start(options.metrics.clone(), options.task_name.clone(), stats.clone(), progress.clone())?)
    };
    let units_at_once = Arc::new(Semaphore::new(options.max_concurrent_units.max(1)));
    let mut handles = Vec::new();
    let mut feed_done = false;
    loop {
        let unit = tokio::select! {
            unit = units.recv() => unit,
            _ = stop.stopped() => None,
        };
        let Some(unit) = unit else {
            feed_done = !stop.is_stopped() || matches!(units.try_recv(), Err(mpsc::error::TryRecvError::Disconnected));
            break;
        };
        if options.fresh_start {
            for p in [&unit.paths.journal, &unit.paths.output, &unit.paths.errors, &adopt::marker_path(&unit.paths.journal)] {
                if p.exists() {
                    eprintln!("warning: starting over (resume off / delete_existing): removing {}", p.display());
                    std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
                }
            }
        }
        let permit = units_at_once.clone().acquire_owned().await?;
        if stop.is_stopped() {
            break;
        }
        let (shared, job, ready) = (shared.clone(), job.clone(), on_finalized.clone());
        handles.push(tokio::spawn(async move {
            let result = unit_run::run_unit(shared, job, unit.clone()).await;
            drop(permit);
            if let (Ok(done), Some(tx)) = (&result, ready) {
                if done.complete {
                    for f in &done.written {
                        let _ = tx.send(f.clone());
                    }
                }
            }
            (unit, result)
        }));
    }
    drop(on_finalized);
    let mut unit_error = None;
    let mut finished = Vec::new();
    for h in handles {
        let (unit, result) = h.await?;
        match result {
            Ok(r) => finished.push(FinishedUnit { unit, stats: r.stats, files_written: r.written, complete: r.complete }),
            Err(e) => {
                stop.fatal(format!("{e:#}"));
                unit_error.get_or_insert(e);
            }
        }
    }
    progress.finish();
    if let Some(e) = exporter {
        e.finish();
    }

    // The collectors are done; take the counters out (keeping their start time).
    let mut stats = std::mem::take(&mut *stats.lock().unwrap());
    stats.files.extend(finished.iter().map(|u| u.stats.clone()));
    // A stop that came when every unit was already complete (e.g. Ctrl-C while the outputs
    // were being written) did not cut anything short: the run is complete.
    let all_complete = feed_done && finished.iter().all(|u| u.complete);
    let stopped = stop.reason().filter(|r| !(all_complete && *r == StopReason::Interrupted));
    let mut summary_path = None;
    drop(_record_writer);
    if let Some((_, record)) = &record {
        let status = match &stopped {
            None => "completed",
            Some(StopReason::Interrupted) => "interrupted",
            Some(StopReason::Fatal(_)) => "stopped",
        };
        let t = stats.totals();
        let records = serde_json::json!({"seen": t.seen, "scored": t.scored, "failed": t.failed, "already_done": t.already_done, "adopted": t.adopted});
        let mut spend = record.spend(&stats);
        spend["stop_reason"] = serde_json::json!(stopped.as_ref().map(|r| crate::shown::shown(&r.to_string())));
        record.write_or_warn(status, spend, Some(records));
    }
    if let Some((path, provenance)) = options.summary {
        let status = if stopped.is_some() { "stopped" } else { "completed" };
        let reason = stopped.as_ref().map(|r| r.to_string());
        let mut doc = stats.to_json(&options.task_name, status, reason.as_deref(), provenance);
        if let Some((folder, record)) = &record {
            // What every run of the folder (every shard's) spent, this one included.
            doc["cumulative"] = crate::run_records::cumulative_json(&crate::run_records::load(folder), pricing);
            doc["run_record"] = serde_json::json!(format!(".modelcall/runs/{}", record.name()));
        }
        if let Some(facts) = &options.end_facts {
            for (k, v) in facts(&doc) {
                doc[k] = v;
            }
        }
        if let Some(a) = &shared.adaptive {
            doc["concurrency_limit"] = serde_json::json!({"final": a.limit(), "over_time_s": a.history(), "after_convergence": a.settled()});
        }
        if let Some(pricing) = pricing {
            doc["cost"] = serde_json::json!((pricing.cost(stats.prompt_tokens, stats.completion_tokens) * 1e4).round() / 1e4);
            if let Some(d) = pricing.applied_discount() {
                doc["batch_discount"] = serde_json::json!(d);
            }
        }
        crate::shown::shown_json(&mut doc);
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        match modelcall_io::write_atomically(&path, text.as_bytes()) {
            Ok(()) => summary_path = Some(path),
            // The unit's error came first (e.g. the journal on a full disk): it is the one the
            // run ends with; the summary's failure follows from it.
            Err(e) if unit_error.is_some() => eprintln!("warning: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = unit_error {
        return Err(e);
    }
    tracing::info!(event = "run_done", task = %options.task_name, status = if stopped.is_some() { "stopped" } else { "completed" }, seen = stats.totals().seen, scored = stats.totals().scored, failed = stats.totals().failed, already_done = stats.totals().already_done, requests = stats.requests, retries = stats.retries_by_cause.values().sum::<u64>(), prompt_tokens = stats.prompt_tokens, completion_tokens = stats.completion_tokens, summary = %summary_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), "run done");
    Ok(RunOutcome { stats, units: finished, stopped, summary_path })
}

/// A feed of units known up front.
pub fn feed(units: Vec<Unit>) -> mpsc::UnboundedReceiver<Unit> {
    let (tx, rx) = mpsc::unbounded_channel();
    for u in units {
        let _ = tx.send(u);
    }
    rx
}
