//! The OpenAI Batch API client: upload a JSONL of requests (`POST /files`, multipart,
//! `purpose=batch`), create a batch (`POST /batches`), follow it (`GET /batches/{id}`), find
//! batches by their `metadata` (`GET /batches`), download the output and error files
//! (`GET /files/{id}/content`) and cancel (`POST /batches/{id}/cancel`).
//!
//! Each step is one call with a few retries on connection errors and 5xx/429, except
//! [`BatchClient::create`], which is never repeated blindly (a lost answer may still have made a
//! batch): the caller looks for it by its metadata first. The lines of the output file parse to
//! the same [`Completion`] an online call gives ([`parse_output_line`]).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::{CallError, RetryCause, RetryCounts};
use crate::settings::ClientSettings;
use crate::wire::{self, ChatRequest, Completion};
use modelcall_secrets::Redactor;

/// Why a batch step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// 401/403: the key is wrong.
    #[error("the batch endpoint refused the credentials (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// Another 4xx: the request will never succeed as it is.
    #[error("the batch endpoint rejected {what} (HTTP {status}): {message}")]
    Rejected { what: String, status: u16, message: String },
    /// 5xx, 429, a dropped connection or a timeout, after the retries.
    #[error("{what} failed: {message}")]
    Transient { what: String, message: String },
    #[error("invalid base_url for the batch API: {0}")]
    BadUrl(String),
}

impl BatchError {
    /// The step may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, BatchError::Transient { .. })
    }
}

/// What `GET /batches/{id}` says of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchInfo {
    pub id: String,
    /// `validating`, `in_progress`, `finalizing`, `completed`, `failed`, `expired`,
    /// `cancelling`, `cancelled`.
    pub status: String,
    pub input_file_id: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub metadata: Map<String, Value>,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

impl BatchInfo {
    fn from_json(v: &Value) -> BatchInfo {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| v["request_counts"].get(k).and_then(Value::as_u64).unwrap_or(0);
        BatchInfo {
            id: s("id").unwrap_or_default(),
            status: s("status").unwrap_or_default(),
            input_file_id: s("input_file_id").unwrap_or_default(),
            output_file_id: s("output_file_id"),
            error_file_id: s("error_file_id"),
            metadata: v.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default(),
            total: n("total"),
            completed: n("completed"),
            failed: n("failed"),
        }
    }

    /// The batch will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "expired" | "cancelled")
    }
}

/// The HTTP client of the batch endpoints.
#[derive(Clone)]
pub struct BatchClient {
    http: reqwest::Client,
    /// e.g. `http://127.0.0.1:8000/v1` (no trailing slash).
    base: String,
    query: Vec<(String, String)>,
    api_key: Option<String>,
    redactor: std::sync::Arc<Redactor>,
    /// Tries per step for transient failures.
    tries: u32,
    backoff: Duration,
}

