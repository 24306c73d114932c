//! The scoring job: prompt builder plugin → model → score parser plugin, with parser-driven
//! re-asks (`retry(hint)`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelcall_model::{ChatMessage, ChatRequest, Completion, ModelClient};
use modelcall_plugin_host::{CallError as PluginError, ChatRole, ParseFailure, Plugin, Score};
use serde_json::{json, Map, Value};

use super::model_call;
use crate::engine::{CallTally, Failure, Job, JobInput, Outcome, Produced};
use crate::plugin_pool::PluginPool;

pub struct ScoreJob {
    pub prompt: Plugin,
    pub parser: Plugin,
    pub client: ModelClient,
    pub pool: PluginPool,
    /// Re-asks allowed after a parser's `retry(hint)` (reference `retry.max_retries`).
    pub parse_retries: u32,
    /// Field that must be present in every record (reference `data.input_key`).
    pub input_key: Option<String>,
    /// Accept a non-string `input_key` value (scored by its JSON text).
    pub stringify_input: bool,
    /// With `require_json: false` the verdict is the raw reply and the parser is not consulted.
    pub require_json: bool,
    /// `options.audit_sample`: the share of records asked a second time (chosen by key).
    pub audit_sample: f64,
}

impl Job for ScoreJob {
    async fn run(self: Arc<Self>, key: String, input: JobInput) -> Outcome {
        match input {
            JobInput::Record(record) => self.score(key, record).await,
            JobInput::Reparse { record, row, replies, then_send, recovering } => self.reparse(key, record, row, replies, then_send, recovering).await,
            JobInput::File { .. } => Failure::new("unsupported_input", "scoring takes records, not raw files", CallTally::default(), None),
        }
    }
}

