//! Streams one input file through the scoring stages and records every outcome in the
//! file's journal, then finalizes the journal into the output and error files.
//!
//! Threads and tasks:
//! - a reader on a blocking thread parses lines, assigns stable keys, drops keys that are
//!   already done or belong to another shard, and sends work through a bounded channel
//!   (bounded read-ahead: memory does not depend on the input size);
//! - one task per record, admitted by the run-wide semaphore (the bound on requests in
//!   flight), so a slow request never holds up the others;
//! - one collector that owns the journal (its single writer) and the counters.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelcall_io::{EntryStatus, Journal, JournalEntry, KeyAssigner, KeySet, OutputFormat, SourceItem};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify, Semaphore};

use super::record::{score_record, RecordOutcome, Stages};
use crate::progress::Progress;
use crate::summary::{FileStats, RunStats};

/// Run-wide state shared by every file.
pub struct RunContext {
    pub stages: Arc<Stages>,
    pub in_flight: Arc<Semaphore>,
    /// Id fields tried in order for a record's key (content hash when none is present).
    pub key_fields: Vec<String>,
    /// Output naming, and the shape of error rows.
    pub naming: Naming,
    /// Work items per record (generation with `n: k`): keys `key#0..k-1`.
    pub samples_per_record: u32,
    /// Write outputs in input order (`ordered: true`) instead of completion order.
    pub ordered: bool,
    pub shard: Option<(u32, u32)>,
    pub max_items_per_file: Option<u64>,
    pub output_format: OutputFormat,
    pub flush_interval: Duration,
    pub read_ahead: usize,
    pub stats: Arc<Mutex<RunStats>>,
    pub progress: Progress,
    pub stop: StopSignal,
}

/// Set once when the run must stop (authentication failure, disabled plugin, Ctrl-C).
#[derive(Clone, Default)]
pub struct StopSignal {
    stopped: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<String>>>,
    notify: Arc<Notify>,
}

impl StopSignal {
    pub fn stop(&self, reason: String) {
        let mut slot = self.reason.lock().unwrap();
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap().clone()
    }
    pub async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// The files one input produces.
#[derive(Debug, Clone)]
pub struct FilePaths {
    pub input: PathBuf,
    pub output: PathBuf,
    pub errors: PathBuf,
    pub journal: PathBuf,
}

/// How output files are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Scoring: `<stem>.parquet|jsonl` and `<stem>.errors.jsonl`.
    Scoring,
    /// Response generation (the reference's names): `<stem>.jsonl` and `<stem>_error.jsonl`.
    Distillation,
}

impl FilePaths {
    /// `<out>/<stem>.parquet|jsonl`, `<out>/<stem>.errors.jsonl`, `<out>/.modelcall/<stem>.journal.jsonl`;
    /// with shards, `<stem>.shard-I-of-N` so shards sharing a folder never write the same file.
    pub fn for_input(input: &Path, output_folder: &Path, format: OutputFormat, shard: Option<(u32, u32)>) -> Self {
        Self::named(input, output_folder, format, shard, Naming::Scoring)
    }

    pub fn named(input: &Path, output_folder: &Path, format: OutputFormat, shard: Option<(u32, u32)>, naming: Naming) -> Self {
        let mut stem = input_stem(input);
        if let Some((i, n)) = shard {
            if n > 1 {
                stem = format!("{stem}.shard-{i}-of-{n}");
            }
        }
        let ext = match format {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Jsonl => "jsonl",
        };
        FilePaths {
            input: input.to_path_buf(),
            output: output_folder.join(format!("{stem}.{ext}")),
            errors: output_folder.join(match naming {
                Naming::Scoring => format!("{stem}.errors.jsonl"),
                Naming::Distillation => format!("{stem}_error.jsonl"),
            }),
            journal: output_folder.join(".modelcall").join(format!("{stem}.journal.jsonl")),
        }
    }
}

/// File name without directory and without data extensions (`a.jsonl.gz` → `a`).
pub fn input_stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut stem = name.as_str();
    for ext in [".gz", ".zst", ".zstd"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
        }
    }
    for ext in [".jsonl", ".json", ".parquet", ".ndjson"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
            break;
        }
    }
    stem.to_string()
}

enum ReadItem {
    Work { key: String, line: u64, record: Map<String, Value> },
    Bad { line: u64, cause: String, message: String, excerpt: String },
    AlreadyDone,
    OtherShard,
    DebugLimited,
    SourceFailed(String),
}

