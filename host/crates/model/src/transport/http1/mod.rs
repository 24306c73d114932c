//! A lean HTTP/1.1 client for plain `http://` endpoints: one keep-alive connection per request
//! in flight, pooled per endpoint, driven by the request's own task.
//!
//! Why not reqwest here: at 4,096 requests in flight, hyper's per-connection state (a dispatch
//! channel of ~9 KB blocks, an 8 KB header buffer, an 8 KB read buffer and a driver task per
//! connection) was ~140 MB of a 265 MB heap (heaptrack, see BENCHMARKS.md). Here an idle or
//! waiting connection costs its socket: the read buffer exists only while an answer is being
//! read, and a connection goes back to the pool the moment its body ends, so the pool never
//! opens more connections than requests in flight. Response heads are parsed by httparse,
//! hyper's own parser; bodies are framed by Content-Length, chunked encoding or the end of the
//! connection.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::Http1Options;

mod body;
pub(crate) use body::BodyReader;
use body::{Chunk, Framing};

/// Connections idle longer than this are not reused (see [`super::IDLE_REUSE_LIMIT`]).
const IDLE_TIMEOUT: Duration = super::IDLE_REUSE_LIMIT;
/// A response head larger than this is refused.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A chunk-size or trailer line larger than this is refused.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Read at least this much room at a time.
const READ_ROOM: usize = 8 * 1024;
/// While a body keeps filling its reads, the room doubles up to this.
const MAX_READ_ROOM: usize = 512 * 1024;
const MAX_HEADERS: usize = 100;

/// Whether `url` can be reached by this client: plain `http`, no userinfo (reqwest turns it into
/// Basic auth), no HTTP/2, and either a loopback host or no proxy set in the environment.
pub(crate) fn eligible(url: &reqwest::Url, http2_prior_knowledge: bool) -> bool {
    let loopback = super::is_loopback(url);
    let proxied = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"].iter().any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
    url.host_str().is_some()
        && url.scheme() == "http"
        && !http2_prior_knowledge
        && url.username().is_empty()
        && url.password().is_none()
        && (loopback || !proxied)
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) struct Http1Error {
    kind: ErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Timeout,
    /// Refused, reset or closed, or an answer that is not HTTP.
    Connection,
    /// No connection could be made (refused, host not resolved).
    Connect,
    /// The request could not be written: on a reused connection, the server had closed it
    /// while it was idle, so the request never reached it.
    NotSent,
    /// The connection was closed or reset before any byte of an answer: on a reused
    /// connection, the server was closing it as the request went out.
    ClosedBeforeAnswer,
}

impl Http1Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Http1Error { kind, message: message.into() }
    }
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }
}

impl fmt::Display for Http1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The pooled HTTP/1.1 client of one model client's endpoints.
pub(crate) struct Http1Client {
    endpoints: Vec<Arc<Endpoint>>,
    timeout: Duration,
    /// `client_config.idle_timeout`: the longest wait for the answer's head (and between its
    /// pieces) once the request is written.
    idle_timeout: Option<Duration>,
    connect_timeout: Duration,
    /// Requests re-sent on a fresh connection after a reused one failed before any answer.
    stale_resends: std::sync::atomic::AtomicU64,
}

/// One endpoint: where to connect, the fixed part of every request, the idle connections.
struct Endpoint {
    url: String,
    /// `host:port`, for messages.
    authority: String,
    host: String,
    port: u16,
    /// The request line and headers up to the value of `content-length`.
    head: Vec<u8>,
    /// Idle connections and until when each may be reused.
    idle: Mutex<Vec<(Conn, Instant)>>,
    max_idle: usize,
}

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed; empty (no allocation) between answers.
    buf: BytesMut,
    /// How much room a read gets: doubles while a body keeps filling it (up to
    /// [`MAX_READ_ROOM`]), back to [`READ_ROOM`] between answers.
    room: usize,
    /// The server's `Keep-Alive: timeout=N`, from the last answer's head.
    keep_alive: Option<Duration>,
}

