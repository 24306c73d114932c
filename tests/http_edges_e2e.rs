//! The HTTP edges of real endpoints, against servers written here (std threads, bounded), on
//! both HTTP clients (the lean one, and reqwest via `MODELCALL_HTTP_CLIENT=reqwest`):
//! a `base_url` with a query string (Azure), a 5 MB SSE line, keep-alive connections the
//! server closes at its timeout, a server that never sends a head (`idle_timeout`), and an
//! endless body (`max_response_bytes`, with the peak RSS at 64 in flight).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{read_jsonl, write_records, Scratch};
use serde_json::{json, Value};

/// A verdict the shipped English prompt accepts.
const VERDICT: &str = r#"{"score": 4, "corpus_type": "general", "main_languages": ["en"], "quality_tags": [], "recommended_use_case": "general text corpus"}"#;

fn completion() -> String {
    json!({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": VERDICT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
    .to_string()
}

/// One request as the server read it.
struct Request {
    /// `POST /v1/chat/completions?x=y HTTP/1.1`
    #[allow(dead_code)]
    line: String,
}

/// What a handler tells the connection loop.
enum Next {
    KeepAlive,
    Close,
}

type Handler = dyn Fn(&Request, &mut TcpStream, Duration) -> Next + Send + Sync;

/// A test server on 127.0.0.1: each connection on its own thread, requests read one after the
/// other (keep-alive); `handler` gets each request, the stream and how long the connection was
/// idle before it. Connections idle longer than `keep_alive` are closed. Everything stops when
/// the server is dropped, or after two minutes.
struct Server {
    base: String,
    stop: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Server {
    fn start(keep_alive: Duration, handler: impl Fn(&Request, &mut TcpStream, Duration) -> Next + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, l, c) = (stop.clone(), lines.clone(), connections.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst) && Instant::now() < until {
                match listener.accept() {
                    Ok((conn, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let (handler, lines, stop) = (handler.clone(), l.clone(), s.clone());
                        std::thread::spawn(move || serve_connection(conn, keep_alive, &*handler, &lines, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { base, stop, lines, connections }
    }

    fn request_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

fn serve_connection(conn: TcpStream, keep_alive: Duration, handler: &Handler, lines: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut idle_since = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // Idle: wait for the next request at most `keep_alive`.
        let _ = reader.get_ref().set_read_timeout(Some(keep_alive));
        let mut first = String::new();
        match reader.read_line(&mut first) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let idle = idle_since.elapsed();
        let _ = reader.get_ref().set_read_timeout(Some(Duration::from_secs(30)));
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let line = first.trim_end().to_string();
        lines.lock().unwrap().push(line.clone());
        if line.starts_with("GET") {
            let _ = write!(writer, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            idle_since = Instant::now();
            continue;
        }
        match handler(&Request { line }, &mut writer, idle) {
            Next::KeepAlive => idle_since = Instant::now(),
            Next::Close => {
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

fn answer_json(stream: &mut TcpStream, extra_headers: &str) {
    let body = completion();
    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}", body.len());
    let _ = stream.flush();
}

/// A model config at `base_url` with `client` lines added under `client_config` and `chat`
/// lines under `chat_config`.
fn model(s: &Scratch, base_url: &str, client: &str, chat: &str) -> PathBuf {
    let yaml = format!(
        "client_config:\n  base_url: \"{base_url}\"\n  api_key: \"sk-test-secret-1234\"\n{client}chat_config:\n  model: \"m\"\n  temperature: 0\n{chat}"
    );
    s.write("model.yaml", yaml.as_bytes())
}

/// Runs a scoring task over `records` records at `concurrency` against `model`; `http_client`
/// `Some("reqwest")` forces reqwest.
fn run(s: &Scratch, model: &Path, records: usize, concurrency: usize, extra: &str, http_client: Option<&str>) -> Output {
    write_records(&s.path("input/data.jsonl"), records);
    let task = s.scoring_task_for(model, concurrency, "", extra);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelcall"));
    cmd.arg("run-task").arg(&task).arg("--no-progress").stdin(Stdio::null());
    cmd.env_remove("MODELCALL_HTTP_CLIENT");
    if let Some(c) = http_client {
        cmd.env("MODELCALL_HTTP_CLIENT", c);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn summary(s: &Scratch) -> Value {
    serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).expect("run_summary.json")).unwrap()
}

fn retries(summary: &Value) -> u64 {
    summary["retries_by_cause"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0)
}

fn clients() -> [(Option<&'static str>, &'static str); 2] {
    [(None, "http1"), (Some("reqwest"), "reqwest")]
}

// ---- 1. A base_url with a query string -----------------------------------------------------

#[test]
fn a_base_url_with_a_query_keeps_the_query_after_the_path_on_both_clients() {
    for (forced, name) in clients() {
        let server = Server::start(Duration::from_secs(30), |_, stream, _| {
            answer_json(stream, "");
            Next::KeepAlive
        });
        let s = Scratch::new();
        let base = format!("{}/v1?api-version=2024-06-01", server.base);
        let m = model(&s, &base, "  timeout: 10\n  max_retries: 0\n  default_query:\n    tenant: t1\n", "");
        let out = run(&s, &m, 3, 2, "", forced);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let sum = summary(&s);
        assert_eq!(sum["http_client"], name);
        assert_eq!(sum["records"]["failed"], 0, "{name}: {sum}");
        let posts: Vec<String> = server.request_lines().into_iter().filter(|l| l.starts_with("POST")).collect();
        assert_eq!(posts.len(), 3, "{name}: {posts:?}");
        for p in &posts {
            assert_eq!(p, "POST /v1/chat/completions?api-version=2024-06-01&tenant=t1 HTTP/1.1", "{name}");
        }
    }
}

// ---- 2. A 5 MB SSE line --------------------------------------------------------------------

/// A stream of one 5 MB `data:` event (the verdict, padded by an extra field), chunked in
/// 64 KiB pieces as uvicorn sends it, then `[DONE]`.
fn answer_long_sse(stream: &mut TcpStream) {
    let pad = "x".repeat(5 << 20);
    let event = json!({"id": "c", "object": "chat.completion.chunk", "model": "m", "pad": pad,
        "choices": [{"index": 0, "delta": {"content": VERDICT}, "finish_reason": "stop"}]});
    let body = format!("data: {event}\n\ndata: [DONE]\n\n");
    let mut out = Vec::with_capacity(body.len() + 4096);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.as_bytes().chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    let _ = stream.write_all(&out);
}

#[test]
fn a_5_mb_sse_line_takes_the_lean_client_under_1_5x_reqwest_time() {
    let server = Server::start(Duration::from_secs(30), |_, stream, _| {
        answer_long_sse(stream);
        Next::KeepAlive
    });
    const RECORDS: usize = 12;
    let mut took = Vec::new();
    for (forced, name) in clients() {
        let s = Scratch::new();
        let m = model(&s, &format!("{}/v1", server.base), "  timeout: 60\n  max_retries: 0\n", "  stream: true\n");
        let started = Instant::now();
        let out = run(&s, &m, RECORDS, 1, "", forced);
        let elapsed = started.elapsed();
        assert!(out.status.success(), "{name}: {}", text(&out));
        let sum = summary(&s);
        assert_eq!(sum["http_client"], name);
        assert_eq!(sum["records"]["scored"], RECORDS as u64, "{name}: {sum}");
        took.push(elapsed);
    }
    let (lean, reqwest) = (took[0], took[1]);
    eprintln!("{RECORDS} records of one 5 MB SSE line: lean client {lean:?}, reqwest {reqwest:?}");
    assert!(lean.as_secs_f64() < 1.5 * reqwest.as_secs_f64(), "lean client {lean:?} against reqwest {reqwest:?} for {RECORDS} 5 MB SSE lines");
}

// ---- 3. Keep-alive connections the server closes at its timeout ----------------------------

/// A server that closes connections idle for `keep_alive`, and loses the race as a real one
/// does: a request arriving within 250 ms of that timeout finds the connection being closed
/// (read, never answered). With `advertise`, it says `Keep-Alive: timeout=N`.
fn closing_server(keep_alive: Duration, advertise: bool) -> Server {
    let header = if advertise { format!("Keep-Alive: timeout={}\r\n", keep_alive.as_secs()) } else { String::new() };
    Server::start(keep_alive, move |_, stream, idle| {
        if idle + Duration::from_millis(250) >= keep_alive {
            return Next::Close;
        }
        answer_json(stream, &header);
        Next::KeepAlive
    })
}

/// 3 records one at a time, `rpm` apart, against `server` with `max_retries: 1`.
fn spaced_task_run(server: &Server, rpm: u32, forced: Option<&str>) -> (Output, Value, usize) {
    let s = Scratch::new();
    let m = model(&s, &format!("{}/v1", server.base), "  timeout: 20\n  max_retries: 1\n", "");
    write_records(&s.path("input/data.jsonl"), 3);
    let task = s.scoring_task_for(&m, 1, "", "");
    // One request every 60/rpm seconds: the gaps the server's keep-alive timeout meets.
    let yaml = std::fs::read_to_string(&task)
        .unwrap()
        .replace("  max_concurrent_requests: 1\n", &format!("  max_concurrent_requests: 1\n  requests_per_minute: {rpm}\n"));
    std::fs::write(&task, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelcall"));
    cmd.arg("run-task").arg(&task).arg("--no-progress").stdin(Stdio::null()).env_remove("MODELCALL_HTTP_CLIENT");
    if let Some(c) = forced {
        cmd.env("MODELCALL_HTTP_CLIENT", c);
    }
    let out = cmd.output().unwrap();
    let sum = summary(&s);
    (out, sum, server.connections.load(Ordering::SeqCst))
}

#[test]
fn requests_5_s_apart_against_a_5_s_keep_alive_fail_nothing_and_retry_nothing() {
    std::thread::scope(|scope| {
        for (forced, name) in clients() {
            scope.spawn(move || {
                let server = closing_server(Duration::from_secs(5), false);
                let (out, sum, _) = spaced_task_run(&server, 12, forced);
                assert!(out.status.success(), "{name}: {}", text(&out));
                assert_eq!(sum["http_client"], name);
                assert_eq!(sum["records"]["failed"], 0, "{name}: {sum}");
                assert_eq!(sum["records"]["scored"], 3, "{name}: {sum}");
                assert_eq!(retries(&sum), 0, "{name}: no connection retries: {sum}");
                assert!(sum["stale_connection_resends"].is_u64(), "{name}: {sum}");
            });
        }
    });
}

#[test]
fn a_reused_connection_closed_before_any_answer_is_resent_once_without_a_retry() {
    // The server closes at 2 s, under the client's 4 s reuse limit, and says nothing: the
    // client reuses, the server closes as the request arrives, the request goes again on a
    // fresh connection.
    std::thread::scope(|scope| {
        for (forced, name) in clients() {
            scope.spawn(move || {
                let server = closing_server(Duration::from_secs(2), false);
                let (out, sum, _) = spaced_task_run(&server, 30, forced);
                assert!(out.status.success(), "{name}: {}", text(&out));
                assert_eq!(sum["records"]["failed"], 0, "{name}: {sum}");
                assert_eq!(retries(&sum), 0, "{name}: resends are not retries: {sum}");
                assert!(sum["stale_connection_resends"].as_u64().unwrap_or(0) >= 1, "{name}: {sum}");
            });
        }
    });
    // Said `Keep-Alive: timeout=2`: the lean client does not reuse past it, nothing is resent.
    let server = closing_server(Duration::from_secs(2), true);
    let (out, sum, _) = spaced_task_run(&server, 30, None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sum["records"]["failed"], 0, "{sum}");
    assert_eq!(retries(&sum), 0, "{sum}");
    assert_eq!(sum["stale_connection_resends"], 0, "{sum}");
}

// ---- 4. A server that never sends a head ---------------------------------------------------

#[test]
fn idle_timeout_covers_the_wait_for_the_head_on_both_clients() {
    std::thread::scope(|scope| {
        for (forced, name) in clients() {
            scope.spawn(move || {
                let server = Server::start(Duration::from_secs(60), |_, _, _| {
                    std::thread::sleep(Duration::from_secs(25));
                    Next::Close
                });
                let s = Scratch::new();
                let m = model(&s, &format!("{}/v1", server.base), "  timeout: 20\n  idle_timeout: 1.5\n  max_retries: 0\n", "");
                let started = Instant::now();
                let out = run(&s, &m, 1, 1, "", forced);
                let elapsed = started.elapsed();
                assert_eq!(out.status.code(), Some(3), "{name}: {}", text(&out));
                let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
                assert_eq!(errors.len(), 1, "{name}");
                assert_eq!(errors[0]["cause"], "model_timeout", "{name}: {}", errors[0]);
                assert!(errors[0].to_string().contains("idle_timeout"), "{name}: {}", errors[0]);
                // 20 s when only `timeout` applies.
                assert!(elapsed < Duration::from_secs(12), "{name}: took {elapsed:?}");
            });
        }
    });
}

// ---- 21.4. An endless body -----------------------------------------------------------------

/// Answers 200 with a chunked JSON body that never ends: `cap` bytes of it as fast as the
/// client reads, then silence until the client goes (bounded: 30 s).
fn endless_server(cap: usize) -> Server {
    Server::start(Duration::from_secs(60), move |_, stream, _| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        let piece = vec![b' '; 64 * 1024];
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(&piece);
        framed.extend_from_slice(b"\r\n");
        let mut sent = 0;
        while sent < cap {
            if stream.write_all(&framed).is_err() {
                return Next::Close;
            }
            sent += piece.len();
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut byte = [0u8; 1];
        let _ = stream.read(&mut byte);
        Next::Close
    })
}

/// Runs `cmd` and returns its exit status and peak RSS in bytes (VmHWM, polled).
fn run_measuring_rss(mut cmd: Command) -> (std::process::ExitStatus, u64) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()) {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the run did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_endless_body_fails_the_record_as_too_large_and_64_in_flight_stay_under_300_mb() {
    // The default limit (16 MiB), one record, each client.
    for (forced, name) in clients() {
        let server = endless_server(40 << 20);
        let s = Scratch::new();
        let m = model(&s, &format!("{}/v1", server.base), "  timeout: 20\n  max_retries: 2\n", "");
        let started = Instant::now();
        let out = run(&s, &m, 1, 1, "", forced);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", text(&out));
        let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
        assert_eq!(errors.len(), 1, "{name}");
        assert_eq!(errors[0]["cause"], "model_reply_too_large", "{name}: {}", errors[0]);
        assert!(errors[0].to_string().contains(&(16u64 << 20).to_string()), "{name}: {}", errors[0]);
        // Not retried: one request, and well before the timeout.
        assert_eq!(server.request_lines().iter().filter(|l| l.starts_with("POST")).count(), 1, "{name}");
        assert!(started.elapsed() < Duration::from_secs(15), "{name}: {:?}", started.elapsed());
    }
    // 64 in flight at the default limit: the peak RSS of the run. Each body is held whole for
    // parsing, and 64 × 16 MiB would be 1 GiB; the process's reply budget (1 MiB free per
    // reply, 128 MiB shared, the largest reply going on past it) holds it under 300 MB.
    for (forced, name) in clients() {
        let server = endless_server(40 << 20);
        let s = Scratch::new();
        let m = model(&s, &format!("{}/v1", server.base), "  timeout: 60\n  max_retries: 0\n", "");
        write_records(&s.path("input/data.jsonl"), 64);
        let task = s.scoring_task_for(&m, 64, "", "");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelcall"));
        cmd.arg("run-task").arg(&task).arg("--no-progress").env_remove("MODELCALL_HTTP_CLIENT");
        if let Some(c) = forced {
            cmd.env("MODELCALL_HTTP_CLIENT", c);
        }
        let (status, peak) = run_measuring_rss(cmd);
        assert_eq!(status.code(), Some(3), "{name}");
        let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
        assert_eq!(errors.len(), 64, "{name}");
        assert!(errors.iter().all(|e| e["cause"] == "model_reply_too_large"), "{name}: {}", errors[0]);
        assert!(peak < 300 << 20, "{name}: peak RSS {} MB at 64 in flight", peak >> 20);
        eprintln!("{name}: peak RSS {} MB at 64 endless bodies in flight", peak >> 20);
    }
}
