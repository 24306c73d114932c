//! The collector: the single writer of a unit's journal. Every read item and every outcome
//! passes here, so the counters and the journal always agree.

use modelcall_io::{EntryStatus, Journal, JournalEntry, JournalError, MadeFrom};
use serde_json::{json, Map, Value};

use super::job::{CallTally, Failure, FailureSite, Job, Outcome, Produced};
use super::read_item::ReadItem;
use super::resume::Finished;
use super::RunShared;
use crate::stage_timing::ItemTiming;
use crate::summary::{FileStats, RunStats};
use std::time::Instant;

/// What reaches the collector. Outcomes are most of the traffic: boxing them to shrink the read
/// items would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
pub enum Collected {
    Read(ReadItem),
    Outcome {
        key: String,
        file: usize,
        line: u64,
        seq: u64,
        outcome: Outcome,
        made: MadeFrom,
        retire: Option<&'static str>,
        /// Its stages so far, and when its job ended (the handoff to here is measured from it).
        timing: ItemTiming,
        done_at: Instant,
    },
}

pub struct Collector<'a, J: Job> {
    pub shared: &'a RunShared,
    pub job: &'a J,
    pub journal: &'a Journal,
    /// What earlier runs journaled.
    pub finished: &'a Finished,
    pub unit_name: &'a str,
    pub files: &'a [String],
    pub ordered: bool,
    pub stats: FileStats,
}

