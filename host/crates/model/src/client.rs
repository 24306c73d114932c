//! The connection pool and the retry loop.

use std::fmt;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use modelcall_secrets::Redactor;

use crate::error::{CallError, ClientError, RetryCause, RetryCounts};
use crate::fail_fast::{FailFast, Unreachable, UNREACHABLE_WINDOW};
use crate::pool::Endpoint;
use crate::problems::{Problem, ProblemReporter};
use crate::transport::{Http1Options, Response, Transport};
use crate::wire::{self, Answer, ChatRequest, Completion, SseAccumulator};

pub use crate::settings::{ClientSettings, TokenCounter};

/// Masks all but the last four characters of a secret (`***abcd`; `***` for 8 characters or
/// fewer): the one masking, from `modelcall-secrets`.
pub use modelcall_secrets::mask as mask_secret;

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_deref().map(mask_secret))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_retries", &self.max_retries)
            .field("pool_size", &self.pool_size)
            .field("stream", &self.stream)
            .finish()
    }
}

type Limiter = governor::DefaultDirectRateLimiter;

tokio::task_local! {
    /// The key of the record whose request is being sent, for the attempt log lines.
    static RECORD_KEY: std::sync::Arc<str>;
    /// The time the record's attempts spent in HTTP exchanges (for the run's stage timing).
    static RECORD_WIRE: std::cell::Cell<Duration>;
}

/// [`for_record`], also returning the time `f`'s requests spent on the wire: from an attempt's
/// endpoint being chosen to its answer read (backoff, rate-limit waits and routing are not).
pub async fn for_record_timed<F: std::future::Future>(key: impl Into<std::sync::Arc<str>>, f: F) -> (F::Output, Duration) {
    RECORD_WIRE
        .scope(std::cell::Cell::new(Duration::ZERO), async move {
            let out = for_record(key, f).await;
            (out, RECORD_WIRE.with(|w| w.get()))
        })
        .await
}

/// Runs `f` (a record's work) with `key` as the record key of the log lines its requests
/// write (`key` in the `attempt`, `retry` and `failure` events).
pub async fn for_record<F: std::future::Future>(key: impl Into<std::sync::Arc<str>>, f: F) -> F::Output {
    RECORD_KEY.scope(key.into(), f).await
}

/// The key set by [`for_record`], or `""`.
fn record_key() -> std::sync::Arc<str> {
    RECORD_KEY.try_with(|k| k.clone()).unwrap_or_else(|_| std::sync::Arc::from(""))
}

/// What an attempt was, for its log line: the endpoint, the HTTP status (0: none) and how long
/// it took.
struct Attempted<'a> {
    endpoint: &'a Endpoint,
    status: u16,
    latency: Duration,
}

impl Attempted<'_> {
    fn latency_ms(&self) -> f64 {
        (self.latency.as_secs_f64() * 1e4).round() / 10.0
    }
    /// The problem as the reporter counts it: the status, else the cause.
    fn problem(&self, cause: &str, retried: bool) -> Problem {
        let what = if self.status == 0 { cause.to_string() } else { self.status.to_string() };
        Problem { what, endpoint: self.endpoint.shown.clone(), retried }
    }
}

/// Waits until `tokens` fit the per-minute budget (at most the whole budget at once).
async fn take_tokens(limiter: &Limiter, tokens: u64) {
    let n = std::num::NonZeroU32::new(tokens.clamp(1, u32::MAX as u64) as u32).expect("at least one");
    if limiter.until_n_ready(n).await.is_err() {
        // More than a whole minute's budget: wait for all of it instead.
        let _ = limiter.until_ready().await;
    }
}

