//! What a client is built from: the endpoint(s), the key, timeouts, retries, throttling and
//! the wire options, as a model config gives them.

use std::time::Duration;

use serde_json::{Map, Value};

/// Everything the client needs; built from a model config.
#[derive(Clone)]
pub struct ClientSettings {
    /// e.g. `http://127.0.0.1:8000/v1` (the `/chat/completions` path is appended).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Per HTTP attempt, headers and body included: a total deadline, however steadily a stream
    /// is arriving.
    pub timeout: Duration,
    /// The longest silence from the endpoint once the request is written: until the first byte
    /// of the answer's head, then between any two pieces of it (head and body, between stream
    /// chunks); exceeding it fails the attempt as a `timeout`. `None`: only `timeout`. With a
    /// non-streaming server, which sends its head only when the whole answer is ready, it must
    /// exceed the longest generation.
    pub idle_timeout: Option<Duration>,
    /// The most bytes of one answer's body (streamed or not), counted as they arrive; over it
    /// the connection is dropped and the record fails (`reply_too_large`, not retried).
    pub max_response_bytes: u64,
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// Idle connections kept per host: size it to the concurrency.
    pub pool_size: usize,
    pub stream: bool,
    /// Passed through into every request body (`temperature`, `reasoning_effort`, …).
    pub chat_config: Map<String, Value>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Optional cap on HTTP attempts per minute (provider quotas), smoothed by a token bucket.
    pub requests_per_minute: Option<u32>,
    /// Sent with every request (the OpenAI SDK's `default_headers`, `OpenAI-Organization`,
    /// `OpenAI-Project`); their values are redacted like the key.
    pub headers: Vec<(String, String)>,
    /// Added to every request's URL query (`default_query`, e.g. Azure's `api-version`).
    pub query: Vec<(String, String)>,
    /// HTTP/2 without TLS negotiation (h2c), for servers known to speak it; over TLS, HTTP/2 is
    /// used whenever the server offers it.
    pub http2_prior_knowledge: bool,
    /// Call `/completions` (text completion, base models) instead of `/chat/completions`.
    pub text_completion: bool,
    /// More endpoints serving the same model, each with its share: `base_url` and these form
    /// a pool (see [`crate::pool`]).
    pub more_endpoints: Vec<(String, EndpointShare)>,
    /// The share of `base_url` in a pool.
    pub base_share: EndpointShare,
    /// Optional cap on tokens per minute (provider quotas): each attempt waits for its
    /// estimated tokens (prompt + `max_tokens`), and a reply that used more takes the rest.
    pub tokens_per_minute: Option<u32>,
    /// Counts the tokens of a prompt for `tokens_per_minute` (the host gives the o200k
    /// tokenizer); without one, 4 bytes a token.
    pub token_counter: Option<TokenCounter>,
    /// A PEM file of certificates trusted besides the built-in roots (`client_config.ca_cert`:
    /// a private CA, a self-signed server). `SSL_CERT_FILE` is read as well when set.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// `client_config.max_response_bytes` when not set: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// What an endpoint of a pool takes: its weight among the others and its own in-flight cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointShare {
    pub weight: f64,
    /// At most this many attempts in flight on the endpoint; `None`: no cap of its own.
    pub max_in_flight: Option<u32>,
}

impl Default for EndpointShare {
    fn default() -> Self {
        EndpointShare { weight: 1.0, max_in_flight: None }
    }
}

/// Counts the tokens of a text.
pub type TokenCounter = std::sync::Arc<dyn Fn(&str) -> usize + Send + Sync>;

impl ClientSettings {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        ClientSettings {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            timeout: Duration::from_secs(600),
            idle_timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_retries: 5,
            pool_size: 64,
            stream: false,
            chat_config: Map::new(),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            headers: Vec::new(),
            query: Vec::new(),
            http2_prior_knowledge: false,
            text_completion: false,
            more_endpoints: Vec::new(),
            base_share: EndpointShare::default(),
            tokens_per_minute: None,
            token_counter: None,
            requests_per_minute: None,
            ca_cert: None,
        }
    }
}
