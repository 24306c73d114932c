//! Progress display: an indicatif bar on a terminal, a plain line every 10 s otherwise (a pipe,
//! a file, a batch job's log), both with the same facts: done/total, %, the recent rate, ETA,
//! in flight, retries and 429s over the last window, tokens/s and the cost so far. When at
//! least a fifth of the recent attempts were retried or failed, a line says so with the top
//! cause and the last message seen for it.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use modelcall_config::model::Pricing;

/// Colour escapes only for a person at a terminal: never when stderr is a file or a pipe, nor
/// when `NO_COLOR` is set (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The model's `pricing`, set once by the start banner (the engine does not know the model):
/// the progress shows the cost so far with it.
static PRICING: OnceLock<Pricing> = OnceLock::new();

/// Sets the price of tokens the progress display counts the cost with.
pub fn set_pricing(pricing: Option<Pricing>) {
    if let Some(p) = pricing {
        let _ = PRICING.set(p);
    }
}

/// How often the plain (non-terminal) line is printed: 10 s, or `MODELCALL_PROGRESS_INTERVAL_MS`.
fn plain_interval() -> Duration {
    std::env::var("MODELCALL_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10))
}

/// The window "recent" means: retries, 429s, the rate and the warning are over the last 10 s.
const WINDOW: Duration = Duration::from_secs(10);

/// A share of recent attempts retried or failed at or above which a warning line is shown.
const TROUBLE_SHARE: f64 = 0.2;

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    already_done: AtomicU64,
    /// The adaptive concurrency limit (0: a fixed bound, not shown).
    limit: AtomicU64,
    /// HTTP attempts, retries among them, and 429s (retried or final).
    attempts: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    finished: std::sync::atomic::AtomicBool,
    /// Per cause: retries and failures so far, and the last message seen.
    causes: Mutex<BTreeMap<String, CauseCount>>,
}

#[derive(Default, Clone, Debug)]
struct CauseCount {
    count: u64,
    message: Option<String>,
}

/// The counters at one moment, for differences over the window.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    done: u64,
    failed: u64,
    attempts: u64,
    retries: u64,
    rate_limited: u64,
    tokens: u64,
    causes: BTreeMap<String, u64>,
}

impl Counters {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            tokens: self.prompt_tokens.load(Ordering::Relaxed) + self.completion_tokens.load(Ordering::Relaxed),
            causes: self.causes.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.count)).collect(),
        }
    }
}

/// Cheap to clone; updated from record tasks and the collector, rendered by a background ticker.
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
            // Two lines: the bar, then the facts (one line would wrap on a narrow terminal and
            // leave stale copies of itself behind).
            let template = if total.is_some() {
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {percent}%\n  {wide_msg}"
            } else {
                "{spinner} [{elapsed_precise}] {pos} done\n  {wide_msg}"
            };
            let style = indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
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

    /// A record that failed with `cause`: counted with the retries for the warning line, with
    /// its message kept as the cause's example.
    pub fn failure(&self, cause: &str, message: &str) {
        if cause.contains("rate_limited") {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let mut causes = self.counters.causes.lock().unwrap();
        let c = causes.entry(cause.to_string()).or_default();
        c.count += 1;
        c.message = Some(first_line(message));
    }

    /// The model calls one record made: attempts, tokens, retries by cause. (Plain numbers,
    /// so the display does not depend on the engine that feeds it.)
    pub fn calls(&self, requests: u64, prompt_tokens: u64, completion_tokens: u64, retries_by_cause: &[(&'static str, u64)]) {
        let c = &self.counters;
        c.attempts.fetch_add(requests, Ordering::Relaxed);
        c.prompt_tokens.fetch_add(prompt_tokens, Ordering::Relaxed);
        c.completion_tokens.fetch_add(completion_tokens, Ordering::Relaxed);
        let retries: u64 = retries_by_cause.iter().map(|(_, n)| n).sum();
        if retries == 0 {
            return;
        }
        c.retries.fetch_add(retries, Ordering::Relaxed);
        let mut causes = c.causes.lock().unwrap();
        for (cause, n) in retries_by_cause.iter().filter(|(_, n)| *n > 0) {
            if *cause == "rate_limited" {
                c.rate_limited.fetch_add(*n, Ordering::Relaxed);
            }
            causes.entry(cause.to_string()).or_default().count += n;
        }
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
        let period = if this.bar.is_some() { Duration::from_millis(250) } else { plain_interval() };
        handle.spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            // Snapshots of the last window (the oldest one at least WINDOW old when there is one).
            let mut history: VecDeque<(Instant, Snapshot)> = VecDeque::new();
            history.push_back((started, Snapshot::default()));
            let mut last_warning: Option<Instant> = None;
            loop {
                interval.tick().await;
                let c = &this.counters;
                if c.finished.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                let snap = c.snapshot();
                while history.len() > 1 && now.duration_since(history[1].0) >= WINDOW {
                    history.pop_front();
                }
                let (then, old) = history.front().cloned().expect("one snapshot at least");
                history.push_back((now, snap.clone()));
                let facts = Facts::new(&this, total, started.elapsed(), now.duration_since(then), &old, &snap);
                let warning = facts.trouble.as_ref().filter(|_| last_warning.is_none_or(|t| now.duration_since(t) >= WINDOW));
                match &this.bar {
                    Some(bar) => {
                        if bar.is_finished() {
                            return;
                        }
                        bar.set_message(facts.bar_message());
                        if let Some(w) = warning {
                            bar.println(w);
                            last_warning = Some(now);
                        }
                    }
                    None => {
                        eprintln!("{}", facts.plain_line());
                        if let Some(w) = warning {
                            eprintln!("{w}");
                            last_warning = Some(now);
                        }
                    }
                }
            }
        });
    }
}

