//! The per-record job: the one thing a task type brings to the pipeline.
//!
//! The engine reads, keys, schedules, journals and finalizes; a [`Job`] turns one input (a record
//! or a raw file) into an [`Outcome`]. Scoring, generation, preprocessing, conversion and
//! merging are jobs; none of them touches a file.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modelcall_model::Completion;
use serde_json::{json, Map, Value};

/// What one work item holds.
pub enum JobInput {
    /// A record of a JSONL/Parquet input.
    Record(Map<String, Value>),
    /// A raw file (e.g. a Repomix pack) for a file preprocessor; `rel` is its path relative to
    /// the input folder, with `/`.
    File { rel: String, path: PathBuf },
    /// A record whose stored replies are parsed again with a changed score parser instead of
    /// being bought again: `row` is its journaled row (output or error), `replies` the model's
    /// replies it holds, oldest first. `then_send`: when none parses, the record is sent (its
    /// earlier failure was retryable). `recovering`: it had failed.
    Reparse { record: Map<String, Value>, row: Map<String, Value>, replies: Vec<String>, then_send: bool, recovering: bool },
}

/// What a finished item produced.
pub enum Produced {
    /// One output row (scoring, generation, merging).
    Row(Map<String, Value>),
    /// Zero or more records for a records sink (preprocessing, conversion); `group` overrides
    /// the unit's group; `skipped` says why nothing was kept; `item_errors` are the items that
    /// failed on their own (one error row each, the records still kept).
    Records { group: Option<String>, records: Vec<Value>, skipped: Option<String>, item_errors: Vec<ItemFailure> },
}

impl Produced {
    /// Records with nothing skipped and no item failed.
    pub fn records(group: Option<String>, records: Vec<Value>) -> Self {
        Produced::Records { group, records, skipped: None, item_errors: Vec::new() }
    }
}

/// One item of a split that failed on its own (a preprocessor's item error).
pub struct ItemFailure {
    /// Position among the items the call returned.
    pub index: usize,
    pub cause: String,
    pub message: String,
    /// Where in the input, as the plugin put it.
    pub location: Option<String>,
}

impl ItemFailure {
    /// The journal key of the item's error row: the input's key and the item's position, so
    /// a rerun of the input writes the same keys again rather than new ones.
    pub fn key(&self, input_key: &str) -> String {
        format!("{input_key}#item{}", self.index)
    }
}

/// What happened to one item.
pub enum Outcome {
    Done {
        produced: Produced,
        score: Option<f64>,
        calls: CallTally,
    },
    /// The item goes to the error output with a typed cause.
    Failed(Failure),
    /// The run must stop (authentication failure, a plugin disabled after repeated traps).
    Fatal {
        message: String,
    },
}

impl Outcome {
    /// The model-call accounting of a finished or failed item.
    pub fn calls(&self) -> Option<&CallTally> {
        match self {
            Outcome::Done { calls, .. } => Some(calls),
            Outcome::Failed(f) => Some(&f.calls),
            Outcome::Fatal { .. } => None,
        }
    }

    /// What the endpoint showed of its load on this item: the last request's latency, and
    /// whether it pushed back (429/503, retried or not). `None` when no request was made.
    pub fn sample(&self) -> Option<(Option<Duration>, bool)> {
        let (calls, cause) = match self {
            Outcome::Done { calls, .. } => (calls, None),
            Outcome::Failed(f) => (&f.calls, Some(f.cause.as_str())),
            Outcome::Fatal { .. } => return None,
        };
        let throttled = calls.retries.iter().any(|(c, n)| *c == "rate_limited" && *n > 0) || cause == Some("model_rate_limited");
        match (calls.latencies.last(), throttled) {
            (None, false) => None,
            (latency, t) => Some((latency.copied(), t)),
        }
    }
}

/// A failed item: the typed cause and, for records, the record itself so the error row can
/// carry it for a later re-run.
pub struct Failure {
    pub cause: String,
    pub message: String,
    pub calls: CallTally,
    pub record: Option<Map<String, Value>>,
    /// The model's replies, when the failure came after they arrived (oldest first): they are
    /// paid for, so the error row keeps them and a changed parser can read them again.
    pub replies: Vec<String>,
    /// The failure is the parser plugin's (a trap, bad output), not the reply's: a plain
    /// rerun does not buy the same reply again (only `--retry-failed` does).
    pub after_reply: bool,
}

/// Causes a plain rerun would only repeat: the request or the record itself is wrong.
const PERMANENT_CAUSES: &[&str] = &[
    "model_rejected",
    "model_reply_too_large",
    "parse_invalid",
    "missing_input_field",
    "wrong_input_type",
    "plugin_invalid_input",
    "missing_messages",
    "bad_message",
    "no_user_turn",
    "unsupported_input",
];

impl Failure {
    /// Whether the failure would repeat on a rerun (sent again only with `--retry-failed`).
    pub fn is_permanent(&self) -> bool {
        self.after_reply || PERMANENT_CAUSES.contains(&self.cause.as_str())
    }