impl ScoreJob {
    async fn score(&self, key: String, record: Map<String, Value>) -> Outcome {
        let mut calls = CallTally::default();
        if let Some(field) = &self.input_key {
            if let Err((cause, message)) = check_input_field(&record, field, self.stringify_input) {
                return Failure::new(cause, message, calls, Some(record));
            }
        }
        let record_json = Arc::new(Value::Object(record.clone()).to_string());
        let mut record = Some(record);

        // 1. Prompt.
        let prompt = {
            let (plugin, key, json) = (self.prompt.clone(), key.clone(), record_json.clone());
            let asked = Instant::now();
            let built = self.pool.run(move || plugin.build_prompt_with_stats(&key, 1, &json)).await.map(|(built, stats)| {
                calls.plugin_calls.push(("prompt-builder", stats.elapsed_us));
                built
            });
            calls.prompt_time += asked.elapsed();
            match built {
                Ok(Ok(prompt)) => prompt,
                Ok(Err(err)) => return plugin_failure("prompt", err, calls, record),
                Err(host) => return Failure::new("host_error", host.to_string(), calls, record),
            }
        };
        let mut request = ChatRequest {
            messages: prompt.messages.iter().map(|m| ChatMessage { role: role_name(m.role).to_string(), content: m.content.clone() }).collect(),
            max_tokens: prompt.max_tokens,
            temperature: prompt.temperature,
            stop: prompt.stop.clone(),
            response_schema: prompt.response_schema.as_deref().and_then(|s| serde_json::from_str(s).ok()),
            n: None,
        };

        let first_request = (self.audit_sample > 0.0 && self.require_json && audited(&key, self.audit_sample)).then(|| request.clone());
        let started = Instant::now();
        let mut attempt: u32 = 1;
        // Every reply this record was given, kept in its error row if it fails after one.
        let mut replies: Vec<String> = Vec::new();
        loop {
            // 2. Model.
            let completion = match model_call::chat(&self.client, &request, &mut calls, &mut record).await {
                Ok(c) => c,
                Err(outcome) => return outcome,
            };
            replies.push(completion.raw_text.clone());

            // 3. Parse.
            let verdict = if self.require_json {
                let (plugin, key, json, text) = (self.parser.clone(), key.clone(), record_json.clone(), completion.content.clone());
                let asked = Instant::now();
                let parsed = self.pool.run(move || plugin.parse_score_with_stats(&key, attempt, &json, &text)).await.map(|(parsed, stats)| {
                    calls.plugin_calls.push(("score-parser", stats.elapsed_us));
                    parsed
                });
                calls.parse_time += asked.elapsed();
                match parsed {
                    Ok(Ok(v)) => v,
                    // The reply is paid for: kept in the error row, not bought again on a rerun.
                    Ok(Err(err)) if err.is_fatal() => return plugin_failure("parser", err, calls, record),
                    Ok(Err(err)) => return Failure::after_reply(err.cause(), format!("parser plugin: {err}"), calls, record, replies),
                    Err(host) => return Failure::after_reply("host_error", host.to_string(), calls, record, replies),
                }
            } else {
                Ok(Score { value: 0.0, label: None, rationale: None, extra: None })
            };

            match verdict {
                Ok(score) => {
                    let extra = match verdict_fields(&score) {
                        Ok(fields) => fields,
                        Err(message) => return Failure::after_reply("plugin_trap_bad_output", format!("parser plugin: {message}"), calls, record, replies),
                    };
                    let mut row = build_row(record.take().unwrap_or_default(), extra, &completion, started.elapsed(), attempt, &calls);
                    if self.require_json {
                        verdict_columns(&mut row, &score);
                    }
                    if let Some(again) = &first_request {
                        row.insert("audit_score".into(), self.audit(&key, again, &record_json, &mut calls).await);
                    }
                    let value = self.require_json.then_some(score.value);
                    return Outcome::Done { produced: Produced::Row(row), score: value, calls };
                }
                Err(ParseFailure::Retry(hint)) if attempt <= self.parse_retries => {
                    calls.parse_retries += 1;
                    calls.retry_hints.push(hint.chars().take(160).collect());
                    attempt += 1;
                    request.messages.push(ChatMessage { role: "assistant".into(), content: completion.content.clone() });
                    request.messages.push(ChatMessage { role: "user".into(), content: hint });
                }
                Err(ParseFailure::Retry(hint)) => {
                    let message = format!(
                        "the reply still did not parse after {} re-ask(s): {hint}; last reply: {}",
                        self.parse_retries,
                        excerpt(&completion.content, 300)
                    );
                    return Failure::with_replies("parse_retries_exhausted", message, calls, record, replies);
                }
                Err(ParseFailure::Invalid(message)) => return Failure::with_replies("parse_invalid", message, calls, record, replies),
            }
        }
    }

    /// The record's stored replies parsed again with this run's parser (it changed), newest
    /// first, with no request: the first that parses gives the verdict, its row keeping the
    /// stored call metadata. None parses: the record is sent (`then_send`, an earlier retryable
    /// failure) or fails `reparse_failed`, keeping its replies.
    async fn reparse(
        &self,
        key: String,
        record: Map<String, Value>,
        stored: Map<String, Value>,
        replies: Vec<String>,
        then_send: bool,
        recovering: bool,
    ) -> Outcome {
        let calls = CallTally { reparsed: true, recovered: recovering, ..CallTally::default() };
        let record_json = Arc::new(Value::Object(record.clone()).to_string());
        let mut why = String::from("no stored reply");
        for (i, raw) in replies.iter().enumerate().rev() {
            let (plugin, k, json, text) = (self.parser.clone(), key.clone(), record_json.clone(), answer_of(raw).to_string());
            let score = match self.pool.run(move || plugin.parse_score(&k, 1, &json, &text)).await {
                Ok(Ok(Ok(score))) => score,
                Ok(Ok(Err(ParseFailure::Retry(hint) | ParseFailure::Invalid(hint)))) => {
                    why = hint;
                    continue;
                }
                Ok(Err(err)) if err.is_fatal() => return plugin_failure("parser", err, calls, Some(record)),
                Ok(Err(err)) => {
                    why = format!("parser plugin: {err}");
                    continue;
                }
                Err(host) => {
                    why = host.to_string();
                    continue;
                }
            };
            let extra = match verdict_fields(&score) {
                Ok(fields) => fields,
                Err(message) => {
                    why = format!("parser plugin: {message}");
                    continue;
                }
            };
            let mut row = record.clone();
            row.extend(extra);
            row.insert("api_status".into(), json!("success"));
            row.insert("api_fail_reason".into(), json!(""));
            row.insert("api_return".into(), json!(raw));
            for column in ["usage", "finish_reason", "latency_ms", "attempts"] {
                row.insert(column.into(), stored.get(column).cloned().unwrap_or(Value::Null));
            }
            row.insert("parse_attempts".into(), json!(i + 1));
            verdict_columns(&mut row, &score);
            return Outcome::Done { produced: Produced::Row(row), score: Some(score.value), calls };
        }
        if then_send {
            return self.score(key, record).await;
        }
        let message = format!("none of the {} stored reply(ies) parses with the current parser: {why}", replies.len());
        Failure::after_reply("reparse_failed", message, calls, Some(record), replies)
    }
}

