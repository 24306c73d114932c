//! OpenAI-compatible chat-completions client with typed errors and retries.
//!
//! - [`error`]: what can go wrong, typed so the engine can branch (retry, fail the record,
//!   stop the run);
//! - [`wire`]: request bodies and response parsing (JSON and SSE), reasoning extraction;
//! - [`client`]: the connection pool and the retry loop with backoff, jitter and Retry-After;
//! - [`transport`]: the HTTP clients an attempt goes through (a lean HTTP/1.1 one for
//!   direct `http://` endpoints, reqwest for the rest);
//! - [`fail_fast`]: a run whose first attempts all fail the same way (nothing listening, a
//!   model the endpoint does not serve) stops instead of retrying every record;
//! - [`pool`]: several endpoints of one model, least loaded first, each within its own
//!   in-flight cap, failing ones ejected;
//! - [`problems`]: each distinct problem logged once, then counted every 10 s.

pub mod batch;
pub mod client;
pub mod error;
pub mod fail_fast;
pub mod pool;
pub mod problems;
pub mod settings;
pub mod transport;
pub mod wire;

pub use client::{for_record, for_record_timed, ClientSettings, ModelClient};
pub use error::{CallError, ClientError, MalformedBody, RetryCause, RetryCounts};
pub use modelcall_secrets::Redactor;
pub use pool::EndpointStats;
pub use settings::EndpointShare;
pub use wire::{ChatMessage, ChatRequest, Completion, Usage};
