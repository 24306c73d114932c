//! Scoring one record: prompt plugin → model → parser plugin, with parser-driven re-asks.
//!
//! This is the only place that knows the order of the stages; it returns a typed outcome and
//! never touches files, so the file pipeline decides what is written where.

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelcall_model::{CallError as ModelError, ChatMessage, ChatRequest, Completion, ModelClient};
use modelcall_plugin_host::{CallError as PluginError, ParseFailure, Plugin};
use serde_json::{json, Map, Value};

use crate::plugin_pool::PluginPool;

/// Everything a record task needs, shared by all of them.
pub struct Stages {
    pub task_name: String,
    /// Scoring uses the prompt builder and score parser; generation (distillation) neither.
    pub prompt: Option<Plugin>,
    pub parser: Option<Plugin>,
    /// Set for `generate_response`: send each record's conversation as it is.
    pub generate: Option<super::generate::GenerateOptions>,
    pub client: ModelClient,
    pub pool: PluginPool,
    /// Re-asks allowed after a parser's `retry(hint)` (reference `retry.max_retries`).
    pub parse_retries: u32,
    /// Field that must be present in every record (reference `data.input_key`).
    pub input_key: Option<String>,
    /// With `require_json: false` the verdict is the raw reply and the parser is not consulted.
    pub require_json: bool,
}

/// What happened to one record.
pub enum RecordOutcome {
    /// The output row (input fields, verdict fields and call metadata) and its headline score.
    Scored { row: Map<String, Value>, score: Option<f64>, calls: CallTally },
    /// The record goes to the error output with a typed cause; the input record comes back
    /// so the error row can carry it for a later re-run.
    Failed { cause: String, message: String, calls: CallTally, record: Map<String, Value> },
    /// The run must stop (authentication failure, a plugin disabled after repeated traps).
    Fatal { message: String },
}

