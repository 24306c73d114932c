//! Several endpoints serving one model (a vLLM/SGLang fleet): each request goes to the endpoint
//! with the fewest requests in flight per unit of weight, among those under their own
//! `max_in_flight` (an attempt waits while every endpoint is full); an endpoint failing repeatedly
//! (connection errors, 5xx, timeouts) is ejected for a back-off period, then probed again
//! (outlier ejection, as in Envoy). A retried request picks again, so it lands elsewhere when
//! its endpoint failed.
//!
//! Each endpoint also has its own bound found from what it does ([`limit`]): in
//! `concurrency.mode: adaptive` every endpoint's limit is found from its latency and its 429/503s
//! (the run's total is the sum, under `max_concurrent_requests`); in a fixed-concurrency pool an
//! endpoint gets a limit once it throttles (a replica answering 429 quickly would otherwise look
//! idle and draw most of the traffic). An endpoint at its limit is not chosen; a retry prefers
//! another endpoint than the one it just tried; an endpoint back from an ejection is probed with
//! one attempt, then ramps up.

pub mod limit;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::settings::EndpointShare;

/// Consecutive failures that eject an endpoint.
const EJECT_AFTER: u32 = 3;
const FIRST_EJECTION: Duration = Duration::from_secs(1);
const LONGEST_EJECTION: Duration = Duration::from_secs(30);

/// One endpoint of a pool.
pub struct Endpoint {
    /// Where requests go (with any userinfo and the query).
    pub url: String,
    /// What may be shown (redacted).
    pub shown: String,
    pub weight: f64,
    /// The endpoint's own cap on attempts in flight (`u64::MAX`: none).
    max_in_flight: u64,
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    ejections: AtomicU64,
    health: Mutex<Health>,
    /// Its own limit (`None`: a single endpoint in a fixed-concurrency run, not limited).
    control: Mutex<Option<limit::Controller>>,
    index: usize,
}

#[derive(Default)]
struct Health {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    next_ejection: Option<Duration>,
}

/// What an endpoint did, for `run_summary.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointStats {
    pub endpoint: String,
    pub requests: u64,
    pub failures: u64,
    pub ejections: u64,
    /// 429/503 answers.
    pub throttled: u64,
    /// Its limit at the end (adaptive, or after it throttled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The pools of the process, for [`adapt_all`].
static POOLS: Mutex<Vec<Weak<Pool>>> = Mutex::new(Vec::new());

/// Turns every live pool's endpoints to adaptive limits (`concurrency.mode: adaptive`), each
/// starting at `initial` and at most `ceiling`; returns the pools.
pub fn adapt_all(initial: usize, ceiling: usize) -> Vec<Arc<Pool>> {
    let mut pools = POOLS.lock().unwrap();
    pools.retain(|p| p.strong_count() > 0);
    let live: Vec<Arc<Pool>> = pools.iter().filter_map(Weak::upgrade).collect();
    for p in &live {
        p.adapt(initial, ceiling);
    }
    live
}

pub struct Pool {
    endpoints: Vec<Endpoint>,
    /// Signalled when a capped endpoint frees a slot (one waiter).
    freed: Notify,
    /// Signalled to every attempt waiting for an endpoint other than the one it avoids (few:
    /// retries), counted in `avoiding`.
    freed_any: Notify,
    avoiding: AtomicU64,
}

/// Counts an attempt waiting in [`Pool::pick_avoiding`] while it waits.
struct AvoidingWaiter<'a>(&'a AtomicU64);

impl<'a> AvoidingWaiter<'a> {
    fn new(n: &'a AtomicU64) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        AvoidingWaiter(n)
    }
}

impl Drop for AvoidingWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An endpoint lent to one attempt; counted in flight until dropped.
pub struct Lease<'a> {
    pub endpoint: &'a Endpoint,
    pool: &'a Pool,
    /// Attempts in flight on the endpoint with this one.
    in_flight: u64,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.pool.notify_freed();
    }
}