enum Collected {
    Read(ReadItem),
    Outcome { key: String, line: u64, outcome: RecordOutcome },
}

/// Processes one file. Returns its counters; `Ok` also when the run was stopped (the caller
/// checks the stop signal), `Err` only when the file's own I/O failed.
pub async fn run_file(ctx: Arc<RunContext>, paths: FilePaths) -> anyhow::Result<FileStats> {
    std::fs::create_dir_all(paths.journal.parent().unwrap())?;
    let (journal, state) = Journal::open(&paths.journal, ctx.flush_interval)
        .map_err(|e| anyhow::anyhow!("opening journal {}: {e}", paths.journal.display()))?;
    if state.torn_lines_dropped > 0 {
        tracing::warn!(journal = %paths.journal.display(), dropped = state.torn_lines_dropped, "dropped a torn last line left by a crash");
    }
    let done: Arc<KeySet> = Arc::new(state.done_ok);

    let file_stats = FileStats {
        input: paths.input.display().to_string(),
        output: paths.output.display().to_string(),
        errors: paths.errors.display().to_string(),
        ..Default::default()
    };

    // Reader thread.
    let (read_tx, mut read_rx) = mpsc::channel::<ReadItem>(ctx.read_ahead.max(16));
    let reader = {
        let input = paths.input.clone();
        let key_fields = ctx.key_fields.clone();
        let samples = ctx.samples_per_record.max(1);
        let shard = ctx.shard;
        let limit = ctx.max_items_per_file;
        let done = done.clone();
        let stop = ctx.stop.clone();
        tokio::task::spawn_blocking(move || read_source(&input, key_fields, samples, shard, limit, &done, &stop, read_tx))
    };

    // Collector: the journal's single writer.
    let (out_tx, mut out_rx) = mpsc::channel::<Collected>(ctx.read_ahead.max(16) * 2);
    let collector = {
        let ctx = ctx.clone();
        let input_name = paths.input.display().to_string();
        tokio::spawn(async move {
            let mut fs = file_stats;
            let mut journal_error: Option<String> = None;
            while let Some(item) = out_rx.recv().await {
                if let Err(e) = collect(&ctx, &journal, &input_name, &mut fs, item) {
                    journal_error = Some(e.to_string());
                    ctx.stop.stop(format!("cannot write the journal: {e}"));
                    break;
                }
            }
            let closed = journal.close();
            (fs, journal_error, closed)
        })
    };

    // Dispatcher.
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(item) = read_rx.recv().await {
        if ctx.stop.is_stopped() {
            break;
        }
        match item {
            ReadItem::Work { key, line, record } => {
                let permit = tokio::select! {
                    permit = ctx.in_flight.clone().acquire_owned() => permit?,
                    _ = ctx.stop.stopped() => break,
                };
                let stages = ctx.stages.clone();
                let out_tx = out_tx.clone();
                let progress = ctx.progress.clone();
                progress.started();
                tasks.spawn(async move {
                    let outcome = score_record(stages, key.clone(), record).await;
                    drop(permit);
                    progress.finished();
                    let _ = out_tx.send(Collected::Outcome { key, line, outcome }).await;
                });
                while tasks.try_join_next().is_some() {}
            }
            other => {
                if out_tx.send(Collected::Read(other)).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(read_rx);
    if ctx.stop.is_stopped() {
        // In-flight records are neither done nor failed: a resumed run sends them again.
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
    let _ = reader.await;
    drop(out_tx);
    let (file_stats, journal_error, closed) = collector.await?;
    if let Some(e) = journal_error {
        anyhow::bail!("journal {}: {e}", paths.journal.display());
    }
    closed.map_err(|e| anyhow::anyhow!("closing journal {}: {e}", paths.journal.display()))?;
    if ctx.stop.is_stopped() {
        return Ok(file_stats);
    }

    // Finalize: journal → output + errors, atomically.
    let (journal_path, output, errors, format) =
        (paths.journal.clone(), paths.output.clone(), paths.errors.clone(), ctx.output_format);
    let ordered = ctx.ordered && format == OutputFormat::Jsonl;
    tokio::task::spawn_blocking(move || {
        modelcall_io::finalize(&journal_path, &output, &errors, format)?;
        if ordered {
            modelcall_io::ordered::reorder_jsonl(&output)?;
        }
        Ok::<_, modelcall_io::SinkError>(())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("writing {}: {e}", paths.output.display()))?;
    Ok(file_stats)
}

#[allow(clippy::too_many_arguments)]
fn read_source(
    input: &Path,
    key_fields: Vec<String>,
    samples: u32,
    shard: Option<(u32, u32)>,
    limit: Option<u64>,
    done: &KeySet,
    stop: &StopSignal,
    tx: mpsc::Sender<ReadItem>,
) {
    let source = match modelcall_io::open_source(input) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.blocking_send(ReadItem::SourceFailed(e.to_string()));
            return;
        }
    };
    let fields: Vec<&str> = key_fields.iter().map(String::as_str).collect();
    let mut keys = KeyAssigner::with_fields(&fields);
    let mut dispatched: u64 = 0;
    for item in source {
        if stop.is_stopped() {
            return;
        }
        let msg = match item {
            Err(e) => ReadItem::SourceFailed(e.to_string()),
            Ok(SourceItem::Bad { line, cause, raw_excerpt }) => ReadItem::Bad {
                line,
                cause: cause.as_str().to_string(),
                message: cause.to_string(),
                excerpt: raw_excerpt,
            },
            Ok(SourceItem::Record { line, record }) if samples > 1 => {
                // n answers per record: one work item per sample, each its own key.
                let base = keys.key_for(&record);
                if let Some((i, n)) = shard {
                    if n > 1 && modelcall_io::shard_of(&base, n) != i {
                        if tx.blocking_send(ReadItem::OtherShard).is_err() {
                            return;
                        }
                        continue;
                    }
                }
                for i in 0..samples {
                    let key = format!("{base}#{i}");
                    let msg = if done.contains(&key) {
                        ReadItem::AlreadyDone
                    } else {
                        let mut r = record.clone();
                        if let Some(uid) = r.get("uid").cloned() {
                            r.insert("source_uid".into(), uid);
                        }
                        r.insert("uid".into(), Value::String(key.clone()));
                        r.insert("sample_index".into(), Value::from(i));
                        ReadItem::Work { key, line: line * 1024 + i as u64, record: r }
                    };
                    if tx.blocking_send(msg).is_err() {
                        return;
                    }
                }
                continue;
            }
            Ok(SourceItem::Record { line, record }) => {
                let key = keys.key_for(&record);
                if let Some((i, n)) = shard {
                    if n > 1 && modelcall_io::shard_of(&key, n) != i {
                        if tx.blocking_send(ReadItem::OtherShard).is_err() {
                            return;
                        }
                        continue;
                    }
                }
                if done.contains(&key) {
                    ReadItem::AlreadyDone
                } else if limit.is_some_and(|l| dispatched >= l) {
                    ReadItem::DebugLimited
                } else {
                    dispatched += 1;
                    ReadItem::Work { key, line, record }
                }
            }
        };
        let fatal = matches!(msg, ReadItem::SourceFailed(_));
        if tx.blocking_send(msg).is_err() || fatal {
            return;
        }
    }
}

fn collect(
    ctx: &RunContext,
    journal: &Journal,
    input_name: &str,
    fs: &mut FileStats,
    item: Collected,
) -> anyhow::Result<()> {
    match item {
        Collected::Read(ReadItem::AlreadyDone) => {
            fs.seen += 1;
            fs.already_done += 1;
            ctx.progress.already_done();
        }
        Collected::Read(ReadItem::OtherShard) => {
            fs.seen += 1;
            fs.other_shards += 1;
        }
        Collected::Read(ReadItem::DebugLimited) => {
            fs.seen += 1;
            fs.debug_limited += 1;
        }
        Collected::Read(ReadItem::SourceFailed(message)) => {
            // The file itself could not be read further: every record read so far is kept, the
            // failure is reported as a run error for this file.
            tracing::error!(file = input_name, "{message}");
            ctx.stats.lock().unwrap().count_failure("source_read_error");
            let row = json!({
                "file": input_name, "cause": "source_read_error", "message": message,
                "api_status": "error", "api_fail_reason": message,
            });
            journal.append(JournalEntry {
                key: format!("source-error:{input_name}"),
                status: EntryStatus::Error,
                row: row.as_object().cloned().unwrap_or_default(),
            })?;
        }
        Collected::Read(ReadItem::Bad { line, cause, message, excerpt }) => {
            fs.seen += 1;
            fs.bad_lines += 1;
            ctx.progress.failed();
            ctx.stats.lock().unwrap().count_failure(&cause);
            let row = json!({
                "file": input_name, "line": line, "cause": cause, "message": message,
                "api_status": "error", "api_fail_reason": format!("{input_name}:{line}: {message}"),
                "raw_excerpt": excerpt,
            });
            journal.append(JournalEntry {
                key: format!("bad-line:{line}"),
                status: EntryStatus::Error,
                row: row.as_object().cloned().unwrap_or_default(),
            })?;
        }
        Collected::Read(ReadItem::Work { .. }) => unreachable!("work items go to record tasks"),
        Collected::Outcome { key, line, outcome } => {
            fs.seen += 1;
            ctx.stats.lock().unwrap().mark_outcome();
            match outcome {
                RecordOutcome::Scored { mut row, score, calls } => {
                    fs.scored += 1;
                    if ctx.ordered {
                        // Input position (line × 1024 + sample), used and removed by the ordered finalize.
                        let seq = if ctx.samples_per_record > 1 { line } else { line * 1024 };
                        row.insert(modelcall_io::ordered::SEQ_FIELD.into(), json!(seq));
                    }
                    {
                        let mut stats = ctx.stats.lock().unwrap();
                        tally(&mut stats, &calls);
                        if let Some(v) = score {
                            stats.record_score(v);
                        }
                    }
                    journal.append(JournalEntry { key, status: EntryStatus::Ok, row })?;
                }
                RecordOutcome::Failed { cause, message, calls, record } => {
                    fs.failed += 1;
                    ctx.progress.failed();
                    {
                        let mut stats = ctx.stats.lock().unwrap();
                        tally(&mut stats, &calls);
                        stats.count_failure(&cause);
                    }
                    let row = match ctx.naming {
                        Naming::Scoring => json!({
                            "key": key, "file": input_name, "line": line, "cause": cause, "message": message,
                            "api_status": "error", "api_fail_reason": message, "attempts": calls.requests,
                            "record": Value::Object(record),
                        }),
                        // The reference's error lines: the original record plus what went wrong,
                        // so the error file can be fed back as input.
                        Naming::Distillation => {
                            let mut r = record;
                            r.entry("uid".to_string()).or_insert_with(|| json!(key));
                            r.insert("error".into(), json!(message));
                            r.insert("error_type".into(), json!(cause));
                            r.insert("attempts".into(), json!(calls.requests));
                            r.insert("timestamp".into(), json!(chrono::Local::now().to_rfc3339()));
                            r.insert("source_line".into(), json!(if ctx.samples_per_record > 1 { line / 1024 } else { line }));
                            Value::Object(r)
                        }
                    };
                    journal.append(JournalEntry {
                        key,
                        status: EntryStatus::Error,
                        row: row.as_object().cloned().unwrap_or_default(),
                    })?;
                }
                RecordOutcome::Fatal { message } => {
                    fs.seen -= 1;
                    ctx.stop.stop(message);
                }
            }
        }
    }
    Ok(())
}

fn tally(stats: &mut RunStats, calls: &super::record::CallTally) {
    stats.requests += calls.requests;
    stats.parse_retries += calls.parse_retries;
    stats.prompt_tokens += calls.prompt_tokens;
    stats.completion_tokens += calls.completion_tokens;
    for (cause, n) in &calls.retries {
        stats.count_retry(cause, *n);
    }
    for l in &calls.latencies {
        stats.record_latency(*l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_drop_data_extensions() {
        assert_eq!(input_stem(Path::new("/a/b/part-0.jsonl")), "part-0");
        assert_eq!(input_stem(Path::new("x.jsonl.gz")), "x");
        assert_eq!(input_stem(Path::new("x.jsonl.zst")), "x");
        assert_eq!(input_stem(Path::new("x.parquet")), "x");
        assert_eq!(input_stem(Path::new("v1.2.data.jsonl")), "v1.2.data");
    }

    #[test]
    fn shard_outputs_never_collide() {
        let a = FilePaths::for_input(Path::new("in/x.jsonl"), Path::new("out"), OutputFormat::Parquet, Some((0, 4)));
        let b = FilePaths::for_input(Path::new("in/x.jsonl"), Path::new("out"), OutputFormat::Parquet, Some((1, 4)));
        assert_ne!(a.output, b.output);
        assert_ne!(a.journal, b.journal);
        let single = FilePaths::for_input(Path::new("in/x.jsonl"), Path::new("out"), OutputFormat::Jsonl, None);
        assert_eq!(single.output, Path::new("out/x.jsonl"));
        assert_eq!(single.errors, Path::new("out/x.errors.jsonl"));
    }
}
