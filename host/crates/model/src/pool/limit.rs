//! One endpoint's bound on attempts in flight, found from what the endpoint does (the adaptive
//! concurrency of `concurrency.mode: adaptive`, and the throttle guard of a pool).
//!
//! The design follows Netflix concurrency-limits' Gradient2 and Envoy's adaptive-concurrency
//! filter, on windows of samples rather than single ones:
//!
//! * Samples (one per attempt: latency, and whether the endpoint answered 429/503) are gathered
//!   in windows of `max(32, limit / 2)` samples. Each window's mean latency is smoothed over
//!   windows (the short-term latency); the baseline is the lowest smoothed latency seen, which
//!   creeps up towards the present with a time constant of a minute (an endpoint that slows for
//!   good is followed; a queue the client built in a few seconds is not taken for the baseline).
//!   A single slow reply, or service times that vary with the output's length (uniform 50–500 ms),
//!   move a window's mean by a few per cent: they are not congestion.
//! * Congestion is a throttle (429/503: acted on at once, at most once per baseline round trip)
//!   or a smoothed latency above `TOLERANCE` × the baseline at a window's end. For latency the
//!   limit moves as Gradient2's does: `new = limit × gradient + √limit` with the gradient
//!   `TOLERANCE · baseline / short` (at least 0.5), smoothed (`SMOOTHING` of the new, the rest
//!   of the old), so a queue shrinks by ~10 % a window and settles just past the knee instead of
//!   being cut repeatedly while it drains. A throttle cuts by `THROTTLE_CUT` (by half when an
//!   attempt sent after the last cut is throttled before the limit grew back) and remembers the
//!   level (`knee`).
//! * Otherwise, when the window used at least half of the limit, the limit grows: by half an
//!   attempt per answer until the first congestion (slow start: ×1.5 a round trip), then +√limit a window below 90 % of the knee, +1
//!   a window up to the knee and +0.1 a window past it (the endpoint is probed gently where it
//!   pushed back before; 20 % past the knee without a sign of congestion, the knee is forgotten).
//! * The limit has converged when it varied by less than 10 % over the last `SETTLED_WINDOWS`
//!   windows.
//!
//! A guard (`Mode::Guard`, a fixed-concurrency pool) has no limit until the endpoint throttles,
//! and then acts on throttles only. An endpoint back from an ejection restarts at one attempt
//! in flight (a probe) and ramps from there.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Smoothed latency above this many times the baseline is congestion.
const TOLERANCE: f64 = 1.5;
/// The limit after a throttle, as a share of the limit.
const THROTTLE_CUT: f64 = 0.9;
/// The limit after a throttle of an attempt sent under a limit already cut (and not grown since).
const THROTTLE_AGAIN_CUT: f64 = 0.5;
/// The weight of a window's new limit against the old one when latency rises (Gradient2's 0.2).
const SMOOTHING: f64 = 0.2;
/// Samples in a window, at least.
const MIN_WINDOW: u64 = 32;
/// Windows over which a converged limit varied by less than 10 %.
pub const SETTLED_WINDOWS: usize = 10;
/// The baseline creeps up towards the smoothed latency with this time constant.
const BASELINE_DRIFT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// No limit until the endpoint throttles; throttles only.
    Guard,
    /// Latency and throttles, from `initial` in flight.
    Adaptive,
}

#[derive(Debug)]
pub struct Controller {
    mode: Mode,
    /// `None`: no limit (a guard the endpoint never throttled).
    limit: Option<f64>,
    floor: f64,
    ceiling: f64,
    slow_start: bool,
    knee: Option<f64>,
    /// Until the first answer after an ejection: one attempt at a time.
    probing: bool,
    // The current window.
    count: u64,
    sum_s: f64,
    peak_in_flight: u64,
    started: Instant,
    /// Smoothed window mean, and the baseline (seconds).
    short: Option<f64>,
    baseline: Option<f64>,
    last_cut: Option<Instant>,
    recent: VecDeque<f64>,
    converged_since: Option<Instant>,
    skip_window: bool,
    /// The limit grew since the last cut.
    grown_since_cut: bool,
    pub throttles: u64,
}

