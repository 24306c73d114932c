//! Run statistics: what `run_summary.json` and the final console block report.
//!
//! One `RunStats` is owned by the collector task (the single writer of the journal), so no
//! locking is needed; the progress display reads a few atomics published alongside.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

/// Counters for one input file.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FileStats {
    pub input: String,
    pub output: String,
    pub errors: String,
    /// Records read from the input (bad lines included).
    pub seen: u64,
    /// Records already done by an earlier run (resumed, not sent again).
    pub already_done: u64,
    /// Records whose result another tool wrote (adopted from its outputs, not sent again).
    pub adopted: u64,
    /// Records done before whose content (or whose settings, with `--redo-changed`) changed
    /// since: their old result was retired and they were sent again.
    pub changed: u64,
    /// Records left out by `retry_mode` because the error output does not list them, or not
    /// sent by `modelcall reparse` (which sends nothing).
    pub not_retried: u64,
    /// Records whose stored replies were parsed again with a changed score parser (no request).
    pub reparsed: u64,
    /// Of those, records that had failed and now parse.
    pub recovered: u64,
    pub scored: u64,
    pub failed: u64,
    /// Lines that are not records (invalid JSON, not an object, invalid UTF-8).
    pub bad_lines: u64,
    /// Records a preprocessor filtered out.
    pub skipped: u64,
    /// Records left out by `debug.max_items_per_file`.
    pub debug_limited: u64,
    /// Records a preprocessor or converter produced (several per input for file preprocessors).
    pub records_out: u64,
    /// Items a preprocessor returned as errors (one bad row of a file): each is an error row,
    /// the input's other records are kept.
    pub item_errors: u64,
    /// Records whose id an earlier record of the same input already had (kept under `id#2`, …,
    /// skipped, or failed, per `options.on_duplicate_id`).
    pub duplicate_ids: u64,
    /// Records that failed permanently in an earlier run and were not sent again.
    pub failed_before: u64,
    /// Inputs that could not be read to their end (a truncated archive, an I/O error).
    pub source_errors: u64,
    /// Bytes read from the input files (a shard reads only its share).
    pub bytes_read: u64,
    /// Strings of result or error rows cut to `output.max_field_bytes`.
    pub fields_cut: u64,
}

