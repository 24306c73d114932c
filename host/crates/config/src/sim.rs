//! `base_url: sim://?…`: the built-in simulated endpoint, and its options checked at load time so
//! a typo is reported with the model config's file and line (the sim crate runs them later).

/// One injected fault: `kind` as written (`429`, `500`, `drop`, `malformed`, `hang`, `401`…) and
/// its probability per request.
#[derive(Debug, Clone, PartialEq)]
pub struct SimFault {
    pub kind: String,
    pub rate: f64,
}

/// The options of a `sim://` URL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimSpec {
    /// The whole URL, for `modelcall_sim::SimOptions::from_url`.
    pub url: String,
    pub latency_ms: Option<u64>,
    pub faults: Vec<SimFault>,
    pub retry_after_secs: Option<u64>,
    pub seed: Option<u64>,
    pub reasoning: bool,
}

/// Fault kinds the simulator knows (kept in step with `modelcall_sim::FaultKind::parse`).
const FAULT_KINDS: &[&str] = &[
    "429", "rate_limited", "rate-limited", "500", "5xx", "server_error", "drop", "dropped", "reset", "malformed",
    "garbage", "hang", "401", "unauthorized", "auth",
];
const OPTIONS: &[&str] = &["latency_ms", "fault", "retry_after_secs", "seed", "reasoning"];

impl SimSpec {
    /// `None` when `url` is not a `sim://` URL; `Some(Err)` names what is wrong with its options.
    pub fn parse(url: &str) -> Option<Result<SimSpec, String>> {
        let rest = url.strip_prefix("sim://")?;
        Some(Self::parse_query(url, rest.trim_start_matches('/').trim_start_matches('?')))
    }

    fn parse_query(url: &str, query: &str) -> Result<SimSpec, String> {
        let mut spec = SimSpec { url: url.to_string(), ..SimSpec::default() };
        let num = |k: &str, v: &str| v.parse::<u64>().map_err(|_| format!("sim:// option {k}=`{v}` is not a whole number"));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "latency_ms" => spec.latency_ms = Some(num(k, v)?),
                "retry_after_secs" => spec.retry_after_secs = Some(num(k, v)?),
                "seed" => spec.seed = Some(num(k, v)?),
                "reasoning" => spec.reasoning = v.is_empty() || v == "true" || v == "1",
                "fault" => {
                    let (kind, rate) = v
                        .split_once([':', '='])
                        .ok_or_else(|| format!("sim:// fault `{v}` should be KIND:RATE, e.g. 429:0.05"))?;
                    if !FAULT_KINDS.contains(&kind.trim().to_ascii_lowercase().as_str()) {
                        return Err(format!("sim:// fault kind `{kind}` is unknown (expected 429, 500, drop, malformed, hang or 401)"));
                    }
                    let rate: f64 = rate.trim().parse().map_err(|_| format!("sim:// fault rate `{rate}` is not a number"))?;
                    if !(0.0..=1.0).contains(&rate) {
                        return Err(format!("sim:// fault rate {rate} must be between 0 and 1"));
                    }
                    spec.faults.push(SimFault { kind: kind.trim().to_string(), rate });
                }
                other => {
                    let hint = crate::error::closest(other, OPTIONS.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(format!("unknown sim:// option `{other}` (expected {}){hint}", OPTIONS.join(", ")));
                }
            }
        }
        let total: f64 = spec.faults.iter().map(|f| f.rate).sum();
        if total > 1.0 + 1e-9 {
            return Err(format!("sim:// fault rates add up to {total}, more than 1"));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        assert_eq!(SimSpec::parse("http://x"), None);
        let s = SimSpec::parse("sim://").unwrap().unwrap();
        assert_eq!((s.latency_ms, s.faults.len()), (None, 0));
        let s = SimSpec::parse("sim://?latency_ms=50&fault=429:0.05&fault=drop=0.01&seed=3&reasoning").unwrap().unwrap();
        assert_eq!(s.latency_ms, Some(50));
        assert_eq!(s.faults, vec![SimFault { kind: "429".into(), rate: 0.05 }, SimFault { kind: "drop".into(), rate: 0.01 }]);
        assert_eq!((s.seed, s.reasoning), (Some(3), true));
        assert!(SimSpec::parse("sim://?latency=5").unwrap().unwrap_err().contains("did you mean `latency_ms`"));
        assert!(SimSpec::parse("sim://?fault=teapot:0.1").unwrap().is_err());
        assert!(SimSpec::parse("sim://?fault=429:2").unwrap().is_err());
        assert!(SimSpec::parse("sim://?fault=429:0.6&fault=500:0.6").unwrap().is_err());
        assert!(SimSpec::parse("sim://?latency_ms=fast").unwrap().is_err());
    }
}
