//! Running one unit: reader → per-item tasks → collector → sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelcall_io::{Journal, RecordsTarget};
use tokio::sync::mpsc;

use super::adopt;
use super::collect::{Collected, Collector};
use super::job::Job;
use super::prefix_groups::PrefixGroups;
use super::read_item::ReadItem;
use super::reader::{read_unit_tracked, ReadEnd};
use super::resume::Finished;
use super::unit::{SinkKind, Unit, UnitInputs};
use super::RunShared;
use crate::stage_timing::ItemTiming;
use crate::summary::FileStats;

/// What one unit did.
pub struct UnitResult {
    pub stats: FileStats,
    /// The files its sink wrote.
    pub written: Vec<std::path::PathBuf>,
    /// Every input line was read and every item settled (not cut short by a stop).
    pub complete: bool,
}

/// Processes one unit. When the run is stopped part-way, what is done is still flushed to the
/// outputs (a resumed run completes them); `Err` only when the unit's own I/O failed.
pub async fn run_unit<J: Job>(shared: Arc<RunShared>, job: Arc<J>, unit: Unit) -> anyhow::Result<UnitResult> {
    let paths = unit.paths.clone();
    let mut read_options = shared.read.clone();
    if let Some(rule) = &read_options.adopt {
        adopt::import(&paths, rule)?;
        if !adopt::has_adopted(&paths.journal) {
            read_options.adopt = None;
        }
    }
    let (journal, state) =
        Journal::open(&paths.journal, shared.flush_interval).map_err(|e| anyhow::anyhow!("opening journal {}: {e}", paths.journal.display()))?;
    if state.torn_lines_dropped > 0 {
        tracing::warn!(journal = %paths.journal.display(), dropped = state.torn_lines_dropped, "dropped a torn last line left by a crash");
    }
    if let Some(settings) = &read_options.settings {
        super::settings::remember(&paths.journal, settings)?;
    }
    let finished = Finished::for_unit(state, &paths, &read_options);
    let done = Arc::new(finished);
    let files: Vec<String> = match &unit.inputs {
        UnitInputs::RecordSlice { .. } => vec![unit.input_label()],
        inputs => inputs.files().iter().map(|p| p.display().to_string()).collect(),
    };
    let stats =
        FileStats { input: unit.input_label(), output: paths.output.display().to_string(), errors: paths.errors.display().to_string(), ..Default::default() };

    // Reader thread.
    let bytes_read = modelcall_io::ByteCounter::default();
    let (read_tx, read_rx) = mpsc::channel::<ReadItem>(shared.read_ahead.max(16));
    let reader = {
        let (inputs, opts, done, stop) = (unit.inputs.clone(), read_options, done.clone(), shared.stop.clone());
        let bytes = bytes_read.clone();
        tokio::task::spawn_blocking(move || read_unit_tracked(inputs, opts, &done, &stop, bytes, read_tx))
    };

    // Collector: the journal's single writer.
    let (out_tx, mut out_rx) = mpsc::channel::<Collected>(shared.read_ahead.max(16) * 2);
    let collector = {
        let (shared, job, name, ordered, finished) = (shared.clone(), job.clone(), unit.name.clone(), unit.ordered(), done.clone());
        tokio::spawn(async move {
            let mut c = Collector { shared: &shared, job: &*job, journal: &journal, finished: &finished, unit_name: &name, files: &files, ordered, stats };
            let mut journal_error = None;
            while let Some(item) = out_rx.recv().await {
                if let Err(e) = c.collect(item) {
                    shared.stop.fatal(format!("cannot write the journal: {e}"));
                    journal_error = Some(e.to_string());
                    break;
                }
            }
            let stats = c.stats;
            (stats, journal_error, journal.close())
        })
    };

    // Dispatcher.
    let mut tasks = tokio::task::JoinSet::new();
    let mut source = WorkSource { rx: read_rx, groups: shared.prefix_groups.then(|| PrefixGroups::new(PREFIX_WINDOW)), closed: false };
    while let Some(item) = source.next(&*job, &out_tx).await {
        if shared.stop.is_stopped() {
            break;
        }
        match item {
            ReadItem::Work { key, file, line, seq, input, made, retire } => {
                let waited = Instant::now();
                let permit = tokio::select! {
                    permit = shared.in_flight.clone().acquire_owned() => permit?,
                    _ = shared.stop.stopped() => break,
                };
                let slot_wait = waited.elapsed();
                let (job, out_tx, progress, shared) = (job.clone(), out_tx.clone(), shared.progress.clone(), shared.clone());
                progress.started();
                tasks.spawn(async move {
                    let started = Instant::now();
                    let (outcome, wire) = modelcall_model::for_record_timed(key.as_str(), job.run(key.clone(), input)).await;
                    let (prompt, parse) = outcome.calls().map_or((Duration::ZERO, Duration::ZERO), |c| (c.prompt_time, c.parse_time));
                    let timing = ItemTiming { slot_wait, prompt, wire, parse, job: started.elapsed(), ..ItemTiming::default() };
                    match &shared.adaptive {
                        Some(adaptive) => {
                            if let Some((latency, throttled)) = outcome.sample() {
                                adaptive.on_sample(latency, throttled);
                                progress.set_limit(adaptive.limit());
                            }
                            adaptive.release(permit);
                        }
                        None => drop(permit),
                    }
                    progress.finished();
                    let done_at = Instant::now();
                    let _ = out_tx.send(Collected::Outcome { key, file, line, seq, outcome, made, retire, timing, done_at }).await;
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
    drop(source);
    let mut complete = true;
    if shared.stop.is_stopped() && !tasks.is_empty() {
        complete = false;
        // In-flight items are neither done nor failed: a resumed run sends them again. Unless
        // the stop waits for them (a spent budget: they are paid for, and journaled as they land).
        if !shared.stop.drains() {
            tasks.abort_all();
        }
    }
    while tasks.join_next().await.is_some() {}
    let read_end = reader.await.ok();
    complete &= read_end.as_ref().is_some_and(|r| r.complete);
    drop(out_tx);
    let (mut stats, journal_error, closed) = collector.await?;
    stats.bytes_read = bytes_read.get();
    if let Some(e) = journal_error {
        // The first failure is the run's message. An append only sees the writer stop; the
        // writer's own I/O error (the journal's path and, say, "No space left") comes at close.
        let cause = match closed {
            Err(first) => first.to_string(),
            Ok(()) => e,
        };
        anyhow::bail!("cannot write the journal {}: {cause}", paths.journal.display());
    }
    closed.map_err(|e| anyhow::anyhow!("closing journal {}: {e}", paths.journal.display()))?;
    if let Some(end) = read_end.filter(|e| complete && e.saw_everything()) {
        let journal = paths.journal.clone();
        let gone = tokio::task::spawn_blocking(move || retire_gone(&journal, &end)).await??;
        if gone > 0 {
            eprintln!("note: {gone} result(s) of {} belong to records no longer in its input; they are removed from the outputs", unit.input_label());
        }
    }

    // Finalize: journal → output + errors, atomically; after a stop too, so what is done is
    // in the outputs and every failure so far in the error file.
    let sink = unit.sink.clone();
    let written = tokio::task::spawn_blocking(move || finalize(&paths, &sink)).await??;
    tracing::info!(event = "unit_done", unit = %unit.name, input = %stats.input, output = %stats.output, errors = %stats.errors, seen = stats.seen, scored = stats.scored, failed = stats.failed, already_done = stats.already_done, complete, "unit done: {} scored, {} failed, {} already done ({})", stats.scored, stats.failed, stats.already_done, stats.output);
    Ok(UnitResult { stats, written, complete })
}

/// Work items held for regrouping (`prefix_groups`): with K distinct prefixes in the input,
/// about K of every window's records miss a server's prefix cache, so the window is large
/// next to the read-ahead; its records are held in memory.
const PREFIX_WINDOW: usize = 4096;

/// What the dispatcher takes next: the reader's items in order, or, with prefix groups, the
/// work items regrouped within a window (the others pass straight to the collector).
struct WorkSource {
    rx: mpsc::Receiver<ReadItem>,
    groups: Option<PrefixGroups<ReadItem>>,
    closed: bool,
}

impl WorkSource {
    async fn next<J: Job>(&mut self, job: &J, collector: &mpsc::Sender<Collected>) -> Option<ReadItem> {
        let Some(groups) = &mut self.groups else { return self.rx.recv().await };
        // Waits for the reader only with nothing buffered; otherwise takes what it has ready.
        while !groups.is_full() && !self.closed {
            let item = if groups.is_empty() {
                self.rx.recv().await
            } else {
                match self.rx.try_recv() {
                    Ok(item) => Some(item),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match item {
                None => self.closed = true,
                Some(work @ ReadItem::Work { .. }) => {
                    let ReadItem::Work { input, .. } = &work else { unreachable!() };
                    groups.push(job.prefix_key(input).unwrap_or(0), work);
                }
                Some(other) => {
                    if collector.send(Collected::Read(other)).await.is_err() {
                        return None;
                    }
                }
            }
        }
        groups.pop()
    }
}

/// Turns a unit's journal into its output and error files, atomically (also used by `merge`).
pub fn finalize(paths: &modelcall_io::FilePaths, sink: &SinkKind) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let (journal, output, errors) = (&paths.journal, &paths.output, &paths.errors);
    let in_context = |e: modelcall_io::SinkError| anyhow::anyhow!("writing {}: {e}", output.display());
    Ok(match sink {
        SinkKind::Rows { format, ordered } => {
            let declared = super::unit::declared_schema(paths, *format);
            modelcall_io::sink::finalize_rows(journal, output, errors, *format, *ordered, declared.as_ref()).map_err(in_context)?;
            vec![output.clone()]
        }
        SinkKind::Records(target) => {
            let stats = modelcall_io::finalize_records(journal, target, errors).map_err(in_context)?;
            if stats.errors == 0 {
                // No failed input: no error file to look at.
                let _ = std::fs::remove_file(errors);
            }
            match target {
                RecordsTarget::Groups(_) => stats.files,
                RecordsTarget::File { .. } => vec![output.clone()],
            }
        }
    })
}

/// Voids the results of keys the inputs no longer hold (a record deleted or re-keyed, a raw file
/// removed, a bad line fixed), so the outputs hold only what matches the input as it is. Only
/// after a read that saw every input to its end. Kept: rows adopted from another tool (keyed
/// by its ids) and the item errors of an input still there. Returns how many were voided.
fn retire_gone(journal: &std::path::Path, end: &ReadEnd) -> anyhow::Result<u64> {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(journal) else { return Ok(0) };
    let adopted_prefix = modelcall_io::key::internal_key("adopted", "");
    #[derive(serde::Deserialize)]
    struct KeyStatus {
        key: String,
        status: modelcall_io::EntryStatus,
    }
    // Latest status of each key the input no longer holds.
    let mut gone: std::collections::HashMap<u128, (String, bool)> = std::collections::HashMap::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(entry) = serde_json::from_slice::<KeyStatus>(&line?) else { continue };
        let key = entry.key;
        if end.seen.contains(&key) || key.starts_with(&adopted_prefix) {
            continue;
        }
        if let Some((base, _)) = key.rsplit_once("#item") {
            if end.seen.contains(base) {
                continue;
            }
        }
        let retired = entry.status == modelcall_io::EntryStatus::Retired;
        gone.insert(modelcall_io::keyset::key_hash(&key), (key, retired));
    }
    let to_retire: Vec<String> = gone.into_values().filter(|(_, retired)| !retired).map(|(k, _)| k).collect();
    if to_retire.is_empty() {
        return Ok(0);
    }
    let (writer, _) = modelcall_io::Journal::open(journal, std::time::Duration::from_millis(200))?;
    for key in &to_retire {
        writer.append(modelcall_io::JournalEntry::retired(key.clone(), "its record is no longer in the input"))?;
    }
    writer.close()?;
    Ok(to_retire.len() as u64)
}
