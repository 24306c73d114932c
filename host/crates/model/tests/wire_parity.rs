//! What reaches the wire, seen by a capturing HTTP server on 127.0.0.1: the body and headers
//! must be what the OpenAI SDK would send for the same configuration.

use modelcall_model::{ChatMessage, ChatRequest, ClientSettings, ModelClient};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one request, answers a minimal completion, and returns the request's head and body.
async fn capture_one(listener: TcpListener) -> (String, Value) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body) = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap();
        while buf.len() < end + 4 + len {
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        break (head, serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap());
    };
    let reply = match head.starts_with("POST /v1/completions") {
        true => json!({"choices": [{"text": "ok", "finish_reason": "stop"}]}).to_string(),
        false => json!({"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}).to_string(),
    };
    let _ = stream.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}", reply.len()).as_bytes()).await;
    (head, body)
}

#[tokio::test]
async fn extra_body_headers_and_query_reach_the_wire_as_the_openai_sdk_sends_them() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let server = tokio::spawn(capture_one(listener));
    let mut settings = ClientSettings::new(base, "qwen3");
    settings.api_key = Some("sk-wire-test-0123456789".into());
    settings.chat_config =
        json!({"temperature": 0.1, "extra_body": {"chat_template_kwargs": {"enable_thinking": false}, "top_k": 20}}).as_object().unwrap().clone();
    settings.headers = vec![("OpenAI-Organization".into(), "org-1".into()), ("X-Team".into(), "data".into())];
    settings.query = vec![("api-version".into(), "2024-10-21".into())];
    let client = ModelClient::new(settings).unwrap();
    let request = ChatRequest {
        messages: vec![ChatMessage::new("user", "hi")],
        response_schema: Some(json!({"type": "object", "properties": {"score": {"type": "integer"}}})),
        ..Default::default()
    };
    let answer = client.chat(&request).await.unwrap();
    assert_eq!(answer.content, "ok");
    let (head, body) = server.await.unwrap();
    assert_eq!(body["chat_template_kwargs"]["enable_thinking"], false, "{body}");
    assert_eq!(body["top_k"], 20);
    assert!(body.get("extra_body").is_none(), "{body}");
    assert_eq!(body["temperature"], 0.1);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["schema"]["properties"]["score"]["type"], "integer");
    let head_lower = head.to_ascii_lowercase();
    assert!(head.starts_with("POST /v1/chat/completions?api-version=2024-10-21 "), "{head}");
    assert!(head_lower.contains("openai-organization: org-1") && head_lower.contains("x-team: data"), "{head}");
    assert!(head_lower.contains("authorization: bearer sk-wire-test-0123456789"), "{head}");
}

#[tokio::test]
async fn a_base_model_is_called_with_a_text_completion() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let server = tokio::spawn(capture_one(listener));
    let mut settings = ClientSettings::new(base, "base-7b");
    settings.text_completion = true;
    let client = ModelClient::new(settings).unwrap();
    let request = ChatRequest { messages: vec![ChatMessage::new("user", "Once upon a time")], max_tokens: Some(16), ..Default::default() };
    assert_eq!(client.chat(&request).await.unwrap().content, "ok");
    let (head, body) = server.await.unwrap();
    assert!(head.starts_with("POST /v1/completions "), "{head}");
    assert_eq!(body["prompt"], "Once upon a time");
    assert!(body.get("messages").is_none());
    assert_eq!(body["max_tokens"], 16);
}
