//! Typed model-call errors. Every text in them that came from a server or names a URL has been
//! through the client's [`modelcall_secrets::Redactor`]: its API key, credential headers and URL
//! userinfo never show.

/// Why an attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCause {
    /// HTTP 429.
    RateLimited,
    /// HTTP 5xx (and 408).
    ServerError,
    /// No complete answer within the timeout.
    Timeout,
    /// Connection refused, reset or dropped, or a stream cut short.
    Connection,
    /// A 200 whose body is not a chat completion.
    MalformedBody,
}

impl RetryCause {
    pub const ALL: [RetryCause; 5] = [RetryCause::RateLimited, RetryCause::ServerError, RetryCause::Timeout, RetryCause::Connection, RetryCause::MalformedBody];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::RateLimited => "rate_limited",
            RetryCause::ServerError => "server_error",
            RetryCause::Timeout => "timeout",
            RetryCause::Connection => "connection",
            RetryCause::MalformedBody => "malformed_body",
        }
    }
}

/// Retries per cause, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryCounts([u32; 5]);

impl RetryCounts {
    pub fn add(&mut self, cause: RetryCause) {
        self.0[cause as usize] += 1;
    }
    pub fn get(&self, cause: RetryCause) -> u32 {
        self.0[cause as usize]
    }
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }
    /// `(cause name, count)` for every cause with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RetryCause::ALL.iter().filter(|c| self.get(**c) > 0).map(|c| (c.as_str(), self.get(*c) as u64))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// 401/403: the credentials are wrong. Fatal: the run must stop at once.
    #[error(
        "authentication failed at {endpoint} (HTTP {status}): {message}. Check client_config.api_key (or the variable it names) and that the key is valid for this endpoint"
    )]
    Auth { endpoint: String, status: u16, message: String },
    /// 400/404/422 and other 4xx: this request will never succeed; the record fails.
    #[error("the endpoint rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Retryable failures until the budget ran out.
    #[error("gave up after {attempts} attempts ({}): {message}", .cause.as_str())]
    Exhausted { cause: RetryCause, message: String, attempts: u32, retries: RetryCounts },
    /// No connection to any endpoint for [`crate::fail_fast::UNREACHABLE_WINDOW`] and nothing
    /// ever answered (see [`crate::fail_fast`]). Fatal.
    #[error(
        "could not connect to {endpoint} for {} s, and no request has succeeded yet: {}. Check that the server is running and listening at {endpoint} (client_config.base_url)", .waited.as_secs(), .message.trim_end_matches('.')
    )]
    Unreachable { endpoint: String, message: String, waited: std::time::Duration },
    /// A 400/404 saying the model does not exist, before any success (see
    /// [`crate::fail_fast`]). Fatal.
    #[error(
        "{endpoint} does not serve the model `{model}` (HTTP {status}): {}. Check chat_config.model in the model config{}", .message.trim_end_matches('.'), served_models(.served)
    )]
    ModelNotFound { endpoint: String, model: String, status: u16, message: String, served: Vec<String> },
    /// The endpoint's TLS certificate is not trusted (unknown issuer, wrong name, expired): a
    /// configuration error no retry fixes. Fatal.
    #[error(
        "the TLS certificate of {host} is not trusted: {}. If the server uses a private CA (or a self-signed certificate), set client_config.ca_cert to its PEM file in the model config, or point SSL_CERT_FILE at a PEM bundle that holds it", .message.trim_end_matches('.')
    )]
    Certificate { host: String, message: String },
    /// The answer's body passed `client_config.max_response_bytes`: the connection was dropped.
    /// Permanent (the same request would get the same answer), not fatal.
    #[error("the reply passed client_config.max_response_bytes ({limit} bytes): the connection was dropped; raise the limit if such replies are expected")]
    ReplyTooLarge { limit: u64 },
}