/// The answer part of a stored `api_return` (which holds `<think>…</think>` before the
/// answer when the model reasoned), as the parser was given it.
fn answer_of(raw: &str) -> &str {
    match raw.strip_prefix("<think>\n").and_then(|rest| rest.split_once("\n</think>\n\n")) {
        Some((_, answer)) => answer,
        None => raw,
    }
}

/// Whether the record keyed `key` is in the audit sample: a stable choice (the same records on
/// every run and shard), about `share` of them.
fn audited(key: &str, share: f64) -> bool {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % 1_000_000) < (share * 1_000_000.0) as u64
}

impl ScoreJob {
    /// The audit: the first request sent again and its reply parsed; the second verdict's value
    /// (null when the second reply did not parse; a re-ask is not made for it).
    async fn audit(&self, key: &str, request: &ChatRequest, record_json: &Arc<String>, calls: &mut CallTally) -> Value {
        let mut none = None;
        let Ok(completion) = model_call::chat_fresh(&self.client, request, calls, &mut none).await else { return Value::Null };
        let (plugin, key, json, text) = (self.parser.clone(), key.to_string(), record_json.clone(), completion.content.clone());
        match self.pool.run(move || plugin.parse_score(&key, 1, &json, &text)).await {
            Ok(Ok(Ok(score))) => serde_json::json!(score.value),
            _ => Value::Null,
        }
    }
}

fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    }
}

fn plugin_failure(stage: &str, err: PluginError, calls: CallTally, record: Option<Map<String, Value>>) -> Outcome {
    if err.is_fatal() {
        return Outcome::Fatal { message: format!("{stage} plugin: {err}") };
    }
    Failure::new(err.cause(), format!("{stage} plugin: {err}"), calls, record)
}

/// One rule for every source: a missing or null field is `missing_input_field`; a number,
/// list, object or boolean is `wrong_input_type` unless `stringify` (`data.stringify_input`).
fn check_input_field(record: &Map<String, Value>, field: &str, stringify: bool) -> Result<(), (&'static str, String)> {
    let fields = || record.keys().take(20).map(String::as_str).collect::<Vec<_>>().join(", ");
    match record.get(field) {
        None => Err(("missing_input_field", format!("record has no field `{field}` (data.input_key); its fields are: {}", fields()))),
        Some(Value::Null) => Err(("missing_input_field", format!("field `{field}` (data.input_key) is null"))),
        Some(Value::String(_)) => Ok(()),
        Some(_) if stringify => Ok(()),
        Some(other) => {
            let kind = match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Array(_) => "a list",
                _ => "an object",
            };
            Err(("wrong_input_type", format!("field `{field}` (data.input_key) is {kind}, not text; set data.stringify_input: true to score its JSON text")))
        }
    }
}

/// The verdict fields a parser returned in `extra`: a JSON object, within the depth a journal
/// row can hold. Anything else is the plugin's fault, reported, never silently dropped.
fn verdict_fields(score: &Score) -> Result<Map<String, Value>, String> {
    let Some(text) = score.extra.as_deref() else { return Ok(Map::new()) };
    modelcall_io::parse_record(text.as_bytes()).map_err(|cause| format!("its `extra` is not a usable JSON object: {cause}"))
}

