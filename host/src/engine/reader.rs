//! Reading a unit: every input line becomes exactly one [`ReadItem`] (work, a bad line, or a
//! counted reason not to send it), so the collector can account for every line.
//!
//! Runs on a blocking thread and sends through a bounded channel: read-ahead is bounded, so
//! memory does not depend on the input size.

use std::path::PathBuf;

use modelcall_config::task::DuplicateIds;
use modelcall_io::key::internal_key;
use modelcall_io::{BadLine, ByteCounter, KeyAssigner, KeySet, Slice, SourceItem};
use serde_json::Value;
use tokio::sync::mpsc;

use super::job::JobInput;
use super::stop::StopSignal;
use super::unit::UnitInputs;

pub enum ReadItem {
    Work { key: String, file: usize, line: u64, seq: u64, input: JobInput },
    Bad { key: String, bad: BadLine },
    AlreadyDone,
    /// Its result was written by another tool and adopted (see [`super::adopt`]).
    Adopted,
    /// Failed permanently in an earlier run (a rejected request, an invalid record); its error
    /// row stays, and it is sent again only with `--retry-failed`.
    FailedBefore,
    DebugLimited,
    /// A record whose id was seen before in the unit; `skipped` when it is left out
    /// (`on_duplicate_id: skip`), else it is processed under its ordinal key as well.
    DuplicateId { skipped: bool },
    /// The file could not be read further (a truncated archive, an I/O error).
    SourceFailed { key: String, file: String, message: String },
}

/// How a unit's records are keyed and selected.
#[derive(Clone, Default)]
pub struct ReadOptions {
    /// Id fields tried in order (content hash when none is present).
    pub key_fields: Vec<String>,
    /// Work items per record (generation with `n: k`): keys `key#0..k-1`.
    pub samples_per_record: u32,
    /// At most this many work items (debug limits).
    pub max_items: Option<u64>,
    /// What a repeated id does (`options.on_duplicate_id`).
    pub on_duplicate_id: DuplicateIds,
    /// Send records that failed permanently in an earlier run again (`--retry-failed`).
    pub retry_failed: bool,
    /// Lines longer than this are `record_too_large` (default: the io crate's).
    pub max_record_bytes: Option<usize>,
    /// Match records to results another tool wrote (see [`super::adopt`]); `None`: never.
    pub adopt: Option<super::adopt::RefKeyRule>,
}

/// What earlier runs finished, from the unit's journal.
#[derive(Default)]
pub struct Finished {
    pub ok: KeySet,
    pub failed_permanently: KeySet,
}

impl Finished {
    fn item_for(&self, key: &str, retry_failed: bool) -> Option<ReadItem> {
        if self.ok.contains(key) {
            Some(ReadItem::AlreadyDone)
        } else if !retry_failed && self.failed_permanently.contains(key) {
            Some(ReadItem::FailedBefore)
        } else {
            None
        }
    }
}

/// Sends every line of the unit's inputs; `true` when it got to the end (not stopped).
pub fn read_unit(inputs: UnitInputs, opts: ReadOptions, done: &Finished, stop: &StopSignal, bytes: ByteCounter, tx: mpsc::Sender<ReadItem>) -> bool {
    let mut reader = Reader { opts, done, dispatched: 0, tx, bytes };
    match inputs {
        UnitInputs::Records(files) => {
            // One assigner for the whole unit: keys are unique across its files.
            let fields: Vec<&str> = reader.opts.key_fields.iter().map(String::as_str).collect();
            let mut keys = KeyAssigner::with_fields(&fields);
            for (index, file) in files.iter().enumerate() {
                if !reader.read_records(index, file, Slice::Whole, &mut keys, stop) {
                    return false;
                }
            }
        }
        UnitInputs::RecordSlice { file, slice, ordinal } => {
            let fields: Vec<&str> = reader.opts.key_fields.iter().map(String::as_str).collect();
            let mut keys = KeyAssigner::with_fields(&fields);
            if !reader.read_records(ordinal, &file, slice, &mut keys, stop) {
                return false;
            }
        }
        UnitInputs::RawFiles { root, files } => {
            for (index, path) in files.into_iter().enumerate() {
                if stop.is_stopped() {
                    return false;
                }
                let rel = modelcall_io::listing::relative_name(&root, &path);
                let item = if let Some(finished) = reader.done.item_for(&rel, reader.opts.retry_failed) {
                    finished
                } else if let Some(limited) = reader.limited() {
                    limited
                } else {
                    let seq = modelcall_io::ordered::position(index as u64, 0, 0);
                    ReadItem::Work { key: rel.clone(), file: index, line: 0, seq, input: JobInput::File { rel, path } }
                };
                if reader.tx.blocking_send(item).is_err() {
                    return false;
                }
            }
        }
    }
    !stop.is_stopped()
}

struct Reader<'a> {
    opts: ReadOptions,
    done: &'a Finished,
    dispatched: u64,
    tx: mpsc::Sender<ReadItem>,
    bytes: ByteCounter,
}

