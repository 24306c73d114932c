//! Adaptive concurrency (`concurrency.mode: adaptive`): the bound on requests in flight is
//! found, not guessed, in the style of TCP Vegas / Netflix's concurrency-limits.
//!
//! Every finished request is a sample (its latency, and whether the endpoint pushed back with
//! 429/503). The limit starts low and grows by one per sample while latency stays near the
//! lowest seen (the endpoint has spare slots: slow start), by one per round of `limit` samples
//! while it rises a little (near the knee), and shrinks by a tenth when latency doubles or the
//! endpoint throttles (past the knee), at most once per round trip. `max_concurrent_requests` is
//! the ceiling. The limit is applied to the engine's semaphore by adding or forgetting permits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The lowest limit (the endpoint is always tried with this many in flight).
const FLOOR: usize = 4;

/// How long after the first sign of the knee (the end of slow start) the limit counts as settled, for the
/// after-convergence throttle count in the summary.
const SETTLE: Duration = Duration::from_secs(2);

pub struct AdaptiveLimit {
    semaphore: Arc<Semaphore>,
    ceiling: usize,
    state: Mutex<State>,
}

struct State {
    limit: f64,
    /// Permits the semaphore holds in all (available or lent out).
    granted: usize,
    /// Permits to take out of circulation as they come back (the limit went down while they
    /// were lent out).
    debt: usize,
    /// The lowest latency seen (slowly forgotten, so a drifting endpoint is followed).
    min_latency: Option<Duration>,
    /// Smoothed latency of recent samples.
    recent: Option<Duration>,
    last_decrease: Instant,
    /// Growing by one a sample until the first sign of the knee (then by one a round).
    slow_start: bool,
    started: Instant,
    /// (seconds since start, limit) each time the limit moved by a whole request.
    history: Vec<(f64, usize)>,
    /// When the endpoint first showed its knee (slow start ended).
    knee_found: Option<Instant>,
    /// Samples, and throttled samples, from [`SETTLE`] after the knee was found.
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
    /// Starts at `initial` (at most `ceiling`) permits on `semaphore`, which must hold exactly
    /// `initial` permits now.
    pub fn new(semaphore: Arc<Semaphore>, initial: usize, ceiling: usize) -> Self {
        let now = Instant::now();
        AdaptiveLimit {
            semaphore,
            ceiling: ceiling.max(FLOOR),
            state: Mutex::new(State {
                limit: initial as f64,
                granted: initial,
                debt: 0,
                min_latency: None,
                recent: None,
                last_decrease: now,
                slow_start: true,
                started: now,
                history: vec![(0.0, initial)],
                knee_found: None,
                settled: (0, 0),
            }),
        }
    }

    /// The permits to start with for a ceiling.
    pub fn initial(ceiling: usize) -> usize {
        ceiling.clamp(1, 16)
    }

    pub fn limit(&self) -> usize {
        self.state.lock().unwrap().limit as usize
    }

    /// The limit over the run, for `run_summary.json`.
    pub fn history(&self) -> Vec<(f64, usize)> {
        self.state.lock().unwrap().history.clone()
    }

    /// Throttling once the limit had settled; `None` when it never did (no knee found).
    pub fn settled(&self) -> Option<Settled> {
        let s = self.state.lock().unwrap();
        let from = s.knee_found? + SETTLE;
        let from_s = (from.saturating_duration_since(s.started).as_secs_f64() * 1000.0).round() / 1000.0;
        Some(Settled { from_s, samples: s.settled.0, throttled: s.settled.1 })
    }