/// The parser's typed verdict as columns of their own (`score_value`, and `score_label`,
/// `score_rationale` when the parser gives them), beside the fields of its `extra`.
fn verdict_columns(row: &mut Map<String, Value>, score: &Score) {
    row.insert("score_value".into(), json!(score.value));
    if let Some(label) = &score.label {
        row.insert("score_label".into(), json!(label));
    }
    if let Some(rationale) = &score.rationale {
        row.insert("score_rationale".into(), json!(rationale));
    }
}

/// The output row: the input fields, then the verdict fields, then call metadata
/// (reference: `item ∪ json_keys ∪ {api_status, api_fail_reason, api_return}`).
fn build_row(
    mut row: Map<String, Value>,
    extra: Map<String, Value>,
    completion: &Completion,
    elapsed: Duration,
    parse_attempts: u32,
    calls: &CallTally,
) -> Map<String, Value> {
    keep_shadowed_inputs(&mut row, extra.keys().map(String::as_str).chain(OUTPUT_COLUMNS.iter().copied()));
    row.extend(extra);
    row.insert("api_status".into(), json!("success"));
    row.insert("api_fail_reason".into(), json!(""));
    row.insert("api_return".into(), json!(completion.raw_text));
    row.insert("usage".into(), model_call::usage_json(completion));
    row.insert("finish_reason".into(), json!(completion.finish_reason));
    row.insert("latency_ms".into(), json!(elapsed.as_millis() as u64));
    row.insert("attempts".into(), json!(calls.requests));
    row.insert("parse_attempts".into(), json!(parse_attempts));
    row
}

/// The columns the host adds to every scoring row.
const OUTPUT_COLUMNS: &[&str] = &[
    "api_status",
    "api_fail_reason",
    "api_return",
    "usage",
    "finish_reason",
    "latency_ms",
    "attempts",
    "parse_attempts",
    "score_value",
    "score_label",
    "score_rationale",
    "audit_score",
];

/// An input field named like an output column is kept as `input_<name>` (warned about once per
/// run) instead of being overwritten by the output's value.
fn keep_shadowed_inputs<'a>(row: &mut Map<String, Value>, outputs: impl Iterator<Item = &'a str>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    for name in outputs {
        if let Some(v) = row.remove(name) {
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!("warning: input field `{name}` has the name of an output column; it is kept as `input_{name}` (warned once)");
            }
            row.insert(format!("input_{name}"), v);
        }
    }
}

pub fn excerpt(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score_with(extra: Option<String>) -> Score {
        Score { value: 1.0, label: None, rationale: None, extra }
    }

    #[test]
    fn a_verdict_too_deep_or_not_an_object_is_an_error_not_a_row_without_fields() {
        let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
        assert!(verdict_fields(&score_with(Some(deep))).unwrap_err().contains("nested deeper"));
        assert!(verdict_fields(&score_with(Some("[1]".into()))).is_err());
        assert!(verdict_fields(&score_with(Some("{oops".into()))).is_err());
        assert_eq!(verdict_fields(&score_with(Some("{\"k\":1}".into()))).unwrap()["k"], 1);
        assert!(verdict_fields(&score_with(None)).unwrap().is_empty());
    }

    #[test]
    fn input_fields_follow_one_rule_for_every_source() {
        let rec = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(check_input_field(&rec(json!({"text": null})), "text", false).unwrap_err().0, "missing_input_field");
        assert_eq!(check_input_field(&rec(json!({})), "text", false).unwrap_err().0, "missing_input_field");
        assert_eq!(check_input_field(&rec(json!({"text": 5})), "text", false).unwrap_err().0, "wrong_input_type");
        assert!(check_input_field(&rec(json!({"text": 5})), "text", true).is_ok());
        assert!(check_input_field(&rec(json!({"text": "ok"})), "text", false).is_ok());
    }
}
