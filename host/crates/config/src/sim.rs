//! `base_url: sim://?…`: the built-in simulated endpoint, and its options checked at load time so
//! a typo is reported with the model config's file and line.
//!
//! The `sim://` grammar has one parser, [`modelcall_sim::SimOptions::from_url`]: this crate
//! depends on `modelcall-sim` with `default-features = false`, which builds only that parser and
//! the option types (no server, no tokio). The grammar lives beside the simulator's fault kinds so
//! the two cannot drift apart, and the config keeps the parsed [`SimOptions`] instead of a copy of
//! them. See the `modelcall_sim::options` module for why that direction.

pub use modelcall_sim::{Fault, FaultError, FaultKind, SimOptions, SimUrlError};

/// One injected fault (the simulator's own type).
pub type SimFault = Fault;

/// A checked `sim://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpec {
    /// The whole URL, as written (after `${VAR}` interpolation).
    pub url: String,
    /// What it asks the simulator to do.
    pub options: SimOptions,
}

impl SimSpec {
    /// `None` when `url` is not a `sim://` URL; `Some(Err)` names what is wrong with its options.
    pub fn parse(url: &str) -> Option<Result<SimSpec, SimUrlError>> {
        if !SimOptions::is_sim_url(url) {
            return None;
        }
        Some(SimOptions::from_url(url).map(|options| SimSpec { url: url.to_string(), options }))
    }

    /// The options for `modelcall_sim::start`.
    pub fn options(&self) -> &SimOptions {
        &self.options
    }
}

/// The known option closest to an unknown one, for a `did you mean`.
pub fn suggestion(error: &SimUrlError) -> Option<String> {
    match error {
        SimUrlError::UnknownOption(option) => crate::error::closest(option, SimOptions::OPTIONS.iter().copied()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_options() {
        assert_eq!(SimSpec::parse("http://x"), None);
        let s = SimSpec::parse("sim://").unwrap().unwrap();
        assert_eq!((s.options.latency, s.options.faults.len()), (Duration::ZERO, 0));
        let s = SimSpec::parse("sim://?latency_ms=50&fault=429:0.05&fault=drop=0.01&seed=3&reasoning").unwrap().unwrap();
        assert_eq!(s.options.latency, Duration::from_millis(50));
        assert_eq!(s.options.faults, vec![SimFault { kind: FaultKind::RateLimited, rate: 0.05 }, SimFault { kind: FaultKind::Drop, rate: 0.01 }]);
        assert_eq!((s.options.seed, s.options.reasoning), (3, true));
        assert_eq!(s.url, "sim://?latency_ms=50&fault=429:0.05&fault=drop=0.01&seed=3&reasoning");
        let e = SimSpec::parse("sim://?latency=5").unwrap().unwrap_err();
        assert_eq!(suggestion(&e).as_deref(), Some("latency_ms"));
        assert!(SimSpec::parse("sim://?fault=teapot:0.1").unwrap().is_err());
        assert!(SimSpec::parse("sim://?fault=429:2").unwrap().is_err());
        assert!(SimSpec::parse("sim://?fault=429:0.6&fault=500:0.6").unwrap().is_err());
        assert!(SimSpec::parse("sim://?latency_ms=fast").unwrap().is_err());
    }
}
