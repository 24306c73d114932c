//! What the simulator simulates, and the one parser of the `sim://?…` URL grammar.
//!
//! This module is the only place that grammar is parsed. It builds without the crate's `server`
//! feature (no tokio, hyper or clap: std and thiserror only), so `modelcall-config` depends on
//! this crate with `default-features = false` to check a model config's `base_url: sim://…` at
//! load time, with the config's file and line, and keeps the parsed [`SimOptions`]. That
//! direction was chosen because the grammar belongs beside the fault kinds and the server that
//! interpret it: a new option or fault kind is added here once, and the config can never accept
//! a URL the simulator then refuses. The other directions were worse: the simulator depending on
//! the config crate would pull YAML parsing into it, and the shared `modelcall-secrets` crate is
//! about credentials, not URL grammars.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with a Retry-After header.
    RateLimited,
    /// 500.
    ServerError,
    /// Close the connection without an answer.
    Drop,
    /// 200 with a body that is not a chat completion.
    Malformed,
    /// Never answer (the client's timeout must handle it).
    Hang,
    /// 401: the key is refused.
    Unauthorized,
}

impl FaultKind {
    pub fn parse(s: &str) -> Option<FaultKind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "429" | "rate_limited" | "rate-limited" => FaultKind::RateLimited,
            "500" | "5xx" | "server_error" => FaultKind::ServerError,
            "drop" | "dropped" | "reset" => FaultKind::Drop,
            "malformed" | "garbage" => FaultKind::Malformed,
            "hang" => FaultKind::Hang,
            "401" | "unauthorized" | "auth" => FaultKind::Unauthorized,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimited => "429",
            FaultKind::ServerError => "500",
            FaultKind::Drop => "drop",
            FaultKind::Malformed => "malformed",
            FaultKind::Hang => "hang",
            FaultKind::Unauthorized => "401",
        }
    }
}

/// A fault spec (`--fault KIND=RATE` or a `sim://` `fault=` option) that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("fault `{0}` should be KIND=RATE or KIND:RATE, e.g. 429=0.05")]
    Syntax(String),
    #[error("unknown fault kind `{0}` (expected 429, 500, drop, malformed, hang or 401)")]
    UnknownKind(String),
    #[error("fault rate `{0}` is not a number")]
    RateNotANumber(String),
    #[error("fault rate {0} must be between 0 and 1")]
    RateOutOfRange(f64),
}

