//! The OpenAI chat-completions wire format: request bodies, JSON and SSE responses, and the
//! split of reasoning from the final answer.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{MalformedBody, RetryCounts};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage { role: role.to_string(), content: content.into() }
    }
}

/// One request; `None` fields keep the model config's `chat_config` values.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
    pub response_schema: Option<Value>,
    pub n: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// A successful call.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The final answer only: reasoning is never part of it.
    pub content: String,
    /// Reasoning from `reasoning_content`, `reasoning`, or a leading `<think>` block.
    pub reasoning: Option<String>,
    /// What the reference stored as `api_return`: `<think>\n{reasoning}\n</think>\n\n{content}`
    /// when there is reasoning, else the content.
    pub raw_text: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub model: String,
    /// HTTP attempts made (1 when the first one succeeded).
    pub attempts: u32,
    pub retries: RetryCounts,
    /// Wall time from the first attempt to the answer, backoff included.
    pub latency: Duration,
}

/// The body of a text completion (`/v1/completions`, for base models): the conversation's
/// contents joined into one `prompt`, with the same pass-through and overrides as a chat body.
pub fn completion_body(chat_config: &Map<String, Value>, model: &str, req: &ChatRequest, stream: bool) -> Value {
    let mut body = request_body(chat_config, model, req, stream);
    let prompt: Vec<&str> = req.messages.iter().map(|m| m.content.as_str()).collect();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("messages");
        obj.remove("response_format");
        obj.insert("prompt".into(), Value::String(prompt.join("\n\n")));
    }
    body
}

/// The request body: `chat_config` first (every key passes through), then the messages and the
/// per-request overrides.
///
/// `extra_body` is merged into the top level, as the OpenAI SDK does (vLLM's
/// `chat_template_kwargs`, `top_k`, guided decoding… are top-level fields of the body).
pub fn request_body(chat_config: &Map<String, Value>, model: &str, req: &ChatRequest, stream: bool) -> Value {
    let mut body = chat_config.clone();
    if let Some(Value::Object(extra)) = body.remove("extra_body") {
        body.extend(extra);
    }
    body.insert("model".into(), Value::String(model.to_string()));
    body.insert("messages".into(), serde_json::to_value(&req.messages).expect("messages serialize"));
    if let Some(m) = req.max_tokens {
        body.insert("max_tokens".into(), m.into());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), serde_json::json!(t));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), serde_json::json!(req.stop));
    }
    if let Some(schema) = &req.response_schema {
        let format = response_format(body.get("response_format"), schema);
        body.insert("response_format".into(), format);
    }
    if let Some(n) = req.n {
        body.insert("n".into(), n.into());
    }
    body.insert("stream".into(), Value::Bool(stream));
    if stream {
        body.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
    } else {
        body.remove("stream_options");
    }
    Value::Object(body)
}

/// The keys of an OpenAI `json_schema` object, which a prompt builder may give whole.
const JSON_SCHEMA_KEYS: &[&str] = &["name", "description", "strict", "schema"];

/// `response_format` for a prompt builder's schema. The plugin gives either the JSON Schema
/// itself or the whole `json_schema` object (`{"name", "strict", "description", "schema"}`, to
/// set `strict` or the name); the model config's `chat_config.response_format.json_schema` keys
/// (e.g. `strict: true`) are applied over it, so the task has the last word; `name` defaults
/// to `verdict`.
pub fn response_format(configured: Option<&Value>, schema: &Value) -> Value {
    let mut json_schema = match schema {
        Value::Object(m) if m.get("schema").is_some_and(Value::is_object) && m.keys().all(|k| JSON_SCHEMA_KEYS.contains(&k.as_str())) => m.clone(),
        _ => Map::from_iter([("schema".to_string(), schema.clone())]),
    };
    if let Some(Value::Object(conf)) = configured.and_then(|rf| rf.get("json_schema")) {
        for (k, v) in conf {
            if k != "schema" {
                json_schema.insert(k.clone(), v.clone());
            }
        }
    }
    json_schema.entry("name").or_insert_with(|| Value::String("verdict".into()));
    serde_json::json!({"type": "json_schema", "json_schema": json_schema})
}

