//! `concurrency.mode: batch`: the same task, its requests sent through the provider's Batch API
//! (OpenAI's `/v1/files` + `/v1/batches`) instead of one call each.
//!
//! Nothing else of the task changes: the job (scoring, generation) is the online one, wrapped in
//! [`Routed`], which runs it with the record's key in a task-local; the one place jobs call the
//! model ([`crate::tasks::model_call::chat`]) sees the route and hands the request to the run's
//! [`Coordinator`] instead of the HTTP client. The coordinator collects requests into batch
//! files (split by count and bytes), uploads them, creates the batches, polls them and hands each
//! record its answer, which the job then parses and the engine journals exactly as online.
//!
//! `custom_id` is the record's key (a parser re-ask of the same record is `KEY~2`, `KEY~3`…).
//! Exactly once across kills: see [`coordinator`] (the batch journal under
//! `<output>/.modelcall/batches/`).

pub mod coordinator;

use std::path::PathBuf;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use modelcall_model::{CallError, ChatRequest, Completion};
use serde_json::{Map, Value};

pub use coordinator::{BatchConfig, Coordinator};

use crate::cli::exit::{BadConfig, Finish};
use crate::engine::{Failure, FailureSite, Job, JobInput, Outcome, StopSignal};

/// How the batch coordinator runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Mode {
    /// Submit the batches and wait for them (the default).
    #[default]
    Wait,
    /// `run-task --detach`: submit the batches, collect those already finished, and end without
    /// waiting for the others (a later run collects them).
    Detach,
    /// `modelcall batch export`: the requests left to do written to this file in the OpenAI
    /// batch input format (for `vllm run-batch`); nothing is sent.
    Export(PathBuf),
    /// `modelcall batch import`: the answers of these batch output files handed to their
    /// records (parsed and journaled as any answer); nothing is sent.
    Import(Vec<PathBuf>),
}

impl Mode {
    /// The mode of `--detach` and of `modelcall batch export|import` (which sets `file`).
    pub fn of(detach: bool, file: Option<Mode>) -> Mode {
        match file {
            Some(m) => m,
            None if detach => Mode::Detach,
            None => Mode::Wait,
        }
    }
}

/// The task with its model's `pricing` at the batch price, when it runs in batch mode
/// (`concurrency.mode: batch`): cost, estimate and budget are then at the discount
/// (`pricing.batch_discount`, default 0.5).
pub fn priced(task: &modelcall_config::LoadedTask) -> Option<modelcall_config::LoadedTask> {
    if task.task.concurrency.mode != Some(modelcall_config::task::ConcurrencyMode::Batch) {
        return None;
    }
    let pricing = task.model.as_ref()?.pricing?;
    let mut t = task.clone();
    if let Some(m) = t.model.as_mut() {
        m.pricing = Some(pricing.for_batch());
    }
    Some(t)
}

/// After the engine run: the coordinator's end (cancels on a stop, the export file, what was
/// imported or left running); see [`Coordinator::after_run`].
pub async fn finish(coordinator: Option<&Coordinator>, finish: Finish) -> anyhow::Result<Finish> {
    match coordinator {
        Some(c) => c.after_run(finish).await,
        None => Ok(finish),
    }
}

struct Route {
    coordinator: Arc<Coordinator>,
    key: String,
    /// Model calls made so far for this record (re-asks get their own `custom_id`).
    calls: AtomicU32,
}

tokio::task_local! {
    static ROUTE: Arc<Route>;
}

/// The answer to `request` through the batch of the current record, when the record runs in
/// batch mode (`None`: send it online).
pub async fn chat_if_batch(request: &ChatRequest) -> Option<Result<Completion, CallError>> {
    let route = ROUTE.try_with(|r| r.clone()).ok()?;
    let n = route.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let custom_id = if n == 1 { route.key.clone() } else { format!("{}~{n}", route.key) };
    Some(route.coordinator.chat(custom_id, request).await)
}

/// A job run online, or through the batch coordinator.
pub struct Routed<J> {
    inner: Arc<J>,
    coordinator: Option<Arc<Coordinator>>,
}

/// `job` as it runs: through `coordinator` when there is one.
pub fn routed<J: Job>(job: Arc<J>, coordinator: Option<Arc<Coordinator>>) -> Arc<Routed<J>> {
    Arc::new(Routed { inner: job, coordinator })
}

impl<J: Job> Job for Routed<J> {
    fn run(self: Arc<Self>, key: String, input: JobInput) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        let inner = self.inner.clone();
        let coordinator = self.coordinator.clone();
        async move {
            match coordinator {
                Some(coordinator) => {
                    let _active = coordinator.enter();
                    let route = Arc::new(Route { coordinator: coordinator.clone(), key: key.clone(), calls: AtomicU32::new(0) });
                    // A record still waiting when the run ends without its batch (a stop,
                    // `--detach`, an export) is left as it was: not journaled, taken up later.
                    tokio::select! {
                        biased;
                        outcome = ROUTE.scope(route, inner.run(key, input)) => outcome,
                        _ = coordinator.released() => Outcome::Fatal { message: "the run ended before this record's batch answered".into() },
                    }
                }
                None => inner.run(key, input).await,
            }
        }
    }

    fn prefix_key(&self, input: &JobInput) -> Option<u64> {
        self.inner.prefix_key(input)
    }

    fn failure_row(&self, site: &FailureSite<'_>, failure: Failure) -> Map<String, Value> {
        self.inner.failure_row(site, failure)
    }
}