/// What one tick shows.
struct Facts {
    processed: u64,
    total: Option<u64>,
    failed: u64,
    in_flight: u64,
    limit: u64,
    resumed: u64,
    /// Records per second over the window.
    rate: f64,
    eta: Option<Duration>,
    window: Duration,
    retries: u64,
    rate_limited: u64,
    window_failed: u64,
    tokens_per_s: f64,
    cost: Option<f64>,
    trouble: Option<String>,
}

impl Facts {
    fn new(p: &Progress, total: Option<u64>, elapsed: Duration, window: Duration, old: &Snapshot, now: &Snapshot) -> Facts {
        let c = &p.counters;
        let secs = window.as_secs_f64().max(0.001);
        let resumed = c.already_done.load(Ordering::Relaxed);
        let processed = now.done + resumed;
        let rate = (now.done - old.done.min(now.done)) as f64 / secs;
        // The rate over the whole run when the window saw nothing finish yet.
        let eta_rate = if rate > 0.0 { rate } else { now.done as f64 / elapsed.as_secs_f64().max(0.001) };
        let eta = total.filter(|_| eta_rate > 0.0).map(|t| Duration::from_secs_f64(t.saturating_sub(processed) as f64 / eta_rate));
        let attempts = now.attempts.saturating_sub(old.attempts);
        let retries = now.retries.saturating_sub(old.retries);
        let window_failed = now.failed.saturating_sub(old.failed);
        let pricing = PRICING.get();
        let cost = pricing.map(|pr| pr.cost(c.prompt_tokens.load(Ordering::Relaxed), c.completion_tokens.load(Ordering::Relaxed)));
        // Trouble: retried or failed attempts over the window's attempts (a failure after its
        // last attempt counts once; a record failing without a request, e.g. a missing field,
        // counts as one attempt).
        let bad = retries + window_failed;
        // Judged over 2 s at least: the first moments of a run are too few to tell.
        let trouble = (window >= Duration::from_secs(2) && bad >= 5 && bad as f64 >= TROUBLE_SHARE * attempts.max(bad) as f64).then(|| {
            let causes = c.causes.lock().unwrap();
            let top =
                now.causes.iter().map(|(k, n)| (k, n.saturating_sub(old.causes.get(k).copied().unwrap_or(0)))).filter(|(_, n)| *n > 0).max_by_key(|(_, n)| *n);
            let share = 100.0 * bad as f64 / attempts.max(bad) as f64;
            let mut line = format!(
                "warning: {share:.0} % of the attempts of the last {:.0} s were retried or failed ({} retried, {} failed of {})",
                window.as_secs_f64().round(),
                retries,
                window_failed,
                attempts.max(bad)
            );
            if let Some((cause, n)) = top {
                line.push_str(&format!("; top cause {cause} ({n})"));
                // The message of that cause, else of the failure with the same cause behind
                // it (`model_rate_limited` for retried `rate_limited`).
                let message = causes
                    .get(cause)
                    .and_then(|c| c.message.clone())
                    .or_else(|| causes.iter().find(|(k, v)| k.ends_with(cause.as_str()) && v.message.is_some()).and_then(|(_, v)| v.message.clone()));
                match message {
                    Some(m) => line.push_str(&format!(": \"{}\"", crate::shown::shown(&m))),
                    None if cause == "rate_limited" => line.push_str(": the server answers 429 Too Many Requests (backing off and retrying)"),
                    None => {}
                }
            }
            line
        });
        Facts {
            processed,
            total,
            failed: now.failed,
            in_flight: c.in_flight.load(Ordering::Relaxed),
            limit: c.limit.load(Ordering::Relaxed),
            resumed,
            rate,
            eta,
            window,
            retries,
            rate_limited: now.rate_limited.saturating_sub(old.rate_limited),
            window_failed,
            tokens_per_s: now.tokens.saturating_sub(old.tokens) as f64 / secs,
            cost,
            trouble,
        }
    }

