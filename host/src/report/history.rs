//! Run history and settings: every run (and resume, and shard) of the output folder from its run
//! records (`.modelcall/runs/*.json`, [`crate::run_records`]), what each spent, charted per run;
//! and the settings the results were made with (`.modelcall/*.settings.json` beside the journals,
//! [`crate::engine::settings`]): model, request settings and prompt, with how many results each
//! made.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::Path;

use serde_json::Value;

use super::svg::{bars, esc};

fn num(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_u64().map(crate::numbers::grouped).unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// The status a run record shows: "completed" only when something succeeded.
fn status_of(r: &Value) -> String {
    let status = r["status"].as_str().unwrap_or("?");
    let (scored, failed) = (r["records"]["scored"].as_u64().unwrap_or(0), r["records"]["failed"].as_u64().unwrap_or(0));
    match status {
        "completed" if scored == 0 && failed > 0 => "failed (every record)".into(),
        "completed" if failed > 0 => format!("completed, {failed} failed"),
        "running" => "running or killed".into(),
        s => s.to_string(),
    }
}

/// The `<section id="history">`.
pub fn render(folder: &Path) -> String {
    let mut s = String::from("<section id=\"history\"><h2>Run history</h2>");
    let records = crate::run_records::load(folder);
    if records.is_empty() {
        s.push_str("<p class=\"muted\">No run records in <code>.modelcall/runs</code> (a run before run records existed).</p>");
    } else {
        let _ = write!(s, "<p class=\"muted\">Every run, resume and shard of this folder ({} run records in <code>.modelcall/runs</code>), oldest first. A run still marked running was killed or is going on.</p>", records.len());
        s.push_str("<table><tr><th>#</th><th>started</th><th>status</th><th>shard</th><th>scored</th><th>failed</th><th>requests</th><th>retries</th><th>tokens (prompt + completion)</th><th>cost</th><th>latency p50 / max (ms)</th><th>elapsed (s)</th><th>task file</th></tr>");
        for (i, (_, r)) in records.iter().enumerate() {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} + {}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                esc(r["started_at"].as_str().map(|t| t.get(..19).unwrap_or(t).replace('T', " ")).as_deref().unwrap_or("?")),
                esc(&status_of(r)),
                esc(&num(&r["shard"])),
                num(&r["records"]["scored"]),
                num(&r["records"]["failed"]),
                num(&r["requests"]),
                num(&r["retries"]),
                num(&r["prompt_tokens"]),
                num(&r["completion_tokens"]),
                esc(&num(&r["cost"])),
                num(&r["latency_ms"]["p50"]),
                num(&r["latency_ms"]["max"]),
                num(&r["elapsed_s"]),
                esc(&num(&r["task_file"])),
            );
        }
        s.push_str("</table>");
        if records.len() > 1 {
            let per = |f: &dyn Fn(&Value) -> f64| records.iter().enumerate().map(|(i, (_, r))| (format!("{}", i + 1), f(r))).collect::<Vec<_>>();
            let tokens = per(&|r| (r["prompt_tokens"].as_u64().unwrap_or(0) + r["completion_tokens"].as_u64().unwrap_or(0)) as f64);
            s.push_str(&bars("tokens per run", "run (# in the table above)", "tokens (prompt + completion)", &tokens));
            s.push_str(&bars("retries per run", "run (# in the table above)", "retried requests", &per(&|r| r["retries"].as_f64().unwrap_or(0.0))));
            if records.iter().any(|(_, r)| r["cost"].is_number()) {
                s.push_str(&bars("cost per run", "run (# in the table above)", "cost (pricing's currency)", &per(&|r| r["cost"].as_f64().unwrap_or(0.0))));
            }
        }
    }
    s.push_str("</section>");
    s
}

/// Results journaled under each settings hash, counted from the journal's `"settings":"…"`.
fn count_by_settings(journal: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let Ok(f) = std::fs::File::open(journal) else { return counts };
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        if let Some(at) = line.find("\"settings\":\"") {
            let rest = &line[at + 12..];
            if let Some(end) = rest.find('"') {
                *counts.entry(rest[..end].to_string()).or_default() += 1;
            }
        }
    }
    counts
}

/// The `<section id="settings">`: the settings each result was made with.
pub fn render_settings(folder: &Path, summary: &Value) -> String {
    let mut s = String::from("<section id=\"settings\"><h2>Prompt and model settings</h2>");
    let run = &summary["run"];
    let mut rows = vec![
        ("model".to_string(), num(&run["model"])),
        ("endpoint".into(), num(&run["endpoint"])),
        ("concurrency".into(), num(&run["concurrency"])),
        ("prompt file".into(), num(&run["prompt_config"])),
    ];
    rows.retain(|(_, v)| v != "–");
    s.push_str("<h3>This run</h3><table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    s.push_str("</table>");
    if let Some(text) = run["prompt_config"].as_str().and_then(|p| std::fs::read_to_string(p).ok()) {
        let _ = write!(s, "<details><summary>The prompt file as it is now</summary><pre>{}</pre></details>", esc(&crate::shown::shown(&text)));
    }
    let mut sidecars: Vec<_> = std::fs::read_dir(folder.join(".modelcall"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".settings.json"))
        .collect();
    sidecars.sort();
    if sidecars.is_empty() {
        s.push_str("<p class=\"muted\">No settings recorded beside the journals (<code>.modelcall/*.settings.json</code>).</p>");
    }
    for path in sidecars {
        let Some(doc) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) else { continue };
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let journal = path.with_file_name(name.trim_end_matches(".settings.json"));
        let counts = count_by_settings(&journal);
        let known = doc["known"].as_object().cloned().unwrap_or_default();
        let _ = write!(
            s,
            "<h3>Results of <code>{}</code>: {} setting{}</h3>",
            esc(name.trim_end_matches(".journal.jsonl.settings.json")),
            known.len(),
            if known.len() == 1 { "" } else { "s" }
        );
        for (hash, d) in &known {
            let made = counts.get(hash).copied().unwrap_or(0);
            let request = &d["request"];
            let prompt = &d["prompt_builder"]["config"]["prompt_template"];
            let _ = write!(
                s,
                "<div class=\"settings\"><p><b>settings {}</b> · {} result{} made with them</p><table>",
                esc(hash),
                crate::numbers::grouped(made),
                if made == 1 { "" } else { "s" }
            );
            let mut row = |k: &str, v: String| {
                let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
            };
            if !request["model"].is_null() {
                row("model", esc(&num(&request["model"])));
            }
            if let Some(chat) = request["chat_config"].as_object() {
                row("request settings", esc(&chat.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(" · ")));
            }
            if let Some(p) = d["prompt_builder"]["name"].as_str() {
                row(
                    "prompt builder",
                    format!(
                        "{} <span class=\"muted\">sha256 {}</span>",
                        esc(p),
                        esc(d["prompt_builder"]["sha256"].as_str().unwrap_or("").get(..12).unwrap_or(""))
                    ),
                );
            }
            if let Some(t) = prompt["system_text"].as_str().filter(|t| !t.is_empty()) {
                row("system prompt", format!("<pre>{}</pre>", esc(t)));
            }
            if let Some(t) = prompt["prompt_text"].as_str() {
                row("user prompt", format!("<pre>{}</pre>", esc(t)));
            }
            s.push_str("</table>");
            let _ = write!(
                s,
                "<details><summary>everything these settings hold</summary><pre>{}</pre></details></div>",
                esc(&crate::shown::shown(&serde_json::to_string_pretty(d).unwrap_or_default()))
            );
        }
    }
    s.push_str("</section>");
    s
}