/// The batch coordinator of a run whose task says `concurrency.mode: batch`, else `None`.
/// `output` is the task's output folder (the batch journal goes under its `.modelcall/`).
/// `stop` is the run's: on a stop, the batches this run submitted are cancelled (not with
/// `--detach`). `modelcall batch export|import` get one whatever the task's mode.
pub fn open_for(
    run: &super::TaskRun<'_>,
    client: &modelcall_model::ModelClient,
    output: &std::path::Path,
    stop: &StopSignal,
) -> anyhow::Result<Option<Arc<Coordinator>>> {
    let c = &run.task.task.concurrency;
    let batch_mode = c.mode == Some(modelcall_config::task::ConcurrencyMode::Batch);
    match (&run.batch, batch_mode) {
        (Mode::Wait, false) => return Ok(None),
        (Mode::Detach, false) => {
            return Err(BadConfig(format!(
                "--detach: {} does not run in batch mode; set `concurrency.mode: batch` (the Batch API) or run without --detach",
                run.task.source_path.display()
            ))
            .into())
        }
        _ => {}
    }
    std::fs::create_dir_all(output)?;
    let config = BatchConfig {
        max_requests: c.batch_max_requests.unwrap_or(50_000).max(1),
        max_bytes: c.batch_max_bytes.unwrap_or(200_000_000).max(1024),
        poll: std::time::Duration::from_secs_f64(c.batch_poll_secs.unwrap_or(30.0).max(0.05)),
        max_rounds: c.batch_max_rounds.unwrap_or(3).max(1),
        // One task, one output folder: batches found by this in their metadata are this task's.
        task_tag: task_tag(output),
        mode: run.batch.clone(),
        output: output.to_path_buf(),
    };
    let folder = output.join(".modelcall").join("batches").join(run.shard.map_or("main".to_string(), |(i, n)| format!("shard-{i}-of-{n}")));
    Ok(Some(Coordinator::open(client.settings().clone(), folder, config, stop.clone())?))
}

/// The most records in flight in batch mode: enough for four full batches at once; with
/// `--detach`, export or import every record (the run ends once they all wait).
pub fn in_flight(coordinator: &Coordinator) -> usize {
    match coordinator.config().mode {
        Mode::Wait => coordinator.config().max_requests.saturating_mul(4).max(1),
        _ => 1 << 40,
    }
}

fn task_tag(output: &std::path::Path) -> String {
    let full = std::fs::canonicalize(output).unwrap_or_else(|_| output.to_path_buf());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(full.to_string_lossy().as_bytes()))
}

/// `modelcall status`: the batches of an output folder's batch journals (offline: their last
/// known state), when it has any.
pub fn print_status(output: &std::path::Path) {
    let Ok(dirs) = std::fs::read_dir(output.join(".modelcall").join("batches")) else { return };
    let mut dirs: Vec<PathBuf> = dirs.flatten().map(|e| e.path()).filter(|p| p.join("journal.jsonl").is_file()).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("journal.jsonl")) else { continue };
        // name → (batch id, last state)
        let mut order: Vec<String> = Vec::new();
        let mut by: std::collections::HashMap<String, (String, String)> = std::collections::HashMap::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            let Some(name) = v["batch"].as_str() else { continue };
            let entry = by.entry(name.to_string()).or_insert_with(|| {
                order.push(name.to_string());
                (String::new(), String::new())
            });
            if let Some(id) = v["batch_id"].as_str() {
                entry.0 = id.to_string();
            }
            entry.1 = match v["step"].as_str().unwrap_or("") {
                "status" => format!("{} ({} done, {} failed)", v["status"].as_str().unwrap_or("?"), v["completed"], v["failed"]),
                "done" => "collected".into(),
                "downloaded" => "downloaded, not yet collected".into(),
                "cancel" => "cancel requested".into(),
                step => format!("{step} (not yet created)").replace("created (not yet created)", "created"),
            };
        }
        let open: Vec<&String> = order.iter().filter(|n| by[*n].1 != "collected").collect();
        let label = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        println!("batches ({label}): {} submitted, {} collected, {} not yet collected", order.len(), order.len() - open.len(), open.len());
        for name in open.iter().take(20) {
            let (id, state) = &by[*name];
            println!("  {} ({name}): {state}", if id.is_empty() { "-" } else { id });
        }
        if !open.is_empty() {
            println!("  the task's run-task command (with or without --detach) collects what finished, exactly once");
        }
    }
}
