//! How an attempt reaches an endpoint: a POST and its answer read piece by piece, over one of
//! two HTTP clients.
//!
//! - [`http1`], our own lean HTTP/1.1 client, for plain `http://` endpoints reached directly:
//!   the local vLLM/SGLang fleets where thousands of requests are in flight. It costs a socket
//!   per connection and nothing per request while the request waits for its answer.
//! - reqwest for everything else: TLS, proxies, HTTP/2 (`http2_prior_knowledge`), URLs with
//!   userinfo. `MODELCALL_HTTP_CLIENT=reqwest` sends everything through it.

use std::time::Duration;

use bytes::Bytes;

pub(crate) mod http1;

/// The variable that sends every request through reqwest (`reqwest`), e.g. to compare; `auto`
/// (or unset) chooses per the rules above.
pub const HTTP_CLIENT_VAR: &str = "MODELCALL_HTTP_CLIENT";

/// A connection idle longer than this is not reused, by either client: under the usual
/// servers' keep-alive timeouts (uvicorn's 5 s, which vLLM and SGLang inherit), so the client
/// does not send a request on a connection the server is closing. The lean client also honours a
/// shorter `Keep-Alive: timeout=N` the server sends.
pub(crate) const IDLE_REUSE_LIMIT: Duration = Duration::from_secs(4);

/// Whether `url` names this machine (`localhost`, 127.0.0.0/8, `::1`): never through a proxy.
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A transport failure: no complete HTTP answer.
#[derive(Debug)]
pub(crate) struct TransportError {
    /// The deadline (`client_config.timeout`, or the connect timeout) passed.
    pub timeout: bool,
    /// No connection could be made (refused, host not resolved): the request never left.
    pub connect: bool,
    /// The TLS handshake failed on the server's certificate (unknown issuer, wrong name, …).
    pub certificate: bool,
    pub message: String,
}

impl From<reqwest::Error> for TransportError {
    fn from(e: reqwest::Error) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        let connect = e.is_connect() && !e.is_timeout();
        // rustls: "invalid peer certificate: UnknownIssuer" (and NotValidForName, Expired, …).
        let certificate = connect && message.to_ascii_lowercase().contains("certificate");
        TransportError { timeout: e.is_timeout(), connect: connect && !certificate, certificate, message }
    }
}

impl From<http1::Http1Error> for TransportError {
    fn from(e: http1::Http1Error) -> Self {
        TransportError { timeout: e.is_timeout(), connect: e.is_connect(), certificate: false, message: e.to_string() }
    }
}

/// The client a [`crate::ModelClient`] sends its attempts with.
pub(crate) enum Transport {
    Reqwest {
        client: reqwest::Client,
        api_key: Option<String>,
        idle_timeout: Option<Duration>,
        /// Requests re-sent because the server closed a connection before any answer.
        stale_resends: std::sync::atomic::AtomicU64,
    },
    Http1(http1::Http1Client),
}

/// What the client needs to build an [`http1::Http1Client`] for its endpoints.
pub(crate) struct Http1Options<'a> {
    pub urls: &'a [reqwest::Url],
    pub api_key: Option<&'a str>,
    pub headers: &'a [(String, String)],
    pub http2_prior_knowledge: bool,
    pub timeout: Duration,
    /// `client_config.idle_timeout`: also the longest wait for the head once the request is
    /// written.
    pub idle_timeout: Option<Duration>,
    pub max_idle_per_endpoint: usize,
}

impl Transport {
    /// The lean HTTP/1.1 client when every endpoint can use it, else `reqwest`; an unknown
    /// `MODELCALL_HTTP_CLIENT` is an error.
    pub fn choose(reqwest: reqwest::Client, options: Http1Options<'_>) -> Result<Transport, crate::ClientError> {
        let forced = match std::env::var(HTTP_CLIENT_VAR) {
            Err(_) => false,
            Ok(v) if v.is_empty() || v.eq_ignore_ascii_case("auto") => false,
            Ok(v) if v.eq_ignore_ascii_case("reqwest") => true,
            Ok(v) => return Err(crate::ClientError::UnknownHttpClient(v)),
        };
        let direct = options.urls.iter().all(|u| http1::eligible(u, options.http2_prior_knowledge));
        if !forced && direct {
            if let Some(client) = http1::Http1Client::new(&options) {
                return Ok(Transport::Http1(client));
            }
        }
        Ok(Transport::Reqwest {
            client: reqwest,
            api_key: options.api_key.map(str::to_string),
            idle_timeout: options.idle_timeout,
            stale_resends: Default::default(),
        })
    }

    /// Requests re-sent once on a fresh connection because the server closed a reused one
    /// before any byte of an answer (counted apart from retries).
    pub fn stale_resends(&self) -> u64 {
        match self {
            Transport::Reqwest { stale_resends, .. } => stale_resends.load(std::sync::atomic::Ordering::Relaxed),
            Transport::Http1(client) => client.stale_resends(),
        }
    }

    /// Which client it is, for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Reqwest { .. } => "reqwest",
            Transport::Http1(_) => "http1",
        }
    }

    /// POSTs a JSON `body` to `url` (one of the endpoints the transport was built for).
    pub async fn post(&self, url: &str, body: Bytes) -> Result<Response, TransportError> {
        match self {
            Transport::Reqwest { client, api_key, idle_timeout, stale_resends } => {
                let mut resent = false;
                let resp = loop {
                    let mut req = client.post(url).header("content-type", "application/json").body(body.clone());
                    if let Some(key) = api_key {
                        req = req.bearer_auth(key);
                    }
                    let sent = match idle_timeout {
                        None => req.send().await,
                        Some(idle) => tokio::time::timeout(*idle, req.send()).await.map_err(|_| TransportError {
                            timeout: true,
                            connect: false,
                            certificate: false,
                            message: format!("no answer from the endpoint {} s after the request (client_config.idle_timeout)", idle.as_secs_f64()),
                        })?,
                    };
                    match sent {
                        Ok(resp) => break resp,
                        // The server closed the (pooled) connection before any byte of an
                        // answer: sent once more, on the fresh connection hyper then opens.
                        Err(e) if !resent && closed_before_answer(&e) => {
                            resent = true;
                            stale_resends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                Ok(Response {
                    status: resp.status().as_u16(),
                    retry_after: header("retry-after"),
                    content_type: header("content-type"),
                    body: Body::Reqwest(resp),
                })
            }
            Transport::Http1(client) => {
                let (head, body) = client.post(url, &body).await?;
                Ok(Response { status: head.status, retry_after: head.retry_after, content_type: head.content_type, body: Body::Http1(body) })
            }
        }
    }
}

/// Whether a reqwest failure is a connection the server closed (or reset) before any byte of
/// an answer: hyper's "connection closed before message completed", the race on a pooled
/// connection the server was closing.
fn closed_before_answer(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() || e.is_status() || e.is_body() || e.is_decode() {
        return false;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("connection closed before message completed") {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// An answer's status and the headers the client reads, and its body still to read.
pub(crate) struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    body: Body,
}

enum Body {
    Reqwest(reqwest::Response),
    Http1(http1::BodyReader),
}

impl Response {
    /// The next piece of the body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        match &mut self.body {
            Body::Reqwest(resp) => Ok(resp.chunk().await?),
            Body::Http1(body) => Ok(body.next_chunk().await?),
        }
    }
}
