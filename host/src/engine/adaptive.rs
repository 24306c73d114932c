//! Adaptive concurrency (`concurrency.mode: adaptive`): the bound on requests in flight is
//! found, not guessed.
//!
//! The limits live with the endpoints (`modelcall_model::pool::limit`, a Gradient2 / Envoy
//! adaptive-concurrency style controller on windows of samples): each endpoint of each model
//! client has its own, fed by its own attempts (latency, 429/503), so one throttling replica
//! does not hold the others down. The run's total is the sum of the endpoints' limits, capped by
//! `max_concurrent_requests` (the engine's semaphore, which stays at that ceiling: a request
//! over an endpoint's limit waits in the pool for a slot).
//!
//! This side reports: the total over the run, and what the endpoints did once every limit had
//! converged (varied by less than 10 % over its last windows), for `run_summary.json`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelcall_model::pool::Pool;

pub struct AdaptiveLimit {
    pools: Vec<Arc<Pool>>,
    ceiling: usize,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    /// (seconds since start, total limit) each time the total moved by a whole request.
    history: Vec<(f64, usize)>,
    last: usize,
    /// When every limit had converged.
    converged: Option<Instant>,
    /// Samples, and throttled samples, once converged.
    settled: (u64, u64),
}

/// What the endpoint did once the limit had settled, for `run_summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Settled {
    /// Seconds into the run when counting began.
    pub from_s: f64,
    pub samples: u64,
    pub throttled: u64,
}

impl AdaptiveLimit {
    /// Turns the endpoints of every model client of the process to adaptive limits starting at
    /// [`AdaptiveLimit::initial`] each, at most `ceiling`.
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        let pools = modelcall_model::pool::adapt_all(Self::initial(ceiling), ceiling);
        let mut a = AdaptiveLimit {
            pools,
            ceiling,
            state: Mutex::new(State { started: Instant::now(), history: Vec::new(), last: 0, converged: None, settled: (0, 0) }),
        };
        let first = a.total();
        let s = a.state.get_mut().unwrap();
        s.history.push((0.0, first));
        s.last = first;
        a
    }

    /// The limit an endpoint starts with.
    pub fn initial(ceiling: usize) -> usize {
        ceiling.clamp(1, 16)
    }

    fn total(&self) -> usize {
        let sum: Option<f64> = self.pools.iter().map(|p| p.total_limit()).sum();
        match sum {
            Some(t) if !self.pools.is_empty() => (t as usize).clamp(1, self.ceiling),
            _ => self.ceiling,
        }
    }

    pub fn limit(&self) -> usize {
        self.total()
    }

    /// The limit over the run, for `run_summary.json`.
    pub fn history(&self) -> Vec<(f64, usize)> {
        self.state.lock().unwrap().history.clone()
    }

    /// Throttling once the limits had converged; `None` when they never did.
    pub fn settled(&self) -> Option<Settled> {
        let s = self.state.lock().unwrap();
        let from = s.converged?;
        let from_s = (from.saturating_duration_since(s.started).as_secs_f64() * 1000.0).round() / 1000.0;
        Some(Settled { from_s, samples: s.settled.0, throttled: s.settled.1 })
    }

    /// One finished record: its last latency, and whether the endpoint throttled it (429/503).
    /// The endpoints' limits learn from every attempt on their own; this keeps the run's account.
    pub fn on_sample(&self, _latency: Option<Duration>, throttled: bool) {
        let total = self.total();
        let converged = match self.pools.as_slice() {
            [] => None,
            pools => pools.iter().map(|p| p.converged_since()).try_fold(None, |acc: Option<Instant>, t| t.map(|t| acc.max(Some(t)))).flatten(),
        };
        let mut s = self.state.lock().unwrap();
        if s.converged.is_none() {
            s.converged = converged;
        }
        if s.converged.is_some() {
            s.settled.0 += 1;
            s.settled.1 += throttled as u64;
        }
        if total != s.last {
            s.last = total;
            let t = s.started.elapsed().as_secs_f64();
            s.history.push(((t * 1000.0).round() / 1000.0, total));
            if s.history.len() > 10_000 {
                // Keep the shape, not every step.
                let kept: Vec<(f64, usize)> = s.history.iter().step_by(2).copied().collect();
                s.history = kept;
            }
        }
    }

    /// Returns a permit after its request (the semaphore is the fixed ceiling).
    pub fn release(&self, permit: tokio::sync::OwnedSemaphorePermit) {
        drop(permit);
    }
}
