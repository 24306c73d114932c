//! The report page: sections in a fixed order, each with an `id` (tests and links use them).

use std::fmt::Write as _;

use serde_json::Value;

use super::stats::RowStats;
use super::svg::{bars, esc, line};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}figure{display:inline-block;margin:.5em 1em .5em 0}figcaption{font-size:.85em;color:#555}\
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em}.muted{color:#777}code{background:#f4f4f4;padding:0 .2em}";

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

fn histogram_bars(title: &str, h: &serde_json::Map<String, Value>) -> String {
    let mut data: Vec<(String, f64)> = h.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0))).collect();
    data.sort_by(|a, b| a.0.parse::<f64>().unwrap_or(f64::MAX).total_cmp(&b.0.parse::<f64>().unwrap_or(f64::MAX)));
    bars(title, &data)
}

pub fn render(summary: &Value, rows: &RowStats, errors: &[Value], quality: &Value, task_file: Option<&str>) -> String {
    let task = summary["task_name"].as_str().unwrap_or("run");
    let r = &summary["records"];
    let mut s = format!("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>modelcall report: {t}</title><style>{STYLE}</style></head><body>", t = esc(task));
    let _ = write!(
        s,
        "<h1>modelcall report: {}</h1><p class=\"muted\">{} · status <b>{}</b>{} · started {} · finished {} · {} s</p>",
        esc(task),
        esc(summary["run"]["endpoint"].as_str().unwrap_or("")),
        esc(summary["status"].as_str().unwrap_or("")),
        summary["stop_reason"].as_str().map(|r| format!(" ({})", esc(r))).unwrap_or_default(),
        esc(summary["started_at"].as_str().unwrap_or("")),
        esc(summary["finished_at"].as_str().unwrap_or("")),
        num(&summary["elapsed_s"])
    );
    if summary["run"]["simulated"] == true {
        s.push_str("<p><b>SIMULATED endpoint</b>: the replies are synthetic, not a model's.</p>");
    }

    // Records by outcome and cause.
    s.push_str("<section id=\"records\"><h2>Records</h2>");
    let counts: Vec<(String, String)> = ["seen", "scored", "failed", "skipped", "bad_lines", "already_done", "adopted", "duplicate_ids", "source_errors", "item_errors"]
        .iter()
        .filter(|k| r.get(**k).is_some())
        .map(|k| (k.replace('_', " "), num(&r[*k])))
        .collect();
    s.push_str(&table(&counts));
    for (title, key) in [("Failures by cause", "failures_by_cause"), ("Retries by cause", "retries_by_cause"), ("Skips by reason", "skips_by_reason")] {
        if let Some(m) = summary[key].as_object().filter(|m| !m.is_empty()) {
            let _ = write!(s, "<h3>{title}</h3>");
            s.push_str(&table(&m.iter().map(|(k, v)| (k.clone(), num(v))).collect::<Vec<_>>()));
        }
    }
    s.push_str("</section>");

    // Scores.
    s.push_str("<section id=\"scores\"><h2>Score distributions</h2>");
    if let Some(h) = summary["score_histogram"].as_object().filter(|h| !h.is_empty()) {
        s.push_str(&histogram_bars(&format!("headline score{}", rows.headline.as_deref().map(|h| format!(" ({h})")).unwrap_or_default()), h));
    }
    for (name, f) in &rows.fields {
        if Some(name.as_str()) != rows.headline.as_deref() && f.histogram.len() <= 40 && f.count > 0 {
            let data: serde_json::Map<String, Value> = f.histogram.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            s.push_str(&histogram_bars(name, &data));
        }
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
        replies at the ends of the scale, defaults filled in for missing keys, agreement of the headline with the dimension scores, drift between the first and the last tenth of the run.</p>");
    let mut qrows = Vec::new();
    for (name, f) in quality["fields"].as_object().into_iter().flatten() {
        qrows.push((
            name.clone(),
            format!(
                "mean {} · at the ends of {} ({}): {} · defaults filled: {}",
                num(&f["mean"]),
                f["scale"],
                num(&f["scale_from"]),
                num(&f["share_at_extremes"]),
                num(&f["share_defaulted"])
            ),
        ));
    }
    qrows.push(("headline vs mean of dimensions".into(), quality["headline_vs_dimensions"].to_string()));
    qrows.push(("drift, first vs last tenth".into(), quality["drift_first_vs_last_tenth"].to_string()));
    qrows.push(("rows re-asked (parse retries)".into(), num(&quality["parse_retried_share"])));
    qrows.push(("test-retest".into(), if quality["test_retest"].is_null() { "not measured (no audit sample in this run)".into() } else { quality["test_retest"].to_string() }));
    s.push_str(&table(&qrows));
    if let Some(h) = summary["parse_retry_hints"].as_object().filter(|h| !h.is_empty()) {
        let mut hints: Vec<(String, u64)> = h.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect();
        hints.sort_by(|a, b| b.1.cmp(&a.1));
        s.push_str("<h3>Most common re-ask hints</h3>");
        s.push_str(&table(&hints.into_iter().take(10).map(|(k, v)| (k, v.to_string())).collect::<Vec<_>>()));
    }
    s.push_str("</section>");

    // Over time.
    s.push_str("<section id=\"over-time\"><h2>Latency and throughput over time</h2>");
    // A run that sent nothing (a rerun of a finished task) shows the latency of the latest run
    // of the folder that sent requests (its run record).
    let cumulative = &summary["cumulative"];
    let (lat, lat_label) = if summary["latency_ms"]["p50"].is_null() && !cumulative["latency_ms"]["p50"].is_null() {
        (&cumulative["latency_ms"], format!("latency p50 / p90 / p99 / max (ms), of the earlier run {}", num(&cumulative["latency_of_run"])))
    } else {
        (&summary["latency_ms"], "latency p50 / p90 / p99 / max (ms)".to_string())
    };
    s.push_str(&table(&[(lat_label, format!("{} / {} / {} / {}", num(&lat["p50"]), num(&lat["p90"]), num(&lat["p99"]), num(&lat["max"]))), ("requests per second".into(), num(&summary["requests_per_second"]))]));
    let tl = &summary["timeline"];
    let step = tl["step_s"].as_f64().unwrap_or(1.0);
    let series = |k: &str| tl[k].as_array().map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect::<Vec<f64>>()).unwrap_or_default();
    let done = series("done");
    if done.len() > 1 {
        s.push_str(&line("records finished per second", "/s", step, &done.iter().map(|d| d / step).collect::<Vec<_>>()));
        s.push_str(&line("mean latency of the records finished (ms)", "ms", step, &series("latency_ms_mean")));
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
    let mut trows = vec![("prompt tokens".into(), num(&t["prompt"])), ("completion tokens".into(), num(&t["completion"])), ("requests".into(), num(&summary["requests"]))];
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

    // Records to look at.
    s.push_str("<section id=\"records-to-look-at\"><h2>Slowest and failed records</h2><h3>Slowest</h3>");
    s.push_str(&table(&rows.slowest.iter().map(|r| (r.key.clone(), format!("{:.0} ms · {}", r.latency_ms, r.detail))).collect::<Vec<_>>()));
    let _ = write!(s, "<h3>Failed (first {})</h3>", errors.len());
    if errors.is_empty() {
        s.push_str("<p>None.</p>");
    }
    for e in errors {
        let key = ["key", "input", "uid", "id"].iter().find_map(|k| e.get(*k)).map(num).unwrap_or_default();
        let _ = write!(s, "<details><summary><code>{}</code> — {}</summary><pre>{}</pre></details>", esc(&key), esc(&num(&e["cause"])), esc(&serde_json::to_string_pretty(e).unwrap_or_default()));
    }
    s.push_str("</section>");

    // Provenance.
    s.push_str("<section id=\"plugins\"><h2>Plugins</h2>");
    let plugins: Vec<(String, String)> = summary["run"]["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (format!("{} ({})", num(&p["source"]), num(&p["role"])), format!("{} {} · WIT {} · sha256 {}", num(&p["name"]), num(&p["version"]), num(&p["wit_version"]), num(&p["sha256"]))))
        .collect();
    s.push_str(&table(&plugins));
    s.push_str("</section><section id=\"config\"><h2>The run as configured</h2>");
    let run: Vec<(String, String)> = summary["run"].as_object().into_iter().flatten().filter(|(k, _)| *k != "plugins").map(|(k, v)| (k.clone(), num(v))).collect();
    s.push_str(&table(&run));
    if let Some(text) = task_file {
        let _ = write!(s, "<h3>Task file</h3><pre>{}</pre>", esc(&crate::cli::exit::shown(text)));
    }
    s.push_str("</section><p class=\"muted\">Written by modelcall; self-contained, no network needed.</p></body></html>\n");
    s
}