/// A `sim://` URL that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimUrlError {
    #[error("`{0}` is not a sim:// URL")]
    NotSimUrl(String),
    #[error("sim:// {0}")]
    Fault(#[from] FaultError),
    #[error("sim:// option {key}=`{value}` is not a whole number")]
    NotAWholeNumber { key: String, value: String },
    /// The option as written; [`SimOptions::OPTIONS`] lists the known ones (for suggestions).
    #[error("unknown sim:// option `{0}` (expected latency_ms, fault, retry_after_secs, seed, reasoning, replies)")]
    UnknownOption(String),
    #[error("sim:// fault rates add up to {0}, more than 1")]
    RatesAboveOne(f64),
    /// An option that needs a value was given none (`replies=`).
    #[error("sim:// option `{0}` needs a value")]
    MissingValue(String),
    /// The `replies=` file cannot be read (missing, unreadable, not UTF-8). `file` is the path as
    /// resolved (against the current folder when relative).
    #[error("sim:// replies file `{file}` cannot be read: {error}")]
    RepliesFile { file: String, error: String },
    /// A line of the `replies=` file is not a valid rule; `line` counts from 1.
    #[error("sim:// replies file `{file}` line {line}: {message}")]
    RepliesLine { file: String, line: usize, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Probability per request, 0..=1.
    pub rate: f64,
}

impl Fault {
    /// `KIND=RATE` or `KIND:RATE`, e.g. `429=0.05`.
    pub fn parse(spec: &str) -> Result<Fault, FaultError> {
        let (kind, rate) = spec.split_once(['=', ':']).ok_or_else(|| FaultError::Syntax(spec.to_string()))?;
        let kind = FaultKind::parse(kind).ok_or_else(|| FaultError::UnknownKind(kind.trim().to_string()))?;
        let rate: f64 = rate.trim().parse().map_err(|_| FaultError::RateNotANumber(rate.trim().to_string()))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(FaultError::RateOutOfRange(rate));
        }
        Ok(Fault { kind, rate })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind.as_str(), self.rate)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    pub latency: Duration,
    pub faults: Vec<Fault>,
    pub retry_after_secs: u64,
    /// Seeds the fault sequence, and the choices made for `response_format` JSON schemas.
    pub seed: u64,
    pub reasoning: bool,
    /// `replies=FILE`: scripted replies, a JSONL file of `{"match": REGEX, "reply": …}` rules
    /// (see `reply::ReplyRules`, with the `server` feature). Kept as written; a relative path
    /// resolves against the process's current folder when the server starts, which is when the
    /// file is read and checked (this module does no I/O).
    pub replies: Option<PathBuf>,
    /// `capacity=C`: a saturating endpoint, as a GPU server is: up to C requests in flight take
    /// `latency`; above C the latency grows with the queue (throughput stays at C / latency);
    /// above 2·C requests are refused with 429 and Retry-After.
    pub capacity: Option<u64>,
    /// `prefix_cache=N`: keep the last N prompt prefixes, as a server's prefix (KV) cache
    /// does, and count the requests that find theirs (`SimStats::prefix_hits`).
    pub prefix_cache: Option<usize>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            latency: Duration::ZERO,
            faults: Vec::new(),
            retry_after_secs: 1,
            seed: 0,
            reasoning: false,
            replies: None,
            capacity: None,
            prefix_cache: None,
        }
    }
}

