//! The problem reporter: what goes wrong with requests, at `info`, without one line per
//! request. A distinct problem (what happened, and at which endpoint: `429 from http://…`) is
//! logged when it first occurs, with the server's message; after that, every 10 s, how many
//! times it occurred in that window ("429 from http://…: 312 in the last 10 s, backing off").
//! Counts left when the client goes away (the end of a run) are logged then.
//!
//! Lines go to the target `modelcall_model::problems` (shown on stderr by default) with the
//! fields `event` (`problem` for a first occurrence, `problem_count` for a count), `problem`,
//! `endpoint`, `retried`, `count` and `window_s` (counts), and `message`: the line, with the
//! server's message (redacted) on a first occurrence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often counts are logged.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One distinct problem: what happened (`429`, `500`, `timeout`, `connection`, …) and where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// The HTTP status, or the cause when there was none (`timeout`, `connection`, …).
    pub what: String,
    /// The endpoint as it may be shown (redacted).
    pub endpoint: String,
    /// `true` for a retry, `false` when the record failed for good.
    pub retried: bool,
}

impl Problem {
    /// What the lines say of it: `429 from http://…`.
    pub fn label(&self) -> String {
        format!("{} from {}", self.what, self.endpoint)
    }
    fn consequence(&self) -> &'static str {
        if self.retried {
            "backing off"
        } else {
            "the records failed"
        }
    }
}

/// A line the reporter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The first occurrence, with the server's message.
    First { problem: Problem, message: String },
    /// `count` occurrences within the last `window` (the first one included).
    Count { problem: Problem, count: u64, window: Duration },
}

impl Report {
    /// The line as shown.
    pub fn text(&self) -> String {
        match self {
            Report::First { problem, message } => {
                let next = if problem.retried { "retrying with backoff" } else { "the record failed" };
                format!("{}: {message}; {next} (a count every {} s while it goes on)", problem.label(), WINDOW.as_secs())
            }
            Report::Count { problem, count, window } => {
                format!("{}: {count} in the last {} s, {}", problem.label(), window.as_secs_f64().round().max(1.0), problem.consequence())
            }
        }
    }

    /// Logs it (target `modelcall_model::problems`).
    pub fn emit(&self) {
        match self {
            Report::First { problem, .. } => tracing::info!(
                message = %self.text(),
                event = "problem",
                problem = %problem.what,
                endpoint = %problem.endpoint,
                retried = problem.retried,
            ),
            Report::Count { problem, count, window } => tracing::info!(
                message = %self.text(),
                event = "problem_count",
                problem = %problem.what,
                endpoint = %problem.endpoint,
                retried = problem.retried,
                count = *count,
                window_s = window.as_secs_f64().round(),
            ),
        }
    }
}

#[derive(Debug)]
struct Window {
    /// Occurrences since `since`.
    count: u64,
    since: Instant,
}

/// The counts per problem. The pure part ([`Tally::record`], [`Tally::drain`]) takes the time
/// as an argument and is what the tests drive.
#[derive(Debug, Default)]
pub struct Tally {
    seen: HashMap<Problem, Window>,
}

impl Tally {
    /// Counts one occurrence; a first occurrence is to be reported at once.
    pub fn record(&mut self, problem: &Problem, message: &str, now: Instant) -> Option<Report> {
        match self.seen.get_mut(problem) {
            Some(w) => {
                if w.count == 0 {
                    w.since = now;
                }
                w.count += 1;
                None
            }
            None => {
                // The first occurrence is its own line: the window counts what follows.
                self.seen.insert(problem.clone(), Window { count: 0, since: now });
                Some(Report::First { problem: problem.clone(), message: message.to_string() })
            }
        }
    }

