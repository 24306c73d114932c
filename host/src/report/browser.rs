//! The record browser: per score bucket a sample of records (what was asked → the reply → the
//! parsed verdict) and every failure with its cause and message, searchable by id. The records
//! are plain HTML (readable without script); one small inline script filters them by id, from a
//! search box or from the page's address (`report.html#id=en-003`).
//!
//! Memory stays bounded: per bucket the [`PER_BUCKET`] records with the smallest hash of their
//! id (a sample that does not depend on the input's order), every record while the run has at
//! most [`ALL_UP_TO`], and at most [`MAX_FAILURES`] failures.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::svg::esc;

/// Records kept per score bucket (beyond [`ALL_UP_TO`] rows).
pub const PER_BUCKET: usize = 8;
/// Runs with at most this many rows show every record.
pub const ALL_UP_TO: usize = 1000;
/// Failures shown.
pub const MAX_FAILURES: usize = 5000;
/// Characters kept of a text field, and of a reply.
const EXCERPT: usize = 600;
const REPLY: usize = 2000;

/// Columns that are bookkeeping: neither the input nor the verdict.
const BOOKKEEPING: &[&str] = &[
    "api_fail_reason",
    "api_return",
    "api_status",
    "attempts",
    "finish_reason",
    "latency_ms",
    "parse_attempts",
    "score_value",
    "usage",
    "reasoning",
    "reasoning_content",
    "audit_score",
    "made",
];

/// A record's id: its `id`, `uid` or `key` field, else its row number.
pub fn record_key(row: &Map<String, Value>, index: u64) -> String {
    ["id", "uid", "key"]
        .iter()
        .find_map(|k| row.get(*k))
        .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
        .unwrap_or_else(|| format!("row {index}"))
}

