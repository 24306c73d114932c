//! The HTTP server: routes, fault injection, latency, JSON and SSE replies.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::options::{FaultKind, SimOptions, SimUrlError};
use crate::reply::{self, ReplyRules};
use crate::schema;

/// Requests served, by outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SimStats {
    pub requests: u64,
    pub ok: u64,
    pub rate_limited: u64,
    pub server_error: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub hung: u64,
    pub unauthorized: u64,
    /// With `prefix_cache`: chat requests looked up, and those whose prefix was cached.
    pub prefix_lookups: u64,
    pub prefix_hits: u64,
    /// Requests that came over HTTP/2 (h2c, prior knowledge); the others were HTTP/1.x.
    pub http2_requests: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    http2: AtomicU64,
    ok: AtomicU64,
    faults: [AtomicU64; 6],
}

pub(crate) struct State {
    opts: SimOptions,
    /// The `replies=FILE` rules, read at start.
    rules: Option<ReplyRules>,
    pub(crate) counters: Counters,
    /// Thresholds on a uniform draw in [0,1): fault i applies below cumulative[i].
    cumulative: Vec<(f64, FaultKind)>,
    /// Chat requests being answered now (for `capacity`).
    in_flight: AtomicU64,
    prefix_cache: Option<crate::prefix_cache::PrefixCache>,
    /// The files and batches of the Batch API (see [`crate::batch`]).
    pub(crate) batches: crate::batch::Store,
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running simulator. Dropping it stops accepting connections.
pub struct SimServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.state.counters;
        let f = |k: FaultKind| c.faults[k as usize].load(Ordering::Relaxed);
        SimStats {
            requests: c.requests.load(Ordering::Relaxed),
            ok: c.ok.load(Ordering::Relaxed),
            rate_limited: f(FaultKind::RateLimited),
            server_error: f(FaultKind::ServerError),
            dropped: f(FaultKind::Drop),
            malformed: f(FaultKind::Malformed),
            hung: f(FaultKind::Hang),
            unauthorized: f(FaultKind::Unauthorized),
            prefix_lookups: self.state.prefix_cache.as_ref().map_or(0, |c| c.counts().0),
            prefix_hits: self.state.prefix_cache.as_ref().map_or(0, |c| c.counts().1),
            http2_requests: self.state.counters.http2.load(Ordering::Relaxed),
        }
    }

    /// Sets the faults of the batch endpoints (see [`crate::batch::BatchFaults`]).
    pub fn set_batch_faults(&self, faults: crate::batch::BatchFaults) {
        self.state.batches.set_faults(faults);
    }

    /// What the batch endpoints have seen (batches and answers per `custom_id`).
    pub fn batch_stats(&self) -> crate::batch::BatchStats {
        self.state.batches.stats()
    }

    pub fn shutdown(self) {
        self.accept.abort();
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Why the simulator could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    #[error(transparent)]
    Fault(#[from] crate::options::FaultError),
    /// The `replies=` file is missing or malformed (names the file, and the line).
    #[error(transparent)]
    Url(#[from] SimUrlError),
    #[error("--host/--port do not form an address: {0}")]
    Address(#[from] std::net::AddrParseError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

/// Starts the simulator on an ephemeral 127.0.0.1 port.
pub async fn start(opts: SimOptions) -> Result<SimServer, SimError> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await
}

/// Starts the simulator on `addr`. The `replies=` file, if any, is read and checked first: a
/// missing or malformed one is [`SimError::Url`] ([`SimUrlError::RepliesFile`] or
/// [`SimUrlError::RepliesLine`]), before anything listens.
pub async fn start_on(addr: SocketAddr, opts: SimOptions) -> Result<SimServer, SimError> {
    let rules = opts.replies.as_deref().map(ReplyRules::load).transpose()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| SimError::Listen { addr, error })?;
    let addr = listener.local_addr().map_err(|error| SimError::Listen { addr, error })?;
    let mut acc = 0.0;
    let cumulative = opts
        .faults
        .iter()
        .map(|f| {
            acc += f.rate;
            (acc, f.kind)
        })
        .collect();
    let prefix_cache = opts.prefix_cache.map(crate::prefix_cache::PrefixCache::new);
    let state =
        Arc::new(State { opts, rules, counters: Counters::default(), cumulative, in_flight: AtomicU64::new(0), prefix_cache, batches: Default::default() });
    let accept_state = state.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = accept_state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                // HTTP/1.1 (kept alive), or h2c when the client opens with HTTP/2's preface.
                let _ =
                    hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(SimServer { addr, state, accept })
}

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder().status(status).header("content-type", "application/json").body(full(v.to_string())).expect("valid response")
}

/// A uniform draw in [0,1) from the request's sequence number: deterministic for a given
/// seed and request order, different on a retry.
fn draw(seed: u64, n: u64) -> f64 {
    let mut z = n.wrapping_add(seed).wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated dropped connection")
    }
}

impl std::error::Error for DropConnection {}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    match (req.method(), path.trim_end_matches('/')) {
        (&Method::GET, "/v1/models") | (&Method::GET, "/models") => Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": crate::SIM_MODEL_ID, "object": "model", "owned_by": "modelcall (SIMULATED)"}]}),
        )),
        (&Method::POST, "/v1/chat/completions") | (&Method::POST, "/chat/completions") => chat(state, req).await,
        (_, p) if crate::batch::is_batch_route(p) => crate::batch::handle(state, req).await,
        _ => Ok(json_response(StatusCode::NOT_FOUND, &json!({"error": {"message": format!("no route {path}"), "type": "not_found"}}))),
    }
}

async fn chat(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
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

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