impl<J: Job> Collector<'_, J> {
    /// Counts and journals `item`; an outcome's stage timing is completed (handoff, journal)
    /// and recorded.
    pub fn collect(&mut self, item: Collected) -> Result<(), JournalError> {
        let timing = match &item {
            Collected::Outcome { timing, done_at, .. } => Some((*timing, done_at.elapsed())),
            Collected::Read(_) => None,
        };
        let started = Instant::now();
        let result = self.collect_item(item);
        if let Some((mut timing, handoff)) = timing {
            timing.handoff = handoff;
            timing.journal = started.elapsed();
            self.shared.stats.lock().unwrap().stages.record(&timing);
        }
        result
    }

    fn collect_item(&mut self, item: Collected) -> Result<(), JournalError> {
        let fs = &mut self.stats;
        match item {
            Collected::Read(ReadItem::AlreadyDone) => {
                fs.seen += 1;
                fs.already_done += 1;
                self.shared.progress.already_done();
            }
            Collected::Read(ReadItem::Adopted) => {
                fs.seen += 1;
                fs.adopted += 1;
                self.shared.progress.already_done();
            }
            Collected::Read(ReadItem::FailedBefore) => {
                fs.seen += 1;
                fs.failed_before += 1;
            }
            Collected::Read(ReadItem::DuplicateId { skipped }) => {
                fs.duplicate_ids += 1;
                if skipped {
                    fs.seen += 1;
                }
            }
            Collected::Read(ReadItem::NotRetried) => {
                fs.seen += 1;
                fs.not_retried += 1;
            }
            Collected::Read(ReadItem::DebugLimited) => {
                fs.seen += 1;
                fs.debug_limited += 1;
            }
            Collected::Read(ReadItem::SourceFailed { key, file, message }) => {
                // The file could not be read further: every record read so far is kept, the
                // failure is an error row of its own.
                tracing::error!(file = %file, "{message}");
                fs.source_errors += 1;
                self.shared.progress.failed();
                self.shared.progress.failure("source_read_error", &message);
                self.shared.stats.lock().unwrap().count_failure("source_read_error");
                let row = json!({
                    "file": file, "cause": "source_read_error", "message": message,
                    "api_status": "error", "api_fail_reason": message,
                });
                self.journal.append(JournalEntry::new(key, EntryStatus::Error, object(row)))?;
            }
            Collected::Read(ReadItem::Bad { key, bad }) => {
                fs.seen += 1;
                fs.bad_lines += 1;
                self.shared.progress.failed();
                self.shared.progress.failure(&bad.cause, &bad.message);
                self.shared.stats.lock().unwrap().count_failure(&bad.cause);
                // A bad line stays bad: journaled once, not again on every rerun.
                if !self.finished.failed_permanently.contains(&key) {
                    let mut row = bad.to_row();
                    row.insert("retryable".into(), json!(false));
                    self.journal.append(JournalEntry::new(key, EntryStatus::Error, row))?;
                }
            }
            Collected::Read(ReadItem::Work { .. }) => unreachable!("work items go to record tasks"),
            Collected::Outcome { key, file, line, seq, outcome, made, retire, .. } => {
                fs.seen += 1;
                let calls = match &outcome {
                    Outcome::Done { calls, .. } => Some(calls),
                    Outcome::Failed(f) => Some(&f.calls),
                    Outcome::Fatal { .. } => None,
                };
                if let Some(calls) = calls.filter(|c| c.reparsed) {
                    fs.reparsed += 1;
                    if calls.recovered && matches!(outcome, Outcome::Done { .. }) {
                        fs.recovered += 1;
                    }
                }
                if let Some(why) = retire {
                    // The earlier result is void whatever this outcome is: a failure must not
                    // leave the stale result standing in the output.
                    if !matches!(outcome, Outcome::Fatal { .. }) {
                        if why != super::read_item::REPARSED {
                            fs.changed += 1;
                        }
                        self.journal.append(JournalEntry::retired(key.clone(), why))?;
                    }
                }
                self.shared.stats.lock().unwrap().mark_outcome();
                match outcome {
                    Outcome::Done { produced, score, calls } => {
                        self.shared.progress.calls(calls.requests, calls.prompt_tokens, calls.completion_tokens, &calls.retries);
                        let mut stats = self.shared.stats.lock().unwrap();
                        tally(&mut stats, &calls);
                        stats.record_timeline(false, calls.latencies.last().copied());
                        if let Some(v) = score {
                            stats.record_score(v);
                        }
                        let mut row = match produced {
                            Produced::Row(row) => {
                                fs.scored += 1;
                                row
                            }
                            Produced::Records { group, records, skipped, item_errors } => {
                                match &skipped {
                                    Some(reason) => {
                                        fs.skipped += 1;
                                        stats.count_skip(reason);
                                    }
                                    None => fs.scored += 1,
                                }
                                // Before the input's own entry: a crash in between reruns the
                                // input, which writes the same item keys again.
                                for item in item_errors {
                                    fs.item_errors += 1;
                                    stats.count_failure(&item.cause);
                                    let file = self.files.get(file).map(String::as_str).unwrap_or(self.unit_name);
                                    let item_key = item.key(&key);
                                    let failure = Failure {
                                        cause: item.cause,
                                        message: item.message,
                                        calls: CallTally::default(),
                                        record: None,
                                        replies: Vec::new(),
                                        after_reply: false,
                                    };
                                    // A raw file's item (line 0) is at the source line its location names.
                                    let line = item.location.as_deref().and_then(modelcall_plugin_host::location_line).filter(|_| line == 0).unwrap_or(line);
                                    let mut row = self.job.failure_row(&FailureSite { key: &item_key, file, line }, failure);
                                    row.insert("item".into(), json!(item.index));
                                    row.insert("location".into(), json!(item.location));
                                    // The input succeeded: a rerun cannot redo one of its items.
                                    row.insert("retryable".into(), json!(false));
                                    self.journal.append(JournalEntry::new(item_key, EntryStatus::Error, row))?;
                                }
                                fs.records_out += records.len() as u64;
                                let mut row = object(json!({"group": group.as_deref().unwrap_or(self.unit_name), "records": records}));
                                if let Some(reason) = skipped {
                                    row.insert("skipped".into(), json!(reason));
                                }
                                row
                            }
                        };
                        drop(stats);
                        self.check_budget();
                        if row.get("records").is_none() {
                            self.stats.fields_cut += cap_fields(&mut row, max_field_bytes());
                        }
                        if self.ordered {
                            row.insert(modelcall_io::ordered::SEQ_FIELD.into(), json!(seq));
                        }
                        self.journal.append(JournalEntry::new(key, EntryStatus::Ok, row).made_from(Some(made)))?;
                    }
                    Outcome::Failed(failure) => {
                        fs.failed += 1;
                        self.shared.progress.failed();
                        self.shared.progress.calls(
                            failure.calls.requests,
                            failure.calls.prompt_tokens,
                            failure.calls.completion_tokens,
                            &failure.calls.retries,
                        );
                        self.shared.progress.failure(&failure.cause, &failure.message);
                        {
                            let mut stats = self.shared.stats.lock().unwrap();
                            tally(&mut stats, &failure.calls);
                            stats.record_timeline(true, failure.calls.latencies.last().copied());
                            stats.count_failure(&failure.cause);
                        }
                        self.check_budget();
                        let file = self.files.get(file).map(String::as_str).unwrap_or(self.unit_name);
                        let retryable = !failure.is_permanent();
                        let mut row = self.job.failure_row(&FailureSite { key: &key, file, line }, failure);
                        row.insert("retryable".into(), json!(retryable));
                        self.stats.fields_cut += cap_fields(&mut row, max_field_bytes());
                        self.journal.append(JournalEntry::new(key, EntryStatus::Error, row).made_from(Some(made)))?;
                    }
                    Outcome::Fatal { message } => {
                        fs.seen -= 1;
                        self.shared.stop.fatal(message);
                    }
                }
            }
        }
        Ok(())
    }
}

