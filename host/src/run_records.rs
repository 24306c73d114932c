//! One record per run of an output folder: `<output>/.modelcall/runs/<UTC timestamp>-<pid>[-shard-I-of-N].json`.
//!
//! A run writes its record when it starts (status `running`), rewrites it atomically every few
//! seconds with what it has spent so far (requests, tokens, cost, retries, latency), and once more
//! at its end; so even a run killed with `kill -9` leaves its spend on disk. What the folder has
//! spent over every run and shard is the sum of these records: the budget counts it
//! ([`crate::engine::RunBudget`]) and `run_summary.json` shows it as `cumulative` (as does
//! `modelcall merge`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::summary::RunStats;

/// `<folder>/.modelcall/runs`.
pub fn runs_dir(folder: &Path) -> PathBuf {
    folder.join(".modelcall").join("runs")
}

/// What runs of an output folder spent, added up.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Spent {
    /// Run records counted.
    pub runs: u64,
    /// Those that spent any tokens.
    pub runs_spending: u64,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `None` when no record knows its cost (no pricing).
    pub cost: Option<f64>,
    pub retries: u64,
}

impl Spent {
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Adds one run record (its cost, else the cost of its tokens at `pricing`).
    pub fn add_record(&mut self, record: &Value, pricing: Option<modelcall_config::model::Pricing>) {
        let n = |k: &str| record[k].as_u64().unwrap_or(0);
        let (prompt, completion) = (n("prompt_tokens"), n("completion_tokens"));
        self.runs += 1;
        self.runs_spending += (prompt + completion > 0) as u64;
        self.requests += n("requests");
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.retries += n("retries");
        let cost = record["cost"].as_f64().or_else(|| pricing.map(|p| p.cost(prompt, completion)));
        if let Some(c) = cost {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
    }

    /// The sum over `records`.
    pub fn of(records: &[(String, Value)], pricing: Option<modelcall_config::model::Pricing>) -> Spent {
        let mut s = Spent::default();
        for (_, r) in records {
            s.add_record(r, pricing);
        }
        s
    }
}

/// Every run record of `folder` (name, document), oldest first; unreadable ones are skipped
/// with a warning (a record is written atomically, so a torn one is not expected).
pub fn load(folder: &Path) -> Vec<(String, Value)> {
    let dir = runs_dir(folder);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        match std::fs::read_to_string(e.path()).map_err(|e| e.to_string()).and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string())) {
            Ok(v) => out.push((name, v)),
            Err(err) => eprintln!("warning: run record {} is unreadable ({err}); its spend is not counted", e.path().display()),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `cumulative` object of a summary: what every run record of the folder spent, with the
/// latency of the latest run that sent requests (percentiles of different runs do not add up).
pub fn cumulative_json(records: &[(String, Value)], pricing: Option<modelcall_config::model::Pricing>) -> Value {
    let s = Spent::of(records, pricing);
    let latest = records.iter().rev().find(|(_, r)| r["requests"].as_u64().unwrap_or(0) > 0 && !r["latency_ms"]["p50"].is_null());
    json!({
        "runs": s.runs,
        "requests": s.requests,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.tokens(),
        "cost": s.cost.map(|c| (c * 1e4).round() / 1e4),
        "retries": s.retries,
        "latency_ms": latest.map(|(_, r)| r["latency_ms"].clone()),
        "latency_of_run": latest.map(|(name, _)| name.clone()),
        "run_records": ".modelcall/runs",
    })
}

/// This run's record.
pub struct RunRecord {
    path: PathBuf,
    name: String,
    base: Value,
    pricing: Option<modelcall_config::model::Pricing>,
}

impl RunRecord {
    /// Names this run's record in `folder`; `shard_suffix` is the summary's (`.shard-I-of-N` or
    /// empty). Nothing is written yet.
    pub fn new(folder: &Path, shard_suffix: &str, task_name: &str, provenance: &Value, pricing: Option<modelcall_config::model::Pricing>) -> RunRecord {
        let now = chrono::Utc::now();
        let pid = std::process::id();
        let shard = shard_suffix.trim_start_matches('.');
        let name = format!("{}-{pid}{}{shard}.json", now.format("%Y%m%dT%H%M%S%.3fZ"), if shard.is_empty() { "" } else { "-" });
        let base = json!({
            "task_name": task_name,
            "pid": pid,
            "shard": provenance["shard"],
            "task_file": provenance["task_file"],
            "started_at": now.to_rfc3339(),
        });
        RunRecord { path: runs_dir(folder).join(&name), name, base, pricing }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `stats` have spent so far, as the record keeps it.
    pub fn spend(&self, stats: &RunStats) -> Value {
        stats.spend_json(self.pricing)
    }

    /// Writes the record (atomically): `spend` ([`RunRecord::spend`]) and, at the end, the
    /// counters of the records.
    pub fn write(&self, status: &str, spend: Value, records: Option<Value>) -> anyhow::Result<()> {
        let mut doc = self.base.clone();
        doc["status"] = json!(status);
        doc["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
        if let (Value::Object(d), Value::Object(s)) = (&mut doc, spend) {
            d.extend(s);
        }
        if let Some(r) = records {
            doc["records"] = r;
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        modelcall_io::write_atomically(&self.path, text.as_bytes())?;
        Ok(())
    }

    /// [`RunRecord::write`], a failure only warned about (the run goes on).
    pub fn write_or_warn(&self, status: &str, spend: Value, records: Option<Value>) {
        if let Err(e) = self.write(status, spend, records) {
            eprintln!("warning: could not write the run record {}: {e:#}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        let records = vec![
            ("a".to_string(), json!({"requests": 3, "prompt_tokens": 10, "completion_tokens": 5, "cost": 0.5, "retries": 1})),
            ("b".to_string(), json!({"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})),
        ];
        let s = Spent::of(&records, None);
        assert_eq!((s.runs, s.runs_spending, s.requests, s.tokens(), s.retries), (2, 1, 3, 15, 1));
        assert_eq!(s.cost, Some(0.5));
    }
}