/// Every counter of [`FileStats`], named once: adding two stats can then not forget one.
macro_rules! add_counters {
    ($($field:ident),* $(,)?) => {
        impl FileStats {
            /// Adds `other`'s counters to these.
            pub fn add(&mut self, other: &FileStats) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

add_counters!(
    fields_cut,
    seen,
    already_done,
    adopted,
    changed,
    not_retried,
    reparsed,
    recovered,
    scored,
    failed,
    bad_lines,
    skipped,
    debug_limited,
    records_out,
    item_errors,
    duplicate_ids,
    failed_before,
    source_errors,
    bytes_read,
);

/// Whole-run counters.
#[derive(Debug)]
pub struct RunStats {
    started: Instant,
    pub started_at: String,
    pub files: Vec<FileStats>,
    pub failures_by_cause: BTreeMap<String, u64>,
    pub retries_by_cause: BTreeMap<String, u64>,
    pub skips_by_reason: BTreeMap<String, u64>,
    /// Parse re-ask hints (their first 160 characters) and how often each was given.
    pub retry_hints: BTreeMap<String, u64>,
    /// Per second since the start: records done, failed, and the sum of their last request's
    /// latency (ms), for the report's charts over time.
    timeline: Vec<(u32, u32, u64)>,
    pub parse_retries: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub requests: u64,
    /// Answers taken from the response cache (no request, not billed).
    pub cached: u64,
    latency: hdrhistogram::Histogram<u64>,
    score_histogram: BTreeMap<String, u64>,
    /// When the last record outcome arrived: request throughput is measured up to here, before
    /// the outputs are finalized.
    last_outcome: Option<Instant>,
    /// Where the records' time went, per stage (`stage_timing_ms`).
    pub stages: crate::stage_timing::StageTimes,
    /// Each plugin role's call times (`plugin_calls`).
    pub plugin_calls: crate::stage_timing::PluginCallTimes,
}

impl Default for RunStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RunStats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            started_at: chrono::Local::now().to_rfc3339(),
            files: Vec::new(),
            failures_by_cause: BTreeMap::new(),
            retries_by_cause: BTreeMap::new(),
            skips_by_reason: BTreeMap::new(),
            retry_hints: BTreeMap::new(),
            timeline: Vec::new(),
            parse_retries: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            requests: 0,
            cached: 0,
            // 1 ms .. 1 hour at 3 significant digits.
            latency: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid bounds"),
            score_histogram: BTreeMap::new(),
            last_outcome: None,
            stages: Default::default(),
            plugin_calls: Default::default(),
        }
    }

    pub fn mark_outcome(&mut self) {
        self.last_outcome = Some(Instant::now());
    }

    /// One finished record in the timeline (a day of seconds at most; later ones land in the
    /// last second).
    pub fn record_timeline(&mut self, failed: bool, latency: Option<Duration>) {
        let second = (self.started.elapsed().as_secs() as usize).min(86_400);
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, (0, 0, 0));
        }
        let slot = &mut self.timeline[second];
        slot.0 += 1;
        slot.1 += failed as u32;
        slot.2 += latency.map_or(0, |l| l.as_millis() as u64);
    }

    pub fn count_retry_hint(&mut self, hint: &str) {
        if self.retry_hints.len() < 1000 || self.retry_hints.contains_key(hint) {
            *self.retry_hints.entry(hint.to_string()).or_default() += 1;
        }
    }

    /// The timeline as `run_summary.json` keeps it: at most 600 points (seconds merged).
    fn timeline_json(&self) -> Value {
        let step = self.timeline.len().div_ceil(600).max(1);
        let (mut done, mut failed, mut latency) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in self.timeline.chunks(step) {
            let d: u64 = chunk.iter().map(|c| c.0 as u64).sum();
            done.push(d);
            failed.push(chunk.iter().map(|c| c.1 as u64).sum::<u64>());
            let sum: u64 = chunk.iter().map(|c| c.2).sum();
            latency.push(sum.checked_div(d).unwrap_or(0));
        }
        json!({"step_s": step, "done": done, "failed": failed, "latency_ms_mean": latency})
    }

    /// Seconds from the start to the last record outcome (0 when nothing was processed).
    pub fn processing_elapsed(&self) -> Duration {
        self.last_outcome.map(|t| t.duration_since(self.started)).unwrap_or_default()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Requests whose latency is at most each bound (cumulative, as Prometheus buckets count
    /// them), with the count and sum (ms) of all.
    pub fn latency_buckets(&self, bounds_ms: &[u64]) -> (Vec<u64>, u64, f64) {
        let counts = bounds_ms.iter().map(|b| self.latency.count_between(0, *b)).collect();
        let n = self.latency.len();
        (counts, n, self.latency.mean() * n as f64)
    }

    pub fn record_latency(&mut self, latency: Duration) {
        let ms = (latency.as_millis() as u64).clamp(1, 3_600_000);
        let _ = self.latency.record(ms);
    }

    pub fn record_score(&mut self, value: f64) {
        // Integer scores bucket exactly; fractional ones round to one decimal.
        let bucket = if value.fract() == 0.0 { format!("{}", value as i64) } else { format!("{value:.1}") };
        *self.score_histogram.entry(bucket).or_default() += 1;
    }

    pub fn count_failure(&mut self, cause: &str) {
        *self.failures_by_cause.entry(cause.to_string()).or_default() += 1;
    }

    pub fn count_retry(&mut self, cause: &str, n: u64) {
        if n > 0 {
            *self.retries_by_cause.entry(cause.to_string()).or_default() += n;
        }
    }

    pub fn count_skip(&mut self, reason: &str) {
        *self.skips_by_reason.entry(reason.to_string()).or_default() += 1;
    }

    pub fn totals(&self) -> FileStats {
        let mut t = FileStats::default();
        for f in &self.files {
            t.add(f);
        }
        t
    }

    fn percentile(&self, q: f64) -> Option<u64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(q))
    }

    /// Retries of requests over the run (every cause).
    pub fn retries(&self) -> u64 {
        self.retries_by_cause.values().sum()
    }

    /// Latency percentiles (ms) of this run's requests; nulls when none was timed.
    fn latency_json(&self) -> Value {
        json!({
            "p50": self.percentile(0.50),
            "p90": self.percentile(0.90),
            "p99": self.percentile(0.99),
            "max": (!self.latency.is_empty()).then(|| self.latency.max()),
        })
    }

    /// What this run has spent so far, as its run record keeps it (see `crate::run_records`):
    /// requests, tokens, cost (at `pricing`, when known), retries and latency.
    pub fn spend_json(&self, pricing: Option<modelcall_config::model::Pricing>) -> Value {
        let mut latency = self.latency_json();
        latency["count"] = json!(self.latency.len());
        json!({
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": pricing.map(|p| p.cost(self.prompt_tokens, self.completion_tokens)),
            "retries": self.retries(),
            "retries_by_cause": self.retries_by_cause,
            "parse_retries": self.parse_retries,
            "latency_ms": latency,
            "elapsed_s": (self.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }

    /// Every record this run read failed (none scored, skipped, done before or adopted, and at
    /// least one failed): such a run ended, but did not complete anything.
    pub fn all_failed(&self) -> bool {
        let t = self.totals();
        let failed = t.failed + t.bad_lines + t.source_errors + t.item_errors + t.failed_before;
        failed > 0 && t.scored == 0 && t.skipped == 0 && t.already_done == 0 && t.adopted == 0 && t.records_out == 0
    }

    /// The `run_summary.json` document. A run that ended with every record failed is `failed`,
    /// never `completed`.
    pub fn to_json(&self, task_name: &str, status: &str, stop_reason: Option<&str>, extra: Value) -> Value {
        let status = if status == "completed" && self.all_failed() { "failed" } else { status };
        let totals = self.totals();
        let elapsed = self.elapsed().as_secs_f64();
        let processing = self.processing_elapsed().as_secs_f64();
        let requests_per_second = if processing > 0.0 { (self.requests as f64 / processing * 10.0).round() / 10.0 } else { 0.0 };
        json!({
            "task_name": task_name,
            "status": status,
            "stop_reason": stop_reason,
            "started_at": self.started_at,
            "finished_at": chrono::Local::now().to_rfc3339(),
            "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
            "records": {
                "seen": totals.seen,
                "already_done": totals.already_done,
                "adopted": totals.adopted,
                "changed": totals.changed,
                "not_retried": totals.not_retried,
                "reparsed": totals.reparsed,
                "recovered": totals.recovered,
                "scored": totals.scored,
                "failed": totals.failed,
                "bad_lines": totals.bad_lines,
                "skipped": totals.skipped,
                "debug_limited": totals.debug_limited,
                "records_out": totals.records_out,
                "item_errors": totals.item_errors,
                "duplicate_ids": totals.duplicate_ids,
                "failed_before": totals.failed_before,
                "source_errors": totals.source_errors,
                "input_bytes_read": totals.bytes_read,
            },
            "failures_by_cause": self.failures_by_cause,
            "retries_by_cause": self.retries_by_cause,
            "parse_retries": self.parse_retries,
            "skips_by_reason": self.skips_by_reason,
            "parse_retry_hints": self.retry_hints,
            "timeline": self.timeline_json(),
            "requests": self.requests,
            "cached": self.cached,
            "processing_elapsed_s": (self.processing_elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "requests_per_second": requests_per_second,
            "records_per_second": if elapsed > 0.0 { ((totals.scored + totals.failed) as f64 / elapsed * 10.0).round() / 10.0 } else { 0.0 },
            "tokens": {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
                "total": self.prompt_tokens + self.completion_tokens,
            },
            "latency_ms": self.latency_json(),
            "stage_timing_ms": self.stages.to_json(),
            "plugin_calls": self.plugin_calls.to_json(),
            "score_histogram": self.score_histogram,
            "files": self.files,
            "run": extra,
        })
    }

    /// A short human-readable block for the end of a run.
    pub fn render(&self) -> String {
        let t = self.totals();
        let mut out = format!(
            "scored {} · failed {} · bad lines {} · already done {} · skipped {} in {:.1}s",
            t.scored,
            t.failed,
            t.bad_lines,
            t.already_done,
            t.skipped,
            self.elapsed().as_secs_f64()
        );
        if t.changed > 0 {
            out.push_str(&format!(" · changed {} (input or settings changed since their result; sent again)", t.changed));
        }
        if self.cached > 0 {
            out.push_str(&format!("\nanswered from the response cache: {} (no request, not billed)", self.cached));
        }
        if t.reparsed > 0 {
            out.push_str(&format!(
                "\nre-parsed {} from stored replies (parser changed), 0 requests; {} recovered (had failed, now parse)",
                t.reparsed, t.recovered
            ));
        }
        if t.adopted > 0 {
            out.push_str(&format!(" · adopted {} (results another tool wrote; not sent)", t.adopted));
        }
        if !self.retries_by_cause.is_empty() {
            let retries: Vec<String> = self.retries_by_cause.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("\nretries: {}", retries.join(", ")));
        }
        if !self.failures_by_cause.is_empty() {
            let failures: Vec<String> = self.failures_by_cause.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("\nfailures: {}", failures.join(", ")));
        }
        if let (Some(p50), Some(p99)) = (self.percentile(0.5), self.percentile(0.99)) {
            out.push_str(&format!("\nlatency p50 {p50} ms, p99 {p99} ms"));
        }
        out
    }

    /// The end-of-run block: how it ended, the counts, tokens and cost, the output files, the
    /// error files with their causes (count and one example each), and what to run next.
    pub fn render_end(&self, end: &EndReport) -> String {
        let g = crate::numbers::grouped;
        let mut out = String::new();
        let head = match (&end.stopped, self.all_failed()) {
            (Some(why), _) => format!("run stopped ({why})"),
            (None, true) => "run FAILED: every record failed, nothing was scored".to_string(),
            (None, false) if end.failed_items > 0 => format!("run finished with {} failed item(s)", g(end.failed_items)),
            (None, false) => "run completed".to_string(),
        };
        out.push_str(&format!("{head} in {:.1}s\n", self.elapsed().as_secs_f64()));
        out.push_str(&self.render());
        let tokens = self.prompt_tokens + self.completion_tokens;
        let mut spend =
            format!("\ntokens: {} ({} prompt + {} completion) in {} request(s)", g(tokens), g(self.prompt_tokens), g(self.completion_tokens), g(self.requests));
        match end.cost {
            Some(c) => spend.push_str(&format!(" · cost {c:.4}")),
            None => spend.push_str(" · cost unknown (add `pricing:` to the model config)"),
        }
        if let (Some(_), Some(d)) = (end.cost, end.batch_discount) {
            spend.push_str(&format!(" (batch price: pricing.batch_discount {d} taken off)"));
        }
        out.push_str(&spend);
        if let Some(c) = &end.cumulative {
            out.push_str(&format!("\n        this output folder over {} run(s): {} tokens", g(c.runs), g(c.tokens)));
            if let Some(cost) = c.cost {
                out.push_str(&format!(", cost {cost:.4}"));
            }
        }
        const SHOWN: usize = 10;
        let outputs: Vec<&FileStats> = self.files.iter().filter(|f| !f.output.is_empty()).collect();
        if !outputs.is_empty() {
            out.push_str("\noutput:");
            for f in outputs.iter().take(SHOWN) {
                let state = if std::path::Path::new(&f.output).exists() { "" } else { "  (not written)" };
                out.push_str(&format!("\n  {}{state}", f.output));
            }
            if outputs.len() > SHOWN {
                out.push_str(&format!("\n  … and {} more output file(s)", outputs.len() - SHOWN));
            }
        }
        if !end.error_files.is_empty() {
            out.push_str("\nerrors:");
            for (i, e) in end.error_files.iter().enumerate() {
                if i == SHOWN {
                    out.push_str(&format!("\n  … and {} more error file(s)", end.error_files.len() - SHOWN));
                    break;
                }
                out.push_str(&format!("\n  {} ({} row(s))", e.path, g(e.rows)));
                for c in &e.causes {
                    let kind = match (c.retryable, c.count) {
                        (0, _) => "permanent",
                        (r, n) if r == n => "retryable",
                        _ => "partly retryable",
                    };
                    out.push_str(&format!("\n    {} {} ({kind})", c.cause, g(c.count)));
                    if let Some(m) = &c.example {
                        out.push_str(&format!(": e.g. \"{m}\""));
                    }
                }
            }
        }
        if let Some(next) = &end.next {
            out.push_str(&format!("\nnext: {next}"));
        }
        out
    }
}

/// What the end block needs besides the counters (see [`RunStats::render_end`]).
#[derive(Debug, Default, Clone)]
pub struct EndReport {
    /// Why the run stopped, when it did.
    pub stopped: Option<String>,
    /// Items in the error outputs.
    pub failed_items: u64,
    /// This run's cost, when the pricing is known.
    pub cost: Option<f64>,
    /// The batch discount the cost is at (`pricing.batch_discount`, batch mode).
    pub batch_discount: Option<f64>,
    /// Every run of the output folder (from the run records).
    pub cumulative: Option<Cumulative>,
    pub error_files: Vec<ErrorFile>,
    /// The exact command to run next, with why.
    pub next: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Cumulative {
    pub runs: u64,
    pub tokens: u64,
    pub cost: Option<f64>,
}

/// An error file as it stands after the run: its rows by cause.
#[derive(Debug, Default, Clone)]
pub struct ErrorFile {
    pub path: String,
    pub rows: u64,
    /// Most frequent first.
    pub causes: Vec<ErrorCause>,
}

#[derive(Debug, Default, Clone)]
pub struct ErrorCause {
    pub cause: String,
    pub count: u64,
    /// Rows a plain rerun sends again (`retryable: true`).
    pub retryable: u64,
    /// The first row's message (its first line, at most 200 characters).
    pub example: Option<String>,
}

impl ErrorFile {
    /// Reads an error file (JSON lines; `cause`/`message` rows, or the distillation shape's
    /// `error_type`/`error`). `None` when it does not exist or has no row.
    pub fn read(path: &std::path::Path) -> Option<ErrorFile> {
        use std::io::BufRead;
        let file = std::fs::File::open(path).ok()?;
        let mut causes: BTreeMap<String, ErrorCause> = BTreeMap::new();
        let mut rows = 0;
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            let Ok(row) = serde_json::from_str::<Value>(&line) else { continue };
            rows += 1;
            let cause = row["cause"].as_str().or(row["error_type"].as_str()).unwrap_or("unknown").to_string();
            let message = row["message"].as_str().or(row["error"].as_str()).or(row["api_fail_reason"].as_str());
            let entry = causes.entry(cause.clone()).or_insert_with(|| ErrorCause { cause, ..Default::default() });
            entry.count += 1;
            // Rows without the flag (written before it existed) count as retryable.
            entry.retryable += row["retryable"].as_bool().unwrap_or(true) as u64;
            if entry.example.is_none() {
                entry.example = message.map(|m| {
                    let m = m.lines().next().unwrap_or("").trim();
                    let m = match m.char_indices().nth(200) {
                        Some((i, _)) => format!("{}…", &m[..i]),
                        None => m.to_string(),
                    };
                    crate::shown::shown(&m)
                });
            }
        }
        if rows == 0 {
            return None;
        }
        let mut causes: Vec<ErrorCause> = causes.into_values().collect();
        causes.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
        Some(ErrorFile { path: path.display().to_string(), rows, causes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_percentiles() {
        let mut stats = RunStats::new();
        stats.files.push(FileStats { scored: 3, failed: 1, bad_lines: 2, ..Default::default() });
        for ms in [10, 20, 30, 1000] {
            stats.record_latency(Duration::from_millis(ms));
        }
        stats.record_score(4.0);
        stats.record_score(4.0);
        stats.record_score(2.5);
        stats.count_retry("rate_limited", 2);
        stats.count_retry("server_error", 0);
        let v = stats.to_json("t", "completed", None, json!({}));
        assert_eq!(v["records"]["scored"], 3);
        assert_eq!(v["records"]["bad_lines"], 2);
        assert_eq!(v["score_histogram"]["4"], 2);
        assert_eq!(v["score_histogram"]["2.5"], 1);
        assert_eq!(v["retries_by_cause"]["rate_limited"], 2);
        assert!(v["retries_by_cause"].get("server_error").is_none());
        let p50 = v["latency_ms"]["p50"].as_u64().unwrap();
        assert!((20..=21).contains(&p50), "{p50}");
        assert!(v["latency_ms"]["max"].as_u64().unwrap() >= 1000);
    }
}
