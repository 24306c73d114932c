//! What the simulator simulates.

use std::fmt;
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Probability per request, 0..=1.
    pub rate: f64,
}

impl Fault {
    /// `KIND=RATE` or `KIND:RATE`, e.g. `429=0.05`.
    pub fn parse(spec: &str) -> anyhow::Result<Fault> {
        let (kind, rate) = spec
            .split_once(['=', ':'])
            .ok_or_else(|| anyhow::anyhow!("fault `{spec}` should be KIND=RATE, e.g. 429=0.05"))?;
        let kind = FaultKind::parse(kind)
            .ok_or_else(|| anyhow::anyhow!("unknown fault kind `{kind}` (expected 429, 500, drop, malformed, hang or 401)"))?;
        let rate: f64 = rate.trim().parse().map_err(|_| anyhow::anyhow!("fault rate `{rate}` is not a number"))?;
        if !(0.0..=1.0).contains(&rate) {
            anyhow::bail!("fault rate {rate} must be between 0 and 1");
        }
        Ok(Fault { kind, rate })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind.as_str(), self.rate)
    }
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub latency: Duration,
    pub faults: Vec<Fault>,
    pub retry_after_secs: u64,
    pub seed: u64,
    pub reasoning: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { latency: Duration::ZERO, faults: Vec::new(), retry_after_secs: 1, seed: 0, reasoning: false }
    }
}

impl SimOptions {
    /// Parses `sim://` or `sim://?latency_ms=50&fault=429:0.05&fault=drop:0.01&retry_after_secs=1&seed=3&reasoning=true`.
    pub fn from_url(url: &str) -> anyhow::Result<SimOptions> {
        let rest = url
            .strip_prefix("sim://")
            .ok_or_else(|| anyhow::anyhow!("`{url}` is not a sim:// URL"))?;
        let query = rest.trim_start_matches('/').trim_start_matches('?');
        let mut opts = SimOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "latency_ms" => opts.latency = Duration::from_millis(v.parse().map_err(|_| anyhow::anyhow!("sim:// latency_ms `{v}` is not a number"))?),
                "fault" => opts.faults.push(Fault::parse(v)?),
                "retry_after_secs" => opts.retry_after_secs = v.parse().map_err(|_| anyhow::anyhow!("sim:// retry_after_secs `{v}` is not a number"))?,
                "seed" => opts.seed = v.parse().map_err(|_| anyhow::anyhow!("sim:// seed `{v}` is not a number"))?,
                "reasoning" => opts.reasoning = v.is_empty() || v == "true" || v == "1",
                other => anyhow::bail!("unknown sim:// option `{other}` (expected latency_ms, fault, retry_after_secs, seed, reasoning)"),
            }
        }
        let total: f64 = opts.faults.iter().map(|f| f.rate).sum();
        if total > 1.0 {
            anyhow::bail!("sim:// fault rates add up to {total}, more than 1");
        }
        Ok(opts)
    }
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
        assert!(SimOptions::from_url("sim://").unwrap().faults.is_empty());
        assert!(SimOptions::from_url("sim://?fault=teapot:0.1").is_err());
        assert!(SimOptions::from_url("sim://?bogus=1").is_err());
        assert!(SimOptions::from_url("sim://?fault=500:0.7&fault=429:0.7").is_err());
    }
}