/// The parts of a response head the client uses.
pub(crate) struct Head {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
}

impl Http1Client {
    /// `None` when a header or the key cannot be sent as given (reqwest then reports it).
    pub fn new(options: &Http1Options<'_>) -> Option<Http1Client> {
        let mut endpoints = Vec::new();
        for url in options.urls {
            let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = url.port_or_known_default()?;
            let authority = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str()?),
                None => url.host_str()?.to_string(),
            };
            let mut target = url.path().to_string();
            if let Some(q) = url.query() {
                target.push('?');
                target.push_str(q);
            }
            let mut head = format!("POST {target} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n");
            let mut header = |name: &str, value: &str| -> Option<()> {
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).ok()?;
                reqwest::header::HeaderValue::from_str(value).ok()?;
                head.push_str(&format!("{name}: {value}\r\n"));
                Some(())
            };
            if let Some(key) = options.api_key {
                header("authorization", &format!("Bearer {key}"))?;
            }
            // As through reqwest: a default header replaces the user agent and `accept`, not the
            // key or the content type; the framing headers are the client's own.
            let given = |name: &str| options.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            if !given("user-agent") {
                header("user-agent", concat!("modelcall/", env!("CARGO_PKG_VERSION")))?;
            }
            if !given("accept") {
                header("accept", "*/*")?;
            }
            const OWN: [&str; 5] = ["host", "content-type", "content-length", "transfer-encoding", "connection"];
            for (name, value) in options.headers {
                let own = OWN.iter().any(|o| name.eq_ignore_ascii_case(o)) || (options.api_key.is_some() && name.eq_ignore_ascii_case("authorization"));
                if !own {
                    header(name, value)?;
                }
            }
            head.push_str("content-length: ");
            endpoints.push(Arc::new(Endpoint {
                url: url.to_string(),
                authority: if url.port().is_some() { authority } else { format!("{host}:{port}") },
                host,
                port,
                head: head.into_bytes(),
                idle: Mutex::new(Vec::new()),
                max_idle: options.max_idle_per_endpoint.max(1),
            }));
        }
        Some(Http1Client {
            endpoints,
            timeout: options.timeout,
            idle_timeout: options.idle_timeout,
            connect_timeout: options.timeout.min(Duration::from_secs(30)),
            stale_resends: Default::default(),
        })
    }

    /// Sends `body` to `url` and reads the answer's head; the body is read from the returned
    /// reader. The whole exchange, body included, is bounded by the client's timeout.
    pub async fn post(&self, url: &str, body: &[u8]) -> Result<(Head, BodyReader), Http1Error> {
        let deadline = Instant::now() + self.timeout;
        let endpoint = self.endpoints.iter().find(|e| e.url == url).unwrap_or(&self.endpoints[0]).clone();
        let mut request = Vec::with_capacity(endpoint.head.len() + 24 + body.len());
        request.extend_from_slice(&endpoint.head);
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) = match (!fresh_only).then(|| endpoint.checkout()).flatten() {
                Some(conn) => (conn, true),
                None => (self.connect(&endpoint, deadline).await?, false),
            };
            match exchange(&mut conn, &request, deadline, self.idle_timeout, &endpoint.authority).await {
                Ok((head, framing, reusable)) => {
                    drop(request);
                    let body = BodyReader { conn: Some(conn), framing, reusable, deadline, endpoint };
                    return Ok((head, body));
                }
                // The server had closed the idle connection, or closed it as the request went
                // out, before any byte of an answer: the request goes once more, on a new
                // connection, without spending a retry (counted apart). A connection closed
                // after an answer began is an error the retry loop counts.
                Err(e) if reused && matches!(e.kind, ErrorKind::NotSent | ErrorKind::ClosedBeforeAnswer) => {
                    self.stale_resends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    fresh_only = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect(&self, endpoint: &Endpoint, deadline: Instant) -> Result<Conn, Http1Error> {
        let by = deadline.min(Instant::now() + self.connect_timeout);
        let stream = timeout_at(by, TcpStream::connect((endpoint.host.as_str(), endpoint.port)))
            .await
            .map_err(|_| Http1Error::new(ErrorKind::Timeout, format!("connecting to {}: timed out", endpoint.authority)))?
            .map_err(|e| Http1Error::new(ErrorKind::Connect, format!("connecting to {}: {e}", endpoint.authority)))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream, buf: BytesMut::new(), room: READ_ROOM, keep_alive: None })
    }

    /// See [`Http1Client::stale_resends`](field@Http1Client::stale_resends).
    pub fn stale_resends(&self) -> u64 {
        self.stale_resends.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Endpoint {
    /// The most recently used idle connection that is still open.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // The server may be closing what is past its time: dropped (older ones stay behind
        // newer ones, but a `Keep-Alive` hint can make a newer one expire first).
        idle.retain(|(_, until)| *until > now);
        while let Some((conn, _)) = idle.pop() {
            if conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, mut conn: Conn) {
        conn.buf = BytesMut::new();
        conn.room = READ_ROOM;
        let until = Instant::now() + reuse_limit(conn.keep_alive);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push((conn, until));
        }
    }
}