/// Cheap to clone: one pool shared by every request.
#[derive(Clone)]
pub struct ModelClient {
    /// For the one-off calls (`list_models`).
    http: reqwest::Client,
    /// What attempts go through (see [`crate::transport`]).
    transport: std::sync::Arc<Transport>,
    settings: std::sync::Arc<ClientSettings>,
    /// The endpoints requests go to (one, or a pool); each URL with any userinfo and the query.
    pool: std::sync::Arc<crate::pool::Pool>,
    /// What is shown: the first endpoint through the redactor (and how many more).
    endpoint: std::sync::Arc<str>,
    limiter: Option<std::sync::Arc<Limiter>>,
    /// `tokens_per_minute`, counted in tokens.
    token_limiter: Option<std::sync::Arc<Limiter>>,
    /// Built from the API key (and a password in `base_url`): every error text passes through it.
    redactor: std::sync::Arc<Redactor>,
    /// Stops the run when its first attempts all fail the same way (see [`crate::fail_fast`]).
    fail_fast: std::sync::Arc<FailFast>,
    /// What `GET /models` listed, once [`ModelClient::list_models`] ran: named when the
    /// endpoint says the model does not exist.
    served: std::sync::Arc<std::sync::OnceLock<Vec<String>>>,
    /// Logs each distinct problem once, then a count every 10 s (see [`crate::problems`]).
    problems: ProblemReporter,
}

