//! One model call with its accounting: shared by every job that talks to the endpoint.

use modelcall_model::{CallError, ChatRequest, Completion, ModelClient};
use serde_json::{Map, Value};

use crate::engine::{CallTally, Failure, Outcome};

/// Sends `request`, adding what it cost to `calls`. On failure, the outcome to return: a fatal
/// stop (authentication) or a typed `model_<cause>` failure carrying `record`.
pub async fn chat(client: &ModelClient, request: &ChatRequest, calls: &mut CallTally, record: &mut Option<Map<String, Value>>) -> Result<Completion, Outcome> {
    // The response cache, when the task has one: `n` answers per record are cached per sample.
    let cache = crate::response_cache::active();
    let salt = record.as_ref().and_then(|r| r.get("sample_index")).map(|i| i.to_string());
    let key = cache.as_ref().map(|c| c.key(request, salt.as_deref()));
    if let (Some(cache), Some(key)) = (&cache, &key) {
        match cache.get(key) {
            Ok(Some(hit)) => {
                calls.add_completion(&hit);
                return Ok(hit);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; the request is sent"),
        }
    }
    let result = sent(client, request, calls, record).await;
    if let (Some(cache), Some(key), Ok(c)) = (&cache, &key, &result) {
        if let Err(e) = cache.put(key, c) {
            tracing::warn!("{e}; the answer is not cached");
        }
    }
    result
}

/// [`chat`] without the response cache: a request whose point is a fresh answer (the audit's
/// second opinion).
pub async fn chat_fresh(
    client: &ModelClient,
    request: &ChatRequest,
    calls: &mut CallTally,
    record: &mut Option<Map<String, Value>>,
) -> Result<Completion, Outcome> {
    sent(client, request, calls, record).await
}

async fn sent(client: &ModelClient, request: &ChatRequest, calls: &mut CallTally, record: &mut Option<Map<String, Value>>) -> Result<Completion, Outcome> {
    // `concurrency.mode: batch`: the request goes into the run's batch instead.
    let answer = match super::batch_mode::chat_if_batch(request).await {
        Some(answer) => answer,
        None => client.chat(request).await,
    };
    match answer {
        Ok(c) => {
            calls.add_completion(&c);
            Ok(c)
        }
        Err(err) => {
            if let CallError::Exhausted { retries, attempts, .. } = &err {
                calls.requests += *attempts as u64;
                for (cause, n) in retries.iter() {
                    calls.retries.push((cause, n));
                }
            } else {
                calls.requests += 1;
            }
            if err.is_fatal() {
                return Err(Outcome::Fatal { message: err.to_string() });
            }
            Err(Failure::new(format!("model_{}", err.cause()), err.to_string(), std::mem::take(calls), record.take()))
        }
    }
}

/// `usage` as the output rows carry it.
pub fn usage_json(c: &Completion) -> Value {
    match &c.usage {
        Some(u) => serde_json::json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}),
        None => Value::Null,
    }
}