/// What one attempt produced, before retry accounting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub content: String,
    pub reasoning: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub model: String,
}

/// Parses a non-streaming response body. `Err` means malformed (retryable).
pub fn parse_json_body(body: &[u8]) -> Result<Answer, MalformedBody> {
    let v: Value = serde_json::from_slice(body).map_err(MalformedBody::NotJson)?;
    let choice = v.get("choices").and_then(|c| c.get(0)).ok_or_else(|| MalformedBody::NoChoices(excerpt(&v.to_string())))?;
    // A text completion (`/v1/completions`, base models) answers in `text`.
    if let (None, Some(text)) = (choice.get("message"), choice.get("text").and_then(Value::as_str)) {
        return Ok(Answer {
            content: text.to_string(),
            usage: v.get("usage").and_then(|u| serde_json::from_value(u.clone()).ok()),
            finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
            model: v.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
            ..Answer::default()
        });
    }
    let message = choice.get("message").ok_or(MalformedBody::NoMessage)?;
    let content = message.get("content").and_then(Value::as_str).unwrap_or("").to_string();
    let reasoning = message
        .get("reasoning_content")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| message.get("reasoning").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    Ok(Answer {
        content,
        reasoning,
        usage: v.get("usage").and_then(|u| serde_json::from_value(u.clone()).ok()),
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
        model: v.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
    })
}

/// Accumulates an SSE stream (`data: {...}` lines, `data: [DONE]`).
#[derive(Debug, Default)]
pub struct SseAccumulator {
    buffer: Vec<u8>,
    /// How far `buffer` is known to hold no `\n`: each byte is scanned once, however many
    /// pieces a long line arrives in.
    scanned: usize,
    pub answer: Answer,
    pub done: bool,
}

impl SseAccumulator {
    /// Feeds raw bytes; `Err` for an event that is not valid JSON (malformed stream).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), MalformedBody> {
        self.buffer.extend_from_slice(bytes);
        // Lines are taken from `start` on and the buffer is shifted once per piece, not once per
        // line; the search resumes where the last one stopped.
        let buffer = std::mem::take(&mut self.buffer);
        let mut start = 0;
        let mut result = Ok(());
        while let Some(at) = memchr::memchr(b'\n', &buffer[self.scanned.max(start)..]) {
            let end = self.scanned.max(start) + at;
            let line = &buffer[start..end];
            start = end + 1;
            result = self.line(line);
            if result.is_err() {
                break;
            }
        }
        self.buffer = buffer;
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        result
    }

    /// Handles one line of the stream (without its `\n`).
    fn line(&mut self, line: &[u8]) -> Result<(), MalformedBody> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        let Some(data) = line.strip_prefix("data:") else { return Ok(()) };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(MalformedBody::EventNotJson)?;
        if let Some(err) = v.get("error") {
            return Err(MalformedBody::ErrorEvent(excerpt(&err.to_string())));
        }
        if self.answer.model.is_empty() {
            if let Some(m) = v.get("model").and_then(Value::as_str) {
                self.answer.model = m.to_string();
            }
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.answer.usage = serde_json::from_value(u.clone()).ok();
        }
        if let Some(choice) = v.get("choices").and_then(|c| c.get(0)) {
            if let Some(t) = choice.get("text").and_then(Value::as_str) {
                self.answer.content.push_str(t);
            }
            if let Some(delta) = choice.get("delta") {
                if let Some(c) = delta.get("content").and_then(Value::as_str) {
                    self.answer.content.push_str(c);
                }
                let r =
                    delta.get("reasoning_content").and_then(Value::as_str).filter(|s| !s.is_empty()).or_else(|| delta.get("reasoning").and_then(Value::as_str));
                if let Some(r) = r {
                    self.answer.reasoning.push_str(r);
                }
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.answer.finish_reason = Some(f.to_string());
            }
        }
        Ok(())
    }

    /// A stream is complete when it saw `[DONE]` or a finish reason.
    pub fn is_complete(&self) -> bool {
        self.done || self.answer.finish_reason.is_some()
    }
}

