//! The HTTP server: starting and stopping it, its counters, and the one route table that sends
//! each request to its endpoint (models here, [`crate::chat`], [`crate::batch_api`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::batch::{BatchFaults, BatchStats};
use crate::options::{FaultKind, SimOptions, SimUrlError};
use crate::reply::ReplyRules;
use crate::respond::{json_response, Body, DropConnection};
use crate::state::{Counters, State};

/// Requests served, by outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SimStats {
    pub requests: u64,
    pub ok: u64,
    pub rate_limited: u64,
    pub server_error: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub hung: u64,
    pub unauthorized: u64,
    /// With `prefix_cache`: chat requests looked up, and those whose prefix was cached.
    pub prefix_lookups: u64,
    pub prefix_hits: u64,
    /// Requests that came over HTTP/2 (h2c, prior knowledge); the others were HTTP/1.x.
    pub http2_requests: u64,
}

/// A running simulator. Dropping it stops accepting connections.
pub struct SimServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.state.counters;
        let f = |k: FaultKind| c.faults[k as usize].load(Ordering::Relaxed);
        SimStats {
            requests: c.requests.load(Ordering::Relaxed),
            ok: c.ok.load(Ordering::Relaxed),
            rate_limited: f(FaultKind::RateLimited),
            server_error: f(FaultKind::ServerError),
            dropped: f(FaultKind::Drop),
            malformed: f(FaultKind::Malformed),
            hung: f(FaultKind::Hang),
            unauthorized: f(FaultKind::Unauthorized),
            prefix_lookups: self.state.prefix_cache.as_ref().map_or(0, |c| c.counts().0),
            prefix_hits: self.state.prefix_cache.as_ref().map_or(0, |c| c.counts().1),
            http2_requests: self.state.counters.http2.load(Ordering::Relaxed),
        }
    }

    /// Sets the faults of the batch endpoints (see [`BatchFaults`]).
    pub fn set_batch_faults(&self, faults: BatchFaults) {
        self.state.batches.set_faults(faults);
    }

    /// What the batch endpoints have seen (batches and answers per `custom_id`).
    pub fn batch_stats(&self) -> BatchStats {
        self.state.batches.stats()
    }

    pub fn shutdown(self) {
        self.accept.abort();
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Why the simulator could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    #[error(transparent)]
    Fault(#[from] crate::options::FaultError),
    /// The `replies=` file is missing or malformed (names the file, and the line).
    #[error(transparent)]
    Url(#[from] SimUrlError),
    #[error("--host/--port do not form an address: {0}")]
    Address(#[from] std::net::AddrParseError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

/// Starts the simulator on an ephemeral 127.0.0.1 port.
pub async fn start(opts: SimOptions) -> Result<SimServer, SimError> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await
}

/// Starts the simulator on `addr`. The `replies=` file, if any, is read and checked first: a
/// missing or malformed one is [`SimError::Url`] ([`SimUrlError::RepliesFile`] or
/// [`SimUrlError::RepliesLine`]), before anything listens.
pub async fn start_on(addr: SocketAddr, opts: SimOptions) -> Result<SimServer, SimError> {
    let rules = opts.replies.as_deref().map(ReplyRules::load).transpose()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| SimError::Listen { addr, error })?;
    let addr = listener.local_addr().map_err(|error| SimError::Listen { addr, error })?;
    let mut acc = 0.0;
    let cumulative = opts
        .faults
        .iter()
        .map(|f| {
            acc += f.rate;
            (acc, f.kind)
        })
        .collect();
    let prefix_cache = opts.prefix_cache.map(crate::prefix_cache::PrefixCache::new);
    let state =
        Arc::new(State { opts, rules, counters: Counters::default(), cumulative, in_flight: AtomicU64::new(0), prefix_cache, batches: Default::default() });
    let accept_state = state.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = accept_state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                // HTTP/1.1 (kept alive), or h2c when the client opens with HTTP/2's preface.
                let _ =
                    hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(SimServer { addr, state, accept })
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    match (req.method(), path.trim_end_matches('/')) {
        (&Method::GET, "/v1/models") | (&Method::GET, "/models") => Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": crate::SIM_MODEL_ID, "object": "model", "owned_by": "modelcall (SIMULATED)"}]}),
        )),
        (&Method::POST, "/v1/chat/completions") | (&Method::POST, "/chat/completions") => crate::chat::chat(state, req).await,
        (_, p) if crate::batch_api::is_batch_route(p) => crate::batch_api::handle(state, req).await,
        _ => Ok(json_response(StatusCode::NOT_FOUND, &json!({"error": {"message": format!("no route {path}"), "type": "not_found"}}))),
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
