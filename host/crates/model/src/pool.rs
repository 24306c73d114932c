//! Several endpoints serving one model (a vLLM/SGLang fleet): each request goes to the endpoint
//! with the fewest requests in flight per unit of weight; an endpoint failing repeatedly
//! (connection errors, 5xx, timeouts) is ejected for a back-off period, then probed again
//! (outlier ejection, as in Envoy). A retried request picks again, so it lands elsewhere when
//! its endpoint failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    ejections: AtomicU64,
    health: Mutex<Health>,
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
}

pub struct Pool {
    endpoints: Vec<Endpoint>,
}

/// An endpoint lent to one attempt; counted in flight until dropped.
pub struct Lease<'a> {
    pub endpoint: &'a Endpoint,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// `(url, shown, weight)` per endpoint, in order.
    pub fn new(endpoints: Vec<(String, String, f64)>) -> Pool {
        Pool {
            endpoints: endpoints
                .into_iter()
                .map(|(url, shown, weight)| Endpoint {
                    url,
                    shown,
                    weight: if weight > 0.0 { weight } else { 1.0 },
                    in_flight: AtomicU64::new(0),
                    requests: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    ejections: AtomicU64::new(0),
                    health: Mutex::new(Health::default()),
                })
                .collect(),
        }
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

    /// The endpoint for the next attempt: the least loaded per weight among those not ejected
    /// (when all are ejected, the one whose ejection ends first: it is probed).
    pub fn pick(&self) -> Lease<'_> {
        let now = Instant::now();
        let load = |e: &Endpoint| e.in_flight.load(Ordering::Relaxed) as f64 / e.weight;
        let available = self.endpoints.iter().filter(|e| e.health.lock().unwrap().ejected_until.is_none_or(|t| t <= now));
        let chosen = available.min_by(|a, b| load(a).total_cmp(&load(b))).unwrap_or_else(|| {
            self.endpoints
                .iter()
                .min_by_key(|e| e.health.lock().unwrap().ejected_until.unwrap_or(now))
                .expect("a pool has endpoints")
        });
        chosen.in_flight.fetch_add(1, Ordering::Relaxed);
        chosen.requests.fetch_add(1, Ordering::Relaxed);
        Lease { endpoint: chosen }
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
        tracing::warn!(endpoint = %endpoint.shown, seconds = period.as_secs_f64(), "endpoint ejected after repeated failures; it is probed again after that");
        true
    }

    pub fn stats(&self) -> Vec<EndpointStats> {
        self.endpoints
            .iter()
            .map(|e| EndpointStats {
                endpoint: e.shown.clone(),
                requests: e.requests.load(Ordering::Relaxed),
                failures: e.failures.load(Ordering::Relaxed),
                ejections: e.ejections.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Pool {
        Pool::new((0..n).map(|i| (format!("http://e{i}"), format!("http://e{i}"), 1.0)).collect())
    }

    #[test]
    fn requests_spread_by_load_and_a_failing_endpoint_is_ejected_then_probed() {
        let p = pool(3);
        let leases: Vec<Lease<'_>> = (0..6).map(|_| p.pick()).collect();
        let per: Vec<u64> = p.stats().iter().map(|s| s.requests).collect();
        assert_eq!(per, vec![2, 2, 2], "least in flight first");
        drop(leases);
        let bad = &p.endpoints[1];
        assert!(!p.failed(bad) && !p.failed(bad));
        assert!(p.failed(bad), "the third failure in a row ejects");
        for _ in 0..10 {
            assert_ne!(p.pick().endpoint.url, "http://e1", "an ejected endpoint gets nothing");
        }
        bad.health.lock().unwrap().ejected_until = Some(Instant::now());
        let _probe: Vec<Lease<'_>> = (0..3).map(|_| p.pick()).collect();
        assert!(p.stats()[1].requests > 2, "probed again after the ejection");
        assert_eq!(p.stats()[1].ejections, 1);
    }
}
