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
    pub const ALL: [RetryCause; 5] =
        [RetryCause::RateLimited, RetryCause::ServerError, RetryCause::Timeout, RetryCause::Connection, RetryCause::MalformedBody];

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
}

impl CallError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, CallError::Auth { .. })
    }

    /// The typed cause written to the error output (`model_<cause>` in the engine).
    pub fn cause(&self) -> &'static str {
        match self {
            CallError::Auth { .. } => "auth",
            CallError::Rejected { .. } => "rejected",
            CallError::Exhausted { cause, .. } => cause.as_str(),
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
            CallError::Exhausted { cause, message, attempts, retries } => {
                CallError::Exhausted { cause, message: r(message), attempts, retries }
            }
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