impl Conn {
    /// Open and silent: an idle connection the server closed reads as end of file.
    fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Reads what is there into the buffer (waiting for something); 0 at end of file. The
    /// deadline is checked before each read, however steadily data is arriving.
    async fn read_more(&mut self, deadline: Instant, authority: &str) -> Result<usize, Http1Error> {
        self.read_more_within(deadline, None, authority).await
    }

    /// [`Conn::read_more`], waiting at most `idle` for data.
    async fn read_more_within(&mut self, deadline: Instant, idle: Option<Duration>, authority: &str) -> Result<usize, Http1Error> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(timed_out());
            }
            let idle_by = idle.map(|i| now + i).filter(|at| *at < deadline);
            timeout_at(idle_by.unwrap_or(deadline), self.stream.readable())
                .await
                .map_err(|_| match idle {
                    Some(i) if idle_by.is_some() => Http1Error::new(
                        ErrorKind::Timeout,
                        format!("no answer from {authority} {} s after the request (client_config.idle_timeout)", i.as_secs_f64()),
                    ),
                    _ => timed_out(),
                })?
                .map_err(|e| io_error(authority, e))?;
            if self.buf.capacity() - self.buf.len() < self.room / 2 {
                self.buf.reserve(self.room);
            }
            let spare = self.buf.capacity() - self.buf.len();
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(n) => {
                    quick_ack(&self.stream);
                    // A body that fills its reads gets bigger ones: a long line arrives in few.
                    if n >= spare && self.room < MAX_READ_ROOM {
                        self.room *= 2;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(io_error(authority, e)),
            }
        }
    }
}