/// How one attempt failed.
enum AttemptError {
    Final(CallError),
    Retry {
        cause: RetryCause,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No connection could be made (refused, host not resolved): retried as a `connection`
    /// failure unless fail-fast stops the run.
    Unreachable {
        message: String,
    },
}

/// The host of `url`, for messages (`host:port`).
fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Every certificate of a PEM file, for reqwest's root store.
fn read_certificates(what: &'static str, path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let bad = |reason: String| ClientError::CaCert { what, path: path.display().to_string(), reason };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(format!("not a PEM certificate bundle: {e}")))
}

impl ModelClient {
    pub fn new(settings: ClientSettings) -> Result<Self, ClientError> {
        let path = if settings.text_completion { "/completions" } else { "/chat/completions" };
        // The path goes before any query the base URL has (`http://h/v1?api-version=X`, Azure).
        let request_url = |base_url: &str| -> Result<reqwest::Url, ClientError> {
            let mut url = reqwest::Url::parse(base_url.trim()).map_err(|e| ClientError::InvalidBaseUrl {
                base_url: Redactor::new(settings.api_key.clone()).redact_string(base_url),
                reason: e.to_string(),
            })?;
            let base = url.path().trim_end_matches('/').to_string();
            url.set_path(&if base.ends_with(path) { base } else { format!("{base}{path}") });
            if !settings.query.is_empty() {
                url.query_pairs_mut().extend_pairs(settings.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            Ok(url)
        };
        let mut urls = vec![(request_url(&settings.base_url)?, settings.base_share)];
        for (base, share) in &settings.more_endpoints {
            urls.push((request_url(base)?, *share));
        }
        let url = urls[0].0.clone();
        let header_values = settings.headers.iter().filter(|(n, _)| modelcall_secrets::is_credential_header(n)).map(|(_, v)| v.clone());
        let passwords = urls.iter().filter_map(|(u, _)| u.password().map(str::to_string)).collect::<Vec<_>>();
        let redactor = Redactor::new(settings.api_key.iter().cloned().chain(passwords).chain(header_values));
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &settings.headers {
            let bad = |reason: String| ClientError::InvalidHeader { name: name.clone(), reason };
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if settings.idle_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ClientError::ZeroIdleTimeout);
        }
        let loopback = crate::transport::is_loopback(&url);
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(settings.pool_size.max(1))
            // Under the usual servers' keep-alive (uvicorn's 5 s, which vLLM and SGLang
            // inherit): a connection the server is about to close is not reused.
            .pool_idle_timeout(crate::transport::IDLE_REUSE_LIMIT)
            .tcp_nodelay(true)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .timeout(settings.timeout)
            .user_agent(concat!("modelcall/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        if settings.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        if loopback {
            builder = builder.no_proxy();
        }
        if let Some(path) = &settings.ca_cert {
            for cert in read_certificates("client_config.ca_cert", path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        // reqwest trusts its built-in roots only; SSL_CERT_FILE adds to them, as in most tools.
        if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
            match read_certificates("SSL_CERT_FILE", std::path::Path::new(&path)) {
                Ok(certs) => {
                    for cert in certs {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                Err(e) => tracing::warn!("{e}; ignored"),
            }
        }
        let http = builder.build().map_err(ClientError::Http)?;
        let endpoint_urls: Vec<reqwest::Url> = urls.iter().map(|(u, _)| u.clone()).collect();
        let transport = Transport::choose(
            http.clone(),
            Http1Options {
                urls: &endpoint_urls,
                api_key: settings.api_key.as_deref(),
                headers: &settings.headers,
                http2_prior_knowledge: settings.http2_prior_knowledge,
                timeout: settings.timeout,
                idle_timeout: settings.idle_timeout,
                max_idle_per_endpoint: settings.pool_size,
            },
        )?;
        let limiter = match settings.requests_per_minute {
            Some(0) => return Err(ClientError::ZeroRequestsPerMinute),
            Some(rpm) => {
                let quota = governor::Quota::per_minute(std::num::NonZeroU32::new(rpm).expect("positive"))
                    .allow_burst(std::num::NonZeroU32::new((rpm / 60).max(1)).expect("positive"));
                Some(std::sync::Arc::new(governor::RateLimiter::direct(quota)))
            }
            None => None,
        };
        let token_limiter = match settings.tokens_per_minute {
            Some(0) => return Err(ClientError::ZeroTokensPerMinute),
            // The whole minute's budget may be spent at once: one long prompt must always fit.
            Some(tpm) => {
                Some(std::sync::Arc::new(governor::RateLimiter::direct(governor::Quota::per_minute(std::num::NonZeroU32::new(tpm).expect("positive")))))
            }
            None => None,
        };
        let pool = crate::pool::Pool::shared(urls.iter().map(|(u, w)| (u.to_string(), redactor.redact_string(u.as_str()), *w)).collect());
        let shown_endpoint = match pool.len() {
            1 => pool.first().shown.clone(),
            n => format!("{} (and {} more endpoints)", pool.first().shown, n - 1),
        };
        let fail_fast = FailFast::new(pool.len(), UNREACHABLE_WINDOW);
        Ok(ModelClient {
            fail_fast: std::sync::Arc::new(fail_fast),
            served: Default::default(),
            problems: ProblemReporter::default(),
            http,
            transport: std::sync::Arc::new(transport),
            settings: std::sync::Arc::new(settings),
            pool,
            endpoint: shown_endpoint.into(),
            limiter,
            token_limiter,
            redactor: std::sync::Arc::new(redactor),
        })
    }

    /// The chat-completions URL as it may be shown: never the key, userinfo replaced by `***`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What removes the client's key (and credential headers, URL userinfo) from text; every
    /// [`CallError`] the client returns has been through it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Which HTTP client attempts go through: `http1` (the lean one) or `reqwest`.
    pub fn transport_name(&self) -> &'static str {
        self.transport.name()
    }

    /// One logical call: attempts, retries with backoff, and the typed outcome.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Completion, CallError> {
        self.chat_unredacted(request).await.map_err(|e| e.redacted(&self.redactor))
    }

    async fn chat_unredacted(&self, request: &ChatRequest) -> Result<Completion, CallError> {
        let s = &self.settings;
        let body = match s.text_completion {
            true => wire::completion_body(&s.chat_config, &s.model, request, s.stream),
            false => wire::request_body(&s.chat_config, &s.model, request, s.stream),
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&body).expect("request serializes"));
        let started = Instant::now();
        let mut retries = RetryCounts::default();
        let mut attempt: u32 = 0;
        // The endpoint the last attempt failed on: a retry prefers another.
        let mut avoid = None;
        let estimate = self.token_limiter.as_ref().map(|_| self.estimate_tokens(request));
        loop {
            attempt += 1;
            if let (Some(limiter), Some(tokens)) = (&self.token_limiter, estimate) {
                take_tokens(limiter, tokens).await;
            }
            let (result, attempted) = self.attempt(body.clone(), avoid).await;
            avoid = Some(attempted.endpoint.index());
            match result {
                Ok(answer) => {
                    tracing::debug!(
                        message = "answered",
                        event = "attempt",
                        key = %record_key(),
                        endpoint = %attempted.endpoint.shown,
                        attempt,
                        status = attempted.status,
                        latency_ms = attempted.latency_ms(),
                    );
                    if let (Some(limiter), Some(tokens), Some(usage)) = (&self.token_limiter, estimate, &answer.usage) {
                        // The reply used more than estimated: the budget pays the difference.
                        let used = usage.total_tokens;
                        if used > tokens {
                            take_tokens(limiter, used - tokens).await;
                        }
                    }
                    return Ok(self.completion(answer, attempt, retries, started.elapsed()));
                }
                Err(AttemptError::Final(e)) => {
                    self.log_failure(&attempted, attempt, e.cause(), &e.to_string(), !e.is_fatal());
                    return Err(e);
                }
                // `attempt` turns these into retries or a stop; never here.
                Err(AttemptError::Unreachable { message }) => {
                    self.log_failure(&attempted, attempt, RetryCause::Connection.as_str(), &message, true);
                    return Err(CallError::Exhausted { cause: RetryCause::Connection, message, attempts: attempt, retries });
                }
                Err(AttemptError::Retry { cause, message, retry_after }) => {
                    if attempt > s.max_retries {
                        if cause == RetryCause::Connection {
                            // Nothing ever answered: wait for the fail-fast verdict rather than
                            // fail the record for good while the endpoint may simply be down.
                            if let Some(stop) = self.await_unreachable_verdict().await {
                                self.log_failure(&attempted, attempt, stop.cause(), &stop.to_string(), false);
                                return Err(stop);
                            }
                        }
                        self.log_failure(&attempted, attempt, cause.as_str(), &message, true);
                        return Err(CallError::Exhausted { cause, message, attempts: attempt, retries });
                    }
                    retries.add(cause);
                    let mut delay = self.backoff(attempt, retry_after);
                    if let Some(left) = self.fail_fast.pending() {
                        // Be there when the fail-fast window ends.
                        delay = delay.min(left + Duration::from_millis(20));
                    }
                    self.log_retry(&attempted, attempt, cause, &message, delay);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// While every endpoint refuses connections and nothing ever answered: waits for the end of
    /// the fail-fast window; the stop if it passed so, `None` once anything answered.
    async fn await_unreachable_verdict(&self) -> Option<CallError> {
        while let Some(left) = self.fail_fast.pending() {
            if let Some((message, waited)) = self.fail_fast.tripped_now() {
                return Some(self.unreachable_error(message, waited));
            }
            tokio::time::sleep(left.max(Duration::from_millis(20))).await;
        }
        None
    }

    fn unreachable_error(&self, message: String, waited: Duration) -> CallError {
        CallError::Unreachable { endpoint: self.endpoint.to_string(), message, waited }
    }

    /// Tokens a request may use: its prompt (counted) plus the most it may generate.
    fn estimate_tokens(&self, request: &ChatRequest) -> u64 {
        let text: usize = request
            .messages
            .iter()
            .map(|m| match &self.settings.token_counter {
                Some(count) => count(&m.content),
                None => m.content.len() / 4,
            })
            .sum();
        let max_out = request.max_tokens.map(u64::from).or_else(|| self.settings.chat_config.get("max_tokens").and_then(Value::as_u64)).unwrap_or(256);
        text as u64 + max_out
    }

    /// GET `<base>/models`.
    pub async fn list_models(&self) -> Result<Vec<String>, CallError> {
        self.list_models_unredacted().await.map_err(|e| e.redacted(&self.redactor))
    }

    async fn list_models_unredacted(&self) -> Result<Vec<String>, CallError> {
        // `<base>/models`, the base URL's query kept.
        let url = match reqwest::Url::parse(&self.pool.first().url) {
            Ok(mut u) => {
                let base = u.path().trim_end_matches("/chat/completions").trim_end_matches("/completions").to_string();
                u.set_path(&format!("{base}/models"));
                u.to_string()
            }
            Err(_) => self.pool.first().url.clone(),
        };
        let mut req = self.http.get(&url);
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| {
            let e = crate::transport::TransportError::from(e);
            if e.certificate {
                return CallError::Certificate { host: host_of(&url), message: e.message };
            }
            CallError::Exhausted { cause: RetryCause::Connection, message: e.message, attempts: 1, retries: RetryCounts::default() }
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(CallError::Auth { endpoint: url, status, message: "unauthorized".into() });
        }
        if !(200..300).contains(&status) {
            return Err(CallError::Rejected { status, message: format!("GET {url}: HTTP {status}") });
        }
        let v: Value = resp.json().await.map_err(|e| CallError::Rejected { status, message: e.to_string() })?;
        let models: Vec<String> = v["data"].as_array().map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect()).unwrap_or_default();
        let _ = self.served.set(models.clone());
        Ok(models)
    }

    /// Full-jitter exponential backoff; a server's Retry-After is a floor.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let s = &self.settings;
        let exp = s.backoff_base.saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(s.backoff_max);
        let jitter = Duration::from_secs_f64(rand::rng().random_range(0.0..=cap.as_secs_f64().max(0.0)));
        match retry_after {
            Some(ra) => ra.min(s.backoff_max).max(jitter.min(ra + s.backoff_base)),
            None => jitter,
        }
    }

    fn completion(&self, answer: Answer, attempts: u32, retries: RetryCounts, latency: Duration) -> Completion {
        let (content, reasoning) =
            if answer.reasoning.is_empty() { wire::split_inline_reasoning(&answer.content) } else { (answer.content.clone(), Some(answer.reasoning.clone())) };
        let raw_text = wire::raw_text(&content, reasoning.as_deref());
        Completion { content, reasoning, raw_text, usage: answer.usage, finish_reason: answer.finish_reason, model: answer.model, attempts, retries, latency }
    }

    /// One attempt, and what it was (for its log line).
    async fn attempt(&self, body: bytes::Bytes, avoid: Option<usize>) -> (Result<Answer, AttemptError>, Attempted<'_>) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let lease = self.pool.pick_avoiding(avoid).await;
        let started = Instant::now();
        let mut status = 0;
        let result = self.attempt_on(&lease.endpoint.url, body, &mut status).await;
        let attempted = Attempted { endpoint: lease.endpoint, status, latency: started.elapsed() };
        let _ = RECORD_WIRE.try_with(|w| w.set(w.get() + attempted.latency));
        // The endpoint's own limit learns from every attempt that got an answer.
        let throttled = matches!(&result, Err(AttemptError::Retry { cause: RetryCause::RateLimited, .. })) || status == 503;
        if result.is_ok() || throttled {
            lease.observed(attempted.latency, throttled);
        }
        (self.settle(&lease, result), attempted)
    }

    /// The pool's and fail-fast's bookkeeping of an attempt's result.
    fn settle(&self, lease: &crate::pool::Lease<'_>, result: Result<Answer, AttemptError>) -> Result<Answer, AttemptError> {
        // An endpoint that cannot answer (transport errors, 5xx, timeouts, broken bodies) is
        // unwell; any other answer, a refusal of the request included, is a healthy one.
        match &result {
            Err(AttemptError::Retry { cause, .. }) if *cause != RetryCause::RateLimited => {
                self.pool.failed(lease.endpoint);
            }
            Err(AttemptError::Unreachable { .. }) => {
                self.pool.failed(lease.endpoint);
            }
            _ => self.pool.succeeded(lease.endpoint),
        }
        match result {
            Ok(answer) => {
                self.fail_fast.succeeded();
                Ok(answer)
            }
            Err(AttemptError::Unreachable { message }) => match self.fail_fast.unreachable(&lease.endpoint.url, &message) {
                Unreachable::Tripped { message, waited } => Err(AttemptError::Final(self.unreachable_error(message, waited))),
                verdict => {
                    if verdict == (Unreachable::Waiting { first: true }) {
                        tracing::warn!(
                            "cannot connect to {}: {}; retrying, and the run stops if nothing answers within {} s",
                            lease.endpoint.shown,
                            self.redactor.redact_string(&message),
                            UNREACHABLE_WINDOW.as_secs()
                        );
                    }
                    Err(AttemptError::Retry { cause: RetryCause::Connection, message, retry_after: None })
                }
            },
            Err(e) => Err(e),
        }
    }

    /// A retry's debug line (`event="retry"`) and its count in the problem reporter.
    fn log_retry(&self, attempted: &Attempted<'_>, attempt: u32, cause: RetryCause, message: &str, backoff: Duration) {
        let message = self.redactor.redact(message);
        tracing::debug!(
            message = %message,
            event = "retry",
            key = %record_key(),
            endpoint = %attempted.endpoint.shown,
            attempt,
            status = attempted.status,
            latency_ms = attempted.latency_ms(),
            cause = cause.as_str(),
            backoff_ms = backoff.as_millis() as u64,
        );
        self.problems.record(attempted.problem(cause.as_str(), true), &message);
    }

    /// The debug line of an attempt after which the record fails (`event="failure"`), and its
    /// count in the problem reporter when `report` (not for stops, which say so themselves).
    fn log_failure(&self, attempted: &Attempted<'_>, attempt: u32, cause: &str, message: &str, report: bool) {
        let message = self.redactor.redact(message);
        tracing::debug!(
            message = %message,
            event = "failure",
            key = %record_key(),
            endpoint = %attempted.endpoint.shown,
            attempt,
            status = attempted.status,
            latency_ms = attempted.latency_ms(),
            cause,
        );
        if report {
            self.problems.record(attempted.problem(cause, false), &message);
        }
    }

    /// What each endpoint did (requests, failures, ejections), for the run summary.
    pub fn endpoint_stats(&self) -> Vec<crate::pool::EndpointStats> {
        self.pool.stats()
    }

    /// Requests re-sent once on a fresh connection because a reused one was closed by the
    /// server before any answer (not counted as retries), for the run summary.
    pub fn stale_connection_resends(&self) -> u64 {
        self.transport.stale_resends()
    }

    /// One attempt at `url`; `status` gets the HTTP status once an answer's head arrived.
    async fn attempt_on(&self, url: &str, body: bytes::Bytes, status_seen: &mut u16) -> Result<Answer, AttemptError> {
        let mut read = BodyRead { deadline: tokio::time::Instant::now() + self.settings.timeout, received: 0, hold: reply_budget::process_budget().reply() };
        let mut resp = match self.transport.post(url, body).await {
            Ok(resp) => resp,
            Err(e) if e.certificate => {
                return Err(AttemptError::Final(CallError::Certificate { host: host_of(url), message: e.message }));
            }
            Err(e) if e.connect => return Err(AttemptError::Unreachable { message: e.message }),
            Err(e) => return Err(transport_error(e)),
        };
        self.fail_fast.answered();
        let status = resp.status;
        *status_seen = status;
        if !(200..300).contains(&status) {
            let retry_after = resp.retry_after.as_deref().and_then(parse_retry_after);
            let text = match self.read_body(&mut resp, &mut read).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e @ AttemptError::Final(_)) => return Err(e),
                Err(_) => String::new(),
            };
            let message = error_message(status, &text);
            return Err(match status {
                401 | 403 => AttemptError::Final(CallError::Auth { endpoint: self.endpoint.to_string(), status, message }),
                429 => AttemptError::Retry { cause: RetryCause::RateLimited, message, retry_after },
                408 | 500..=599 => AttemptError::Retry { cause: RetryCause::ServerError, message, retry_after },
                // Before any success, a model the endpoint does not serve stops the run: every
                // record would get the same answer.
                _ if !self.fail_fast.has_succeeded() && crate::fail_fast::names_missing_model(status, &message, &self.settings.model) => {
                    AttemptError::Final(CallError::ModelNotFound {
                        endpoint: self.endpoint.to_string(),
                        model: self.settings.model.clone(),
                        status,
                        message,
                        served: self.served.get().cloned().unwrap_or_default(),
                    })
                }
                _ => AttemptError::Final(CallError::Rejected { status, message }),
            });
        }
        // Some servers ignore `stream: true` and answer with one JSON body: read what came.
        let is_sse = resp.content_type.as_deref().is_some_and(|ct| ct.starts_with("text/event-stream"));
        if self.settings.stream && is_sse {
            let mut acc = SseAccumulator::default();
            while let Some(chunk) = self.next_chunk(&mut resp, &mut read).await? {
                acc.feed(&chunk).map_err(|e| AttemptError::Retry { cause: RetryCause::MalformedBody, message: e.to_string(), retry_after: None })?;
            }
            if !acc.is_complete() {
                return Err(AttemptError::Retry {
                    cause: RetryCause::Connection,
                    message: "the stream ended before a finish_reason or [DONE]".into(),
                    retry_after: None,
                });
            }
            Ok(acc.answer)
        } else {
            let bytes = self.read_body(&mut resp, &mut read).await?;
            wire::parse_json_body(&bytes).map_err(|e| AttemptError::Retry { cause: RetryCause::MalformedBody, message: e.to_string(), retry_after: None })
        }
    }

    /// The next piece of a body, waiting at most `idle_timeout` for it and never past the
    /// attempt's `timeout` (which bounds the whole exchange, body included, on both clients);
    /// the body's bytes are counted against `max_response_bytes` as they arrive.
    async fn next_chunk(&self, resp: &mut Response, read: &mut BodyRead) -> Result<Option<bytes::Bytes>, AttemptError> {
        let total = || AttemptError::Retry {
            cause: RetryCause::Timeout,
            message: format!("no complete answer within {} s (client_config.timeout)", self.settings.timeout.as_secs_f64()),
            retry_after: None,
        };
        let now = tokio::time::Instant::now();
        if now >= read.deadline {
            return Err(total());
        }
        let idle_by = self.settings.idle_timeout.map(|idle| now + idle).filter(|at| *at < read.deadline);
        let next = match tokio::time::timeout_at(idle_by.unwrap_or(read.deadline), resp.next_chunk()).await {
            Ok(next) => next,
            Err(_) if idle_by.is_some() => {
                return Err(AttemptError::Retry {
                    cause: RetryCause::Timeout,
                    message: format!(
                        "no data from the endpoint for {} s (client_config.idle_timeout)",
                        self.settings.idle_timeout.unwrap_or_default().as_secs_f64()
                    ),
                    retry_after: None,
                })
            }
            Err(_) => return Err(total()),
        };
        let chunk = next.map_err(transport_error)?;
        if let Some(piece) = &chunk {
            read.received += piece.len() as u64;
            if read.received > self.settings.max_response_bytes {
                // Dropping the response closes its connection.
                return Err(AttemptError::Final(CallError::ReplyTooLarge { limit: self.settings.max_response_bytes }));
            }
            // Past its free share, a reply waits while the replies held use the run's budget
            // (see [`reply_budget`]), within the attempt's deadline.
            if tokio::time::timeout_at(read.deadline, read.hold.take(piece.len() as u64)).await.is_err() {
                return Err(total());
            }
        }
        Ok(chunk)
    }

    /// A whole body, under the idle timeout between its pieces.
    async fn read_body(&self, resp: &mut Response, read: &mut BodyRead) -> Result<Vec<u8>, AttemptError> {
        // The pieces are kept as they came and joined once the body is complete: a body grown
        // by copying holds its old buffers too while it grows (and an endless one never ends).
        let mut pieces = Vec::new();
        let mut size = 0;
        while let Some(chunk) = self.next_chunk(resp, read).await? {
            size += chunk.len();
            pieces.push(chunk);
        }
        let mut body = Vec::with_capacity(size);
        for piece in pieces {
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }
}

/// An answer's body being read: the attempt's deadline and the bytes received so far.
struct BodyRead {
    deadline: tokio::time::Instant,
    received: u64,
    /// Its share of the process's reply budget, released when the attempt ends.
    hold: reply_budget::ReplyHold,
}

mod http_errors;
pub mod reply_budget;
use http_errors::{error_message, parse_retry_after, transport_error};

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