impl BatchClient {
    pub fn new(settings: &ClientSettings) -> Result<BatchClient, BatchError> {
        let url = reqwest::Url::parse(settings.base_url.trim()).map_err(|e| BatchError::BadUrl(e.to_string()))?;
        let mut base = url.clone();
        base.set_query(None);
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &settings.headers {
            if let (Ok(n), Ok(v)) = (reqwest::header::HeaderName::from_bytes(name.as_bytes()), reqwest::header::HeaderValue::from_str(value)) {
                headers.insert(n, v);
            }
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(settings.timeout.max(Duration::from_secs(600)))
            .user_agent(concat!("modelcall/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        if crate::transport::is_loopback(&url) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| BatchError::BadUrl(e.to_string()))?;
        let mut query: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        query.extend(settings.query.iter().cloned());
        Ok(BatchClient {
            http,
            base: base.as_str().trim_end_matches('/').to_string(),
            query,
            api_key: settings.api_key.clone(),
            redactor: std::sync::Arc::new(Redactor::new(settings.api_key.clone())),
            tries: 4,
            backoff: settings.backoff_base.max(Duration::from_millis(100)),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One step with retries on transient failures; `build` makes the request each time.
    async fn send(&self, what: &str, retry: bool, build: impl Fn() -> reqwest::RequestBuilder) -> Result<bytes::Bytes, BatchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = build().query(&self.query);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let failure = match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => return Ok(body),
                        Ok(body) => {
                            let message = self.redactor.redact_string(&error_message(&body));
                            match status {
                                401 | 403 => return Err(BatchError::Auth { status, message }),
                                408 | 429 => BatchError::Transient { what: what.into(), message: format!("HTTP {status}: {message}") },
                                s if s >= 500 => BatchError::Transient { what: what.into(), message: format!("HTTP {status}: {message}") },
                                _ => return Err(BatchError::Rejected { what: what.into(), status, message }),
                            }
                        }
                        Err(e) => BatchError::Transient { what: what.into(), message: self.redactor.redact_string(&e.to_string()) },
                    }
                }
                Err(e) => BatchError::Transient { what: what.into(), message: self.redactor.redact_string(&format!("{e:#}")) },
            };
            if !retry || attempt >= self.tries {
                return Err(failure);
            }
            tokio::time::sleep(self.backoff * (1 << attempt.min(6))).await;
        }
    }

    /// Uploads a batch input file; its id.
    pub async fn upload(&self, filename: &str, jsonl: &[u8]) -> Result<String, BatchError> {
        let boundary = format!("modelcall-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(jsonl.len() + 512);
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n").as_bytes());
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/jsonl\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(jsonl);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let body = bytes::Bytes::from(body);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let answer = self
            .send("the batch file upload", true, || self.http.post(self.url("/files")).header("content-type", content_type.clone()).body(body.clone()))
            .await?;
        let v: Value = serde_json::from_slice(&answer)
            .map_err(|e| BatchError::Transient { what: "the batch file upload".into(), message: format!("answer is not JSON: {e}") })?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| BatchError::Transient { what: "the batch file upload".into(), message: "answer has no file id".into() })
    }

    /// Creates a batch over an uploaded file. Never retried: on a transient error the batch may
    /// exist, and the caller finds it by `metadata` ([`BatchClient::find_by_metadata`]) first.
    pub async fn create(&self, input_file_id: &str, endpoint: &str, metadata: &Map<String, Value>) -> Result<BatchInfo, BatchError> {
        let body = json!({"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": metadata});
        let answer = self.send("creating the batch", false, || self.http.post(self.url("/batches")).json(&body)).await?;
        parse_info(&answer, "creating the batch")
    }

    pub async fn get(&self, id: &str) -> Result<BatchInfo, BatchError> {
        let answer = self.send("reading the batch", true, || self.http.get(self.url(&format!("/batches/{id}")))).await?;
        parse_info(&answer, "reading the batch")
    }

    pub async fn cancel(&self, id: &str) -> Result<BatchInfo, BatchError> {
        let answer = self.send("cancelling the batch", true, || self.http.post(self.url(&format!("/batches/{id}/cancel")))).await?;
        parse_info(&answer, "cancelling the batch")
    }

    /// The batches whose metadata holds `key: value` (newest first), reading at most `max_pages`
    /// pages of the list.
    pub async fn find_by_metadata(&self, key: &str, value: &str, max_pages: usize) -> Result<Vec<BatchInfo>, BatchError> {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..max_pages {
            let answer = self
                .send("listing the batches", true, || {
                    let mut r = self.http.get(self.url("/batches")).query(&[("limit", "100")]);
                    if let Some(a) = &after {
                        r = r.query(&[("after", a.as_str())]);
                    }
                    r
                })
                .await?;
            let v: Value = serde_json::from_slice(&answer).map_err(|e| BatchError::Transient { what: "listing the batches".into(), message: e.to_string() })?;
            let data = v["data"].as_array().cloned().unwrap_or_default();
            for b in &data {
                let info = BatchInfo::from_json(b);
                if info.metadata.get(key).and_then(Value::as_str) == Some(value) {
                    found.push(info);
                }
            }
            if !v["has_more"].as_bool().unwrap_or(false) || data.is_empty() {
                break;
            }
            after = data.last().and_then(|b| b["id"].as_str()).map(str::to_string);
        }
        Ok(found)
    }

    /// A file's content (an output or error file).
    pub async fn content(&self, file_id: &str) -> Result<bytes::Bytes, BatchError> {
        self.send("downloading the batch file", true, || self.http.get(self.url(&format!("/files/{file_id}/content")))).await
    }
}

fn parse_info(body: &[u8], what: &str) -> Result<BatchInfo, BatchError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BatchError::Transient { what: what.into(), message: format!("answer is not JSON: {e}") })?;
    Ok(BatchInfo::from_json(&v))
}

fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| wire::excerpt(&v.to_string())),
        Err(_) => wire::excerpt(&String::from_utf8_lossy(body)),
    }
}

/// One line of a batch input file: `{custom_id, method: POST, url, body}`, the body exactly as
/// the online client would send it (not streamed).
pub fn request_line(settings: &ClientSettings, custom_id: &str, request: &ChatRequest) -> Value {
    let (url, body) = match settings.text_completion {
        true => ("/v1/completions", wire::completion_body(&settings.chat_config, &settings.model, request, false)),
        false => ("/v1/chat/completions", wire::request_body(&settings.chat_config, &settings.model, request, false)),
    };
    let mut body = body;
    if let Some(o) = body.as_object_mut() {
        o.remove("stream");
    }
    json!({"custom_id": custom_id, "method": "POST", "url": url, "body": body})
}

/// One line of an output or error file: its `custom_id` and the answer, or the error as an
/// online call would have typed it (`Exhausted` for retryable causes: 5xx, 429, an expired or
/// cancelled batch; `Rejected` for other 4xx).
pub fn parse_output_line(line: &[u8]) -> Option<(String, Result<Completion, CallError>)> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let custom_id = v["custom_id"].as_str()?.to_string();
    let transient = |cause: RetryCause, message: String| CallError::Exhausted { cause, message, attempts: 1, retries: RetryCounts::default() };
    let response = &v["response"];
    let status = response["status_code"].as_u64().unwrap_or(0) as u16;
    if !response.is_object() || status == 0 {
        let code = v["error"]["code"].as_str().unwrap_or("batch_error");
        let message = v["error"]["message"].as_str().unwrap_or("the batch gave no answer for this request");
        return Some((custom_id, Err(transient(RetryCause::ServerError, format!("{code}: {message}")))));
    }
    let body = &response["body"];
    let message = || body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| wire::excerpt(&body.to_string()));
    let result = match status {
        200..=299 => {
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            match wire::parse_json_body(&bytes) {
                Ok(answer) => {
                    let (content, reasoning) = if answer.reasoning.is_empty() {
                        wire::split_inline_reasoning(&answer.content)
                    } else {
                        (answer.content.clone(), Some(answer.reasoning.clone()))
                    };
                    let raw_text = wire::raw_text(&content, reasoning.as_deref());
                    Ok(Completion {
                        content,
                        reasoning,
                        raw_text,
                        usage: answer.usage,
                        finish_reason: answer.finish_reason,
                        model: answer.model,
                        attempts: 1,
                        retries: RetryCounts::default(),
                        latency: Duration::ZERO,
                    })
                }
                Err(e) => Err(transient(RetryCause::MalformedBody, e.to_string())),
            }
        }
        401 | 403 => Err(CallError::Auth { endpoint: "the batch endpoint".into(), status, message: message() }),
        429 => Err(transient(RetryCause::RateLimited, format!("HTTP 429: {}", message()))),
        408 => Err(transient(RetryCause::Timeout, format!("HTTP 408: {}", message()))),
        s if s >= 500 => Err(transient(RetryCause::ServerError, format!("HTTP {s}: {}", message()))),
        _ => Err(CallError::Rejected { status, message: message() }),
    };
    Some((custom_id, result))
}
