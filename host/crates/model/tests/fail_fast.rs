//! Fail-fast through the client (see `src/fail_fast.rs`): against servers on 127.0.0.1, a port
//! with nothing listening, a server saying the model does not exist, and a TLS server with a
//! self-signed certificate.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelcall_model::{CallError, ChatMessage, ChatRequest, ClientSettings, ModelClient};

const KEY: &str = "sk-test-secret-key-0123456789abcd";

fn ask() -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::new("user", "hi")], ..Default::default() }
}

fn settings(base_url: String) -> ClientSettings {
    let mut s = ClientSettings::new(base_url, "qwen-7b");
    s.api_key = Some(KEY.into());
    s.timeout = Duration::from_secs(5);
    s.max_retries = 0;
    s.backoff_base = Duration::from_millis(50);
    s.backoff_max = Duration::from_millis(500);
    s
}

fn read_request(stream: &mut impl Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    while buf.len() < head_end + len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(head)
}

const COMPLETION: &str = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;

/// Answers request `n` (from 0) with `reply(n)`; one request per connection.
fn server(reply: fn(usize) -> (&'static str, String), tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let scheme = if tls.is_some() { "https" } else { "http" };
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (count, tls) = (count.clone(), tls.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let respond = |s: &mut dyn ReadWrite| {
                    if read_request(&mut ReadOnly(s)).is_none() {
                        return;
                    }
                    let (status, body) = reply(count.fetch_add(1, Ordering::SeqCst));
                    let resp =
                        format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                    let _ = s.write_all(resp.as_bytes());
                    let _ = s.flush();
                };
                match tls {
                    None => respond(&mut { stream }),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        respond(&mut tls);
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                }
            });
        }
    });
    format!("{scheme}://{addr}/v1")
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
struct ReadOnly<'a>(&'a mut dyn ReadWrite);
impl Read for ReadOnly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

#[tokio::test]
async fn a_missing_model_stops_before_any_success_and_is_a_plain_rejection_after_one() {
    let base = server(|_| ("404 Not Found", r#"{"error":{"message":"The model `qwen-7b` does not exist.","type":"NotFoundError"}}"#.into()), None);
    let client = ModelClient::new(settings(base)).unwrap();
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::ModelNotFound { status: 404, .. }), "{err:?}");
    assert!(err.is_fatal());
    assert_eq!(err.cause(), "model_not_found");
    let shown = err.to_string();
    assert!(shown.contains("The model `qwen-7b` does not exist.") && shown.contains("chat_config.model"), "{shown}");

    // The first request succeeds, the next says the model is gone: a record's failure only.
    let base = server(
        |n| if n == 0 { ("200 OK", COMPLETION.into()) } else { ("404 Not Found", r#"{"error":{"message":"The model `qwen-7b` does not exist."}}"#.into()) },
        None,
    );
    let client = ModelClient::new(settings(base)).unwrap();
    client.chat(&ask()).await.unwrap();
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Rejected { status: 404, .. }), "{err:?}");
    assert!(!err.is_fatal());
}