/// Asks the kernel to acknowledge what arrives at once rather than after its delayed-ACK wait
/// (up to 40 ms on Linux). A server that writes an answer's head and body apart with Nagle's
/// algorithm on (uvicorn as vLLM and SGLang run it) holds the body until the head is
/// acknowledged: on a kept-alive connection every answer came 40–47 ms late (247 ms for a 200 ms
/// answer). Linux clears the flag as it goes, so it is set again after each read. Elsewhere a
/// no-op.
fn quick_ack(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = stream.set_quickack(true);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

fn timed_out() -> Http1Error {
    Http1Error::new(ErrorKind::Timeout, "no complete answer within client_config.timeout")
}

fn io_error(authority: &str, e: std::io::Error) -> Http1Error {
    Http1Error::new(ErrorKind::Connection, format!("connection to {authority}: {e}"))
}

/// Writes the request and reads the answer's head: its status and headers, how its body is
/// framed and whether the connection can be reused after it.
/// `idle` bounds each wait for the head once the request is written.
async fn exchange(conn: &mut Conn, request: &[u8], deadline: Instant, idle: Option<Duration>, authority: &str) -> Result<(Head, Framing, bool), Http1Error> {
    timeout_at(deadline, conn.stream.write_all(request))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| Http1Error { kind: ErrorKind::NotSent, ..io_error(authority, e) })?;
    quick_ack(&conn.stream);
    let mut answered = false;
    loop {
        if !conn.buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&conn.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let parsed = parse_head(&response, authority)?;
                    conn.buf.advance(len);
                    match parsed {
                        // 100 Continue and other interim answers: the real one follows.
                        None => continue,
                        Some((head, framing, reusable, keep_alive)) => {
                            conn.keep_alive = keep_alive;
                            return Ok((head, framing, reusable));
                        }
                    }
                }
                Ok(httparse::Status::Partial) if conn.buf.len() > MAX_HEAD_BYTES => {
                    return Err(Http1Error::new(ErrorKind::Connection, format!("{authority} sent a response head over {MAX_HEAD_BYTES} bytes")));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(Http1Error::new(ErrorKind::Connection, format!("{authority} sent an answer that is not HTTP/1.x: {e}"))),
            }
        }
        let read = conn.read_more_within(deadline, idle, authority).await;
        match read {
            Ok(0) if !answered => return Err(Http1Error::new(ErrorKind::ClosedBeforeAnswer, format!("{authority} closed the connection before answering"))),
            Ok(0) => return Err(Http1Error::new(ErrorKind::Connection, format!("{authority} closed the connection before a complete answer"))),
            Ok(_) => answered = true,
            Err(e) if !answered && e.kind == ErrorKind::Connection => return Err(Http1Error { kind: ErrorKind::ClosedBeforeAnswer, ..e }),
            Err(e) => return Err(e),
        }
    }
}

/// How long an idle connection may be reused: [`IDLE_TIMEOUT`], or less when the server said
/// `Keep-Alive: timeout=N` (a second before it, as it may close at N).
fn reuse_limit(keep_alive: Option<Duration>) -> Duration {
    match keep_alive {
        Some(n) if n > Duration::from_secs(1) => IDLE_TIMEOUT.min(n - Duration::from_secs(1)),
        Some(n) => n / 2,
        None => IDLE_TIMEOUT,
    }
}

/// A final answer's head: the head, its body's framing, whether the connection may be kept, and
/// the server's `Keep-Alive: timeout=N`.
type ParsedHead = (Head, Framing, bool, Option<Duration>);

/// The head of a final answer, or `None` for an interim (1xx) one.
fn parse_head(response: &httparse::Response<'_, '_>, authority: &str) -> Result<Option<ParsedHead>, Http1Error> {
    let status = response.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(None);
    }
    let bad = |what: String| Http1Error::new(ErrorKind::Connection, format!("{authority} sent {what}"));
    let (mut length, mut chunked, mut transfer_encoded, mut close, mut keep_alive) = (None::<u64>, false, false, false, false);
    let (mut retry_after, mut content_type, mut keep_alive_timeout) = (None, None, None);
    for h in response.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value().parse().map_err(|_| bad(format!("an invalid Content-Length {:?}", value())))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("two different Content-Length headers".into()));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoded = true;
            chunked = value().rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value().split(',') {
                close |= token.trim().eq_ignore_ascii_case("close");
                keep_alive |= token.trim().eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = Some(value());
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value());
        } else if h.name.eq_ignore_ascii_case("keep-alive") {
            // `timeout=5, max=100`
            keep_alive_timeout = value()
                .split(',')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("timeout"))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(Duration::from_secs_f64);
        }
    }
    let http11 = response.version == Some(1);
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(Chunk::Size)
    } else if transfer_encoded {
        Framing::UntilClose
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    let reusable = !close && (http11 || keep_alive) && !matches!(framing, Framing::UntilClose);
    Ok(Some((Head { status, retry_after, content_type }, framing, reusable, keep_alive_timeout)))
}

#[cfg(test)]
mod tests;
