//! The judge-quality telemetry ([`super::stats::RowStats::judge_quality`]) in plain words: each
//! measure read against a threshold ("23 % of replies at the scale's ends: high, the judge may be
//! saturating") with what to do about it.

use std::fmt::Write as _;

use serde_json::Value;

use super::svg::esc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Good,
    Note,
    Warn,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Good => "ok",
            Level::Note => "note",
            Level::Warn => "check",
        }
    }
}

/// One reading: what was measured, how it reads, what to do.
#[derive(Debug)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub todo: Option<String>,
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p > 0.0 && p < 1.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

fn num(x: f64) -> String {
    super::svg::short((x * 100.0).round() / 100.0)
}

/// Share of replies at the scale's ends: below 5 % the judge avoids them, 20 % and above it may
/// be saturating.
pub const EXTREMES_HIGH: f64 = 0.20;
pub const EXTREMES_LOW: f64 = 0.05;
/// Defaults filled, parse retries: 5 % and above is worth a look.
pub const DEFAULTED_HIGH: f64 = 0.05;
pub const RETRIED_HIGH: f64 = 0.05;
/// Fewer rows than this per tenth: drift is not measured.
pub const DRIFT_MIN_PER_TENTH: u64 = 30;

/// Reads the telemetry. `fields` are read for the headline and the `*score` dimensions.
pub fn findings(q: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let headline = q["headline"].as_str().unwrap_or("score");
    let rows = q["rows"].as_u64().unwrap_or(0);
    if rows == 0 {
        out.push(Finding { level: Level::Note, what: "No scored record: nothing to say about the judge.".into(), todo: None });
        return out;
    }
    for (name, f) in q["fields"].as_object().into_iter().flatten() {
        let count = f["count"].as_u64().unwrap_or(0);
        let (lo, hi) = (f["scale"][0].as_f64().unwrap_or(0.0), f["scale"][1].as_f64().unwrap_or(0.0));
        let from = f["scale_from"].as_str().unwrap_or("observed");
        let ends = f["share_at_extremes"].as_f64().unwrap_or(0.0);
        let scale = format!("{} to {}{}", num(lo), num(hi), if from == "observed" { ", as observed" } else { ", from the prompt's checks" });
        if count > 1 && lo == hi {
            out.push(Finding {
                level: Level::Warn,
                what: format!("`{name}`: every reply gave {}: this field does not tell records apart.", num(lo)),
                todo: Some("Check a few replies in the record browser; a constant verdict usually means the prompt's example is copied, or the rubric does not fit the data.".into()),
            });
            continue;
        }
        // Shares at the ends only mean something against a known scale (or the headline's).
        if from != "observed" || name == headline {
            let (level, reading, todo) = if ends >= EXTREMES_HIGH {
                (Level::Warn, "high, the judge may be saturating", Some("Anchor both ends of the scale in the prompt (what a minimum and a maximum look like, with an example each), ask for the reasons before the score, and read the records at the ends in the record browser."))
            } else if ends < EXTREMES_LOW && count >= 20 {
                (
                    Level::Note,
                    "low, the judge avoids the ends (it may be hedging towards the middle)",
                    Some("If the data has clearly bad or excellent records, describe them in the prompt so the judge dares to use the ends."),
                )
            } else {
                (Level::Good, "normal", None)
            };
            out.push(Finding {
                level,
                what: format!("`{name}`: {} of replies at the scale's ends ({scale}): {reading}.", pct(ends)),
                todo: todo.map(str::to_string),
            });
        }
        let defaulted = f["share_defaulted"].as_f64().unwrap_or(0.0);
        if defaulted > 0.0 {
            let level = if defaulted >= DEFAULTED_HIGH { Level::Warn } else { Level::Note };
            out.push(Finding {
                level,
                what: format!("`{name}`: {} of replies lacked the key; the parser filled in its default, so the statistics lean towards it.", pct(defaulted)),
                todo: Some(format!("Show `{name}` in the prompt's example reply, list it in `json_key_must_exists` so such replies are re-asked, or ask for structured output (`response_format`).")),
            });
        }
    }
    let retried = q["parse_retried_share"].as_f64().unwrap_or(0.0);
    out.push(if retried >= RETRIED_HIGH {
        Finding {
            level: Level::Warn,
            what: format!("{} of replies had to be asked again because they did not parse: high.", pct(retried)),
            todo: Some("Read the re-ask hints below; make the expected format explicit in the prompt, or use structured output.".into()),
        }
    } else if retried > 0.0 {
        Finding { level: Level::Note, what: format!("{} of replies had to be asked again because they did not parse: low.", pct(retried)), todo: None }
    } else {
        Finding { level: Level::Good, what: "Every reply parsed at the first attempt.".into(), todo: None }
    });
    let hd = &q["headline_vs_dimensions"];
    if let Some(r) = hd["pearson"].as_f64() {
        let (level, reading, todo) = if r >= 0.7 {
            (Level::Good, "they agree", None)
        } else if r >= 0.4 {
            (Level::Note, "moderate agreement", Some("Check the records where the headline and the dimensions differ most."))
        } else {
            (
                Level::Warn,
                "they disagree: the headline is not explained by the dimensions",
                Some("Ask for the dimension scores first and derive the headline from them, or state in the rubric how they combine."),
            )
        };
        out.push(Finding {
            level,
            what: format!("Headline `{headline}` vs the mean of the dimension scores: correlation {} over {} records: {reading}.", num(r), hd["pairs"]),
            todo: todo.map(str::to_string),
        });
    } else if hd.is_object() {
        out.push(Finding { level: Level::Note, what: "Headline vs the dimension scores: no variation, so no correlation.".into(), todo: None });
    }
    let per_tenth = rows / 10;
    let drift = &q["drift_first_vs_last_tenth"];
    if per_tenth < DRIFT_MIN_PER_TENTH {
        out.push(Finding {
            level: Level::Note,
            what: format!("Drift not judged: {per_tenth} records per tenth of the run, fewer than {DRIFT_MIN_PER_TENTH}."),
            todo: None,
        });
    } else if drift.is_object() {
        let tv = drift["total_variation"].as_f64().unwrap_or(0.0);
        let shift = drift["mean_shift"].as_f64().unwrap_or(0.0);
        let (a, b) = (drift["first_tenth_mean"].as_f64().unwrap_or(0.0), drift["last_tenth_mean"].as_f64().unwrap_or(0.0));
        let words = format!(
            "mean {} in the first tenth of the run, {} in the last (shift {}{}); distributions differ by {}",
            num(a),
            num(b),
            if shift >= 0.0 { "+" } else { "" },
            num(shift),
            pct(tv)
        );
        out.push(if tv >= 0.2 {
            Finding {
                level: Level::Warn,
                what: format!("Drift: {words}: high."),
                todo: Some(
                    "If the input is not ordered by content, the judge or the endpoint changed during the run: compare the run history and settings below."
                        .into(),
                ),
            }
        } else {
            Finding { level: Level::Good, what: format!("Drift: {words}: stable."), todo: None }
        });
    }
    let rt = &q["test_retest"];
    if let Some(exact) = rt["exact_agreement"].as_f64() {
        let mad = rt["mean_abs_difference"].as_f64().unwrap_or(0.0);
        let words = format!("the same record judged twice got the same score {} of the time ({} pairs, mean difference {})", pct(exact), rt["pairs"], num(mad));
        out.push(if exact >= 0.9 {
            Finding { level: Level::Good, what: format!("Test-retest: {words}: consistent."), todo: None }
        } else if exact >= 0.7 {
            Finding {
                level: Level::Note,
                what: format!("Test-retest: {words}: somewhat inconsistent."),
                todo: Some("Lower the temperature or make the rubric more specific.".into()),
            }
        } else {
            Finding {
                level: Level::Warn,
                what: format!("Test-retest: {words}: inconsistent, single judgements are noisy."),
                todo: Some("Use temperature 0, a more specific rubric, or average several judgements per record.".into()),
            }
        });
    } else {
        out.push(Finding {
            level: Level::Note,
            what: "Test-retest not measured.".into(),
            todo: Some("Set `options.audit_sample: 0.05` to judge 5 % of the records twice and measure the judge's consistency.".into()),
        });
    }
    out
}