impl Controller {
    pub fn new(mode: Mode, initial: usize, ceiling: usize) -> Controller {
        let ceiling = ceiling.max(1) as f64;
        Controller {
            mode,
            limit: match mode {
                Mode::Guard => None,
                Mode::Adaptive => Some((initial.max(1) as f64).min(ceiling)),
            },
            floor: 1.0,
            ceiling,
            slow_start: true,
            knee: None,
            probing: false,
            count: 0,
            sum_s: 0.0,
            peak_in_flight: 0,
            started: Instant::now(),
            short: None,
            baseline: None,
            last_cut: None,
            recent: VecDeque::new(),
            converged_since: None,
            skip_window: false,
            grown_since_cut: false,
            throttles: 0,
        }
    }

    /// Attempts allowed in flight now (`u64::MAX`: no limit).
    pub fn allowed(&self) -> u64 {
        if self.probing {
            return 1;
        }
        self.limit.map_or(u64::MAX, |l| l.floor().max(1.0) as u64)
    }

    /// The limit for reports (`None`: no limit).
    pub fn limit(&self) -> Option<f64> {
        self.limit
    }

    /// Since when the limit has varied by less than 10 % over [`SETTLED_WINDOWS`] windows.
    pub fn converged_since(&self) -> Option<Instant> {
        self.converged_since
    }

    /// Back from an ejection: one probe, then a ramp from low.
    pub fn readmit(&mut self) {
        self.probing = true;
        self.limit = Some(2.0_f64.min(self.ceiling));
        self.slow_start = true;
        self.knee = None;
        self.last_cut = None;
        self.reset_window(Instant::now());
        self.recent.clear();
    }

    fn reset_window(&mut self, now: Instant) {
        self.count = 0;
        self.sum_s = 0.0;
        self.peak_in_flight = 0;
        self.started = now;
    }

    /// One attempt ended: its latency, whether the endpoint throttled it, and the attempts in
    /// flight on the endpoint when it was sent (for "the window used the limit").
    pub fn on_sample(&mut self, latency: Duration, throttled: bool, in_flight: u64) {
        let now = Instant::now();
        if !throttled {
            self.probing = false;
        }
        self.peak_in_flight = self.peak_in_flight.max(in_flight);
        if throttled {
            self.throttles += 1;
            // Only an attempt sent after the last cut says the cut was not enough: the ones sent
            // before it answer for the old limit (a 429 comes back in a millisecond, so a cooldown
            // of a round trip would let hundreds through).
            let sent = now.checked_sub(latency).unwrap_or(now);
            if self.last_cut.is_none_or(|t| sent >= t) {
                let at = match self.limit {
                    Some(l) => l,
                    // A guard learns its first limit from what was in flight.
                    None => (in_flight.max(1)) as f64,
                };
                // Throttled again before the limit grew back: far above what the endpoint
                // serves, so halve (as TCP does) rather than step down by 10 %.
                let factor = if self.last_cut.is_some() && !self.grown_since_cut { THROTTLE_AGAIN_CUT } else { THROTTLE_CUT };
                self.cut(at, factor, now);
            }
            return;
        }
        self.count += 1;
        self.sum_s += latency.as_secs_f64();
        // Slow start: half an attempt more per answer while the limit is used (×1.5 a round trip).
        if self.slow_start {
            if let Some(l) = self.limit {
                if in_flight as f64 >= l / 2.0 {
                    self.limit = Some((l + 0.5).min(self.ceiling));
                }
            }
        }
        let limit_now = self.limit.unwrap_or(self.peak_in_flight as f64);
        if self.count < MIN_WINDOW.max((limit_now / 2.0) as u64) {
            return;
        }
        // The window's end.
        let mean = self.sum_s / self.count as f64;
        let elapsed = now.duration_since(self.started);
        // The first window after a cut holds attempts sent before it: its latency says nothing
        // of the new limit.
        if std::mem::take(&mut self.skip_window) {
            self.short = None;
            self.reset_window(now);
            return;
        }
        let short = match self.short {
            Some(s) => 0.5 * s + 0.5 * mean,
            None => mean,
        };
        self.short = Some(short);
        let baseline = match self.baseline {
            None => short,
            Some(b) if short < b => short,
            Some(b) => b + (short - b) * (elapsed.as_secs_f64() / BASELINE_DRIFT.as_secs_f64()).min(1.0),
        };
        self.baseline = Some(baseline);
        let used = self.peak_in_flight as f64 >= limit_now / 2.0;
        self.reset_window(now);
        if let Some(limit) = self.limit {
            let gradient = (TOLERANCE * baseline / short).clamp(0.5, 1.0);
            if self.mode == Mode::Adaptive && gradient < 1.0 {
                // Gradient2: the limit the gradient allows plus a small queue (√limit), smoothed
                // over windows. A queue the client built shrinks by at most ~10 % a window and
                // settles where the queue's latency and the small-queue term balance, not under
                // the endpoint's capacity (a straight multiply, repeated while the queue built in
                // slow start drains, sank 240 to 18 and left the endpoint idle for seconds).
                self.slow_start = false;
                let new = limit * gradient + limit.sqrt();
                let next = ((1.0 - SMOOTHING) * limit + SMOOTHING * new).clamp(self.floor, self.ceiling);
                self.grown_since_cut |= next > limit;
                self.limit = Some(next);
            } else if used {
                let grown = if self.slow_start {
                    limit
                } else {
                    match self.knee {
                        Some(k) if limit >= k * 1.2 => {
                            self.knee = None;
                            limit + limit.sqrt()
                        }
                        Some(k) if limit >= k => limit + 0.1,
                        Some(k) if limit >= 0.9 * k => limit + 1.0,
                        Some(k) => (limit + limit.sqrt()).min(0.9 * k).max(limit + 1.0),
                        None => limit + limit.sqrt(),
                    }
                };
                self.grown_since_cut |= grown > limit;
                self.limit = Some(grown.min(self.ceiling));
            }
        }
        self.window_ended(now);
    }

