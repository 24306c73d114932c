//! The OpenAI Batch API's endpoints, simulated: `POST /v1/files` (multipart, `purpose=batch`),
//! `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches` (a list, newest first, with each
//! batch's `metadata`), `GET /v1/files/{id}/content`, `POST /v1/batches/{id}/cancel`.
//!
//! Each line of a batch is answered as the chat endpoint would answer it (the same replies,
//! latency and faults), in a background task that starts `completion_delay` after the batch is
//! created. Injectable faults ([`crate::batch::BatchFaults`]): slow completion, expiry with a share of the
//! lines done (the rest in the error file as `batch_expired`), failed lines (a 5xx the first time
//! a record is seen, or a 4xx every time), 5xx on upload, a lost create response (the batch is
//! created, the connection dropped before the answer).
//!
//! Only the HTTP side lives here: the files and batches are data in [`crate::batch`], and the
//! router in [`crate::server`] sends here every path [`is_batch_route`] accepts.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::batch::{SimBatch, Store};
use crate::chat::chat_body;
use crate::respond::{full, json_response, Body, DropConnection};
use crate::state::State;

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": {"message": message, "type": "invalid_request_error"}}))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether `path` is a batch route (served by [`handle`]).
pub fn is_batch_route(path: &str) -> bool {
    path.starts_with("/v1/files") || path.starts_with("/v1/batches")
}

/// Serves a batch route.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let store = &state.batches;
    match (&method, parts.as_slice()) {
        (&Method::POST, ["files"]) => Ok(upload(store, &content_type, &body)),
        (&Method::GET, ["files", id, "content"]) => {
            let inner = store.inner.lock().unwrap();
            Ok(match inner.files.get(*id) {
                Some(bytes) => {
                    Response::builder().status(StatusCode::OK).header("content-type", "application/jsonl").body(full(bytes.clone())).expect("valid response")
                }
                None => error(StatusCode::NOT_FOUND, &format!("no file {id}")),
            })
        }
        (&Method::GET, ["files", id]) => {
            let inner = store.inner.lock().unwrap();
            Ok(match inner.files.get(*id) {
                Some(bytes) => json_response(StatusCode::OK, &json!({"id": id, "object": "file", "bytes": bytes.len(), "purpose": "batch"})),
                None => error(StatusCode::NOT_FOUND, &format!("no file {id}")),
            })
        }
        (&Method::POST, ["batches"]) => create(state.clone(), &body),
        (&Method::GET, ["batches"]) => Ok(list(store, &query)),
        (&Method::GET, ["batches", id]) => {
            let inner = store.inner.lock().unwrap();
            Ok(match inner.batches.get(*id) {
                Some(b) => json_response(StatusCode::OK, &b.json()),
                None => error(StatusCode::NOT_FOUND, &format!("no batch {id}")),
            })
        }
        (&Method::POST, ["batches", id, "cancel"]) => {
            let mut inner = store.inner.lock().unwrap();
            inner.stats.cancels += 1;
            inner.stats.cancelled.push(id.to_string());
            Ok(match inner.batches.get_mut(*id) {
                Some(b) => {
                    if matches!(b.status, "validating" | "in_progress") {
                        b.cancel = true;
                        b.status = "cancelling";
                    }
                    json_response(StatusCode::OK, &b.json())
                }
                None => error(StatusCode::NOT_FOUND, &format!("no batch {id}")),
            })
        }
        _ => Ok(error(StatusCode::NOT_FOUND, &format!("no route {method} {path}"))),
    }
}

/// The fields of a `multipart/form-data` body: name → (filename, bytes).
fn multipart(content_type: &str, body: &[u8]) -> Option<HashMap<String, (Option<String>, Bytes)>> {
    let boundary = content_type.split(';').map(str::trim).find_map(|p| p.strip_prefix("boundary="))?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut fields = HashMap::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, delimiter.as_bytes())?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let after = &rest[head_end + 4..];
        let end = find(after, format!("\r\n{delimiter}").as_bytes())?;
        let content = Bytes::copy_from_slice(&after[..end]);
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let attr =
            |name: &str| disposition.split(';').map(str::trim).find_map(|p| p.strip_prefix(&format!("{name}="))).map(|v| v.trim_matches('"').to_string());
        fields.insert(attr("name")?, (attr("filename"), content));
        rest = &after[end + 2 + delimiter.len()..];
    }
    Some(fields)
}