/// The findings as a table (level, what was found, what to do).
pub fn render(q: &Value) -> String {
    let mut s = String::from("<table class=\"quality\"><tr><th></th><th>What the judge did</th><th>What to do</th></tr>");
    for f in findings(q) {
        let _ = write!(
            s,
            "<tr class=\"q-{l}\"><td><span class=\"badge {l}\">{l}</span></td><td>{}</td><td>{}</td></tr>",
            code(&f.what),
            f.todo.as_deref().map(code).unwrap_or_else(|| "–".into()),
            l = f.level.label()
        );
    }
    s + "</table>"
}

/// Escapes, then shows `backticked` words as code.
fn code(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_words_with_thresholds() {
        let q = json!({"headline": "score", "rows": 400, "fields": {"score": {"count": 400, "scale": [1.0, 5.0], "scale_from": "prompt checks", "share_at_extremes": 0.23, "share_defaulted": 0.0}},
            "parse_retried_share": 0.0, "headline_vs_dimensions": null, "drift_first_vs_last_tenth": {"first_tenth_mean": 3.0, "last_tenth_mean": 3.1, "mean_shift": 0.1, "total_variation": 0.05}, "test_retest": null});
        let f = findings(&q);
        assert!(f.iter().any(|f| f.level == Level::Warn && f.what.contains("23 % of replies at the scale's ends") && f.what.contains("saturating")), "{f:?}");
        assert!(f.iter().any(|f| f.what.contains("stable")), "{f:?}");
        assert!(f.iter().any(|f| f.todo.as_deref().is_some_and(|t| t.contains("audit_sample"))), "{f:?}");
        assert!(!render(&q).contains("null"));
    }
}