/// Splits a leading `<think>…</think>` block off `content` when the server did not send the
/// reasoning separately. Returns `(answer, reasoning)`.
pub fn split_inline_reasoning(content: &str) -> (String, Option<String>) {
    let trimmed = content.trim_start();
    if let Some(rest) = trimmed.strip_prefix("<think>") {
        if let Some(end) = rest.find("</think>") {
            let reasoning = rest[..end].trim().to_string();
            let answer = rest[end + "</think>".len()..].trim().to_string();
            return (answer, Some(reasoning));
        }
        // An unterminated think block: all of it is reasoning, there is no answer.
        return (String::new(), Some(rest.trim().to_string()));
    }
    (content.to_string(), None)
}

/// Reference-compatible `api_return`.
pub fn raw_text(content: &str, reasoning: Option<&str>) -> String {
    match reasoning {
        Some(r) if !r.trim().is_empty() => format!("<think>\n{r}\n</think>\n\n{content}"),
        _ => content.to_string(),
    }
}

pub(crate) fn excerpt(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_string();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_body_is_merged_into_the_top_level() {
        let mut cfg = Map::new();
        cfg.insert("extra_body".into(), serde_json::json!({"chat_template_kwargs": {"enable_thinking": false}, "top_k": 20}));
        cfg.insert("temperature".into(), serde_json::json!(0.2));
        let body = request_body(&cfg, "m", &ChatRequest::default(), false);
        assert_eq!(body["chat_template_kwargs"]["enable_thinking"], false);
        assert_eq!(body["top_k"], 20);
        assert!(body.get("extra_body").is_none());
        assert_eq!(body["temperature"], 0.2);
    }

    #[test]
    fn body_passes_chat_config_through_and_applies_overrides() {
        let cfg = json!({"temperature": 0.7, "reasoning_effort": "high", "top_p": 0.9}).as_object().unwrap().clone();
        let req = ChatRequest { messages: vec![ChatMessage::new("user", "hi")], max_tokens: Some(5), ..Default::default() };
        let body = request_body(&cfg, "m", &req, true);
        assert_eq!(body["reasoning_effort"], "high");
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["max_tokens"], 5);
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["content"], "hi");
    }

    #[test]
    fn response_format_takes_strict_from_the_plugin_or_the_config() {
        let schema = json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"], "additionalProperties": false});
        let req = |s: Value| ChatRequest { response_schema: Some(s), ..Default::default() };
        // A bare schema: named `verdict`, no `strict`, as before.
        let body = request_body(&Map::new(), "m", &req(schema.clone()), false);
        assert_eq!(body["response_format"], json!({"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}));
        // The plugin gives the whole json_schema object.
        let whole = json!({"name": "judgement", "strict": true, "schema": schema});
        let body = request_body(&Map::new(), "m", &req(whole), false);
        assert_eq!(body["response_format"], json!({"type": "json_schema", "json_schema": {"name": "judgement", "strict": true, "schema": schema}}));
        // The model config's chat_config.response_format.json_schema keys win.
        let cfg = json!({"response_format": {"type": "json_schema", "json_schema": {"strict": true}}}).as_object().unwrap().clone();
        let body = request_body(&cfg, "m", &req(schema.clone()), false);
        assert_eq!(body["response_format"], json!({"type": "json_schema", "json_schema": {"name": "verdict", "strict": true, "schema": schema}}));
        let cfg = json!({"response_format": {"json_schema": {"strict": false, "schema": {"ignored": true}}}}).as_object().unwrap().clone();
        let body = request_body(&cfg, "m", &req(json!({"strict": true, "schema": schema})), false);
        assert_eq!(body["response_format"]["json_schema"], json!({"name": "verdict", "strict": false, "schema": schema}));
        // A schema that merely has a `schema` property among JSON Schema keywords stays a schema.
        let odd = json!({"type": "object", "schema": {"type": "string"}});
        let body = request_body(&Map::new(), "m", &req(odd.clone()), false);
        assert_eq!(body["response_format"]["json_schema"]["schema"], odd);
        // Without a schema from the prompt, chat_config's response_format passes through as it is.
        let cfg = json!({"response_format": {"type": "json_object"}}).as_object().unwrap().clone();
        assert_eq!(request_body(&cfg, "m", &ChatRequest::default(), false)["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn json_body_with_separate_reasoning() {
        let body = json!({"model": "x", "choices": [{"message": {"content": "A", "reasoning_content": "R"}, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let a = parse_json_body(body.to_string().as_bytes()).unwrap();
        assert_eq!((a.content.as_str(), a.reasoning.as_str()), ("A", "R"));
        assert_eq!(a.usage.unwrap().total_tokens, 5);
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
        let gpt_oss = json!({"choices": [{"message": {"content": "A", "reasoning": "R2"}}]});
        assert_eq!(parse_json_body(gpt_oss.to_string().as_bytes()).unwrap().reasoning, "R2");
        assert!(matches!(parse_json_body(b"{\"choices\": []}"), Err(MalformedBody::NoChoices(_))));
        assert!(parse_json_body(b"{\"choi").unwrap_err().to_string().starts_with("response is not JSON: "));
        assert_eq!(parse_json_body(b"{\"choices\": [{}]}").unwrap_err().to_string(), "choice has no message");
    }

    #[test]
    fn sse_accumulates_content_reasoning_usage_and_finish() {
        let mut acc = SseAccumulator::default();
        let stream = concat!(
            "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"reasoning_content\":\"think \"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        );
        // Fed in awkward pieces, as the network delivers it.
        for chunk in stream.as_bytes().chunks(7) {
            acc.feed(chunk).unwrap();
        }
        assert!(acc.is_complete());
        assert_eq!(acc.answer.content, "Hello");
        assert_eq!(acc.answer.reasoning, "think ");
        assert_eq!(acc.answer.usage.unwrap().completion_tokens, 2);
        assert_eq!(acc.answer.model, "m");
        let mut bad = SseAccumulator::default();
        assert!(matches!(bad.feed(b"data: {oops\n"), Err(MalformedBody::EventNotJson(_))));
        let mut errored = SseAccumulator::default();
        let e = errored.feed(b"data: {\"error\": {\"message\": \"overloaded\"}}\n").unwrap_err();
        assert_eq!(e.to_string(), r#"stream error event: {"message":"overloaded"}"#);
    }

    #[test]
    fn sse_splitting_is_linear_in_bytes() {
        // One 8 MB `data:` line in 1 KiB pieces: rescanning the buffer on every piece reads
        // ~32 GB (minutes); scanning each byte once takes milliseconds. Generous bound.
        let text = "x".repeat(8 << 20);
        let event = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}]}}\n\n");
        let started = std::time::Instant::now();
        let mut acc = SseAccumulator::default();
        for piece in event.as_bytes().chunks(1024) {
            acc.feed(piece).unwrap();
        }
        assert!(acc.is_complete());
        assert_eq!(acc.answer.content.len(), text.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "one long line took {:?}", started.elapsed());
        // 200,000 short lines in one piece: the buffer is shifted once, not once per line.
        let many = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n".repeat(200_000);
        let started = std::time::Instant::now();
        let mut acc = SseAccumulator::default();
        acc.feed(many.as_bytes()).unwrap();
        acc.feed(b"data: [DONE]\n").unwrap();
        assert!(acc.is_complete());
        assert_eq!(acc.answer.content.len(), 200_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "many lines took {:?}", started.elapsed());
        // A line split inside its `\n`-free part and across CRLF still parses.
        let mut acc = SseAccumulator::default();
        for piece in ["da", "ta: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\r", "\n\r\n", "data: [DO", "NE]\r\n"] {
            acc.feed(piece.as_bytes()).unwrap();
        }
        assert!(acc.is_complete());
        assert_eq!(acc.answer.content, "hi");
    }

    #[test]
    fn inline_think_is_split_from_the_answer() {
        let (a, r) = split_inline_reasoning("<think>\nlet me {see}\n</think>\n\n```json\n{\"score\": 4}\n```");
        assert_eq!(a, "```json\n{\"score\": 4}\n```");
        assert_eq!(r.as_deref(), Some("let me {see}"));
        assert_eq!(split_inline_reasoning("plain").0, "plain");
        assert_eq!(raw_text("A", Some("R")), "<think>\nR\n</think>\n\nA");
        assert_eq!(raw_text("A", None), "A");
    }
}