fn upload(store: &Store, content_type: &str, body: &[u8]) -> Response<Body> {
    let mut inner = store.inner.lock().unwrap();
    if inner.faults.upload_errors > 0 {
        inner.faults.upload_errors -= 1;
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": {"message": "simulated upload failure", "type": "server_error"}}));
    }
    let Some(fields) = multipart(content_type, body) else {
        return error(StatusCode::BAD_REQUEST, "expected a multipart/form-data body with `purpose` and `file`");
    };
    if fields.get("purpose").map(|(_, v)| v.as_ref()) != Some(b"batch".as_slice()) {
        return error(StatusCode::BAD_REQUEST, "`purpose` must be `batch`");
    }
    let Some((filename, file)) = fields.get("file") else { return error(StatusCode::BAD_REQUEST, "no `file` field") };
    for (i, line) in file.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace)) {
        let ok = serde_json::from_slice::<Value>(line).ok().filter(|v| v["custom_id"].is_string() && v["body"].is_object());
        if ok.is_none() {
            return error(StatusCode::BAD_REQUEST, &format!("line {} is not a batch request ({{custom_id, method, url, body}})", i + 1));
        }
    }
    let id = inner.id("file");
    inner.stats.uploads += 1;
    let bytes = file.len();
    inner.files.insert(id.clone(), file.clone());
    json_response(StatusCode::OK, &json!({"id": id, "object": "file", "bytes": bytes, "created_at": now_secs(), "filename": filename, "purpose": "batch"}))
}

fn create(state: Arc<State>, body: &[u8]) -> Result<Response<Body>, DropConnection> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else { return Ok(error(StatusCode::BAD_REQUEST, "body is not JSON")) };
    let Some(file_id) = request["input_file_id"].as_str() else { return Ok(error(StatusCode::BAD_REQUEST, "`input_file_id` is missing")) };
    let endpoint = request["endpoint"].as_str().unwrap_or("/v1/chat/completions").to_string();
    let mut inner = state.batches.inner.lock().unwrap();
    let Some(file) = inner.files.get(file_id).cloned() else { return Ok(error(StatusCode::NOT_FOUND, &format!("no file {file_id}"))) };
    let lines: Vec<Value> = file.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect();
    let id = inner.id("batch");
    for line in &lines {
        if let Some(c) = line["custom_id"].as_str() {
            *inner.stats.batches_per_record.entry(c.to_string()).or_insert(0) += 1;
        }
    }
    inner.stats.batches_created += 1;
    inner.stats.batch_sizes.push(lines.len());
    let expire = if inner.faults.expire_batches > 0 {
        inner.faults.expire_batches -= 1;
        Some(inner.faults.expire_done)
    } else {
        None
    };
    let batch = SimBatch {
        id: id.clone(),
        input_file_id: file_id.to_string(),
        endpoint,
        metadata: if request["metadata"].is_object() { request["metadata"].clone() } else { Value::Null },
        created_at: now_secs(),
        status: "in_progress",
        output_file_id: None,
        error_file_id: None,
        total: lines.len(),
        completed: 0,
        failed: 0,
        cancel: false,
    };
    let answer = batch.json();
    inner.batches.insert(id.clone(), batch);
    inner.order.push(id.clone());
    let lose = inner.faults.lose_creates > 0;
    if lose {
        inner.faults.lose_creates -= 1;
    }
    let delay = if !inner.faults.slow_delay.is_zero() && inner.stats.batches_created > u64::from(inner.faults.slow_after) {
        inner.faults.slow_delay
    } else {
        inner.faults.completion_delay
    };
    let (fail_rate, fail_status) = (inner.faults.fail_rate, inner.faults.fail_status);
    drop(inner);
    tokio::spawn(process(state, id, lines, delay, expire, fail_rate, fail_status));
    if lose {
        return Err(DropConnection);
    }
    Ok(json_response(StatusCode::OK, &answer))
}

fn list(store: &Store, query: &str) -> Response<Body> {
    let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).map(str::to_string);
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).clamp(1, 100);
    let inner = store.inner.lock().unwrap();
    let newest_first: Vec<&String> = inner.order.iter().rev().collect();
    let start = match param("after") {
        Some(after) => newest_first.iter().position(|id| **id == after).map_or(newest_first.len(), |p| p + 1),
        None => 0,
    };
    let page: Vec<Value> = newest_first[start..].iter().take(limit).map(|id| inner.batches[*id].json()).collect();
    let has_more = start + page.len() < newest_first.len();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "first_id": page.first().map(|b| b["id"].clone()), "last_id": page.last().map(|b| b["id"].clone()), "has_more": has_more, "data": page}),
    )
}