    /// The outcome of a failure (what every job returns), hence not `Self`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(cause: impl Into<String>, message: impl Into<String>, calls: CallTally, record: Option<Map<String, Value>>) -> Outcome {
        Outcome::Failed(Failure { cause: cause.into(), message: message.into(), calls, record, replies: Vec::new(), after_reply: false })
    }

    /// A failure of the parser plugin after the model's `replies` arrived (see
    /// [`Failure::after_reply`]).
    pub fn after_reply(
        cause: impl Into<String>,
        message: impl Into<String>,
        calls: CallTally,
        record: Option<Map<String, Value>>,
        replies: Vec<String>,
    ) -> Outcome {
        Self::kept_replies(cause.into(), message.into(), calls, record, replies, true)
    }

    /// A failure of the replies themselves (they never parsed): kept for a later parser, and
    /// retryable or not by `cause` alone.
    pub fn with_replies(
        cause: impl Into<String>,
        message: impl Into<String>,
        calls: CallTally,
        record: Option<Map<String, Value>>,
        replies: Vec<String>,
    ) -> Outcome {
        Self::kept_replies(cause.into(), message.into(), calls, record, replies, false)
    }

    fn kept_replies(cause: String, message: String, calls: CallTally, record: Option<Map<String, Value>>, replies: Vec<String>, after_reply: bool) -> Outcome {
        Outcome::Failed(Failure { cause, message, calls, record, replies, after_reply })
    }

    /// Puts the kept replies in an error row: `api_return` the last, `replies` all of them
    /// when there were several.
    pub fn add_replies(replies: Vec<String>, row: &mut Map<String, Value>) {
        if let Some(last) = replies.last() {
            row.insert("api_return".into(), Value::String(last.clone()));
        }
        if replies.len() > 1 {
            row.insert("replies".into(), json!(replies));
        }
    }
}

/// Where a failed item came from, for its error row.
pub struct FailureSite<'a> {
    pub key: &'a str,
    pub file: &'a str,
    pub line: u64,
}

/// A per-record job. Implementations are cheap to share (`Arc`) and hold their plugins and
/// model client.
pub trait Job: Send + Sync + 'static {
    fn run(self: Arc<Self>, key: String, input: JobInput) -> impl Future<Output = Outcome> + Send + 'static;

    /// What the prompt of `input` begins with, hashed, for `concurrency.scheduling:
    /// prefix_groups` (records with one key are sent together). `None`: no idea; those
    /// records form one group.
    fn prefix_key(&self, _input: &JobInput) -> Option<u64> {
        None
    }

    /// The error row of a failed item. The default is the scoring shape (the reference's
    /// `api_status`/`api_fail_reason` plus the typed cause and the record). The record is kept
    /// as its JSON text (`record_json`), not a nested object: records of mixed field types
    /// would give the error file's column no one type (`pyarrow.json.read_json` fails).
    fn failure_row(&self, site: &FailureSite<'_>, failure: Failure) -> Map<String, Value> {
        let row = json!({
            "key": site.key, "file": site.file, "line": site.line, "cause": failure.cause,
            "message": failure.message, "api_status": "error", "api_fail_reason": failure.message,
            "attempts": failure.calls.requests,
            "record_json": failure.record.map(|r| Value::Object(r).to_string()),
        });
        let mut row = row;
        if let Value::Object(m) = &mut row {
            Failure::add_replies(failure.replies, m);
        }
        match row {
            Value::Object(m) => m,
            _ => unreachable!("json! of an object literal"),
        }
    }
}

/// Model-call accounting for the summary, whatever the outcome.
#[derive(Default, Debug, Clone)]
pub struct CallTally {
    pub requests: u64,
    pub retries: Vec<(&'static str, u64)>,
    pub parse_retries: u64,
    /// The hints of those re-asks (what the judge got wrong), for the report.
    pub retry_hints: Vec<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latencies: Vec<Duration>,
    /// Answers taken from the response cache (not requests, not billed).
    pub cached: u64,
    /// The outcome came from stored replies parsed again (no request).
    pub reparsed: bool,
    /// ... and the record had failed before.
    pub recovered: bool,
    /// Time in the prompt builder and in the score parser (their instance pools included), for
    /// the run's stage timing.
    pub prompt_time: Duration,
    pub parse_time: Duration,
    /// Each plugin call's own time (µs), by role, for the run's `plugin_calls`.
    pub plugin_calls: Vec<(&'static str, u64)>,
}

impl CallTally {
    pub fn add_completion(&mut self, c: &Completion) {
        if c.attempts == 0 {
            // Answered from the response cache: no request, nothing billed.
            self.cached += 1;
            return;
        }
        self.requests += c.attempts as u64;
        for (cause, n) in c.retries.iter() {
            self.retries.push((cause, n));
        }
        if let Some(u) = &c.usage {
            self.prompt_tokens += u.prompt_tokens;
            self.completion_tokens += u.completion_tokens;
        }
        self.latencies.push(c.latency);
    }
}
