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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use modelcall_model::{CallError, ChatRequest, Completion};
use serde_json::{Map, Value};

pub use coordinator::{BatchConfig, Coordinator};

use crate::engine::{Failure, FailureSite, Job, JobInput, Outcome};

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
                    let route = Arc::new(Route { coordinator, key: key.clone(), calls: AtomicU32::new(0) });
                    ROUTE.scope(route, inner.run(key, input)).await
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
pub fn open_for(run: &super::TaskRun<'_>, client: &modelcall_model::ModelClient, output: &std::path::Path) -> anyhow::Result<Option<Arc<Coordinator>>> {
    let c = &run.task.task.concurrency;
    if c.mode != Some(modelcall_config::task::ConcurrencyMode::Batch) {
        return Ok(None);
    }
    std::fs::create_dir_all(output)?;
    let config = BatchConfig {
        max_requests: c.batch_max_requests.unwrap_or(50_000).max(1),
        max_bytes: c.batch_max_bytes.unwrap_or(200_000_000).max(1024),
        poll: std::time::Duration::from_secs_f64(c.batch_poll_secs.unwrap_or(30.0).max(0.05)),
        max_rounds: c.batch_max_rounds.unwrap_or(3).max(1),
        // One task, one output folder: batches found by this in their metadata are this task's.
        task_tag: task_tag(output),
    };
    let folder = output.join(".modelcall").join("batches").join(run.shard.map_or("main".to_string(), |(i, n)| format!("shard-{i}-of-{n}")));
    Ok(Some(Coordinator::open(client.settings().clone(), folder, config)?))
}

/// The most records in flight in batch mode: enough for four full batches at once.
pub fn in_flight(coordinator: &Coordinator) -> usize {
    coordinator.config().max_requests.saturating_mul(4).max(1)
}

fn task_tag(output: &std::path::Path) -> String {
    let full = std::fs::canonicalize(output).unwrap_or_else(|_| output.to_path_buf());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(full.to_string_lossy().as_bytes()))
}
