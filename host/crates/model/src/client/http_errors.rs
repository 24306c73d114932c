//! How an HTTP failure becomes a typed attempt error: the cause, a short message, Retry-After.

use std::time::Duration;

use super::AttemptError;
use serde_json::Value;

use crate::error::RetryCause;
use crate::transport::TransportError;
use crate::wire;

pub(super) fn transport_error(e: TransportError) -> AttemptError {
    let cause = if e.timeout { RetryCause::Timeout } else { RetryCause::Connection };
    AttemptError::Retry { cause, message: e.message, retry_after: None }
}

pub(super) fn error_message(status: u16, body: &str) -> String {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string).or_else(|| v["message"].as_str().map(str::to_string)))
        .unwrap_or_else(|| wire::excerpt(body.trim()));
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        detail
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub(super) fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}