    fn cut(&mut self, at: f64, factor: f64, now: Instant) {
        self.slow_start = false;
        self.knee = Some(at);
        self.limit = Some((at * factor).max(self.floor).min(self.ceiling));
        self.last_cut = Some(now);
        self.grown_since_cut = false;
    }

    fn window_ended(&mut self, now: Instant) {
        let Some(limit) = self.limit else { return };
        self.recent.push_back(limit);
        while self.recent.len() > SETTLED_WINDOWS {
            self.recent.pop_front();
        }
        let (lo, hi) = self.recent.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
        if self.recent.len() == SETTLED_WINDOWS && hi > 0.0 && (hi - lo) / hi < 0.1 {
            self.converged_since.get_or_insert(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(c: &mut Controller, n: usize, latency: impl Fn(usize) -> f64) {
        for i in 0..n {
            let in_flight = c.allowed().min(10_000);
            c.on_sample(Duration::from_secs_f64(latency(i)), false, in_flight);
        }
    }

    #[test]
    fn variable_service_time_is_not_congestion_and_growth_is_proportional() {
        let mut c = Controller::new(Mode::Adaptive, 16, 256);
        // Uniform 50–500 ms, deterministic spread.
        feed(&mut c, 20_000, |i| 0.05 + 0.45 * ((i * 7919) % 1000) as f64 / 1000.0);
        assert_eq!(c.allowed(), 256, "{c:?}");
        assert!(c.converged_since().is_some());
    }

    #[test]
    fn a_queue_or_a_throttle_lowers_the_limit_and_the_knee_is_probed_gently() {
        // A capacity of 64 at 100 ms: latency grows with the queue beyond 64 in flight.
        let mut c = Controller::new(Mode::Adaptive, 16, 1024);
        for _ in 0..20_000 {
            let l = c.allowed() as f64;
            let latency = 0.1 * (l / 64.0).max(1.0);
            c.on_sample(Duration::from_secs_f64(latency), false, l as u64);
        }
        let l = c.allowed();
        assert!((64..=110).contains(&l), "settles where the queue is under the tolerance: {l}");
        let mut g = Controller::new(Mode::Guard, 0, 1024);
        assert_eq!(g.allowed(), u64::MAX);
        g.on_sample(Duration::from_millis(1), true, 40);
        assert_eq!(g.allowed(), 36, "a guard learns its limit from the first throttle");
        g.readmit();
        assert_eq!(g.allowed(), 1, "a readmitted endpoint is probed with one attempt");
        g.on_sample(Duration::from_millis(10), false, 1);
        assert!((2..=3).contains(&g.allowed()), "then ramps from low: {}", g.allowed());
    }
}
