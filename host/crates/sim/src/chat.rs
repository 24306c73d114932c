//! The chat endpoint, `POST /v1/chat/completions`: capacity and latency, injected faults, and
//! the deterministic reply as JSON or SSE.
//!
//! Its own module because two routes answer chat requests: the chat endpoint itself and each
//! line of a simulated batch ([`chat_body`]).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::options::FaultKind;
use crate::reply;
use crate::respond::{full, json_response, Body, DropConnection};
use crate::schema;
use crate::state::State;

/// A uniform draw in [0,1) from the request's sequence number: deterministic for a given
/// seed and request order, different on a retry.
pub(crate) fn draw(seed: u64, n: u64) -> f64 {
    let mut z = n.wrapping_add(seed).wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) async fn chat(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let n = state.counters.requests.fetch_add(1, Ordering::Relaxed);
    if req.version() == hyper::Version::HTTP_2 {
        state.counters.http2.fetch_add(1, Ordering::Relaxed);
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    chat_body(state, n, body).await
}

/// Answers the chat request `body` (the `n`th request): also each line of a batch.
pub(crate) async fn chat_body(state: Arc<State>, n: u64, body: Bytes) -> Result<Response<Body>, DropConnection> {
    let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _counted = InFlight(&state.in_flight);
    let mut latency = state.opts.latency;
    if let Some(capacity) = state.opts.capacity {
        if now > 2 * capacity {
            state.counters.faults[FaultKind::RateLimited as usize].fetch_add(1, Ordering::Relaxed);
            return Ok(Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", state.opts.retry_after_secs.to_string())
                .header("content-type", "application/json")
                .body(full(json!({"error": {"message": "simulated overload (over capacity)", "type": "rate_limit"}}).to_string()))
                .expect("valid response"));
        }
        if now > capacity {
            // A queue in front of C slots: each request waits for its turn.
            latency = latency.mul_f64(now as f64 / capacity as f64);
        }
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let u = draw(state.opts.seed, n);
    if let Some((_, kind)) = state.cumulative.iter().find(|(limit, _)| u < *limit) {
        state.counters.faults[*kind as usize].fetch_add(1, Ordering::Relaxed);
        return match kind {
            FaultKind::RateLimited => Ok(Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", state.opts.retry_after_secs.to_string())
                .header("content-type", "application/json")
                .body(full(json!({"error": {"message": "simulated rate limit", "type": "rate_limit"}}).to_string()))
                .expect("valid response")),
            FaultKind::ServerError => {
                Ok(json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": {"message": "simulated server error", "type": "server_error"}})))
            }
            FaultKind::Drop => Err(DropConnection),
            FaultKind::Malformed => Ok(Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(full("{\"id\":\"chatcmpl-sim\",\"choices\":[{\"message\":{\"content\":\"trunc"))
                .expect("valid response")),
            FaultKind::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(DropConnection)
            }
            FaultKind::Unauthorized => {
                Ok(json_response(StatusCode::UNAUTHORIZED, &json!({"error": {"message": "simulated: invalid API key", "type": "invalid_request_error"}})))
            }
        };
    }

    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"message": format!("request body is not JSON: {e}"), "type": "invalid_request_error"}}),
            ))
        }
    };
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": "`messages` must be a non-empty array", "type": "invalid_request_error"}}),
        ));
    };
    // A plain string, or the text parts of a multi-part content.
    let text_of = |m: &Value| match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    };
    if let Some(cache) = &state.prefix_cache {
        let contents: Vec<String> = messages.iter().map(text_of).collect();
        cache.lookup(crate::prefix_cache::prefix_hash(contents.iter().map(String::as_str)));
    }
    // The template is what the task asked originally: system prompt and first user turn.
    let mut template = String::new();
    for m in messages.iter().take_while(|m| m["role"] != "assistant") {
        template.push_str(&text_of(m));
        template.push('\n');
    }
    let last_user = messages.iter().rev().find(|m| m["role"] == "user").map(text_of).unwrap_or_default();
    let h = reply::fnv1a(&body, 0);
    let scripted = state.rules.as_ref().and_then(|r| r.reply_for(&last_user));
    let content = match (scripted, schema::requested_schema(&request)) {
        (Some(text), _) => text.to_string(),
        // Structured output: the bare document, its choices hashed from the question and seed.
        (None, Some(s)) => schema::generate(s, reply::fnv1a(last_user.as_bytes(), state.opts.seed)).to_string(),
        (None, None) => reply::answer(&template, &last_user, reply::fnv1a(template.as_bytes(), 7)),
    };
    let reasoning = state.opts.reasoning.then(|| format!("Simulated reasoning {:08x}: weighing the criteria {{carefully}}.", h as u32));
    let prompt_tokens = (body.len() / 4) as u64;
    let completion_tokens = (content.len() / 4 + reasoning.as_ref().map_or(0, |r| r.len() / 4)) as u64;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    let model = request["model"].as_str().unwrap_or(crate::SIM_MODEL_ID).to_string();
    let model = format!("{model} [{}]", crate::SIM_MODEL_ID);
    state.counters.ok.fetch_add(1, Ordering::Relaxed);

    if request["stream"].as_bool().unwrap_or(false) {
        let mut events: Vec<Value> = Vec::new();
        let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        events.push(chunk(json!({"role": "assistant"}), Value::Null));
        if let Some(r) = &reasoning {
            events.push(chunk(json!({"reasoning_content": r}), Value::Null));
        }
        let chars: Vec<char> = content.chars().collect();
        for piece in chars.chunks(chars.len().div_ceil(3).max(1)) {
            events.push(chunk(json!({"content": piece.iter().collect::<String>()}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if request["stream_options"]["include_usage"].as_bool().unwrap_or(false) {
            events.push(json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}));
        }
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = events.into_iter().map(|e| Ok(Frame::data(Bytes::from(format!("data: {e}\n\n"))))).collect();
        frames.push(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))));
        let stream = futures_util::stream::iter(frames);
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(StreamBody::new(stream).boxed())
            .expect("valid response"));
    }

    let mut message = json!({"role": "assistant", "content": content});
    if let Some(r) = reasoning {
        message["reasoning_content"] = json!(r);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": format!("chatcmpl-sim-{n}"), "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }),
    ))
}
