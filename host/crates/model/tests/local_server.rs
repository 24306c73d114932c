//! The client against tiny scripted HTTP servers on 127.0.0.1: servers that echo the API key in
//! their error bodies (it must never reach an error's text), and a server that streams slowly
//! (total deadline versus idle timeout).

use std::time::{Duration, Instant};

use modelcall_model::{CallError, ChatMessage, ChatRequest, ClientSettings, ModelClient, RetryCause};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "sk-test-secret-key-0123456789abcd";

fn ask() -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::new("user", "hi")], ..Default::default() }
}

/// Reads one request (headers and a Content-Length body) and returns its head.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return String::from_utf8_lossy(&buf).into_owned();
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    head
}

/// A server answering every request with `status`, `content_type` and a body made by `body`
/// from the request head (so it can echo the Authorization header back, as some proxies do).
async fn fixed_server(status: &'static str, content_type: &'static str, body: fn(&str) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_request(&mut stream).await;
                let body = body(&head);
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/v1")
}

fn settings(base_url: String) -> ClientSettings {
    let mut s = ClientSettings::new(base_url, "m");
    s.api_key = Some(KEY.into());
    s.timeout = Duration::from_secs(5);
    s.max_retries = 0;
    s.backoff_base = Duration::from_millis(1);
    s
}

fn assert_no_key(e: &CallError) {
    for shown in [e.to_string(), format!("{e:?}"), format!("{e:#}")] {
        assert!(!shown.contains(KEY), "the key leaked: {shown}");
        assert!(!shown.contains("0123456789"), "part of the key leaked: {shown}");
    }
}

fn echo_json(head: &str) -> String {
    let auth = head.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization:")).unwrap_or("").trim();
    serde_json::json!({"error": {
        "message": format!("Incorrect API key provided: {KEY}. You sent `{auth}`."),
        "type": "invalid_request_error", "code": "invalid_api_key"
    }})
    .to_string()
}

fn echo_text(head: &str) -> String {
    let auth = head.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization:")).unwrap_or("").trim();
    format!("401 Unauthorized: key {KEY} rejected\n{auth}\n")
}

#[tokio::test]
async fn key_echoed_in_a_401_json_body_never_shows() {
    let base = fixed_server("401 Unauthorized", "application/json", echo_json).await;
    let client = ModelClient::new(settings(base.clone())).unwrap();
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Auth { status: 401, .. }), "{err:?}");
    assert_no_key(&err);
    let shown = err.to_string();
    assert!(shown.contains("Incorrect API key provided: ***abcd"), "{shown}");
    assert!(shown.contains(base.trim_start_matches("http://")), "still names the endpoint: {shown}");
    // The same through list_models.
    let err = client.list_models().await.unwrap_err();
    assert_no_key(&err);
}

#[tokio::test]
async fn key_echoed_in_a_401_text_body_never_shows() {
    let base = fixed_server("401 Unauthorized", "text/plain", echo_text).await;
    let err = ModelClient::new(settings(base)).unwrap().chat(&ask()).await.unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    assert_no_key(&err);
    assert!(err.to_string().to_ascii_lowercase().contains("authorization: bearer ***abcd"), "{err}");
}

#[tokio::test]
async fn key_echoed_in_400_and_5xx_bodies_never_shows() {
    let base = fixed_server("400 Bad Request", "application/json", echo_json).await;
    let err = ModelClient::new(settings(base)).unwrap().chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Rejected { status: 400, .. }), "{err:?}");
    assert_no_key(&err);

    let base = fixed_server("503 Service Unavailable", "text/plain", echo_text).await;
    let err = ModelClient::new(settings(base)).unwrap().chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Exhausted { cause: RetryCause::ServerError, .. }), "{err:?}");
    assert_no_key(&err);
}

#[tokio::test]
async fn key_echoed_in_a_stream_error_event_never_shows() {
    fn event(_: &str) -> String {
        format!("data: {{\"error\": {{\"message\": \"key {KEY} is over quota\"}}}}\n\n")
    }
    let base = fixed_server("200 OK", "text/event-stream", event).await;
    let mut s = settings(base);
    s.stream = true;
    let err = ModelClient::new(s).unwrap().chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Exhausted { cause: RetryCause::MalformedBody, .. }), "{err:?}");
    assert_no_key(&err);
    assert!(err.to_string().contains("***abcd"), "{err}");
}

#[tokio::test]
async fn url_userinfo_never_shows() {
    let base = fixed_server("401 Unauthorized", "text/plain", |_| "no".into()).await;
    let with_userinfo = base.replace("http://", "http://alice:pw-very-secret-99@");
    let client = ModelClient::new(settings(with_userinfo)).unwrap();
    assert!(client.endpoint().starts_with("http://***@127.0.0.1:"), "{}", client.endpoint());
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(!err.to_string().contains("pw-very-secret") && !err.to_string().contains("alice"), "{err}");
    let e = ModelClient::new(settings("http://bob:pw-very-secret-99@[::1".into())).err().expect("not a URL");
    assert!(!e.to_string().contains("pw-very-secret") && e.to_string().contains("is not a URL"), "{e}");
}

/// A server streaming one SSE chunk every 300 ms for 3 s, then the finish and `[DONE]`
/// (chunked transfer encoding, as real endpoints stream).
async fn slow_stream_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_request(&mut stream).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = |data: String| format!("{:x}\r\n{data}\r\n", data.len());
                for i in 0..10 {
                    let event = format!("data: {{\"model\":\"slow\",\"choices\":[{{\"delta\":{{\"content\":\"{i}\"}}}}]}}\n\n");
                    if stream.write_all(chunk(event).as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let end = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_string();
                let _ = stream.write_all(chunk(end).as_bytes()).await;
                let _ = stream.write_all(b"0\r\n\r\n").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/v1")
}

fn streaming(base: String, timeout: Duration, idle: Option<Duration>) -> ModelClient {
    let mut s = settings(base);
    s.stream = true;
    s.timeout = timeout;
    s.idle_timeout = idle;
    ModelClient::new(s).unwrap()
}

#[tokio::test]
async fn total_timeout_cuts_a_steady_stream() {
    let client = streaming(slow_stream_server().await, Duration::from_secs(2), None);
    let started = Instant::now();
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Exhausted { cause: RetryCause::Timeout, attempts: 1, .. }), "{err:?}");
    // Cut at the 2 s deadline although a chunk arrived every 300 ms (the stream needs 3 s).
    assert!(started.elapsed() >= Duration::from_millis(1900), "{:?}", started.elapsed());
}

#[tokio::test]
async fn idle_timeout_lets_a_steady_stream_finish() {
    // No effective total deadline (an hour, far beyond the 3 s stream): only the idle timeout.
    let client = streaming(slow_stream_server().await, Duration::from_secs(3600), Some(Duration::from_secs(1)));
    let started = Instant::now();
    let c = client.chat(&ask()).await.expect("chunks every 300 ms never idle 1 s");
    assert_eq!(c.content, "0123456789");
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn idle_timeout_cuts_a_stream_slower_than_it() {
    let client = streaming(slow_stream_server().await, Duration::from_secs(3600), Some(Duration::from_millis(100)));
    let started = Instant::now();
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Exhausted { cause: RetryCause::Timeout, attempts: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("idle_timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