fn excerpt(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + " …"
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// One output row as shown.
#[derive(Clone)]
struct Sample {
    key: String,
    file: String,
    score: Option<f64>,
    input: Vec<(String, String)>,
    reply: String,
    verdict: Vec<(String, String)>,
}

/// One error row as shown.
struct Failure {
    key: String,
    cause: String,
    message: String,
    detail: Vec<(String, String)>,
    input: Vec<(String, String)>,
    reply: Option<String>,
}

#[derive(Default)]
pub struct Browser {
    /// Bucket label → (hash of id, record), the smallest hashes kept.
    buckets: BTreeMap<String, Vec<(u64, Sample)>>,
    /// Rows per bucket.
    counts: BTreeMap<String, u64>,
    /// Every row, while there are at most [`ALL_UP_TO`].
    all: Vec<Sample>,
    rows: u64,
    failures: Vec<Failure>,
    failures_total: u64,
}

fn bucket_of(score: Option<f64>) -> String {
    match score {
        Some(v) if v.fract() == 0.0 => format!("{}", v as i64),
        Some(v) => format!("{v:.1}"),
        None => "no score".into(),
    }
}

fn bucket_order(label: &str) -> f64 {
    label.parse::<f64>().unwrap_or(f64::MAX)
}

impl Browser {
    /// One output row; `headline` is the score column, `verdict_keys` the prompt's `json_keys`
    /// (empty: the keys of the verdict object found in the reply).
    pub fn add(&mut self, file: &str, row: &Map<String, Value>, headline: Option<&str>, verdict_keys: &BTreeSet<String>) {
        let index = self.rows;
        self.rows += 1;
        let key = record_key(row, index);
        let score = headline.and_then(|h| row.get(h)).and_then(Value::as_f64);
        let bucket = bucket_of(score);
        *self.counts.entry(bucket.clone()).or_default() += 1;
        let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
        let list = self.buckets.entry(bucket).or_default();
        let keep_sample = list.len() < PER_BUCKET || list.last().is_some_and(|l| hash < l.0);
        let keep_all = self.rows as usize <= ALL_UP_TO;
        if !keep_all && !self.all.is_empty() {
            self.all = Vec::new();
        }
        if !keep_sample && !keep_all {
            return;
        }
        let reply = row.get("api_return").and_then(Value::as_str).unwrap_or("");
        let found: BTreeSet<String>;
        let keys = if verdict_keys.is_empty() {
            found = modelcall_verdict::find_object(reply)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_else(|| headline.into_iter().map(str::to_string).collect());
            &found
        } else {
            verdict_keys
        };
        let verdict = keys.iter().filter_map(|k| row.get(k).map(|v| (k.clone(), excerpt(&shown(v), EXCERPT)))).collect();
        let input = row
            .iter()
            .filter(|(k, _)| !BOOKKEEPING.contains(&k.as_str()) && !keys.contains(*k) && Some(k.as_str()) != headline)
            .map(|(k, v)| (k.clone(), excerpt(&shown(v), EXCERPT)))
            .collect();
        let sample = Sample { key, file: file.to_string(), score, input, reply: excerpt(reply, REPLY), verdict };
        if keep_all {
            self.all.push(sample.clone());
        }
        if keep_sample {
            list.push((hash, sample));
            list.sort_by_key(|s| s.0);
            list.truncate(PER_BUCKET);
        }
    }

    /// One error row: `cause`, `message`, `record`, and `api_return` when a reply arrived.
    pub fn add_failure(&mut self, row: &Map<String, Value>) {
        self.failures_total += 1;
        if self.failures.len() >= MAX_FAILURES {
            return;
        }
        // The record: `record_json` (its JSON text), or `record` in files written before.
        let record = row.get("record_json").and_then(Value::as_str).and_then(|t| serde_json::from_str::<Value>(t).ok()).or_else(|| row.get("record").cloned());
        let key = ["key", "id", "uid"]
            .iter()
            .find_map(|k| row.get(*k))
            .or_else(|| record.as_ref().and_then(|r| r.get("id")))
            .map(shown)
            .unwrap_or_else(|| format!("error {}", self.failures_total));
        let detail = ["attempts", "retryable", "api_fail_reason", "file", "line"]
            .iter()
            .filter_map(|k| row.get(*k).filter(|v| !v.is_null() && v.as_str() != Some("")).map(|v| (k.to_string(), excerpt(&shown(v), EXCERPT))))
            .filter(|(k, v)| k != "api_fail_reason" || Some(v.as_str()) != row.get("message").and_then(Value::as_str))
            .collect();
        let input = match record.as_ref() {
            Some(Value::Object(r)) => r.iter().map(|(k, v)| (k.clone(), excerpt(&shown(v), EXCERPT))).collect(),
            Some(other) => vec![("record".into(), excerpt(&shown(other), EXCERPT))],
            None => Vec::new(),
        };
        self.failures.push(Failure {
            key,
            cause: row.get("cause").map(shown).unwrap_or_else(|| "unknown".into()),
            message: excerpt(&row.get("message").or_else(|| row.get("api_fail_reason")).or_else(|| row.get("error")).map(shown).unwrap_or_default(), 2000),
            detail,
            input,
            reply: row.get("api_return").and_then(Value::as_str).filter(|r| !r.is_empty()).map(|r| excerpt(r, REPLY)),
        });
    }

    /// One message per failure cause (the first seen).
    pub fn example_by_cause(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for f in &self.failures {
            out.entry(f.cause.clone()).or_insert_with(|| excerpt(&f.message, 300));
        }
        out
    }

    /// The `<section id="browser">`.
    pub fn render(&self, headline: Option<&str>) -> String {
        let all = self.rows as usize <= ALL_UP_TO && self.all.len() as u64 == self.rows;
        let mut s = String::from("<section id=\"browser\"><h2>Record browser</h2>");
        let _ = write!(
            s,
            "<p><label for=\"browser-search\">Find a record by id:</label> <input id=\"browser-search\" type=\"search\" placeholder=\"record id, e.g. {}\" autocomplete=\"off\"> <span id=\"browser-status\" class=\"muted\"></span></p>\
             <p class=\"muted\">{} Link to a record with <code>report.html#id=ID</code>. Each record reads left to right: what was asked (the input fields) → the model's reply → the verdict parsed from it.</p>",
            esc(self.all.first().or_else(|| self.buckets.values().flatten().next().map(|s| &s.1)).map(|s| s.key.as_str()).unwrap_or("rec-1")),
            if all {
                format!("All {} records of the run, by score, and every failure.", self.rows)
            } else {
                format!("{} records: per score, a sample of {PER_BUCKET} (those with the smallest hash of their id, so not biased by the input's order), and every failure.", self.rows)
            }
        );
        let _ = write!(s, "<h3>Records by {}</h3>", esc(headline.unwrap_or("score")));
        let mut labels: Vec<&String> = self.counts.keys().collect();
        labels.sort_by(|a, b| bucket_order(a).total_cmp(&bucket_order(b)));
        for label in labels {
            let n = self.counts[label];
            let records: Vec<&Sample> =
                if all { self.all.iter().filter(|r| &bucket_of(r.score) == label).collect() } else { self.buckets[label].iter().map(|s| &s.1).collect() };
            let what = if label == "no score" { "no score".to_string() } else { format!("{} = {}", headline.unwrap_or("score"), label) };
            let _ = write!(
                s,
                "<div class=\"bucket\"><h4>{} · {n} record{}{}</h4>",
                esc(&what),
                if n == 1 { "" } else { "s" },
                if all || records.len() as u64 == n { String::new() } else { format!(" (a sample of {})", records.len()) }
            );
            for r in records {
                let first = r.input.iter().find(|(k, _)| k != "id" && k != "uid" && k != "key").map(|(_, v)| excerpt(v, 90)).unwrap_or_default();
                let _ = write!(
                    s,
                    "<div class=\"rec\" data-id=\"{k}\"><details><summary><code>{k}</code> · <b>{}</b> · <span class=\"muted\">{}</span></summary><div class=\"flow\">\
                     <div><h5>asked (input fields)</h5>{}</div><div><h5>→ reply</h5><pre>{}</pre></div><div><h5>→ parsed verdict</h5>{}</div></div><p class=\"muted\">{}</p></details></div>",
                    esc(&r.score.map(super::svg::short).unwrap_or_else(|| "–".into())),
                    esc(&first),
                    fields(&r.input),
                    esc(&r.reply),
                    fields(&r.verdict),
                    esc(&r.file),
                    k = esc(&r.key)
                );
            }
            s.push_str("</div>");
        }
        let _ = write!(
            s,
            "<div class=\"bucket\"><h3>Failures ({}{})</h3>",
            self.failures_total,
            if self.failures_total as usize > self.failures.len() { format!(", the first {} shown", self.failures.len()) } else { String::new() }
        );
        if self.failures.is_empty() {
            s.push_str("<p>None.</p>");
        }
        for f in &self.failures {
            let _ = write!(
                s,
                "<div class=\"rec failure\" data-id=\"{k}\"><details><summary><code>{k}</code> · <b>{}</b> · <span class=\"muted\">{}</span></summary><div class=\"flow\">\
                 <div><h5>asked (the record)</h5>{}</div><div><h5>→ {}</h5>{}</div><div><h5>why it failed</h5><p><b>{}</b></p><pre>{}</pre>{}</div></div></details></div>",
                esc(&f.cause),
                esc(&excerpt(&f.message, 120)),
                fields(&f.input),
                if f.reply.is_some() { "reply" } else { "no reply" },
                f.reply.as_ref().map(|r| format!("<pre>{}</pre>", esc(r))).unwrap_or_else(|| "<p class=\"muted\">no reply arrived</p>".into()),
                esc(&f.cause),
                esc(&f.message),
                fields(&f.detail),
                k = esc(&f.key)
            );
        }
        s.push_str("</div><p id=\"browser-none\" hidden>No record with that id among the records shown here.</p>");
        s.push_str(SCRIPT);
        s.push_str("</section>");
        s
    }
}

fn fields(list: &[(String, String)]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">–</p>".into();
    }
    let mut s = String::from("<table class=\"fields\">");
    for (k, v) in list {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s + "</table>"
}

/// Filters the records by id (substring, case-insensitive), from the box or `#id=…`; opens the
/// matches (an exact match first). Works on `file://`, no network.
const SCRIPT: &str = r#"<script>
(function () {
  var box = document.getElementById('browser-search'), status = document.getElementById('browser-status');
  var none = document.getElementById('browser-none');
  var recs = Array.prototype.slice.call(document.querySelectorAll('#browser .rec'));
  function run(q) {
    q = (q || '').trim().toLowerCase();
    var n = 0, exact = null;
    recs.forEach(function (r) {
      var id = (r.getAttribute('data-id') || '').toLowerCase();
      var m = !q || id.indexOf(q) >= 0;
      r.hidden = !m;
      if (m) n++;
      if (q && id === q && !exact) exact = r;
      var d = r.querySelector('details');
      if (d) d.open = !!q && m && (id === q || n <= 10);
    });
    document.querySelectorAll('#browser .bucket').forEach(function (b) {
      b.hidden = !!q && !b.querySelector('.rec:not([hidden])');
    });
    none.hidden = !q || n > 0;
    status.setAttribute('data-matches', String(n));
    status.textContent = q ? n + ' of ' + recs.length + ' records match \u201c' + q + '\u201d' : recs.length + ' records';
    var target = exact || (q && recs.filter(function (r) { return !r.hidden; })[0]);
    if (target && target.scrollIntoView) target.scrollIntoView();
  }
  box.addEventListener('input', function () {
    run(box.value);
    try { history.replaceState(null, '', box.value ? '#id=' + encodeURIComponent(box.value) : '#browser'); } catch (e) {}
  });
  function fromHash() {
    var m = location.hash.match(/^#id=(.*)$/);
    if (m) { box.value = decodeURIComponent(m[1]); run(box.value); return true; }
    return false;
  }
  window.addEventListener('hashchange', fromHash);
  if (!fromHash()) run('');
})();
</script>"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn samples_per_bucket_and_every_failure() {
        let mut b = Browser::default();
        let keys: BTreeSet<String> = ["score".to_string()].into();
        for i in 0..30 {
            b.add(
                "f",
                &row(json!({"id": format!("r{i}"), "text": "hello", "score": i % 3, "score_value": (i % 3) as f64, "api_return": "{\"score\": 1}"})),
                Some("score"),
                &keys,
            );
        }
        b.add_failure(&row(json!({"key": "r99", "cause": "model_server_error", "message": "gave up", "record": {"id": "r99", "text": "x"}})));
        let page = b.render(Some("score"));
        assert_eq!(page.matches("class=\"rec\" data-id=").count(), 30, "a small run shows every record");
        assert!(page.contains("data-id=\"r99\"") && page.contains("model_server_error") && page.contains("gave up"));
        assert!(page.contains("score = 2 · 10 records"), "{page}");
        assert!(!page.contains("<th>score_value</th>"), "one score column");
    }
}
