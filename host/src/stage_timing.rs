//! Where a record's time goes between being read and being journaled, per stage, for
//! `run_summary.json` (`stage_timing_ms`): the answer to "the client holds 1,024 requests in
//! flight but the endpoint sees fewer" (time in flight outside the HTTP exchange).
//!
//! Stages, in the order a record meets them:
//! * `slot_wait`: read, waiting for a slot under the concurrency limit (not in flight yet);
//! * `prompt`: building the prompt (the prompt-builder plugin, its instance pool included);
//! * `wire`: the HTTP exchanges (every attempt's request and answer);
//! * `parse`: the score parser (its instance pool included);
//! * `other`: the rest of the job's time in flight (backoff between retries, rate-limit waits,
//!   routing);
//! * `handoff`: from the job's end to the collector taking its outcome (the channel's queue);
//! * `journal`: the collector's work on it (the row, the journal append, the counters).
//!
//! Each is a histogram in microseconds; the summary shows p50/p99 and the mean in milliseconds,
//! and the share of the time in flight (`prompt + wire + parse + other`) that was on the wire.

use std::time::Duration;

use serde_json::{json, Map, Value};

/// The stages in report order.
pub const STAGES: [&str; 7] = ["slot_wait", "prompt", "wire", "parse", "other", "handoff", "journal"];

/// One record's time per stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct ItemTiming {
    pub slot_wait: Duration,
    pub prompt: Duration,
    pub wire: Duration,
    pub parse: Duration,
    /// The job's whole time (prompt, wire, parse and the rest).
    pub job: Duration,
    pub handoff: Duration,
    pub journal: Duration,
}

impl ItemTiming {
    fn stages(&self) -> [Duration; 7] {
        let other = self.job.saturating_sub(self.prompt + self.wire + self.parse);
        [self.slot_wait, self.prompt, self.wire, self.parse, other, self.handoff, self.journal]
    }
}

/// Histograms of [`ItemTiming`] over a run.
#[derive(Debug)]
pub struct StageTimes {
    histograms: Vec<hdrhistogram::Histogram<u64>>,
    /// Sums (µs) for the means and the wire share.
    sums: [u128; 7],
}

impl Default for StageTimes {
    fn default() -> Self {
        let histogram = || hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        StageTimes { histograms: (0..STAGES.len()).map(|_| histogram()).collect(), sums: [0; 7] }
    }
}

impl StageTimes {
    pub fn record(&mut self, t: &ItemTiming) {
        for (i, d) in t.stages().iter().enumerate() {
            let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
            let _ = self.histograms[i].record(us);
            self.sums[i] += d.as_micros();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.histograms[0].is_empty()
    }

    /// `{"records": n, "<stage>": {"p50", "p99", "mean"} (ms), "wire_share_in_flight": 0.97}`;
    /// null when no record was timed.
    pub fn to_json(&self) -> Value {
        if self.is_empty() {
            return Value::Null;
        }
        let n = self.histograms[0].len();
        let ms = |us: f64| (us / 10.0).round() / 100.0;
        let mut out = Map::new();
        out.insert("records".into(), json!(n));
        for (i, name) in STAGES.iter().enumerate() {
            let h = &self.histograms[i];
            out.insert(
                (*name).into(),
                json!({
                    "p50": ms(h.value_at_quantile(0.5) as f64),
                    "p99": ms(h.value_at_quantile(0.99) as f64),
                    "mean": ms(self.sums[i] as f64 / n as f64),
                }),
            );
        }
        // prompt + wire + parse + other = the job's time in flight.
        let in_flight: u128 = self.sums[1..5].iter().sum();
        if in_flight > 0 {
            out.insert("wire_share_in_flight".into(), json!((self.sums[2] as f64 / in_flight as f64 * 1000.0).round() / 1000.0));
        }
        Value::Object(out)
    }
}

/// Each plugin role's call times (the call itself, as the runtime measures it: no wait for an
/// instance or a thread), for `run_summary.json`'s `plugin_calls`: what a plugin costs per
/// record, beside its name and hash in `run.plugins`.
#[derive(Debug, Default)]
pub struct PluginCallTimes {
    by_role: std::collections::BTreeMap<&'static str, (hdrhistogram::Histogram<u64>, u128)>,
}

impl PluginCallTimes {
    pub fn record(&mut self, role: &'static str, elapsed_us: u64) {
        let (h, sum) = self.by_role.entry(role).or_insert_with(|| (hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"), 0));
        let _ = h.record(elapsed_us.clamp(1, 3_600_000_000));
        *sum += elapsed_us as u128;
    }

    /// `{"<role>": {"calls", "p50_us", "p99_us", "mean_us"}}`; null when no plugin was called.
    pub fn to_json(&self) -> Value {
        if self.by_role.is_empty() {
            return Value::Null;
        }
        let roles = self
            .by_role
            .iter()
            .map(|(role, (h, sum))| {
                let n = h.len();
                let mean = (*sum as f64 / n.max(1) as f64 * 10.0).round() / 10.0;
                ((*role).to_string(), json!({"calls": n, "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99), "mean_us": mean}))
            })
            .collect();
        Value::Object(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_calls_are_counted_per_role() {
        let mut p = PluginCallTimes::default();
        assert!(p.to_json().is_null());
        for us in [10, 20, 30, 1000] {
            p.record("score-parser", us);
        }
        p.record("prompt-builder", 5);
        let v = p.to_json();
        assert_eq!(v["score-parser"]["calls"], 4);
        assert_eq!(v["score-parser"]["mean_us"], 265.0);
        assert_eq!(v["prompt-builder"]["p50_us"], 5);
    }

    #[test]
    fn stages_add_up_and_other_is_the_rest_of_the_job() {
        let mut s = StageTimes::default();
        assert!(s.to_json().is_null());
        let ms = Duration::from_millis;
        for _ in 0..100 {
            s.record(&ItemTiming { slot_wait: ms(5), prompt: ms(1), wire: ms(200), parse: ms(2), job: ms(210), handoff: ms(0), journal: ms(0) });
        }
        let v = s.to_json();
        assert_eq!(v["records"], 100);
        let p50 = v["wire"]["p50"].as_f64().unwrap();
        assert!((200.0..=200.3).contains(&p50), "within the histogram's 3 digits: {v}");
        assert_eq!(v["other"]["mean"], 7.0, "job 210 - prompt 1 - wire 200 - parse 2: {v}");
        assert_eq!(v["wire_share_in_flight"], 0.952, "{v}");
        // A clock that ran backwards (wire longer than the job) does not underflow.
        s.record(&ItemTiming { wire: ms(300), job: ms(10), ..Default::default() });
        assert_eq!(s.to_json()["records"], 101);
    }
}
