//! The preprocessing job: a record or a raw file through a preprocessor plugin, keeping the
//! records it returns. Used by the preprocessing stage of scoring tasks and by
//! `chatml_conversion` (whose styles are the `builtin:chatml` preprocessor's config).

use std::sync::Arc;

use modelcall_plugin_host::{Plugin, PreprocessInput, PreprocessOutcome};
use serde_json::{json, Map, Value};

use crate::engine::{CallTally, Failure, FailureSite, ItemFailure, Job, JobInput, Outcome, Produced};
use crate::plugin_pool::PluginPool;

pub struct PreprocessJob {
    pub plugin: Plugin,
    pub pool: PluginPool,
    /// The preprocessor's call times, shared with the scoring stage that reports them (the
    /// preprocessing stage writes no summary of its own).
    pub call_times: Arc<std::sync::Mutex<crate::stage_timing::PluginCallTimes>>,
}

impl PreprocessJob {
    pub fn new(plugin: Plugin, pool: PluginPool) -> PreprocessJob {
        PreprocessJob { plugin, pool, call_times: Default::default() }
    }
}

impl Job for PreprocessJob {
    async fn run(self: Arc<Self>, key: String, input: JobInput) -> Outcome {
        let (group, call_input) = match input {
            JobInput::Record(record) | JobInput::Reparse { record, .. } => (None, PreprocessInput::Record(Value::Object(record).to_string())),
            JobInput::File { rel, path } => {
                let bytes = match tokio::fs::read(&path).await {
                    Ok(b) => b,
                    Err(e) => return Failure::new("source_read_error", format!("cannot read {}: {e}", path.display()), CallTally::default(), None),
                };
                // Packs are grouped by their top folder (the language), as the reference did.
                let group = rel.split('/').next().filter(|_| rel.contains('/')).unwrap_or("preprocessed").to_string();
                (Some(group), PreprocessInput::File { path: rel, bytes })
            }
        };
        let plugin = self.plugin.clone();
        let k = key.clone();
        let mut calls = CallTally::default();
        let called = self.pool.run(move || plugin.preprocess_with_stats(&k, 1, call_input)).await.map(|(called, stats)| {
            calls.plugin_calls.push(("preprocessor", stats.elapsed_us));
            self.call_times.lock().unwrap().record("preprocessor", stats.elapsed_us);
            called
        });
        match called {
            Ok(Ok(PreprocessOutcome::Keep(items))) => {
                let mut kept = Vec::with_capacity(items.len());
                let mut item_errors = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    match item {
                        Ok(r) => match modelcall_io::parse_record(r.as_bytes()) {
                            Ok(v) => kept.push(Value::Object(v)),
                            Err(e) => {
                                let message = format!("record {index} the preprocessor returned is not a usable JSON object: {e}");
                                return Failure::new("plugin_trap_bad_output", message, CallTally::default(), None);
                            }
                        },
                        Err(e) => item_errors.push(ItemFailure { index, cause: e.kind.cause().to_string(), message: e.message, location: e.location }),
                    }
                }
                let produced = Produced::Records { group, records: kept, skipped: None, item_errors };
                Outcome::Done { produced, score: None, calls }
            }
            Ok(Ok(PreprocessOutcome::Skip(reason))) => {
                let produced = Produced::Records { group, records: Vec::new(), skipped: Some(reason), item_errors: Vec::new() };
                Outcome::Done { produced, score: None, calls }
            }
            Ok(Err(e)) if e.is_fatal() => Outcome::Fatal { message: format!("preprocessing stopped: {e}") },
            Ok(Err(e)) => Failure::new(e.cause(), e.to_string(), calls, None),
            Err(host) => Failure::new("host_error", host.to_string(), CallTally::default(), None),
        }
    }

    /// Error rows name the input (a pack's relative path, or a record's key) and the cause.
    fn failure_row(&self, site: &FailureSite<'_>, failure: Failure) -> Map<String, Value> {
        let row = json!({"input": site.key, "file": site.file, "line": site.line, "cause": failure.cause, "message": failure.message});
        match row {
            Value::Object(m) => m,
            _ => unreachable!("json! of an object literal"),
        }
    }
}

/// Passes every record through unchanged: `jsonl_merge` is pure I/O on the same pipeline.
pub struct IdentityJob;

impl Job for IdentityJob {
    fn run(self: Arc<Self>, _key: String, input: JobInput) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        std::future::ready(match input {
            JobInput::Record(record) | JobInput::Reparse { record, .. } => {
                Outcome::Done { produced: Produced::records(None, vec![Value::Object(record)]), score: None, calls: CallTally::default() }
            }
            JobInput::File { .. } => Failure::new("unsupported_input", "merging takes records, not raw files", CallTally::default(), None),
        })
    }
}