/// Model-call accounting for the summary, whatever the outcome.
#[derive(Default, Debug, Clone)]
pub struct CallTally {
    pub requests: u64,
    pub retries: Vec<(&'static str, u64)>,
    pub parse_retries: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latencies: Vec<Duration>,
}

impl CallTally {
    pub(crate) fn add_completion(&mut self, c: &Completion) {
        self.requests += c.attempts as u64;
        for (cause, n) in c.retries.iter() {
            self.retries.push((cause, n));
        }
        if let Some(u) = &c.usage {
            self.prompt_tokens += u.prompt_tokens as u64;
            self.completion_tokens += u.completion_tokens as u64;
        }
        self.latencies.push(c.latency);
    }
}

pub async fn score_record(stages: Arc<Stages>, key: String, record: Map<String, Value>) -> RecordOutcome {
    if let Some(opts) = &stages.generate {
        return super::generate::generate_record(&stages.client, opts, key, record).await;
    }
    let (Some(prompt_plugin), Some(parser_plugin)) = (stages.prompt.clone(), stages.parser.clone()) else {
        return RecordOutcome::Fatal { message: "internal error: a scoring run without its plugins".into() };
    };
    let mut calls = CallTally::default();
    if let Some(field) = &stages.input_key {
        if !record.contains_key(field) {
            let mut fields: Vec<&str> = record.keys().map(String::as_str).collect();
            fields.truncate(20);
            return RecordOutcome::Failed {
                cause: "missing_input_field".into(),
                message: format!("record has no field `{field}` (data.input_key); its fields are: {}", fields.join(", ")),
                calls,
                record,
            };
        }
    }
    let record_json = Arc::new(Value::Object(record.clone()).to_string());

    // 1. Prompt.
    let prompt = {
        let (plugin, key, json) = (prompt_plugin.clone(), key.clone(), record_json.clone());
        match stages.pool.run(move || plugin.build_prompt(&key, 1, &json)).await {
            Ok(Ok(prompt)) => prompt,
            Ok(Err(err)) => return plugin_failure("prompt", err, calls, record),
            Err(host) => return RecordOutcome::Failed { cause: "host_error".into(), message: host.to_string(), calls, record },
        }
    };
    let mut request = ChatRequest {
        messages: prompt
            .messages
            .iter()
            .map(|m| ChatMessage { role: role_name(m.role).to_string(), content: m.content.clone() })
            .collect(),
        max_tokens: prompt.max_tokens,
        temperature: prompt.temperature,
        stop: prompt.stop.clone(),
        response_schema: prompt.response_schema.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        n: None,
    };

    let started = Instant::now();
    let mut attempt: u32 = 1;
    loop {
        // 2. Model.
        let completion = match stages.client.chat(&request).await {
            Ok(c) => c,
            Err(err) => {
                if let ModelError::Exhausted { retries, .. } = &err {
                    for (cause, n) in retries.iter() {
                        calls.retries.push((cause, n));
                    }
                }
                if err.is_fatal() {
                    return RecordOutcome::Fatal { message: err.to_string() };
                }
                return RecordOutcome::Failed { cause: format!("model_{}", err.cause()), message: err.to_string(), calls, record };
            }
        };
        calls.add_completion(&completion);

        // 3. Parse.
        let verdict = if stages.require_json {
            let (plugin, key, json, text) =
                (parser_plugin.clone(), key.clone(), record_json.clone(), completion.content.clone());
            match stages.pool.run(move || plugin.parse_score(&key, attempt, &json, &text)).await {
                Ok(Ok(v)) => v,
                Ok(Err(err)) => return plugin_failure("parser", err, calls, record),
                Err(host) => return RecordOutcome::Failed { cause: "host_error".into(), message: host.to_string(), calls, record },
            }
        } else {
            Ok(modelcall_plugin_host::Score { value: 0.0, label: None, rationale: None, extra: None })
        };

        match verdict {
            Ok(score) => {
                let row = build_row(record, &score, &completion, started.elapsed(), attempt, &calls);
                let value = stages.require_json.then_some(score.value);
                return RecordOutcome::Scored { row, score: value, calls };
            }
            Err(ParseFailure::Retry(hint)) if attempt <= stages.parse_retries => {
                calls.parse_retries += 1;
                attempt += 1;
                request.messages.push(ChatMessage { role: "assistant".into(), content: completion.content.clone() });
                request.messages.push(ChatMessage { role: "user".into(), content: hint });
            }
            Err(ParseFailure::Retry(hint)) => {
                return RecordOutcome::Failed {
                    cause: "parse_retries_exhausted".into(),
                    message: format!(
                        "the reply still did not parse after {} re-ask(s): {hint}; last reply: {}",
                        stages.parse_retries,
                        excerpt(&completion.content, 300)
                    ),
                    calls,
                    record,
                }
            }
            Err(ParseFailure::Invalid(message)) => {
                return RecordOutcome::Failed { cause: "parse_invalid".into(), message, calls, record };
            }
        }
    }
}

fn role_name(role: modelcall_plugin_host::ChatRole) -> &'static str {
    match role {
        modelcall_plugin_host::ChatRole::System => "system",
        modelcall_plugin_host::ChatRole::User => "user",
        modelcall_plugin_host::ChatRole::Assistant => "assistant",
    }
}

fn plugin_failure(stage: &str, err: PluginError, calls: CallTally, record: Map<String, Value>) -> RecordOutcome {
    if err.is_fatal() {
        return RecordOutcome::Fatal { message: format!("{stage} plugin: {err}") };
    }
    RecordOutcome::Failed { cause: err.cause().to_string(), message: format!("{stage} plugin: {err}"), calls, record }
}

/// The output row: the input fields, then the verdict fields, then call metadata
/// (reference: `item ∪ json_keys ∪ {api_status, api_fail_reason, api_return}`).
fn build_row(
    mut row: Map<String, Value>,
    score: &modelcall_plugin_host::Score,
    completion: &Completion,
    elapsed: Duration,
    parse_attempts: u32,
    calls: &CallTally,
) -> Map<String, Value> {
    if let Some(extra) = score.extra.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
        if let Value::Object(fields) = extra {
            for (k, v) in fields {
                row.insert(k, v);
            }
        }
    }
    row.insert("api_status".into(), json!("success"));
    row.insert("api_fail_reason".into(), json!(""));
    row.insert("api_return".into(), json!(completion.raw_text));
    row.insert(
        "usage".into(),
        match &completion.usage {
            Some(u) => json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}),
            None => Value::Null,
        },
    );
    row.insert("finish_reason".into(), json!(completion.finish_reason));
    row.insert("latency_ms".into(), json!(elapsed.as_millis() as u64));
    row.insert("attempts".into(), json!(calls.requests));
    row.insert("parse_attempts".into(), json!(parse_attempts));
    row
}

pub fn excerpt(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars).collect();
    format!("{cut}…")
}