    /// One finished request: its latency (none when every attempt was refused), and whether
    /// the endpoint throttled it (429/503).
    pub fn on_sample(&self, latency: Option<Duration>, throttled: bool) {
        let mut s = self.state.lock().unwrap();
        let latency = match (latency, s.recent) {
            (Some(l), _) => l,
            (None, Some(r)) => r,
            (None, None) => Duration::from_millis(1),
        };
        // The lowest latency, forgotten slowly (0.02 % a sample towards the present: fast
        // enough to follow an endpoint that slows for good, slow enough that a queue it builds
        // up itself over a few seconds does not pass for its unloaded latency).
        let mut min = s.min_latency.map_or(latency, |m| m.min(latency));
        min += latency.saturating_sub(min).mul_f64(0.0002);
        s.min_latency = Some(min);
        let recent = match s.recent {
            Some(r) => r.mul_f64(0.8) + latency.mul_f64(0.2),
            None => latency,
        };
        s.recent = Some(recent);
        // The unloaded round trip: one decrease per round trip at most.
        let round_trip = min.max(Duration::from_millis(1));
        let ratio = latency.as_secs_f64() / min.as_secs_f64().max(1e-6);
        let old = s.limit as usize;
        if s.knee_found.is_some_and(|t| t.elapsed() >= SETTLE) {
            s.settled.0 += 1;
            s.settled.1 += throttled as u64;
        }
        if throttled || ratio >= 1.5 {
            s.slow_start = false;
            if s.last_decrease.elapsed() >= round_trip {
                s.limit = (s.limit * if throttled { 0.7 } else { 0.85 }).max(FLOOR as f64);
                s.last_decrease = Instant::now();
            }
        } else if ratio < 1.05 && s.slow_start {
            // Slow start: the endpoint has spare slots; grow by half a request a sample (×1.5
            // a round trip), so the first overshoot of the knee stays small.
            s.limit = (s.limit + 0.5).min(self.ceiling as f64);
        } else if ratio < 1.25 {
            // Past slow start, or near the knee: one more per round of `limit` samples.
            s.slow_start &= ratio < 1.05;
            s.limit = (s.limit + 1.0 / s.limit).min(self.ceiling as f64);
        } else {
            s.slow_start = false;
        }
        let _ = recent;
        // Slow start ends at the first sign of the knee, whichever it was.
        if !s.slow_start {
            s.knee_found.get_or_insert_with(Instant::now);
        }
        let target = s.limit as usize;
        if target != old {
            let t = s.started.elapsed().as_secs_f64();
            s.history.push(((t * 1000.0).round() / 1000.0, target));
            if s.history.len() > 10_000 {
                // Keep the shape, not every step.
                let kept: Vec<(f64, usize)> = s.history.iter().step_by(2).copied().collect();
                s.history = kept;
            }
        }
        // Bring the semaphore to the target: add permits (first cancelling debt), or forget
        // available ones and owe the rest, taken out as lent permits come back (`release`).
        let effective = s.granted - s.debt;
        if target > effective {
            let mut more = target - effective;
            let cancelled = more.min(s.debt);
            s.debt -= cancelled;
            more -= cancelled;
            if more > 0 {
                self.semaphore.add_permits(more);
                s.granted += more;
            }
        } else if target < effective {
            let fewer = effective - target;
            let forgotten = self.semaphore.forget_permits(fewer);
            s.granted -= forgotten;
            s.debt += fewer - forgotten;
        }
    }

    /// Returns a permit after its request: kept out of circulation while the limit is lower
    /// than the permits lent out.
    pub fn release(&self, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut s = self.state.lock().unwrap();
        if s.debt > 0 {
            s.debt -= 1;
            s.granted -= 1;
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_latency_is_flat_and_backs_off_when_it_doubles_or_is_throttled() {
        let sem = Arc::new(Semaphore::new(4));
        let a = AdaptiveLimit::new(sem.clone(), 4, 100);
        for _ in 0..50 {
            a.on_sample(Some(Duration::from_millis(100)), false);
        }
        assert_eq!(a.limit(), 29);
        assert_eq!(sem.available_permits(), 29);
        std::thread::sleep(Duration::from_millis(120));
        a.on_sample(Some(Duration::from_millis(100)), true);
        let after = a.limit();
        assert!(after < 29, "{after}");
        // Past the first sign of the knee: one more a round (of `limit` samples), no longer one a sample.
        for _ in 0..3 * after {
            a.on_sample(Some(Duration::from_millis(100)), false);
        }
        assert!((after + 2..=after + 4).contains(&a.limit()), "{after} → {}", a.limit());
        let fresh = AdaptiveLimit::new(Arc::new(Semaphore::new(4)), 4, 100);
        for _ in 0..400 {
            fresh.on_sample(Some(Duration::from_millis(100)), false);
        }
        assert_eq!(fresh.limit(), 100, "capped at the ceiling");
        assert!(a.history().len() > 2);
    }
}