    /// The facts after done/total (the bar shows those itself).
    fn tail(&self) -> String {
        let mut parts = vec![format!("{:.1}/s", self.rate)];
        if let Some(eta) = self.eta {
            parts.push(format!("ETA {}", duration(eta)));
        }
        let limit = if self.limit > 0 { format!(" (limit {})", self.limit) } else { String::new() };
        parts.push(format!("in flight {}{limit}", self.in_flight));
        parts.push(format!(
            "last {:.0}s: retries {} (429s {}), failed {}",
            self.window.as_secs_f64().round().max(1.0),
            self.retries,
            self.rate_limited,
            self.window_failed
        ));
        parts.push(format!("failed {} in all", self.failed));
        parts.push(format!("{} tok/s", compact(self.tokens_per_s)));
        if let Some(c) = self.cost {
            parts.push(format!("cost {c:.4}"));
        }
        parts.join(" · ")
    }

    fn bar_message(&self) -> String {
        self.tail()
    }

    /// The line printed when stderr is not a terminal.
    fn plain_line(&self) -> String {
        let head = match self.total {
            Some(t) if t > 0 => {
                format!("{}/{} ({:.1} %)", crate::numbers::grouped(self.processed), crate::numbers::grouped(t), 100.0 * self.processed as f64 / t as f64)
            }
            _ => format!("{} done (total unknown)", crate::numbers::grouped(self.processed)),
        };
        let resumed = if self.resumed > 0 { format!(" · {} resumed", crate::numbers::grouped(self.resumed)) } else { String::new() };
        format!("progress: {head}{resumed} · {}", self.tail())
    }
}

/// `1h02m`, `3m05s`, `42s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `950`, `12.3k`, `4.5M` (one decimal at most).
fn compact(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The first line of a message, at most 200 characters.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_has_total_rate_with_one_decimal_and_window_retries() {
        let p = Progress::hidden();
        for _ in 0..10 {
            p.started();
            p.finished();
        }
        p.calls(14, 100, 20, &[("rate_limited", 4)]);
        let old = Snapshot::default();
        let now = p.counters.snapshot();
        let f = Facts::new(&p, Some(40), Duration::from_secs(3), Duration::from_secs(3), &old, &now);
        let line = f.plain_line();
        assert!(line.contains("10/40 (25.0 %)"), "{line}");
        assert!(line.contains("3.3/s"), "{line}");
        assert!(line.contains("retries 4 (429s 4)"), "{line}");
        assert!(f.trouble.is_none(), "4 of 14 is under a fifth? no: 28 %, but fewer than 5 bad");
        p.calls(2, 0, 0, &[("rate_limited", 2)]);
        let now = p.counters.snapshot();
        let f = Facts::new(&p, Some(40), Duration::from_secs(3), Duration::from_secs(3), &old, &now);
        let w = f.trouble.expect("6 of 16 retried");
        assert!(w.contains("top cause rate_limited (6)"), "{w}");
    }

    #[test]
    fn durations_and_compact_numbers() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(compact(950.4), "950");
        assert_eq!(compact(12_345.0), "12.3k");
    }
}