impl Reader<'_> {
    /// Whether another tool's result for `record` was adopted into the journal.
    fn is_adopted(&self, record: &serde_json::Map<String, Value>) -> bool {
        let Some(rule) = &self.opts.adopt else { return false };
        rule.key(record).is_some_and(|r| self.done.ok.contains(&super::adopt::adopted_key(&r)))
    }

    fn limited(&mut self) -> Option<ReadItem> {
        if self.opts.max_items.is_some_and(|l| self.dispatched >= l) {
            return Some(ReadItem::DebugLimited);
        }
        self.dispatched += 1;
        None
    }

    /// Sends every line of `file` (a file that fails to open or read is reported and the unit
    /// goes on with its next file); `false` when the unit must stop.
    fn read_records(&mut self, index: usize, file: &PathBuf, slice: Slice, keys: &mut KeyAssigner, stop: &StopSignal) -> bool {
        let name = file.display().to_string();
        let options = modelcall_io::SourceOptions { max_record_bytes: self.opts.max_record_bytes.unwrap_or(modelcall_io::DEFAULT_MAX_RECORD_BYTES) };
        let source = match modelcall_io::open_slice(file, slice, options, Some(self.bytes.clone())) {
            Ok(s) => s,
            Err(e) => {
                let key = internal_key("source-error", &name);
                return self.tx.blocking_send(ReadItem::SourceFailed { key, file: name, message: e.to_string() }).is_ok();
            }
        };
        let samples = self.opts.samples_per_record.max(1);
        for item in source {
            if stop.is_stopped() {
                return false;
            }
            let msg = match item {
                Err(e) => {
                    let key = internal_key("source-error", &name);
                    return self.tx.blocking_send(ReadItem::SourceFailed { key, file: name.clone(), message: e.to_string() }).is_ok();
                }
                Ok(SourceItem::Bad { line, cause, raw_excerpt }) => ReadItem::Bad {
                    key: internal_key("bad-line", &format!("{index}:{line}")),
                    bad: BadLine { file: name.clone(), line, cause: cause.as_str().to_string(), message: cause.to_string(), raw_excerpt },
                },
                Ok(SourceItem::Record { line, record }) => {
                    let assigned = keys.assign(&record);
                    let base = assigned.key;
                    if assigned.duplicate {
                        let (note, skip) = match self.opts.on_duplicate_id {
                            DuplicateIds::Keep => (ReadItem::DuplicateId { skipped: false }, None),
                            DuplicateIds::Skip => (ReadItem::DuplicateId { skipped: true }, Some(None)),
                            DuplicateIds::Error => {
                                let bad = BadLine {
                                    file: name.clone(),
                                    line,
                                    cause: "duplicate_id".into(),
                                    message: format!("the id of this record was already used by an earlier record (it would be keyed `{base}`); options.on_duplicate_id is `error`"),
                                    raw_excerpt: serde_json::Value::Object(record.clone()).to_string().chars().take(200).collect(),
                                };
                                (ReadItem::DuplicateId { skipped: false }, Some(Some(ReadItem::Bad { key: internal_key("duplicate-id", &base), bad })))
                            }
                        };
                        if self.tx.blocking_send(note).is_err() {
                            return false;
                        }
                        if let Some(instead) = skip {
                            if let Some(item) = instead {
                                if self.tx.blocking_send(item).is_err() {
                                    return false;
                                }
                            }
                            continue;
                        }
                    }
                    if samples > 1 {
                        // n answers per record: one work item per sample, each its own key.
                        for i in 0..samples {
                            let key = format!("{base}#{i}");
                            let msg = if let Some(finished) = self.done.item_for(&key, self.opts.retry_failed) {
                                finished
                            } else {
                                let mut r = record.clone();
                                if let Some(uid) = r.get("uid").cloned() {
                                    r.insert("source_uid".into(), uid);
                                }
                                r.insert("uid".into(), Value::String(key.clone()));
                                r.insert("sample_index".into(), Value::from(i));
                                let seq = modelcall_io::ordered::position(index as u64, line, i as u64);
                                ReadItem::Work { key, file: index, line, seq, input: JobInput::Record(r) }
                            };
                            if self.tx.blocking_send(msg).is_err() {
                                return false;
                            }
                        }
                        continue;
                    } else if let Some(finished) = self.done.item_for(&base, self.opts.retry_failed) {
                        finished
                    } else if self.is_adopted(&record) {
                        ReadItem::Adopted
                    } else if let Some(limited) = self.limited() {
                        limited
                    } else {
                        let seq = modelcall_io::ordered::position(index as u64, line, 0);
                        ReadItem::Work { key: base, file: index, line, seq, input: JobInput::Record(record) }
                    }
                }
            };
            if self.tx.blocking_send(msg).is_err() {
                return false;
            }
        }
        true
    }
}
