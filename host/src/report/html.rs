//! The report page: sections in a fixed order, each with an `id` (tests and links use them).
//! Sections: `records`, `browser`, `scores`, `judge-quality`, `over-time`, `tokens`,
//! `history`, `records-to-look-at`, `settings`, `plugins`, `config`.

use std::fmt::Write as _;

use serde_json::Value;

use super::browser::Browser;
use super::stats::RowStats;
use super::svg::{bars, esc, line};

pub(super) const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0;display:block;max-width:100%;overflow-x:auto}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}figure{display:inline-block;margin:.5em 1em .5em 0}figcaption{font-size:.85em;color:#555}\
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap;word-break:break-word}.muted{color:#777}code{background:#f4f4f4;padding:0 .2em}\
.flow{display:grid;grid-template-columns:1fr 1fr 1fr;gap:.8em;margin:.4em 0}.flow h5{margin:.2em 0;font-size:.9em;color:#555}.flow pre{margin:0;max-height:18em}\
table.fields{font-size:.9em;margin:0}.rec{margin:.15em 0}.rec summary{cursor:pointer}.failure summary b{color:#a33}\
#browser-search{font-size:1em;padding:.2em .4em;width:18em}.badge{display:inline-block;padding:0 .45em;border-radius:.3em;font-size:.85em;font-weight:600}\
.badge.ok{background:#dfd;color:#161}.badge.note{background:#eef;color:#335}.badge.check{background:#fdd;color:#822}.status-bad{color:#a33}\
td.diag{background:#e8f3e8}";

fn table(rows: &[(String, String)]) -> String {
    let mut s = String::from("<table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s + "</table>"
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn histogram_bars(title: &str, field: &str, h: &serde_json::Map<String, Value>) -> String {
    let mut data: Vec<(String, f64)> = h.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0))).collect();
    data.sort_by(|a, b| a.0.parse::<f64>().unwrap_or(f64::MAX).total_cmp(&b.0.parse::<f64>().unwrap_or(f64::MAX)));
    bars(title, &format!("{field} (value given)"), "records", &data)
}

/// What the page is made from.
pub struct Page<'a> {
    pub summary: &'a Value,
    pub folder: &'a std::path::Path,
    pub rows: &'a RowStats,
    pub browser: &'a Browser,
    pub quality: &'a Value,
    pub task_file: Option<&'a str>,
}

/// The run's status in words: "completed" only when something was done; a run whose every
/// record failed says so.
pub fn status_label(summary: &Value) -> (String, bool) {
    let status = summary["status"].as_str().unwrap_or("unknown");
    let r = &summary["records"];
    let (scored, failed) = (r["scored"].as_u64().unwrap_or(0), r["failed"].as_u64().unwrap_or(0));
    let done_before = r["already_done"].as_u64().unwrap_or(0) + r["adopted"].as_u64().unwrap_or(0);
    match status {
        "completed" | "failed" if failed > 0 && scored == 0 && done_before == 0 => (format!("failed: every record failed ({failed})"), true),
        "completed" if failed > 0 => (format!("completed with {failed} failed record{}", if failed == 1 { "" } else { "s" }), true),
        s => (s.to_string(), s != "completed"),
    }
}

/// A timeline series' title and y-axis label (with its unit), and whether it is a per-step
/// count (shown per second).
fn series_label(key: &str) -> (String, String, bool) {
    match key {
        "done" => ("records finished per second".into(), "records per second (/s)".into(), true),
        "failed" => ("records failed per second".into(), "failed records per second (/s)".into(), true),
        "latency_ms_mean" => ("mean latency of the records finished".into(), "latency (ms)".into(), false),
        "retries" => ("retries per second".into(), "retried requests per second (/s)".into(), true),
        "rate_limited" | "429" | "throttled" => ("429 (rate limited) replies per second".into(), "429 replies per second (/s)".into(), true),
        "tokens" => ("tokens per second".into(), "tokens per second (/s)".into(), true),
        "prompt_tokens" => ("prompt tokens per second".into(), "prompt tokens per second (/s)".into(), true),
        "completion_tokens" => ("completion tokens per second".into(), "completion tokens per second (/s)".into(), true),
        "cost" => ("cost per second".into(), "cost per second (pricing's currency /s)".into(), true),
        other => (other.replace('_', " "), other.replace('_', " "), false),
    }
}

pub fn render(page: &Page) -> String {
    let Page { summary, folder, rows, browser, quality, task_file } = *page;
    let task = summary["task_name"].as_str().unwrap_or("run");
    let r = &summary["records"];
    let (status, bad) = status_label(summary);
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>modelcall report: {t}</title><style>{STYLE}</style></head><body>",
        t = esc(task)
    );
    let _ = write!(
        s,
        "<h1>modelcall report: {}</h1><p class=\"muted\">{} · status <b id=\"run-status\" class=\"{}\">{}</b>{} · started {} · finished {} · {} s</p>",
        esc(task),
        esc(summary["run"]["endpoint"].as_str().unwrap_or("")),
        if bad { "status-bad" } else { "" },
        esc(&status),
        summary["stop_reason"].as_str().map(|r| format!(" ({})", esc(r))).unwrap_or_default(),
        esc(summary["started_at"].as_str().unwrap_or("")),
        esc(summary["finished_at"].as_str().unwrap_or("")),
        num(&summary["elapsed_s"])
    );
    if summary["run"]["simulated"] == true {
        s.push_str("<p><b>SIMULATED endpoint</b>: the replies are synthetic, not a model's.</p>");
    }
    s.push_str("<p class=\"muted\">Sections: <a href=\"#records\">records</a> · <a href=\"#browser\">record browser</a> · <a href=\"#scores\">scores</a> · <a href=\"#judge-quality\">judge quality</a> · <a href=\"#over-time\">over time</a> · <a href=\"#tokens\">tokens and cost</a> · <a href=\"#history\">run history</a> · <a href=\"#settings\">prompt and model settings</a></p>");

    // Records by outcome and cause.
    s.push_str("<section id=\"records\"><h2>Records</h2>");
    let counts: Vec<(String, String)> =
        ["seen", "scored", "failed", "skipped", "bad_lines", "already_done", "adopted", "duplicate_ids", "source_errors", "item_errors"]
            .iter()
            .filter(|k| r.get(**k).is_some())
            .map(|k| (k.replace('_', " "), num(&r[*k])))
            .collect();
    s.push_str(&table(&counts));
    let examples = browser.example_by_cause();
    for (title, key) in [("Failures by cause", "failures_by_cause"), ("Retries by cause", "retries_by_cause"), ("Skips by reason", "skips_by_reason")] {
        if let Some(m) = summary[key].as_object().filter(|m| !m.is_empty()) {
            let _ = write!(s, "<h3>{title}</h3>");
            if key == "failures_by_cause" {
                s.push_str("<table><tr><th>cause</th><th>records</th><th>for example</th></tr>");
                for (k, v) in m {
                    let _ =
                        write!(s, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(k), esc(&num(v)), esc(examples.get(k).map(String::as_str).unwrap_or("")));
                }
                s.push_str("</table><p class=\"muted\">Every failure, with its record and message, is in the <a href=\"#browser\">record browser</a>.</p>");
            } else {
                s.push_str(&table(&m.iter().map(|(k, v)| (k.clone(), num(v))).collect::<Vec<_>>()));
            }
        }
    }
    s.push_str("</section>");
    s.push_str(&browser.render(rows.headline.as_deref()));

    // Scores.
    s.push_str("<section id=\"scores\"><h2>Score distributions</h2>");
    // One chart per verdict field, from the rows (the headline first): `score_value`, the
    // parser's numeric copy of `score`, is not a field of its own.
    let mut names: Vec<&String> = rows.fields.keys().collect();
    names.sort_by_key(|n| Some(n.as_str()) != rows.headline.as_deref());
    for name in names {
        let f = &rows.fields[name];
        if f.histogram.len() <= 40 && f.count > 0 {
            let data: serde_json::Map<String, Value> = f.histogram.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            let title = if Some(name.as_str()) == rows.headline.as_deref() {
                format!("{name}: the headline score, records per value")
            } else {
                format!("{name}: records per value")
            };
            s.push_str(&histogram_bars(&title, name, &data));
        }
    }
    if rows.fields.is_empty() {
        s.push_str("<p class=\"muted\">No numeric verdict in the output rows.</p>");
    }
    let mut group_rows = Vec::new();
    for (field, groups) in &rows.groups {
        for (g, f) in groups {
            group_rows.push((format!("{field} = {g}"), format!("{} rows, mean {:.2}, min {}, max {}", f.count, f.mean().unwrap_or(0.0), f.min, f.max)));
        }
    }
    for (file, f) in &rows.by_file {
        group_rows.push((format!("file {file}"), format!("{} rows, mean {:.2}, min {}, max {}", f.count, f.mean().unwrap_or(0.0), f.min, f.max)));
    }
    if !group_rows.is_empty() {
        s.push_str("<h3>Headline score per group</h3>");
        s.push_str(&table(&group_rows));
    }
    s.push_str("</section>");

    // Judge quality.
    s.push_str("<section id=\"judge-quality\"><h2>Judge quality</h2><p class=\"muted\">Whether the judge itself behaves: \
        replies at the ends of the scale, defaults filled in for missing keys, re-asked replies, agreement of the headline with the dimension scores, drift between the first and the last tenth of the run, and the same record judged twice.</p>");
    s.push_str(&super::quality::render(quality));
    if let Some(h) = summary["parse_retry_hints"].as_object().filter(|h| !h.is_empty()) {
        let mut hints: Vec<(String, u64)> = h.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect();
        hints.sort_by_key(|h| std::cmp::Reverse(h.1));
        s.push_str("<h3>Most common re-ask hints</h3><table><tr><th>hint sent with the re-ask</th><th>times</th></tr>");
        for (k, v) in hints.into_iter().take(10) {
            let _ = write!(s, "<tr><td>{}</td><td>{v}</td></tr>", esc(&k));
        }
        s.push_str("</table>");
    }
    s.push_str("</section>");

    // Over time.
    s.push_str("<section id=\"over-time\"><h2>Latency and throughput over time</h2>");
    // The latency of the records, from the rows: the same data as the slowest list, so the
    // maximum is the slowest record's. A row's latency is its whole time, retries included.
    let cumulative = &summary["cumulative"];
    let latency_row = if let Some([p50, p90, p99, max]) = rows.latency_percentiles() {
        ("record latency p50 / p90 / p99 / max (ms), from the output rows, retries included".to_string(), format!("{p50:.0} / {p90:.0} / {p99:.0} / {max:.0}"))
    } else {
        // No `latency_ms` in the rows: the requests' latency from the summary (or, when this
        // run sent nothing, the latest run of the folder that did).
        let (lat, label) = if summary["latency_ms"]["p50"].is_null() && !cumulative["latency_ms"]["p50"].is_null() {
            (&cumulative["latency_ms"], format!("request latency p50 / p90 / p99 / max (ms), of the earlier run {}", num(&cumulative["latency_of_run"])))
        } else {
            (&summary["latency_ms"], "request latency p50 / p90 / p99 / max (ms)".to_string())
        };
        (label, format!("{} / {} / {} / {}", num(&lat["p50"]), num(&lat["p90"]), num(&lat["p99"]), num(&lat["max"])))
    };
    s.push_str(&table(&[latency_row, ("requests per second".into(), num(&summary["requests_per_second"]))]));
    let tl = &summary["timeline"];
    let step = tl["step_s"].as_f64().unwrap_or(1.0);
    let series = |k: &str| tl[k].as_array().map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect::<Vec<f64>>()).unwrap_or_default();
    let mut keys: Vec<&String> = tl.as_object().into_iter().flatten().filter(|(_, v)| v.is_array()).map(|(k, _)| k).collect();
    let known = ["done", "failed", "latency_ms_mean"];
    keys.sort_by_key(|k| known.iter().position(|x| x == &k.as_str()).unwrap_or(known.len()));
    if series("done").len() > 1 {
        for k in &keys {
            let values = series(k);
            if k.as_str() == "failed" && values.iter().all(|v| *v == 0.0) {
                continue;
            }
            let (title, y, per_step) = series_label(k);
            let values: Vec<f64> = if per_step { values.iter().map(|v| v / step).collect() } else { values };
            s.push_str(&line(&title, &y, step, &values));
        }
        if !keys.iter().any(|k| k.as_str() == "retries" || k.as_str() == "rate_limited") {
            s.push_str("<p class=\"muted\">Retries, 429s and tokens over time are not in this run's timeline; their totals are under <a href=\"#records\">Retries by cause</a> and <a href=\"#tokens\">Tokens and cost</a>, and per run under <a href=\"#history\">Run history</a>.</p>");
        }
    } else {
        s.push_str("<p class=\"muted\">The run was shorter than two seconds: no curve.</p>");
    }
    s.push_str("</section>");

    // Tokens and cost.
    s.push_str("<section id=\"tokens\"><h2>Tokens and cost</h2>");
    let t = &summary["tokens"];
    if cumulative.is_object() {
        s.push_str("<h3>This run</h3>");
    }
    let mut trows =
        vec![("prompt tokens".into(), num(&t["prompt"])), ("completion tokens".into(), num(&t["completion"])), ("requests".into(), num(&summary["requests"]))];
    trows.push(("cost".into(), if summary["cost"].is_null() { "unknown (no `pricing:` in the model config)".into() } else { num(&summary["cost"]) }));
    s.push_str(&table(&trows));
    if cumulative.is_object() {
        // What every run (and shard) of the folder paid, from the run records.
        let _ = write!(s, "<h3>Paid over every run of this folder ({} run records)</h3>", num(&cumulative["runs"]));
        let crows = vec![
            ("prompt tokens".into(), num(&cumulative["prompt_tokens"])),
            ("completion tokens".into(), num(&cumulative["completion_tokens"])),
            ("total tokens".into(), num(&cumulative["total_tokens"])),
            ("requests".into(), num(&cumulative["requests"])),
            ("retries".into(), num(&cumulative["retries"])),
            ("cost".into(), if cumulative["cost"].is_null() { "unknown (no `pricing:` known to the runs)".into() } else { num(&cumulative["cost"]) }),
        ];
        s.push_str(&table(&crows));
    }
    s.push_str("</section>");

    s.push_str(&super::history::render(folder));

    // Records to look at.
    s.push_str("<section id=\"records-to-look-at\"><h2>Slowest records</h2><p class=\"muted\">From the output rows' <code>latency_ms</code> (the record's whole time, retries included); failures are in the <a href=\"#browser\">record browser</a>.</p>");
    s.push_str("<table><tr><th>record</th><th>latency (ms)</th><th>file</th></tr>");
    for r in &rows.slowest {
        let _ = write!(s, "<tr><td><a href=\"#id={k}\"><code>{k}</code></a></td><td>{:.0}</td><td>{}</td></tr>", r.latency_ms, esc(&r.detail), k = esc(&r.key));
    }
    s.push_str("</table></section>");
    s.push_str(&super::history::render_settings(folder, summary));

    // Provenance.
    s.push_str("<section id=\"plugins\"><h2>Plugins</h2>");
    let plugins: Vec<(String, String)> = summary["run"]["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                format!("{} ({})", num(&p["source"]), num(&p["role"])),
                format!("{} {} · WIT {} · sha256 {}", num(&p["name"]), num(&p["version"]), num(&p["wit_version"]), num(&p["sha256"])),
            )
        })
        .collect();
    s.push_str(&table(&plugins));
    s.push_str("</section><section id=\"config\"><h2>The run as configured</h2>");
    let run: Vec<(String, String)> =
        summary["run"].as_object().into_iter().flatten().filter(|(k, _)| *k != "plugins").map(|(k, v)| (k.clone(), num(v))).collect();
    s.push_str(&table(&run));
    if let Some(text) = task_file {
        let _ = write!(s, "<h3>Task file</h3><pre>{}</pre>", esc(&crate::shown::shown(text)));
    }
    s.push_str("</section><p class=\"muted\">Written by modelcall; self-contained, no network needed.</p></body></html>\n");
    s
}