impl SimOptions {
    /// The options a `sim://` URL may hold.
    pub const OPTIONS: &'static [&'static str] = &["latency_ms", "fault", "retry_after_secs", "seed", "reasoning", "replies", "capacity", "prefix_cache"];

    /// True when `url` uses the `sim://` scheme (whether or not its options are valid).
    pub fn is_sim_url(url: &str) -> bool {
        url.starts_with("sim://")
    }

    /// Parses `sim://` or `sim://?latency_ms=50&fault=429:0.05&fault=drop:0.01&retry_after_secs=1&seed=3&reasoning=true&replies=replies.jsonl`.
    ///
    /// `replies=FILE` takes the path as written, with `%XX` escapes decoded (`%20` for a space,
    /// `%26` for `&`); the file itself is only read when the server starts.
    pub fn from_url(url: &str) -> Result<SimOptions, SimUrlError> {
        let rest = url.strip_prefix("sim://").ok_or_else(|| SimUrlError::NotSimUrl(url.to_string()))?;
        let query = rest.trim_start_matches('/').trim_start_matches('?');
        let mut opts = SimOptions::default();
        let num = |k: &str, v: &str| v.parse::<u64>().map_err(|_| SimUrlError::NotAWholeNumber { key: k.to_string(), value: v.to_string() });
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "latency_ms" => opts.latency = Duration::from_millis(num(k, v)?),
                "fault" => opts.faults.push(Fault::parse(v)?),
                "retry_after_secs" => opts.retry_after_secs = num(k, v)?,
                "seed" => opts.seed = num(k, v)?,
                "capacity" => opts.capacity = Some(num(k, v)?.max(1)),
                "prefix_cache" => opts.prefix_cache = Some(num(k, v)?.max(1) as usize),
                "reasoning" => opts.reasoning = v.is_empty() || v == "true" || v == "1",
                "replies" => {
                    let path = percent_decode(v);
                    if path.is_empty() {
                        return Err(SimUrlError::MissingValue(k.to_string()));
                    }
                    opts.replies = Some(PathBuf::from(path));
                }
                other => return Err(SimUrlError::UnknownOption(other.to_string())),
            }
        }
        let total: f64 = opts.faults.iter().map(|f| f.rate).sum();
        if total > 1.0 + 1e-9 {
            return Err(SimUrlError::RatesAboveOne(total));
        }
        Ok(opts)
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as written); `+` stays a plus, as in a path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options() {
        let o = SimOptions::from_url("sim://?latency_ms=50&fault=429:0.05&fault=drop=0.01&retry_after_secs=2&seed=9&reasoning").unwrap();
        assert_eq!(o.latency, Duration::from_millis(50));
        assert_eq!(o.faults, vec![Fault { kind: FaultKind::RateLimited, rate: 0.05 }, Fault { kind: FaultKind::Drop, rate: 0.01 }]);
        assert_eq!((o.retry_after_secs, o.seed, o.reasoning), (2, 9, true));
        assert_eq!(SimOptions::from_url("sim://").unwrap(), SimOptions::default());
        assert_eq!(SimOptions::from_url("sim:///?seed=1").unwrap().seed, 1);
        assert!(SimOptions::from_url("sim://?reasoning=false").is_ok_and(|o| !o.reasoning));
        // Rates that add up to 1 in floating point are fine.
        assert!(SimOptions::from_url("sim://?fault=429:0.7&fault=500:0.2&fault=drop:0.1").is_ok());
    }

    #[test]
    fn url_errors_are_typed_and_worded() {
        let e = |url: &str| SimOptions::from_url(url).unwrap_err();
        assert_eq!(e("http://x"), SimUrlError::NotSimUrl("http://x".into()));
        assert_eq!(e("sim://?fault=teapot:0.1"), SimUrlError::Fault(FaultError::UnknownKind("teapot".into())));
        assert_eq!(e("sim://?fault=teapot:0.1").to_string(), "sim:// unknown fault kind `teapot` (expected 429, 500, drop, malformed, hang or 401)");
        assert_eq!(e("sim://?bogus=1"), SimUrlError::UnknownOption("bogus".into()));
        assert_eq!(e("sim://?fault=500:0.7&fault=429:0.7"), SimUrlError::RatesAboveOne(1.4));
        assert_eq!(e("sim://?fault=429:2"), SimUrlError::Fault(FaultError::RateOutOfRange(2.0)));
        assert_eq!(e("sim://?fault=429"), SimUrlError::Fault(FaultError::Syntax("429".into())));
        assert_eq!(e("sim://?latency_ms=fast").to_string(), "sim:// option latency_ms=`fast` is not a whole number");
    }

    #[test]
    fn replies_option() {
        let o = SimOptions::from_url("sim://?replies=tests/replies.jsonl&seed=2").unwrap();
        assert_eq!(o.replies, Some(PathBuf::from("tests/replies.jsonl")));
        assert_eq!(o.seed, 2);
        let o = SimOptions::from_url("sim://?replies=/tmp/my%20replies%26more.jsonl").unwrap();
        assert_eq!(o.replies, Some(PathBuf::from("/tmp/my replies&more.jsonl")));
        assert_eq!(SimOptions::from_url("sim://?replies=%zz%4").unwrap().replies, Some(PathBuf::from("%zz%4")));
        assert_eq!(SimOptions::from_url("sim://?replies=").unwrap_err(), SimUrlError::MissingValue("replies".into()));
        assert_eq!(SimOptions::from_url("sim://?replies").unwrap_err().to_string(), "sim:// option `replies` needs a value");
        assert!(SimOptions::OPTIONS.contains(&"replies"));
        // The parser does no I/O: a missing file is reported when the server starts.
        assert!(SimOptions::from_url("sim://?replies=does/not/exist.jsonl").is_ok());
    }

    #[test]
    fn fault_flags() {
        assert_eq!(Fault::parse("429=0.05").unwrap(), Fault { kind: FaultKind::RateLimited, rate: 0.05 });
        assert_eq!(Fault::parse("hang:1").unwrap().to_string(), "hang=1");
        assert_eq!(Fault::parse("drop=x").unwrap_err().to_string(), "fault rate `x` is not a number");
    }
}