    /// The counts of every problem that occurred since the last drain (window: from the first
    /// occurrence in it, at least [`WINDOW`] when `full`, until `now`), reset.
    pub fn drain(&mut self, now: Instant, full: bool) -> Vec<Report> {
        let mut out: Vec<Report> = self
            .seen
            .iter_mut()
            .filter(|(_, w)| w.count > 0)
            .map(|(p, w)| {
                let elapsed = now.saturating_duration_since(w.since);
                let window = if full { elapsed.max(WINDOW) } else { elapsed.max(Duration::from_secs(1)) };
                let r = Report::Count { problem: p.clone(), count: w.count, window };
                w.count = 0;
                w.since = now;
                r
            })
            .collect();
        out.sort_by_key(|r| match r {
            Report::Count { problem, .. } | Report::First { problem, .. } => problem.label(),
        });
        out
    }
}

/// Shared by every clone of a client: records problems, logs first occurrences at once and
/// counts every [`WINDOW`] from a background thread (started with the first problem), and
/// what is left when the last clone goes.
#[derive(Debug, Default, Clone)]
pub struct ProblemReporter {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tally: Mutex<Tally>,
    ticker: std::sync::OnceLock<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(tally) = self.tally.get_mut() {
            for r in tally.drain(Instant::now(), false) {
                r.emit();
            }
        }
    }
}

impl ProblemReporter {
    /// One occurrence of `problem`; `message` is the server's (already redacted).
    pub fn record(&self, problem: Problem, message: &str) {
        let first = self.inner.tally.lock().unwrap().record(&problem, message, Instant::now());
        if let Some(r) = first {
            r.emit();
            self.start_ticker();
        }
    }

    fn start_ticker(&self) {
        self.inner.ticker.get_or_init(|| {
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            let _ = std::thread::Builder::new().name("modelcall-problems".into()).spawn(move || loop {
                std::thread::sleep(WINDOW);
                let Some(inner) = weak.upgrade() else { return };
                let reports = inner.tally.lock().unwrap().drain(Instant::now(), true);
                for r in reports {
                    r.emit();
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(what: &str) -> Problem {
        Problem { what: what.into(), endpoint: "http://127.0.0.1:9/v1/chat/completions".into(), retried: true }
    }

    #[test]
    fn a_problem_is_reported_once_then_counted() {
        let mut t = Tally::default();
        let t0 = Instant::now();
        let first = t.record(&p("429"), "slow down", t0).expect("first occurrence");
        assert_eq!(first.text(), "429 from http://127.0.0.1:9/v1/chat/completions: slow down; retrying with backoff (a count every 10 s while it goes on)");
        for i in 0..312 {
            assert_eq!(t.record(&p("429"), "slow down", t0 + Duration::from_millis(i)), None);
        }
        let reports = t.drain(t0 + WINDOW, true);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].text(), "429 from http://127.0.0.1:9/v1/chat/completions: 312 in the last 10 s, backing off");
        // Nothing new: nothing to say; a later occurrence is counted, not reported as first.
        assert!(t.drain(t0 + WINDOW * 2, true).is_empty());
        assert_eq!(t.record(&p("429"), "slow down", t0 + WINDOW * 2), None);
        assert_eq!(t.drain(t0 + WINDOW * 3, true).len(), 1);
    }

    #[test]
    fn distinct_problems_are_reported_and_counted_apart() {
        let mut t = Tally::default();
        let t0 = Instant::now();
        assert!(t.record(&p("429"), "a", t0).is_some());
        assert!(t.record(&p("500"), "b", t0).is_some());
        let failed = Problem { retried: false, ..p("400") };
        assert!(t.record(&failed, "bad request", t0).is_some());
        t.record(&p("429"), "a", t0);
        t.record(&p("429"), "a", t0);
        t.record(&p("500"), "b", t0);
        t.record(&failed, "bad request", t0);
        let texts: Vec<String> = t.drain(t0 + Duration::from_secs(4), false).iter().map(Report::text).collect();
        assert_eq!(
            texts,
            [
                "400 from http://127.0.0.1:9/v1/chat/completions: 1 in the last 4 s, the records failed",
                "429 from http://127.0.0.1:9/v1/chat/completions: 2 in the last 4 s, backing off",
                "500 from http://127.0.0.1:9/v1/chat/completions: 1 in the last 4 s, backing off",
            ]
        );
    }
}