impl Lease<'_> {
    /// What the attempt showed of the endpoint's load: its latency and whether it was throttled
    /// (429/503). Feeds the endpoint's limit.
    pub fn observed(&self, latency: Duration, throttled: bool) {
        let mut c = self.endpoint.control.lock().unwrap();
        if let Some(c) = c.as_mut() {
            let before = c.allowed();
            c.on_sample(latency, throttled, self.in_flight);
            if c.allowed() > before {
                self.pool.freed.notify_waiters();
                self.pool.freed_any.notify_waiters();
            }
        }
    }
}

impl Endpoint {
    fn allowed(&self) -> u64 {
        let limit = self.control.lock().unwrap().as_ref().map_or(u64::MAX, |c| c.allowed());
        limit.min(self.max_in_flight)
    }

    /// Its place in the pool (for [`Pool::pick_avoiding`]).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Pool {
    /// [`Pool::new`], shared and known to [`adapt_all`].
    pub fn shared(endpoints: Vec<(String, String, EndpointShare)>) -> Arc<Pool> {
        let pool = Arc::new(Pool::new(endpoints));
        let mut pools = POOLS.lock().unwrap();
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(&pool));
        pool
    }

    /// `(url, shown, share)` per endpoint, in order.
    pub fn new(endpoints: Vec<(String, String, EndpointShare)>) -> Pool {
        let guarded = endpoints.len() > 1;
        let endpoints: Vec<Endpoint> = endpoints
            .into_iter()
            .enumerate()
            .map(|(index, (url, shown, share))| Endpoint {
                url,
                shown,
                weight: if share.weight > 0.0 { share.weight } else { 1.0 },
                max_in_flight: share.max_in_flight.map_or(u64::MAX, |n| u64::from(n.max(1))),
                in_flight: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                ejections: AtomicU64::new(0),
                health: Mutex::new(Health::default()),
                control: Mutex::new(guarded.then(|| limit::Controller::new(limit::Mode::Guard, 0, usize::MAX))),
                index,
            })
            .collect();
        Pool { endpoints, freed: Notify::new(), freed_any: Notify::new(), avoiding: AtomicU64::new(0) }
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn first(&self) -> &Endpoint {
        &self.endpoints[0]
    }

    /// Adaptive limits for every endpoint, from `initial` in flight each.
    pub fn adapt(&self, initial: usize, ceiling: usize) {
        for e in &self.endpoints {
            *e.control.lock().unwrap() = Some(limit::Controller::new(limit::Mode::Adaptive, initial, ceiling));
        }
        self.freed.notify_waiters();
        self.freed_any.notify_waiters();
    }

    /// The sum of the endpoints' limits (`None` when one has none).
    pub fn total_limit(&self) -> Option<f64> {
        self.endpoints.iter().map(|e| e.control.lock().unwrap().as_ref().and_then(|c| c.limit())).sum()
    }

    /// Since when every endpoint's limit has converged (`None`: one has not, or has none).
    pub fn converged_since(&self) -> Option<Instant> {
        let mut latest = None;
        for e in &self.endpoints {
            let t = e.control.lock().unwrap().as_ref().and_then(|c| c.converged_since())?;
            latest = latest.max(Some(t));
        }
        latest
    }

    /// The endpoint for the next attempt: the least loaded per weight among those not ejected
    /// and under their cap (when all are ejected, the one whose ejection ends first: it is
    /// probed). Waits while every candidate is at its cap.
    pub async fn pick(&self) -> Lease<'_> {
        self.pick_avoiding(None).await
    }

    /// [`Pool::pick`], preferring any other endpoint with room to the one at `avoid` (the one a
    /// retried attempt just failed on).
    ///
    /// While another endpoint is healthy but at its limit, the attempt waits for it rather than
    /// going back to `avoid` (a retry after a 429 sent straight back to the replica that refused
    /// it would fail the record while the other replica is merely busy).
    pub async fn pick_avoiding(&self, avoid: Option<usize>) -> Lease<'_> {
        let avoid = avoid.filter(|_| self.endpoints.len() > 1);
        if let Some(a) = avoid {
            let _waiting = AvoidingWaiter::new(&self.avoiding);
            loop {
                // Registered before the look: a slot freed in between wakes it.
                let notified = self.freed_any.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(lease) = self.try_pick_among(Some(a)) {
                    return lease;
                }
                if !self.another_healthy(a) {
                    break;
                }
                notified.await;
            }
        }
        loop {
            if let Some(lease) = self.try_pick_among(None) {
                return lease;
            }
            // A slot freed since the look above left a permit (`notify_one`): not missed.
            self.freed.notified().await;
        }
    }

    /// Whether an endpoint other than `avoid` is not ejected.
    fn another_healthy(&self, avoid: usize) -> bool {
        let now = Instant::now();
        self.endpoints.iter().any(|e| e.index != avoid && e.health.lock().unwrap().ejected_until.is_none_or(|t| t <= now))
    }

    fn notify_freed(&self) {
        self.freed.notify_one();
        if self.avoiding.load(Ordering::Acquire) > 0 {
            self.freed_any.notify_waiters();
        }
    }

    /// [`Pool::pick`] without waiting: `None` when every candidate is at its cap.
    pub fn try_pick(&self) -> Option<Lease<'_>> {
        self.try_pick_avoiding(None)
    }

    fn try_pick_avoiding(&self, avoid: Option<usize>) -> Option<Lease<'_>> {
        if let Some(a) = avoid.filter(|_| self.endpoints.len() > 1) {
            if let Some(lease) = self.try_pick_among(Some(a)) {
                return Some(lease);
            }
        }
        self.try_pick_among(None)
    }

    /// The pick, leaving out the endpoint at `skip`.
    fn try_pick_among(&self, skip: Option<usize>) -> Option<Lease<'_>> {
        loop {
            let now = Instant::now();
            // One pass: the least loaded healthy endpoint with room, whether any is healthy, and
            // the ejected endpoint with room whose ejection ends first.
            let (mut best, mut best_load, mut any_healthy, mut probe) = (None, f64::INFINITY, false, None::<(&Endpoint, Instant)>);
            for e in self.endpoints.iter().filter(|e| Some(e.index) != skip) {
                let ejected_until = e.health.lock().unwrap().ejected_until.filter(|t| *t > now);
                let in_flight = e.in_flight.load(Ordering::Acquire);
                let room = in_flight < e.allowed();
                match ejected_until {
                    None => {
                        any_healthy = true;
                        let load = in_flight as f64 / e.weight;
                        if room && load < best_load {
                            (best, best_load) = (Some(e), load);
                        }
                    }
                    Some(until) if room && probe.is_none_or(|(_, t)| until < t) => probe = Some((e, until)),
                    Some(_) => {}
                }
            }
            let chosen = match (any_healthy, skip) {
                (true, _) => best?,
                // Avoiding one endpoint never means sending to an ejected one instead.
                (false, Some(_)) => return None,
                (false, None) => probe?.0,
            };
            // Taken only while under the cap: two attempts racing for the last slot do not
            // both get it; the loser looks again (an uncapped endpoint always has room).
            let allowed = chosen.allowed();
            let took = chosen.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < allowed).then_some(n + 1));
            if let Ok(before) = took {
                chosen.requests.fetch_add(1, Ordering::Relaxed);
                return Some(Lease { endpoint: chosen, pool: self, in_flight: before + 1 });
            }
        }
    }

    /// The attempt on `endpoint` worked (any answer from the model, errors of the request
    /// itself included): it is healthy.
    pub fn succeeded(&self, endpoint: &Endpoint) {
        let mut h = endpoint.health.lock().unwrap();
        h.consecutive_failures = 0;
        h.next_ejection = None;
    }

    /// The attempt on `endpoint` failed in a way that says the endpoint is unwell; returns true
    /// when this ejects it.
    pub fn failed(&self, endpoint: &Endpoint) -> bool {
        endpoint.failures.fetch_add(1, Ordering::Relaxed);
        if self.endpoints.len() < 2 {
            return false;
        }
        let mut h = endpoint.health.lock().unwrap();
        h.consecutive_failures += 1;
        if h.consecutive_failures < EJECT_AFTER || h.ejected_until.is_some_and(|t| t > Instant::now()) {
            return false;
        }
        let period = h.next_ejection.unwrap_or(FIRST_EJECTION);
        h.ejected_until = Some(Instant::now() + period);
        h.next_ejection = Some((period * 2).min(LONGEST_EJECTION));
        h.consecutive_failures = 0;
        endpoint.ejections.fetch_add(1, Ordering::Relaxed);
        // Back from the ejection: one probe, then a ramp (not a share of everything in flight).
        if let Some(c) = endpoint.control.lock().unwrap().as_mut() {
            c.readmit();
        }
        tracing::warn!(endpoint = %endpoint.shown, seconds = period.as_secs_f64(), "endpoint ejected after repeated failures; it is probed again after that");
        true
    }

    /// An endpoint's throttles and limit (one lock at a time).
    fn control_of(&self, e: &Endpoint) -> (u64, Option<u64>) {
        let c = e.control.lock().unwrap();
        c.as_ref().map_or((0, None), |c| (c.throttles, c.limit().map(|l| l as u64)))
    }

    pub fn stats(&self) -> Vec<EndpointStats> {
        self.endpoints
            .iter()
            .map(|e| EndpointStats {
                endpoint: e.shown.clone(),
                requests: e.requests.load(Ordering::Relaxed),
                failures: e.failures.load(Ordering::Relaxed),
                ejections: e.ejections.load(Ordering::Relaxed),
                throttled: self.control_of(e).0,
                limit: self.control_of(e).1,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_of(shares: &[EndpointShare]) -> Pool {
        Pool::new(shares.iter().enumerate().map(|(i, s)| (format!("http://e{i}"), format!("http://e{i}"), *s)).collect())
    }

    fn pool(n: usize) -> Pool {
        pool_of(&vec![EndpointShare::default(); n])
    }

    impl Pool {
        fn pick_now(&self) -> Lease<'_> {
            self.try_pick().expect("room")
        }
    }

    #[test]
    fn an_endpoint_never_has_more_than_its_cap_in_flight_and_a_freed_slot_wakes_a_waiter() {
        let p = std::sync::Arc::new(pool_of(&[EndpointShare { weight: 1.0, max_in_flight: Some(1) }, EndpointShare { weight: 4.0, max_in_flight: Some(2) }]));
        let held: Vec<Lease<'_>> = (0..3).map(|_| p.pick_now()).collect();
        assert_eq!(p.stats().iter().map(|s| s.requests).collect::<Vec<_>>(), vec![1, 2], "the heavier endpoint fills to its cap, not past it");
        assert!(p.try_pick().is_none(), "every endpoint is at its cap");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let waiter = {
                let p = p.clone();
                tokio::spawn(async move { p.pick().await.endpoint.url.clone() })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished(), "the attempt waits for a slot");
            drop(held);
            let url = tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("woken by the freed slot").unwrap();
            assert!(url.starts_with("http://e"), "{url}");
        });
    }

    #[test]
    fn requests_spread_by_load_and_a_failing_endpoint_is_ejected_then_probed() {
        let p = pool(3);
        let leases: Vec<Lease<'_>> = (0..6).map(|_| p.pick_now()).collect();
        let per: Vec<u64> = p.stats().iter().map(|s| s.requests).collect();
        assert_eq!(per, vec![2, 2, 2], "least in flight first");
        drop(leases);
        let bad = &p.endpoints[1];
        assert!(!p.failed(bad) && !p.failed(bad));
        assert!(p.failed(bad), "the third failure in a row ejects");
        for _ in 0..10 {
            assert_ne!(p.pick_now().endpoint.url, "http://e1", "an ejected endpoint gets nothing");
        }
        bad.health.lock().unwrap().ejected_until = Some(Instant::now());
        let _probe: Vec<Lease<'_>> = (0..3).map(|_| p.pick_now()).collect();
        assert!(p.stats()[1].requests > 2, "probed again after the ejection");
        assert_eq!(p.stats()[1].ejections, 1);
    }
}
