//! Fail-fast (issue 19, item 7): a run whose first attempts all fail the same way stops within
//! seconds (exit 1, resumable, nothing journaled as failed) instead of crawling through every
//! record's retries; a pre-flight `GET /models` warns about a model the endpoint does not list;
//! an untrusted TLS certificate stops the run at once (exit 2) and `client_config.ca_cert`
//! trusts it. The real binary against real servers on 127.0.0.1 started here.

mod common;

use common::{read_jsonl, write_records, Scratch};

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

/// Runs `modelcall run-task TASK --no-progress`, killed after `limit` (the test then fails on
/// its exit code); returns the output and how long it took.
fn run_bounded(task: &Path, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .arg("run-task")
        .arg(task)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("MODELCALL_HTTP_CLIENT")
        .env_remove("SSL_CERT_FILE")
        .spawn()
        .expect("starting modelcall");
    // Drain the pipes while waiting, so a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let output = Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() };
    (output, elapsed)
}

fn describe(out: &Output) -> String {
    format!("exit {:?}\n--- stderr\n{}\n--- stdout\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `model.yaml` at `base_url` with `extra` lines under `client_config`.
fn model_yaml(s: &Scratch, base_url: &str, extra: &str) -> PathBuf {
    let yaml = format!(
        "client_config:\n  base_url: \"{base_url}\"\n  api_key: \"sk-test-secret-1234\"\n  timeout: 5\n  max_retries: 8\n{extra}chat_config:\n  model: \"m\"\n  temperature: 0\n"
    );
    s.write("model.yaml", yaml.as_bytes())
}

fn make_task(s: &Scratch, base_url: &str, extra: &str, concurrency: usize) -> PathBuf {
    let model = model_yaml(s, base_url, extra);
    s.scoring_task_for(&model, concurrency, "", "")
}

/// Every record of the output exactly once, and no error rows.
fn assert_all_once(s: &Scratch, records: usize) {
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *counts.entry(r["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(counts.len(), records, "every record is in the output");
    assert!(counts.values().all(|&c| c == 1), "no record twice");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty(), "no error rows");
}

/// A free port with nothing listening on it.
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// Reads one HTTP/1.1 request (head and a Content-Length body); `(method, path)`.
fn read_request(stream: &mut impl Read) -> Option<(String, String)> {
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
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    Some((first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string()))
}

/// What a test server answers to `(method, path)`: status line and JSON body.
type Handler = fn(&str, &str) -> (&'static str, String);

fn answer(stream: &mut (impl Read + Write), handler: Handler, posts: &AtomicUsize) {
    let Some((method, path)) = read_request(stream) else { return };
    if method == "POST" {
        posts.fetch_add(1, Ordering::SeqCst);
    }
    let (status, body) = handler(&method, &path);
    let resp = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = stream.write_all(resp.as_bytes());
    let _ = stream.flush();
}

/// A plain HTTP server on 127.0.0.1 (a thread per connection, one request each); its base URL
/// and the count of POSTs it answered.
fn http_server(handler: Handler) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts = Arc::new(AtomicUsize::new(0));
    let p = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let p = p.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                answer(&mut stream, handler, &p);
            });
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), posts)
}

/// A scoring reply the shipped English prompt's parser accepts.
fn completion() -> String {
    let content = r#"{"score": 4, "corpus_type": "general", "main_languages": ["en"], "quality_tags": [], "recommended_use_case": "general text corpus"}"#;
    serde_json::json!({
        "id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    })
    .to_string()
}

fn models_alpha_beta() -> String {
    r#"{"object":"list","data":[{"id":"alpha","object":"model"},{"id":"beta","object":"model"}]}"#.to_string()
}

// -------------------------------------------------------------------------------------------
// (a) Nothing listening.

#[test]
fn nothing_listening_stops_within_seconds_and_a_rerun_completes_every_record_once() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 200);
    let port = dead_port();
    let task = make_task(&s, &format!("http://127.0.0.1:{port}/v1"), "", 16);
    let (out, elapsed) = run_bounded(&task, Duration::from_secs(40));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the run stops (exit 1): {}", describe(&out));
    assert!(elapsed < Duration::from_secs(20), "stopped after {elapsed:?}: {}", describe(&out));
    assert!(err.contains(&format!("127.0.0.1:{port}")), "names the endpoint: {err}");
    assert!(err.contains("could not connect"), "says it could not connect: {err}");
    assert!(err.contains("server is running"), "says what to check: {err}");
    assert!(!err.contains("sk-test-secret-1234"), "the key leaked: {err}");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty(), "nothing journaled as failed: {err}");

    // The endpoint is up now: the same task resumes and completes.
    model_yaml(&s, "sim://", "");
    let (out, _) = run_bounded(&task, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_all_once(&s, 200);
}

// -------------------------------------------------------------------------------------------
// (b) A model the endpoint does not serve.

