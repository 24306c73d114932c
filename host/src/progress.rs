//! Progress display: an indicatif bar on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Colour escapes only for a person at a terminal: never when stderr is a file or a pipe, nor
/// when `NO_COLOR` is set (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    already_done: AtomicU64,
    /// The adaptive concurrency limit (0: a fixed bound, not shown).
    limit: AtomicU64,
    finished: std::sync::atomic::AtomicBool,
}

/// Cheap to clone; updated from record tasks, rendered by a background ticker.
#[derive(Clone)]
pub struct Progress {
    counters: Arc<Counters>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// `total`: records expected, when known (it drives the ETA).
    pub fn new(total: Option<u64>, enabled: bool) -> Self {
        let counters = Arc::new(Counters::default());
        let bar = if enabled && std::io::stderr().is_terminal() {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::no_length(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Some(bar)
        } else {
            None
        };
        let progress = Progress { counters, bar };
        if enabled {
            progress.spawn_ticker(total);
        }
        progress
    }

    /// A progress that shows nothing (tests, `--quiet`).
    pub fn hidden() -> Self {
        Progress { counters: Arc::new(Counters::default()), bar: None }
    }

    /// `(done, failed, in flight, resumed, adaptive limit or 0)` now, for the metrics.
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        let c = &self.counters;
        (
            c.done.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
            c.in_flight.load(Ordering::Relaxed),
            c.already_done.load(Ordering::Relaxed),
            c.limit.load(Ordering::Relaxed),
        )
    }

    pub fn started(&self) {
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// The bound on requests in flight now, when it adapts.
    pub fn set_limit(&self, limit: usize) {
        self.counters.limit.store(limit as u64, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn already_done(&self) {
        self.counters.already_done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        self.counters.finished.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn spawn_ticker(&self, total: Option<u64>) {
        let this = self.clone();
        let started = Instant::now();
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        handle.spawn(async move {
            let mut interval = tokio::time::interval(if this.bar.is_some() { Duration::from_millis(250) } else { Duration::from_secs(10) });
            interval.tick().await;
            loop {
                interval.tick().await;
                let c = &this.counters;
                if c.finished.load(Ordering::Relaxed) {
                    return;
                }
                let done = c.done.load(Ordering::Relaxed);
                let failed = c.failed.load(Ordering::Relaxed);
                let in_flight = c.in_flight.load(Ordering::Relaxed);
                let resumed = c.already_done.load(Ordering::Relaxed);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                let limit = match c.limit.load(Ordering::Relaxed) {
                    0 => String::new(),
                    l => format!(" (limit {l})"),
                };
                match &this.bar {
                    Some(bar) => {
                        if bar.is_finished() {
                            return;
                        }
                        bar.set_message(format!("failed {failed} · in flight {in_flight}{limit}"));
                    }
                    None => {
                        let eta = total
                            .map(|t| {
                                let left = t.saturating_sub(done + resumed) as f64;
                                if rate > 0.0 { format!(", ETA {:.0}s", left / rate) } else { String::new() }
                            })
                            .unwrap_or_default();
                        eprintln!(
                            "progress: done {done} (failed {failed}), in flight {in_flight}{limit}, resumed {resumed}, {rate:.1}/s{eta}"
                        );
                    }
                }
            }
        });
    }
}