/// `output.max_field_bytes` of the task being run (`None`: no cap); set once the task is loaded.
static MAX_FIELD_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(modelcall_config::task::OutputSection::DEFAULT_MAX_FIELD_BYTES);

/// Sets the cap on every string of a result or error row (`output.max_field_bytes`; `None`: none).
pub fn set_max_field_bytes(cap: Option<usize>) {
    MAX_FIELD_BYTES.store(cap.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
}

fn max_field_bytes() -> Option<usize> {
    Some(MAX_FIELD_BYTES.load(std::sync::atomic::Ordering::Relaxed)).filter(|n| *n > 0)
}

/// Cuts every string in `row` (at any depth) longer than `cap` bytes to its first `cap` bytes (at
/// a character boundary), marked `…[cut: N bytes]` with the bytes left out; returns how many
/// were cut. Rows of preprocessed records are not cut (they are the data itself).
fn cap_fields(row: &mut Map<String, Value>, cap: Option<usize>) -> u64 {
    fn cap_value(v: &mut Value, cap: usize) -> u64 {
        match v {
            Value::String(s) if s.len() > cap => {
                let mut end = cap;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                let cut = s.len() - end;
                s.truncate(end);
                s.push_str(&format!("…[cut: {cut} bytes]"));
                1
            }
            Value::Array(a) => a.iter_mut().map(|v| cap_value(v, cap)).sum(),
            Value::Object(m) => m.values_mut().map(|v| cap_value(v, cap)).sum(),
            _ => 0,
        }
    }
    let Some(cap) = cap else { return 0 };
    row.values_mut().map(|v| cap_value(v, cap)).sum()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! of an object literal"),
    }
}

impl<J: Job> Collector<'_, J> {
    /// Stops the run once the budget is spent (what is in flight still lands).
    fn check_budget(&self) {
        if let Some(budget) = &self.shared.budget {
            if let Some(why) = budget.exceeded(&self.shared.stats.lock().unwrap()) {
                if !self.shared.stop.is_stopped() {
                    // What is in flight is paid for: it lands in the journal before the run ends.
                    self.shared.stop.after_in_flight(why);
                }
            }
        }
    }
}

fn tally(stats: &mut RunStats, calls: &CallTally) {
    stats.requests += calls.requests;
    stats.cached += calls.cached;
    for hint in &calls.retry_hints {
        stats.count_retry_hint(hint);
    }
    stats.parse_retries += calls.parse_retries;
    stats.prompt_tokens += calls.prompt_tokens;
    stats.completion_tokens += calls.completion_tokens;
    for (cause, n) in &calls.retries {
        stats.count_retry(cause, *n);
    }
    for l in &calls.latencies {
        stats.record_latency(*l);
    }
    for (role, us) in &calls.plugin_calls {
        stats.plugin_calls.record(role, *us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_cut_at_a_char_boundary_and_marked() {
        let mut row = object(json!({"a": "é".repeat(10), "b": {"c": ["xxxxxxxxxxxx", 1]}, "d": "short"}));
        assert_eq!(cap_fields(&mut row, Some(7)), 2);
        assert_eq!(row["a"], "ééé…[cut: 14 bytes]");
        assert_eq!(row["b"]["c"][0], "xxxxxxx…[cut: 5 bytes]");
        assert_eq!(row["d"], "short");
        assert_eq!(cap_fields(&mut row, None), 0);
    }
}
