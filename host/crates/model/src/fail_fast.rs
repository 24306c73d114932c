//! Fail-fast: a run whose first attempts all fail in a way no retry fixes stops at once instead
//! of crawling through every record's retries.
//!
//! Two signs, both only while no attempt of the run has succeeded yet (after the first success
//! the normal retry and ejection logic applies, whatever happens):
//! - every endpoint refuses connections (or its host does not resolve) for
//!   [`UNREACHABLE_WINDOW`], with no HTTP answer of any kind from any of them;
//! - an HTTP 400/404 whose message says the model does not exist ([`names_missing_model`]).
//!
//! One [`FailFast`] is shared by every request of a [`crate::ModelClient`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long connections may fail, with nothing ever answering, before the run stops.
pub const UNREACHABLE_WINDOW: Duration = Duration::from_secs(10);

/// What one failed connection attempt means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// A success or an HTTP answer happened: the normal retries apply.
    Disarmed,
    /// Keep retrying; `first` is true for the very first connection failure of the run (worth
    /// a warning on screen).
    Waiting { first: bool },
    /// The window passed: stop the run, with the first failure's message.
    Tripped { message: String, waited: Duration },
}

pub(crate) struct FailFast {
    window: Duration,
    /// How many endpoints the client sends to: all of them must fail to connect.
    endpoints: usize,
    succeeded: AtomicBool,
    /// Some endpoint answered over HTTP (any status): it can be reached.
    answered: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    first_failure: Option<Instant>,
    /// The endpoints (by URL) that failed to connect.
    failed: Vec<String>,
    /// The first failure's message (the server's own words are what the user needs).
    message: String,
}

impl FailFast {
    pub fn new(endpoints: usize, window: Duration) -> FailFast {
        FailFast { window, endpoints: endpoints.max(1), succeeded: AtomicBool::new(false), answered: AtomicBool::new(false), state: Mutex::default() }
    }

    /// An attempt succeeded: fail-fast is off for the rest of the run.
    pub fn succeeded(&self) {
        self.succeeded.store(true, Ordering::Relaxed);
    }