/// `; the endpoint serves: a, b, c` (the first few), or nothing when unknown.
fn served_models(served: &[String]) -> String {
    const SHOWN: usize = 8;
    match served.len() {
        0 => String::new(),
        n if n <= SHOWN => format!("; the endpoint serves: {}", served.join(", ")),
        n => format!("; the endpoint serves: {} (and {} more)", served[..SHOWN].join(", "), n - SHOWN),
    }
}

impl CallError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, CallError::Auth { .. } | CallError::Unreachable { .. } | CallError::ModelNotFound { .. } | CallError::Certificate { .. })
    }

    /// The typed cause written to the error output (`model_<cause>` in the engine).
    pub fn cause(&self) -> &'static str {
        match self {
            CallError::Auth { .. } => "auth",
            CallError::Rejected { .. } => "rejected",
            CallError::Exhausted { cause, .. } => cause.as_str(),
            CallError::Unreachable { .. } => "unreachable",
            CallError::ModelNotFound { .. } => "model_not_found",
            CallError::Certificate { .. } => "certificate",
            CallError::ReplyTooLarge { .. } => "reply_too_large",
        }
    }
}

impl CallError {
    /// The same error with every text passed through `redactor`.
    pub fn redacted(self, redactor: &modelcall_secrets::Redactor) -> CallError {
        let r = |s: String| redactor.redact(&s).into_owned();
        match self {
            CallError::Auth { endpoint, status, message } => CallError::Auth { endpoint: r(endpoint), status, message: r(message) },
            CallError::Rejected { status, message } => CallError::Rejected { status, message: r(message) },
            CallError::Exhausted { cause, message, attempts, retries } => CallError::Exhausted { cause, message: r(message), attempts, retries },
            CallError::Unreachable { endpoint, message, waited } => CallError::Unreachable { endpoint: r(endpoint), message: r(message), waited },
            CallError::ModelNotFound { endpoint, model, status, message, served } => {
                CallError::ModelNotFound { endpoint: r(endpoint), model, status, message: r(message), served }
            }
            CallError::Certificate { host, message } => CallError::Certificate { host: r(host), message: r(message) },
            CallError::ReplyTooLarge { limit } => CallError::ReplyTooLarge { limit },
        }
    }
}

/// Why [`crate::ModelClient::new`] refused its settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `base_url` as written (userinfo redacted) and the parser's reason.
    #[error("base_url `{base_url}` is not a URL: {reason}")]
    InvalidBaseUrl { base_url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(reqwest::Error),
    #[error("requests_per_minute must be positive")]
    ZeroRequestsPerMinute,
    #[error("idle_timeout must be positive")]
    ZeroIdleTimeout,
    #[error("tokens_per_minute must be positive")]
    ZeroTokensPerMinute,
    /// A `default_headers` entry (or organization/project) that is not a valid HTTP header.
    #[error("header `{name}` cannot be sent: {reason}")]
    InvalidHeader { name: String, reason: String },
    /// `MODELCALL_HTTP_CLIENT` set to something else than `auto` or `reqwest`.
    #[error("MODELCALL_HTTP_CLIENT is `{0}`: it must be `auto` (modelcall's HTTP/1.1 client for direct http:// endpoints, reqwest for the rest; the default) or `reqwest` (reqwest for every endpoint)")]
    UnknownHttpClient(String),
    /// `client_config.ca_cert` (or `SSL_CERT_FILE`) that cannot be read or holds no certificate.
    #[error("{what} `{path}`: {reason}")]
    CaCert { what: &'static str, path: String, reason: String },
}

/// A 200 whose body is not a chat completion (retryable as `malformed_body`).
#[derive(Debug, thiserror::Error)]
pub enum MalformedBody {
    #[error("response is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// Holds an excerpt of the body.
    #[error("response has no choices: {0}")]
    NoChoices(String),
    #[error("choice has no message")]
    NoMessage,
    #[error("stream event is not JSON: {0}")]
    EventNotJson(serde_json::Error),
    /// Holds an excerpt of the event's `error`.
    #[error("stream error event: {0}")]
    ErrorEvent(String),
}
