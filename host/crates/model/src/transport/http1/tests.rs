//! The lean HTTP/1.1 client against scripted servers on 127.0.0.1: framing, reuse, stale
//! connections, interim answers, timeouts and broken answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the scripted server does after reading a request.
enum Then {
    /// Writes this answer and keeps the connection for the next request.
    Answer(Vec<u8>),
    /// Writes this answer and closes the connection.
    AnswerAndClose(Vec<u8>),
    /// Closes without answering.
    Close,
    /// Never answers.
    Hang,
}

struct Server {
    url: reqwest::Url,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// A server that answers request `n` (counted over all connections) with `script(n)`.
async fn server(script: impl Fn(usize) -> Then + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = reqwest::Url::parse(&format!("http://{}/v1/chat/completions", listener.local_addr().unwrap())).unwrap();
    let (accepted, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let script = Arc::new(script);
    let (acc, reqs) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            acc.fetch_add(1, Ordering::SeqCst);
            let (script, reqs) = (script.clone(), reqs.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(request) = read_request(&mut socket, &mut buf).await else { return };
                    let n = {
                        let mut r = reqs.lock().unwrap();
                        r.push(request);
                        r.len() - 1
                    };
                    match script(n) {
                        Then::Answer(bytes) => socket.write_all(&bytes).await.unwrap(),
                        Then::AnswerAndClose(bytes) => {
                            socket.write_all(&bytes).await.unwrap();
                            return;
                        }
                        Then::Close => return,
                        Then::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    Server { url, accepted, requests }
}

/// One request (head and Content-Length body) from the socket; `None` at end of file.
async fn read_request(socket: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                return Some(buf.drain(..end + 4 + length).collect());
            }
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn client(url: &reqwest::Url, timeout: Duration) -> Http1Client {
    let headers = vec![("OpenAI-Organization".to_string(), "org-7".to_string())];
    Http1Client::new(&Http1Options {
        urls: std::slice::from_ref(url),
        api_key: Some("sk-test"),
        headers: &headers,
        http2_prior_knowledge: false,
        timeout,
        idle_timeout: None,
        max_idle_per_endpoint: 64,
    })
    .expect("valid headers")
}

async fn post(client: &Http1Client, url: &reqwest::Url, body: &str) -> Result<(u16, String), Http1Error> {
    let (head, mut reader) = client.post(url.as_str(), body.as_bytes()).await?;
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok((head.status, String::from_utf8(out).unwrap()))
}

#[tokio::test]
async fn sends_the_request_as_written_and_reuses_the_connection() {
    let s = server(|n| Then::Answer(ok(&format!("{{\"n\":{n}}}")))).await;
    let c = client(&s.url, Duration::from_secs(5));
    assert_eq!(post(&c, &s.url, "{\"a\":1}").await.unwrap(), (200, "{\"n\":0}".into()));
    assert_eq!(post(&c, &s.url, "{\"b\":2}").await.unwrap(), (200, "{\"n\":1}".into()));
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1, "the second request reuses the first connection");
    let first = String::from_utf8(s.requests.lock().unwrap()[0].clone()).unwrap();
    let port = s.url.port().unwrap();
    assert!(first.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"), "{first}");
    for line in [
        format!("host: 127.0.0.1:{port}"),
        "authorization: Bearer sk-test".into(),
        "OpenAI-Organization: org-7".into(),
        "content-length: 7".into(),
        "content-type: application/json".into(),
    ] {
        assert!(first.contains(&format!("{line}\r\n")), "{line:?} missing from {first}");
    }
    assert!(first.ends_with("\r\n\r\n{\"a\":1}"), "{first}");
}

#[tokio::test]
async fn reads_chunked_bodies_with_extensions_and_trailers() {
    let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\nA\r\n:123456789\r\n1\r\n}\r\n0\r\nx-trailer: t\r\n\r\n".to_vec();
    let s = server(move |_| Then::Answer(answer.clone())).await;
    let c = client(&s.url, Duration::from_secs(5));
    for _ in 0..2 {
        assert_eq!(post(&c, &s.url, "{}").await.unwrap(), (200, "{\"a\":123456789}".into()));
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1, "a chunked body ends cleanly, so the connection is reused");
}

#[tokio::test]
async fn a_body_without_length_runs_to_the_close_and_the_connection_is_not_reused() {
    let s = server(|_| Then::AnswerAndClose(b"HTTP/1.1 503 Busy\r\nretry-after: 2\r\n\r\nbusy, try later".to_vec())).await;
    let c = client(&s.url, Duration::from_secs(5));
    for _ in 0..2 {
        let (head, mut reader) = c.post(s.url.as_str(), b"{}").await.unwrap();
        assert_eq!((head.status, head.retry_after.as_deref()), (503, Some("2")));
        let mut body = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"busy, try later");
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let s = server(|_| Then::Answer(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}".to_vec())).await;
    let c = client(&s.url, Duration::from_secs(5));
    post(&c, &s.url, "{}").await.unwrap();
    post(&c, &s.url, "{}").await.unwrap();
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
    // Every answer closes its connection without saying so (like a keep-alive timeout).
    let s = server(|_| Then::AnswerAndClose(ok("{}"))).await;
    let c = client(&s.url, Duration::from_secs(5));
    for _ in 0..3 {
        assert_eq!(post(&c, &s.url, "{}").await.unwrap().0, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_request_dropped_unanswered_on_a_reused_connection_is_resent_once_on_a_fresh_one() {
    // The server was closing the connection as the request went out (a keep-alive timeout
    // race): sent once more on a new connection, counted apart, not a retry (issue 24.3).
    let s = server(|n| if n == 1 { Then::Close } else { Then::Answer(ok("{}")) }).await;
    let c = client(&s.url, Duration::from_secs(5));
    post(&c, &s.url, "{}").await.unwrap();
    assert_eq!(post(&c, &s.url, "{}").await.unwrap().0, 200);
    assert_eq!((s.accepted.load(Ordering::SeqCst), s.requests.lock().unwrap().len()), (2, 3));
    assert_eq!(c.stale_resends(), 1);
    // Only once: a reused connection closed, then the fresh one closed too, is an error.
    let s = server(|n| if n == 0 { Then::Answer(ok("{}")) } else { Then::Close }).await;
    let c = client(&s.url, Duration::from_secs(5));
    post(&c, &s.url, "{}").await.unwrap();
    let e = post(&c, &s.url, "{}").await.unwrap_err();
    assert!(e.to_string().contains("closed the connection before answering"), "{e}");
    assert_eq!((s.accepted.load(Ordering::SeqCst), s.requests.lock().unwrap().len(), c.stale_resends()), (2, 3, 1));
}

#[tokio::test]
async fn a_fresh_connection_closed_unanswered_is_an_error_not_a_silent_resend() {
    let s = server(|_| Then::Close).await;
    let c = client(&s.url, Duration::from_secs(5));
    let e = post(&c, &s.url, "{}").await.unwrap_err();
    assert!(!e.is_timeout());
    assert!(e.to_string().contains("closed the connection before answering"), "{e}");
    assert_eq!(s.requests.lock().unwrap().len(), 1, "sent once");
    assert_eq!(c.stale_resends(), 0);
}

#[tokio::test]
async fn idle_timeout_bounds_the_wait_for_the_head() {
    let s = server(|_| Then::Hang).await;
    let c = Http1Client::new(&Http1Options {
        urls: std::slice::from_ref(&s.url),
        api_key: None,
        headers: &[],
        http2_prior_knowledge: false,
        timeout: Duration::from_secs(20),
        idle_timeout: Some(Duration::from_millis(300)),
        max_idle_per_endpoint: 4,
    })
    .unwrap();
    let started = std::time::Instant::now();
    let e = post(&c, &s.url, "{}").await.unwrap_err();
    assert!(e.is_timeout() && e.to_string().contains("idle_timeout"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn keep_alive_timeout_shortens_reuse() {
    assert_eq!(super::reuse_limit(None), Duration::from_secs(4));
    assert_eq!(super::reuse_limit(Some(Duration::from_secs(2))), Duration::from_secs(1));
    assert_eq!(super::reuse_limit(Some(Duration::from_secs(75))), Duration::from_secs(4));
    assert_eq!(super::reuse_limit(Some(Duration::from_secs(1))), Duration::from_millis(500));
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let s = server(|_| Then::Answer([b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), ok("{\"x\":1}")].concat())).await;
    let c = client(&s.url, Duration::from_secs(5));
    assert_eq!(post(&c, &s.url, "{}").await.unwrap(), (200, "{\"x\":1}".into()));
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout() {
    let s = server(|_| Then::Hang).await;
    let c = client(&s.url, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = post(&c, &s.url, "{}").await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let s = server(|_| Then::AnswerAndClose(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a\"".to_vec())).await;
    let c = client(&s.url, Duration::from_secs(5));
    let e = post(&c, &s.url, "{}").await.unwrap_err();
    assert!(e.to_string().contains("6 bytes before the end of the body"), "{e}");
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_an_error() {
    let s = server(|_| Then::AnswerAndClose(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
    let c = client(&s.url, Duration::from_secs(5));
    let e = post(&c, &s.url, "{}").await.unwrap_err();
    assert!(e.to_string().contains("not HTTP/1.x"), "{e}");
}

#[tokio::test]
async fn a_refused_connection_names_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/v1/chat/completions")).unwrap();
    let e = post(&client(&url, Duration::from_secs(5)), &url, "{}").await.unwrap_err();
    assert!(e.to_string().starts_with(&format!("connecting to 127.0.0.1:{port}: ")), "{e}");
}

#[tokio::test]
async fn never_opens_more_connections_than_requests_in_flight() {
    let s = server(|_| Then::Answer(ok("{}"))).await;
    let c = Arc::new(client(&s.url, Duration::from_secs(5)));
    for _ in 0..5 {
        let rounds: Vec<_> = (0..32)
            .map(|_| {
                let (c, url) = (c.clone(), s.url.clone());
                tokio::spawn(async move { post(&c, &url, "{}").await.unwrap() })
            })
            .collect();
        for r in rounds {
            r.await.unwrap();
        }
    }
    assert!(s.accepted.load(Ordering::SeqCst) <= 32, "{} connections for 32 in flight", s.accepted.load(Ordering::SeqCst));
}

#[test]
fn only_direct_plain_http_endpoints_are_eligible() {
    let url = |s: &str| reqwest::Url::parse(s).unwrap();
    assert!(eligible(&url("http://127.0.0.1:8000/v1"), false));
    assert!(eligible(&url("http://[::1]:8000/v1"), false));
    assert!(eligible(&url("http://localhost:8000/v1"), false));
    assert!(!eligible(&url("https://api.openai.com/v1"), false), "TLS goes through reqwest");
    assert!(!eligible(&url("http://127.0.0.1:8000/v1"), true), "h2c goes through reqwest");
    assert!(!eligible(&url("http://user:pw@127.0.0.1:8000/v1"), false), "userinfo becomes Basic auth in reqwest");
}

#[test]
fn a_header_that_cannot_be_sent_leaves_the_endpoint_to_reqwest() {
    let url = reqwest::Url::parse("http://127.0.0.1:1/v1").unwrap();
    let options = |key| Http1Options {
        urls: std::slice::from_ref(&url),
        api_key: key,
        headers: &[],
        http2_prior_knowledge: false,
        idle_timeout: None,
        timeout: Duration::from_secs(1),
        max_idle_per_endpoint: 1,
    };
    assert!(Http1Client::new(&options(Some("sk-fine"))).is_some());
    assert!(Http1Client::new(&options(Some("sk-bad\r\nx-injected: 1"))).is_none(), "no header injection through the key");
}

#[tokio::test]
async fn default_headers_replace_the_user_agent_but_not_the_key_or_the_framing() {
    let s = server(|_| Then::Answer(ok("{}"))).await;
    let headers: Vec<(String, String)> =
        [("User-Agent", "team-tool/2"), ("Authorization", "Bearer other"), ("Content-Length", "1"), ("Host", "elsewhere"), ("X-Trace", "t-1")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
    let c = Http1Client::new(&Http1Options {
        urls: std::slice::from_ref(&s.url),
        api_key: Some("sk-test"),
        headers: &headers,
        http2_prior_knowledge: false,
        idle_timeout: None,
        timeout: Duration::from_secs(5),
        max_idle_per_endpoint: 4,
    })
    .unwrap();
    assert_eq!(post(&c, &s.url, "{\"a\":1}").await.unwrap().0, 200);
    let request = String::from_utf8(s.requests.lock().unwrap()[0].clone()).unwrap().to_lowercase();
    let count = |line: &str| request.matches(&format!("{line}\r\n")).count();
    assert_eq!(count("user-agent: team-tool/2"), 1, "{request}");
    assert_eq!(request.matches("user-agent:").count(), 1, "{request}");
    assert_eq!(count("authorization: bearer sk-test"), 1, "{request}");
    assert_eq!(request.matches("authorization:").count(), 1, "{request}");
    assert_eq!(request.matches("content-length:").count(), 1, "{request}");
    assert_eq!(request.matches("host:").count(), 1, "{request}");
    assert_eq!(count("x-trace: t-1"), 1, "{request}");
}