    /// Whether any attempt of the run succeeded.
    pub fn has_succeeded(&self) -> bool {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// An endpoint answered with an HTTP status (any): it is reachable.
    pub fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    fn armed(&self) -> bool {
        !self.succeeded.load(Ordering::Relaxed) && !self.answered.load(Ordering::Relaxed)
    }

    /// Records that a connection to `endpoint` could not be made (refused, unresolvable).
    pub fn unreachable(&self, endpoint: &str, message: &str) -> Unreachable {
        self.unreachable_at(endpoint, message, Instant::now())
    }

    fn unreachable_at(&self, endpoint: &str, message: &str, now: Instant) -> Unreachable {
        if !self.armed() {
            return Unreachable::Disarmed;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let first = s.first_failure.is_none();
        if first {
            s.first_failure = Some(now);
            s.message = message.to_string();
        }
        if !s.failed.iter().any(|e| e == endpoint) {
            s.failed.push(endpoint.to_string());
        }
        match self.tripped(&s, now) {
            Some(waited) => Unreachable::Tripped { message: s.message.clone(), waited },
            None => Unreachable::Waiting { first },
        }
    }

    /// How long it has failed, when the window has passed with every endpoint failing.
    fn tripped(&self, s: &State, now: Instant) -> Option<Duration> {
        let waited = now.saturating_duration_since(s.first_failure?);
        (s.failed.len() >= self.endpoints && waited >= self.window).then_some(waited)
    }

    /// While connections fail and nothing ever answered (every endpoint failing): how long
    /// until the window ends (zero once it did). `None`: no such state.
    pub fn pending(&self) -> Option<Duration> {
        self.pending_at(Instant::now())
    }

    fn pending_at(&self, now: Instant) -> Option<Duration> {
        if !self.armed() {
            return None;
        }
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.failed.len() < self.endpoints {
            return None;
        }
        let since = now.saturating_duration_since(s.first_failure?);
        Some(self.window.saturating_sub(since))
    }

    /// The window passed with every endpoint unreachable and nothing ever answering: the first
    /// failure's message and how long it has been.
    pub fn tripped_now(&self) -> Option<(String, Duration)> {
        if !self.armed() {
            return None;
        }
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.tripped(&s, Instant::now()).map(|w| (s.message.clone(), w))
    }
}

/// Whether an HTTP 400/404 message says the model does not exist (vLLM, SGLang, OpenAI, Ollama,
/// LiteLLM wordings): a message about the model (it names `model` or the word "model") that
/// says it is missing.
pub fn names_missing_model(status: u16, message: &str, model: &str) -> bool {
    if status != 404 && status != 400 {
        return false;
    }
    let m = message.to_lowercase();
    let about_model = m.contains("model") || (!model.is_empty() && m.contains(&model.to_lowercase()));
    let missing =
        ["does not exist", "doesn't exist", "not found", "no such model", "unknown model", "invalid model", "model not available", "is not available"]
            .iter()
            .any(|p| m.contains(p));
    about_model && missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    #[test]
    fn trips_after_the_window_with_no_answer() {
        let f = FailFast::new(1, W);
        let t0 = Instant::now();
        assert_eq!(f.unreachable_at("a", "refused", t0), Unreachable::Waiting { first: true });
        assert_eq!(f.unreachable_at("a", "refused again", t0 + Duration::from_secs(3)), Unreachable::Waiting { first: false });
        assert_eq!(f.pending_at(t0 + Duration::from_secs(4)), Some(Duration::from_secs(6)));
        assert_eq!(f.pending_at(t0 + Duration::from_secs(40)), Some(Duration::ZERO));
        match f.unreachable_at("a", "x", t0 + Duration::from_secs(10)) {
            Unreachable::Tripped { message, waited } => {
                assert_eq!(message, "refused", "the first failure's message");
                assert_eq!(waited, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_success_or_any_http_answer_disarms_it() {
        let f = FailFast::new(1, W);
        let t0 = Instant::now();
        f.unreachable_at("a", "refused", t0);
        f.succeeded();
        assert!(f.has_succeeded());
        assert_eq!(f.unreachable_at("a", "refused", t0 + Duration::from_secs(60)), Unreachable::Disarmed);
        assert_eq!(f.pending(), None);
        assert_eq!(f.tripped_now(), None);

        let f = FailFast::new(1, W);
        f.answered();
        assert_eq!(f.unreachable_at("a", "refused", t0 + Duration::from_secs(60)), Unreachable::Disarmed);
    }

    #[test]
    fn a_pool_trips_only_when_every_endpoint_failed() {
        let f = FailFast::new(2, W);
        let t0 = Instant::now();
        f.unreachable_at("a", "refused", t0);
        assert_eq!(f.unreachable_at("a", "refused", t0 + Duration::from_secs(20)), Unreachable::Waiting { first: false });
        assert_eq!(f.pending_at(t0 + Duration::from_secs(20)), None, "b may still be answering");
        assert!(matches!(f.unreachable_at("b", "refused", t0 + Duration::from_secs(21)), Unreachable::Tripped { .. }));
    }

    #[test]
    fn tripped_now_follows_the_clock() {
        let f = FailFast::new(1, Duration::ZERO);
        assert_eq!(f.tripped_now(), None, "nothing failed yet");
        assert!(matches!(f.unreachable("a", "refused"), Unreachable::Tripped { .. }));
        assert_eq!(f.tripped_now().map(|t| t.0), Some("refused".to_string()));
    }

    #[test]
    fn missing_model_messages() {
        let m = "qwen-7b";
        for (status, msg) in [
            (404, "The model `qwen-7b` does not exist."),
            (404, "The model `gpt-5x` does not exist or you do not have access to it."),
            (404, "model \"qwen-7b\" not found, try pulling it first"),
            (400, "Invalid model name passed in model=qwen-7b"),
            (400, "Unknown model: qwen-7b"),
            (404, "qwen-7b not found"),
        ] {
            assert!(names_missing_model(status, msg, m), "{status} {msg}");
        }
        for (status, msg) in [
            (400, "this model does not accept the request"),
            (400, "Incorrect API key provided"),
            (404, "Not Found"),
            (500, "The model `qwen-7b` does not exist."),
            (400, "prompt is too long for the model's context"),
        ] {
            assert!(!names_missing_model(status, msg, m), "{status} {msg}");
        }
    }
}