#[test]
fn a_model_the_endpoint_does_not_serve_stops_the_run_after_a_few_requests() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 200);
    let (url, posts) = http_server(|method, path| match (method, path) {
        ("GET", "/v1/models") => ("200 OK", models_alpha_beta()),
        _ => ("404 Not Found", r#"{"error":{"message":"The model `m` does not exist.","type":"NotFoundError","code":404}}"#.to_string()),
    });
    let concurrency = 8;
    let task = make_task(&s, &url, "", concurrency);
    let (out, elapsed) = run_bounded(&task, Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the run stops (exit 1): {}", describe(&out));
    assert!(elapsed < Duration::from_secs(15), "stopped after {elapsed:?}");
    assert!(err.contains("The model `m` does not exist"), "the server's own message: {err}");
    assert!(err.contains("chat_config.model"), "says what to check: {err}");
    assert!(err.contains("alpha, beta"), "names the models served: {err}");
    assert!(err.contains(&url), "names the endpoint: {err}");
    let sent = posts.load(Ordering::SeqCst);
    assert!(sent <= concurrency + 4, "{sent} requests: not one per record");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty(), "nothing journaled as failed");
}

// -------------------------------------------------------------------------------------------
// (c) Pre-flight.

#[test]
fn preflight_warns_when_the_endpoint_does_not_list_the_model_and_is_silent_without_models() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 5);
    let (url, posts) = http_server(|method, path| match (method, path) {
        ("GET", "/v1/models") => ("200 OK", models_alpha_beta()),
        ("POST", "/v1/chat/completions") => ("200 OK", completion()),
        _ => ("404 Not Found", r#"{"error":{"message":"no route"}}"#.to_string()),
    });
    let task = make_task(&s, &url, "", 2);
    let (out, _) = run_bounded(&task, Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let warning = err.lines().find(|l| l.starts_with("warning:") && l.contains("`m`")).unwrap_or_else(|| panic!("no warning about the model: {err}"));
    assert!(warning.contains("`alpha`") && warning.contains("`beta`"), "names the models served: {warning}");
    assert_eq!(posts.load(Ordering::SeqCst), 5);
    assert_all_once(&s, 5);

    // Without `/models`, nothing is said.
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 3);
    let (url, _) = http_server(|method, path| match (method, path) {
        ("POST", "/v1/chat/completions") => ("200 OK", completion()),
        _ => ("404 Not Found", "not here".to_string()),
    });
    let task = make_task(&s, &url, "", 2);
    let (out, _) = run_bounded(&task, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!stderr(&out).contains("warning:"), "{}", describe(&out));
}

// -------------------------------------------------------------------------------------------
// (d) TLS with a certificate the client does not trust.

/// A self-signed certificate for 127.0.0.1 and localhost (valid until 2126), and its key.
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

/// An HTTPS server on 127.0.0.1 with the self-signed certificate (a thread per connection);
/// its base URL and the count of POSTs answered.
fn tls_server(handler: Handler) -> (String, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts = Arc::new(AtomicUsize::new(0));
    let p = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (p, config) = (p.clone(), config.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                answer(&mut tls, handler, &p);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (format!("https://127.0.0.1:{port}/v1"), posts)
}

#[test]
fn an_untrusted_certificate_stops_at_once_and_ca_cert_trusts_it() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 20);
    let (url, posts) = tls_server(|method, path| match (method, path) {
        ("GET", "/v1/models") => ("200 OK", r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#.to_string()),
        ("POST", "/v1/chat/completions") => ("200 OK", completion()),
        _ => ("404 Not Found", r#"{"error":{"message":"no route"}}"#.to_string()),
    });
    let task = make_task(&s, &url, "", 4);
    let (out, elapsed) = run_bounded(&task, Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "a certificate failure is a configuration error: {}", describe(&out));
    assert!(elapsed < Duration::from_secs(10), "stopped after {elapsed:?}");
    let host = url.trim_start_matches("https://").trim_end_matches("/v1");
    assert!(err.contains(host), "names the host {host}: {err}");
    assert!(err.contains("certificate"), "says it is the certificate: {err}");
    assert!(err.contains("client_config.ca_cert") && err.contains("SSL_CERT_FILE"), "says how to trust a private CA: {err}");
    assert_eq!(posts.load(Ordering::SeqCst), 0, "no paid request went out");
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty(), "nothing journaled as failed");

    // Trusting the certificate (a path relative to the model config), the run completes.
    s.write("certs/server.pem", CERT_PEM.as_bytes());
    let task = make_task(&s, &url, "  ca_cert: \"certs/server.pem\"\n", 4);
    let (out, _) = run_bounded(&task, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!stderr(&out).contains("warning:"), "the endpoint lists the model: {}", describe(&out));
    assert_all_once(&s, 20);
}

#[test]
fn a_ca_cert_that_is_missing_or_not_pem_is_a_configuration_error() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 2);
    let task = make_task(&s, "https://127.0.0.1:9/v1", "  ca_cert: \"nope.pem\"\n", 1);
    let (out, _) = run_bounded(&task, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("ca_cert") && err.contains("nope.pem"), "{err}");

    s.write("bad.pem", b"not a certificate\n");
    let task = make_task(&s, "https://127.0.0.1:9/v1", "  ca_cert: \"bad.pem\"\n", 1);
    let (out, _) = run_bounded(&task, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("holds no PEM certificate"), "{}", describe(&out));
}
