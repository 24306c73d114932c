//! What the report shows, gathered in one pass over a run's output rows: the score
//! distributions (overall and per group), the slowest records, and the judge-quality
//! telemetry. Memory stays bounded whatever the run's size: histograms, running sums and
//! short top-k lists, never the rows themselves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// Columns that are bookkeeping, not verdicts.
const NOT_VERDICTS: &[&str] = &["id", "uid", "latency_ms", "parse_attempts", "attempts", "score_value", "seq", "line", "sample_index", "item", "audit_score"];

/// Fields that name a group when the rows have them.
const GROUP_FIELDS: &[&str] = &["language", "lang", "source", "repo_language"];

/// One numeric verdict field's values.
#[derive(Default, Clone)]
pub struct FieldStats {
    pub histogram: BTreeMap<String, u64>,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Values at the scale's ends (from the prompt's checks, else the observed ones; counted
    /// against both at the end).
    values_at: BTreeMap<i64, u64>,
    /// Rows whose reply lacked this key (the parser filled its default).
    pub defaulted: u64,
}

impl FieldStats {
    fn add(&mut self, v: f64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        }
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        *self.histogram.entry(bucket(v)).or_default() += 1;
        if v.fract() == 0.0 && v.abs() < 1e9 {
            *self.values_at.entry(v as i64).or_default() += 1;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

fn bucket(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// A record worth showing by itself.
#[derive(Clone)]
pub struct Shown {
    pub key: String,
    pub latency_ms: f64,
    pub detail: String,
}

/// Everything gathered from the rows.
#[derive(Default)]
pub struct RowStats {
    pub rows: u64,
    /// The headline score's column.
    pub headline: Option<String>,
    pub fields: BTreeMap<String, FieldStats>,
    /// group field → group value → headline stats.
    pub groups: BTreeMap<String, BTreeMap<String, FieldStats>>,
    pub by_file: BTreeMap<String, FieldStats>,
    pub slowest: Vec<Shown>,
    /// Every row's `latency_ms` (the record's whole time, its retries included): the latency the
    /// report shows, so its maximum is the slowest record's.
    pub latency: Option<hdrhistogram::Histogram<u64>>,
    /// The exact largest `latency_ms` (the histogram keeps 3 significant digits).
    pub latency_max: f64,
    pub parse_retried: u64,
    /// Audited records (judged twice): pairs, same verdict, sum of |first - second|.
    retest: (u64, u64, f64),
    /// For the headline/dimensions agreement: (headline, mean of dimensions) pairs, as sums.
    agreement: (u64, f64, f64, f64, f64, f64),
    /// Headline values of the first and the last tenth of the rows (in row order).
    first_tenth: FieldStats,
    last_tenth: FieldStats,
    /// The row count, known from the summary up front, to place the tenths in one pass.
    expected_rows: u64,
}

impl RowStats {
    pub fn new(expected_rows: u64, headline: Option<String>) -> Self {
        RowStats { expected_rows, headline, ..Default::default() }
    }

    /// One output row of `file`.
    pub fn add(&mut self, file: &str, row: &Map<String, Value>, json_keys: &BTreeSet<String>) {
        let index = self.rows;
        self.rows += 1;
        if self.headline.is_none() {
            // `score` is the verdict as the judge wrote it; `score_value` the parser's numeric copy
            // of it (the headline only when `score` is not a number, e.g. a label).
            self.headline = ["score", "score_value", "overall_score"].iter().find(|k| row.get(**k).is_some_and(Value::is_number)).map(|k| k.to_string());
        }
        // The reply's own keys, to tell the defaults the parser filled in (only worth parsing
        // when the prompt names the keys it expects).
        let reply_keys = if json_keys.is_empty() {
            None
        } else {
            row.get("api_return").and_then(Value::as_str).and_then(modelcall_verdict::find_object).map(|o| o.keys().cloned().collect::<BTreeSet<_>>())
        };
        let mut dimensions = Vec::new();
        for (k, v) in row {
            let Some(x) = v.as_f64() else { continue };
            if NOT_VERDICTS.contains(&k.as_str()) && Some(k.as_str()) != self.headline.as_deref() {
                continue;
            }
            let f = self.fields.entry(k.clone()).or_default();
            f.add(x);
            if let Some(keys) = &reply_keys {
                if json_keys.contains(k) && !keys.contains(k) {
                    f.defaulted += 1;
                }
            }
            if Some(k.as_str()) != self.headline.as_deref() && k != "score" && k.ends_with("score") {
                dimensions.push(x);
            }
        }
        let headline = self.headline.as_ref().and_then(|h| row.get(h)).and_then(Value::as_f64);
        if let Some(h) = headline {
            self.by_file.entry(file.to_string()).or_default().add(h);
            for g in GROUP_FIELDS {
                if let Some(value) = row.get(*g).and_then(Value::as_str) {
                    self.groups.entry(g.to_string()).or_default().entry(value.to_string()).or_default().add(h);
                }
            }
            if !dimensions.is_empty() {
                let d = dimensions.iter().sum::<f64>() / dimensions.len() as f64;
                let a = &mut self.agreement;
                a.0 += 1;
                a.1 += h;
                a.2 += d;
                a.3 += h * h;
                a.4 += d * d;
                a.5 += h * d;
            }
            let tenth = (self.expected_rows / 10).max(1);
            if index < tenth {
                self.first_tenth.add(h);
            } else if self.expected_rows > 0 && index >= self.expected_rows.saturating_sub(tenth) {
                self.last_tenth.add(h);
            }
        }
        if let (Some(h), Some(again)) = (headline, row.get("audit_score").and_then(Value::as_f64)) {
            self.retest.0 += 1;
            self.retest.1 += (h == again) as u64;
            self.retest.2 += (h - again).abs();
        }
        if row.get("parse_attempts").and_then(Value::as_u64).is_some_and(|n| n > 1) {
            self.parse_retried += 1;
        }
        if let Some(l) = row.get("latency_ms").and_then(Value::as_f64) {
            let h = self.latency.get_or_insert_with(|| hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid bounds"));
            let _ = h.record((l.max(0.0) as u64).clamp(1, 3_600_000));
            self.latency_max = self.latency_max.max(l);
            if self.slowest.len() < 10 || l > self.slowest.last().map_or(0.0, |s| s.latency_ms) {
                let key = ["id", "uid", "key"]
                    .iter()
                    .find_map(|k| row.get(*k))
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    .unwrap_or_else(|| format!("row {index}"));
                self.slowest.push(Shown { key, latency_ms: l, detail: file.to_string() });
                self.slowest.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
                self.slowest.truncate(10);
            }
        }
    }

    /// The records' latency as the report shows it: p50, p90, p99 and max (ms), from the rows.
    pub fn latency_percentiles(&self) -> Option<[f64; 4]> {
        let h = self.latency.as_ref().filter(|h| !h.is_empty())?;
        let q = |x: f64| (h.value_at_quantile(x) as f64).min(self.latency_max);
        Some([q(0.5), q(0.9), q(0.99), self.latency_max])
    }

    /// The judge-quality telemetry (for the report and `run_summary.json`). `scale` gives a
    /// field's (min, max) from the prompt's checks, when known.
    pub fn judge_quality(&self, scale: &BTreeMap<String, (f64, f64)>) -> Value {
        let mut fields = Map::new();
        for (name, f) in &self.fields {
            if f.count == 0 {
                continue;
            }
            let (lo, hi) = scale.get(name).copied().unwrap_or((f.min, f.max));
            let at = |v: f64| if v.fract() == 0.0 { f.values_at.get(&(v as i64)).copied().unwrap_or(0) } else { 0 };
            let extremes = if lo == hi { at(lo) } else { at(lo) + at(hi) };
            fields.insert(
                name.clone(),
                json!({
                    "count": f.count, "mean": round(f.sum / f.count as f64),
                    "scale": [lo, hi], "scale_from": if scale.contains_key(name) { "prompt checks" } else { "observed" },
                    "share_at_extremes": round(extremes as f64 / f.count as f64),
                    "share_defaulted": round(f.defaulted as f64 / f.count as f64),
                }),
            );
        }
        let (n, sh, sd, shh, sdd, shd) = self.agreement;
        let agreement = (n > 2).then(|| {
            let n = n as f64;
            let cov = shd / n - (sh / n) * (sd / n);
            let vh = shh / n - (sh / n).powi(2);
            let vd = sdd / n - (sd / n).powi(2);
            if vh > 0.0 && vd > 0.0 {
                json!({"pairs": n, "pearson": round(cov / (vh * vd).sqrt())})
            } else {
                json!({"pairs": n, "pearson": Value::Null, "note": "no variation"})
            }
        });
        let drift = (self.first_tenth.count > 0 && self.last_tenth.count > 0).then(|| {
            let tv = total_variation(&self.first_tenth.histogram, self.first_tenth.count, &self.last_tenth.histogram, self.last_tenth.count);
            json!({
                "first_tenth_mean": round(self.first_tenth.mean().unwrap_or(0.0)), "last_tenth_mean": round(self.last_tenth.mean().unwrap_or(0.0)),
                "mean_shift": round(self.last_tenth.mean().unwrap_or(0.0) - self.first_tenth.mean().unwrap_or(0.0)),
                "total_variation": round(tv),
            })
        });
        json!({
            "headline": self.headline, "rows": self.rows, "fields": fields,
            "headline_vs_dimensions": agreement, "drift_first_vs_last_tenth": drift,
            "parse_retried_share": if self.rows > 0 { round(self.parse_retried as f64 / self.rows as f64) } else { 0.0 },
            "test_retest": (self.retest.0 > 0).then(|| json!({
                "pairs": self.retest.0,
                "exact_agreement": round(self.retest.1 as f64 / self.retest.0 as f64),
                "mean_abs_difference": round(self.retest.2 / self.retest.0 as f64),
            })),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Half the L1 distance between two histograms (0: the same distribution, 1: disjoint).
fn total_variation(a: &BTreeMap<String, u64>, na: u64, b: &BTreeMap<String, u64>, nb: u64) -> f64 {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.iter().map(|k| (a.get(*k).copied().unwrap_or(0) as f64 / na as f64 - b.get(*k).copied().unwrap_or(0) as f64 / nb as f64).abs()).sum::<f64>() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn telemetry_counts_extremes_defaults_agreement_and_drift() {
        let keys: BTreeSet<String> = ["score", "a_score", "b_score"].iter().map(|s| s.to_string()).collect();
        let mut s = RowStats::new(20, None);
        for i in 0..20 {
            let h = if i < 10 { 1 } else { 5 };
            // The reply lacks b_score on even rows: the parser filled its default.
            let reply = if i % 2 == 0 {
                format!("```json\n{{\"score\": {h}, \"a_score\": {h}}}\n```")
            } else {
                format!("{{\"score\": {h}, \"a_score\": {h}, \"b_score\": {h}}}")
            };
            s.add("f", &row(json!({"id": i, "score": h, "a_score": h, "b_score": h, "api_return": reply, "latency_ms": i})), &keys);
        }
        let scale = BTreeMap::from([("score".to_string(), (1.0, 5.0))]);
        let q = s.judge_quality(&scale);
        assert_eq!(q["headline"], "score");
        assert_eq!(q["fields"]["score"]["share_at_extremes"], 1.0);
        assert_eq!(q["fields"]["b_score"]["share_defaulted"], 0.5);
        assert_eq!(q["fields"]["a_score"]["share_defaulted"], 0.0);
        assert_eq!(q["headline_vs_dimensions"]["pearson"], 1.0);
        assert_eq!(q["drift_first_vs_last_tenth"]["mean_shift"], 4.0);
        assert_eq!(q["drift_first_vs_last_tenth"]["total_variation"], 1.0);
        assert_eq!(s.slowest[0].latency_ms, 19.0);
        assert_eq!(s.latency_percentiles().unwrap()[3], s.slowest[0].latency_ms, "max latency is the slowest record's");
    }

    #[test]
    fn score_is_the_headline_and_score_value_is_not_a_second_field() {
        let mut s = RowStats::new(2, None);
        for v in [2, 4] {
            s.add("f", &row(json!({"id": v, "score": v, "score_value": v as f64})), &BTreeSet::new());
        }
        assert_eq!(s.headline.as_deref(), Some("score"));
        assert_eq!(s.fields.keys().collect::<Vec<_>>(), vec!["score"]);
    }
}