/// A stable draw in [0,1) from a text.
fn unit_hash(text: &str) -> f64 {
    let mut h = crate::reply::fnv1a(text.as_bytes(), 0x5eed);
    // FNV's high bits barely move between similar ids: mixed (splitmix64's finalizer).
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D049BB133111EB);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Answers a batch's lines, as its chat endpoint would.
async fn process(state: Arc<State>, id: String, lines: Vec<Value>, delay: Duration, expire: Option<f64>, fail_rate: f64, fail_status: u16) {
    let started = Instant::now();
    tokio::time::sleep(delay).await;
    let total = lines.len();
    let answered_until = match expire {
        Some(done) => ((total as f64) * done.clamp(0.0, 1.0)).round() as usize,
        None => total,
    };
    let mut output = Vec::new();
    let mut errors = Vec::new();
    let (mut completed, mut failed) = (0, 0);
    let mut cancelled = false;
    let mut answered: Vec<String> = Vec::new();
    const CHUNK: usize = 256;
    for (chunk_no, chunk) in lines.chunks(CHUNK).enumerate() {
        if state.batches.inner.lock().unwrap().batches.get(&id).is_some_and(|b| b.cancel) {
            cancelled = true;
        }
        let mut answers = Vec::new();
        for (j, line) in chunk.iter().enumerate() {
            let i = chunk_no * CHUNK + j;
            let custom_id = line["custom_id"].as_str().unwrap_or("").to_string();
            if cancelled || i >= answered_until {
                let (code, message) =
                    if cancelled { ("batch_cancelled", "the batch was cancelled") } else { ("batch_expired", "the batch expired before this request was run") };
                errors
                    .push(json!({"id": format!("batch_req_{id}_{i}"), "custom_id": custom_id, "response": null, "error": {"code": code, "message": message}}));
                failed += 1;
                continue;
            }
            if fail_rate > 0.0 && unit_hash(&custom_id) < fail_rate {
                let first_time = state.batches.inner.lock().unwrap().stats.batches_per_record.get(&custom_id).copied().unwrap_or(0) <= 1;
                if fail_status < 500 || first_time {
                    errors.push(json!({"id": format!("batch_req_{id}_{i}"), "custom_id": custom_id,
                        "response": {"status_code": fail_status, "request_id": format!("req-{i}"), "body": {"error": {"message": format!("simulated failure (HTTP {fail_status})"), "type": if fail_status >= 500 { "server_error" } else { "invalid_request_error" }}}},
                        "error": null}));
                    failed += 1;
                    continue;
                }
            }
            let body = Bytes::from(line["body"].to_string());
            let n = state.counters.requests.fetch_add(1, Ordering::Relaxed);
            answers.push((i, custom_id, chat_body(state.clone(), n, body)));
        }
        for (i, custom_id, answer) in answers {
            let (status, body) = match answer.await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    (status, serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
                }
                Err(_) => (500, json!({"error": {"message": "simulated dropped connection", "type": "server_error"}})),
            };
            let entry = json!({"id": format!("batch_req_{id}_{i}"), "custom_id": custom_id, "response": {"status_code": status, "request_id": format!("req-{i}"), "body": body}, "error": null});
            if status == 200 {
                completed += 1;
                answered.push(custom_id);
                output.push(entry);
            } else {
                failed += 1;
                errors.push(entry);
            }
        }
        let mut inner = state.batches.inner.lock().unwrap();
        if let Some(b) = inner.batches.get_mut(&id) {
            b.completed = completed;
            b.failed = failed;
        }
    }
    let to_bytes = |lines: &[Value]| {
        let mut s = String::new();
        for l in lines {
            s.push_str(&l.to_string());
            s.push('\n');
        }
        Bytes::from(s)
    };
    let mut inner = state.batches.inner.lock().unwrap();
    for c in answered {
        *inner.stats.answers_per_record.entry(c).or_insert(0) += 1;
    }
    let output_id = (!output.is_empty()).then(|| inner.id("file"));
    let error_id = (!errors.is_empty()).then(|| inner.id("file"));
    if let Some(o) = &output_id {
        inner.files.insert(o.clone(), to_bytes(&output));
    }
    if let Some(e) = &error_id {
        inner.files.insert(e.clone(), to_bytes(&errors));
    }
    let _ = started;
    if let Some(b) = inner.batches.get_mut(&id) {
        b.status = if cancelled || b.cancel {
            "cancelled"
        } else if expire.is_some() {
            "expired"
        } else {
            "completed"
        };
        b.output_file_id = output_id;
        b.error_file_id = error_id;
        b.completed = completed;
        b.failed = failed;
    }
}