#[tokio::test]
async fn the_models_served_are_named_once_list_models_ran() {
    let base = server(
        |n| match n {
            0 => ("200 OK", r#"{"data":[{"id":"alpha"},{"id":"beta"}]}"#.into()),
            _ => ("400 Bad Request", r#"{"error":{"message":"Unknown model: qwen-7b"}}"#.into()),
        },
        None,
    );
    let client = ModelClient::new(settings(base)).unwrap();
    assert_eq!(client.list_models().await.unwrap(), ["alpha", "beta"]);
    let err = client.chat(&ask()).await.unwrap_err();
    assert!(err.to_string().contains("the endpoint serves: alpha, beta"), "{err}");
}

fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nothing_listening_stops_after_the_window_even_with_retries_exhausted() {
    let port = dead_port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let started = Instant::now();
    // One call with retries to spare, one with none (it waits for the verdict instead of
    // failing its record for good), on one client.
    let mut s = settings(base.clone());
    s.max_retries = 1000;
    let client = ModelClient::new(s.clone()).unwrap();
    let mut none = s;
    none.max_retries = 0;
    let client0 = ModelClient::new(none).unwrap();
    let request = ask();
    let (a, b) = tokio::join!(client.chat(&request), client0.chat(&request));
    for err in [a.unwrap_err(), b.unwrap_err()] {
        assert!(matches!(err, CallError::Unreachable { .. }), "{err:?}");
        assert!(err.is_fatal());
        let shown = err.to_string();
        assert!(shown.contains(&format!("127.0.0.1:{port}")) && shown.contains("server is running"), "{shown}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(14), "{elapsed:?}");
}

const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBxzCCAWygAwIBAgIUJIleSlgEAbajcMC34jUkCVkPuWAwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwObW9kZWxjYWxsLXRlc3QwIBcNMjYxMjA2MTMyMjM4WhgPMjEy
NjExMTIxMzIyMzhaMBkxFzAVBgNVBAMMDm1vZGVsY2FsbC10ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAELT3TIj/dYKVhDAD8d+QNJL948Rt1F7IZW/WLBj1R
or2aedPqmaX6okUMpXJkb2A6vxnh5S2Yz2x+D+XZfMJPzqOBjzCBjDAdBgNVHQ4E
FgQUXXkibjFls5ak6bwbl8B2uDGsetswHwYDVR0jBBgwFoAUXXkibjFls5ak6bwb
l8B2uDGsetswGgYDVR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MAwGA1UdEwEB/wQC
MAAwCwYDVR0PBAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMC
A0kAMEYCIQDFc38Duh69zFxF25nhn1CVJJlMMGf78xe508o/bM0kBwIhAOpP2D9F
d1H2MQ7zw4LV/656lM4CrEponB+xCKbJce4g
-----END CERTIFICATE-----
";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPyWQYqOe+wuCg8Il
kSNFWGGgtLxnuOHau8bbYA1bxXuhRANCAAQtPdMiP91gpWEMAPx35A0kv3jxG3UX
shlb9YsGPVGivZp50+qZpfqiRQylcmRvYDq/GeHlLZjPbH4P5dl8wk/O
-----END PRIVATE KEY-----
";

#[tokio::test]
async fn an_untrusted_certificate_is_fatal_at_once_and_ca_cert_trusts_it() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap()], PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).unwrap())
        .unwrap();
    let base = server(|_| ("200 OK", COMPLETION.into()), Some(Arc::new(config)));
    let mut s = settings(base.clone());
    s.max_retries = 8;
    let started = Instant::now();
    let err = ModelClient::new(s.clone()).unwrap().chat(&ask()).await.unwrap_err();
    assert!(matches!(err, CallError::Certificate { .. }), "{err:?}");
    assert!(err.is_fatal());
    assert!(started.elapsed() < Duration::from_secs(3), "not retried: {:?}", started.elapsed());
    let host = base.trim_start_matches("https://").trim_end_matches("/v1");
    let shown = err.to_string();
    assert!(shown.contains(host) && shown.contains("client_config.ca_cert") && shown.contains("SSL_CERT_FILE"), "{shown}");

    let pem = std::env::temp_dir().join(format!("modelcall-fail-fast-{}.pem", std::process::id()));
    std::fs::write(&pem, CERT_PEM).unwrap();
    s.ca_cert = Some(pem.clone());
    let answer = ModelClient::new(s.clone()).unwrap().chat(&ask()).await;
    std::fs::write(&pem, "not a certificate").unwrap();
    let bad = ModelClient::new(s).err().map(|e| e.to_string());
    let _ = std::fs::remove_file(&pem);
    assert_eq!(answer.unwrap().content, "ok");
    assert!(bad.as_deref().is_some_and(|e| e.contains("client_config.ca_cert") && e.contains("no PEM certificate")), "{bad:?}");
}
