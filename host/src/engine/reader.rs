//! Reading a unit: every input line becomes exactly one [`ReadItem`] (work, a bad line, or a
//! counted reason not to send it), so the collector can account for every line.
//!
//! Runs on a blocking thread and sends through a bounded channel: read-ahead is bounded, so
//! memory does not depend on the input size.

use modelcall_config::task::DuplicateIds;
use modelcall_io::key::internal_key;
use modelcall_io::{BadLine, ByteCounter, KeyAssigner, KeySet, MadeFrom, Slice, SourceItem};
use serde_json::Value;
use tokio::sync::mpsc;

use super::job::JobInput;
use super::stop::StopSignal;
use super::unit::UnitInputs;

use super::read_item::{ReadItem, ReadOptions, REPARSED};
use super::resume::{file_hash, record_hash, Decision, Finished};

/// Sends every line of the unit's inputs; `true` when it got to the end (not stopped).
pub fn read_unit(inputs: UnitInputs, opts: ReadOptions, done: &Finished, stop: &StopSignal, bytes: ByteCounter, tx: mpsc::Sender<ReadItem>) -> bool {
    read_unit_tracked(inputs, opts, done, stop, bytes, tx).complete
}

/// How a read ended, and the keys it saw.
pub struct ReadEnd {
    /// It got to the end (not stopped).
    pub complete: bool,
    /// Every input could be read to its end (no truncated archive, no I/O error).
    pub sources_ok: bool,
    /// Every key the inputs hold now (records, raw files, bad lines).
    pub seen: KeySet,
}

impl ReadEnd {
    /// Whether the journal's keys outside [`ReadEnd::seen`] are records no longer in the input.
    pub fn saw_everything(&self) -> bool {
        self.complete && self.sources_ok
    }
}

/// [`read_unit`], also telling which keys the inputs hold (see [`ReadEnd`]).
pub fn read_unit_tracked(inputs: UnitInputs, opts: ReadOptions, done: &Finished, stop: &StopSignal, bytes: ByteCounter, tx: mpsc::Sender<ReadItem>) -> ReadEnd {
    let mut reader = Reader { opts, done, dispatched: 0, tx, bytes, seen: KeySet::default(), sources_ok: true };
    let complete = reader.read_all(inputs, stop);
    ReadEnd { complete, sources_ok: reader.sources_ok, seen: reader.seen }
}

impl Reader<'_> {
    fn read_all(&mut self, inputs: UnitInputs, stop: &StopSignal) -> bool {
        let reader = self;
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
                    reader.seen.insert(&rel);
                    let made = MadeFrom { input: file_hash(&path), settings: reader.opts.settings_hash(), parser: reader.opts.parser };
                    let item = match reader.done.decide(&rel, &made, &reader.opts, None) {
                        Decision::Skip(item) => item,
                        // No score parser reads raw files.
                        Decision::Reparse { .. } => ReadItem::AlreadyDone,
                        Decision::Send(retire) => match reader.limited() {
                            Some(limited) => limited,
                            None => {
                                let seq = modelcall_io::ordered::position(index as u64, 0, 0);
                                ReadItem::Work { key: rel.clone(), file: index, line: 0, seq, input: JobInput::File { rel, path }, made, retire }
                            }
                        },
                    };
                    if reader.tx.blocking_send(item).is_err() {
                        return false;
                    }
                }
            }
        }
        !stop.is_stopped()
    }
}

struct Reader<'a> {
    opts: ReadOptions,
    done: &'a Finished,
    dispatched: u64,
    tx: mpsc::Sender<ReadItem>,
    bytes: ByteCounter,
    seen: KeySet,
    sources_ok: bool,
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
    fn read_records(&mut self, index: usize, file: &std::path::Path, slice: Slice, keys: &mut KeyAssigner, stop: &StopSignal) -> bool {
        let name = file.display().to_string();
        let options = modelcall_io::SourceOptions { max_record_bytes: self.opts.max_record_bytes.unwrap_or(modelcall_io::DEFAULT_MAX_RECORD_BYTES) };
        let source = match modelcall_io::open_slice(file, slice, options, Some(self.bytes.clone())) {
            Ok(s) => s,
            Err(e) => {
                let key = internal_key("source-error", &name);
                self.seen.insert(&key);
                self.sources_ok = false;
                return self.tx.blocking_send(ReadItem::SourceFailed { key, file: name, message: e.to_string() }).is_ok();
            }
        };
        let samples = self.opts.samples_per_record.max(1);
        keys.begin_file();
        for item in source {
            if stop.is_stopped() {
                return false;
            }
            let msg = match item {
                Err(e) => {
                    let key = internal_key("source-error", &name);
                    self.seen.insert(&key);
                    self.sources_ok = false;
                    return self.tx.blocking_send(ReadItem::SourceFailed { key, file: name.clone(), message: e.to_string() }).is_ok();
                }
                Ok(SourceItem::Bad { line, cause, raw_excerpt }) => ReadItem::Bad {
                    key: {
                        let key = internal_key("bad-line", &format!("{index}:{line}"));
                        self.seen.insert(&key);
                        key
                    },
                    bad: BadLine { file: name.clone(), line, cause: cause.as_str().to_string(), message: cause.to_string(), raw_excerpt },
                },
                Ok(SourceItem::Record { line, record }) => {
                    let assigned = keys.assign(&record);
                    self.warn_missing_id(keys, &name, false);
                    let base = assigned.key;
                    self.seen.insert(&base);
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
                                self.seen.insert(&internal_key("duplicate-id", &base));
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
                    let made = MadeFrom { input: record_hash(&record), settings: self.opts.settings_hash(), parser: self.opts.parser };
                    let reference_key = self.opts.adopt.as_ref().and_then(|rule| rule.key(&record));
                    if samples > 1 {
                        // n answers per record: one work item per sample, each its own key.
                        for i in 0..samples {
                            let key = format!("{base}#{i}");
                            self.seen.insert(&key);
                            let sample = |key: &str| {
                                let mut r = record.clone();
                                if let Some(uid) = r.get("uid").cloned() {
                                    r.insert("source_uid".into(), uid);
                                }
                                r.insert("uid".into(), Value::String(key.to_string()));
                                r.insert("sample_index".into(), Value::from(i));
                                r
                            };
                            let seq = modelcall_io::ordered::position(index as u64, line, i as u64);
                            let msg = match self.done.decide(&key, &made, &self.opts, reference_key.as_deref()) {
                                Decision::Skip(item) => item,
                                // The answer is stored: derived again, not bought again.
                                Decision::Reparse { then_send, recovering } => match self.done.stored_row(&key) {
                                    Some((row, replies)) => {
                                        let input = JobInput::Reparse { record: sample(&key), row, replies, then_send, recovering };
                                        ReadItem::Work { key, file: index, line, seq, input, made, retire: Some(REPARSED) }
                                    }
                                    None => ReadItem::AlreadyDone,
                                },
                                Decision::Send(retire) => {
                                    let r = sample(&key);
                                    ReadItem::Work { key, file: index, line, seq, input: JobInput::Record(r), made, retire }
                                }
                            };
                            if self.tx.blocking_send(msg).is_err() {
                                return false;
                            }
                        }
                        continue;
                    } else {
                        match self.done.decide(&base, &made, &self.opts, reference_key.as_deref()) {
                            Decision::Skip(ReadItem::NotRetried) if self.is_adopted(&record) => ReadItem::Adopted,
                            Decision::Skip(item) => item,
                            Decision::Send(None) if self.is_adopted(&record) => ReadItem::Adopted,
                            Decision::Reparse { then_send, recovering } => match self.done.stored_row(&base) {
                                Some((row, replies)) => {
                                    let seq = modelcall_io::ordered::position(index as u64, line, 0);
                                    let input = JobInput::Reparse { record, row, replies, then_send, recovering };
                                    ReadItem::Work { key: base, file: index, line, seq, input, made, retire: Some(REPARSED) }
                                }
                                // Nothing stored to read again: as if the parser had not changed.
                                None if !recovering => ReadItem::AlreadyDone,
                                None if then_send && !self.opts.offline => {
                                    let seq = modelcall_io::ordered::position(index as u64, line, 0);
                                    ReadItem::Work { key: base, file: index, line, seq, input: JobInput::Record(record), made, retire: None }
                                }
                                None => ReadItem::FailedBefore,
                            },
                            Decision::Send(retire) => match self.limited() {
                                Some(limited) => limited,
                                None => {
                                    let seq = modelcall_io::ordered::position(index as u64, line, 0);
                                    ReadItem::Work { key: base, file: index, line, seq, input: JobInput::Record(record), made, retire }
                                }
                            },
                        }
                    }
                }
            };
            if self.tx.blocking_send(msg).is_err() {
                return false;
            }
        }
        self.warn_missing_id(keys, &name, true);
        true
    }

    fn warn_missing_id(&self, keys: &mut KeyAssigner, file: &str, end_of_file: bool) {
        if !self.opts.warn_missing_id {
            return;
        }
        if let Some(fields) = keys.missing_id_fields(end_of_file) {
            let fields = fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
            let seen = if end_of_file { "no record" } else { "none of the first records" };
            tracing::warn!("{file}: {seen} has the id field {fields}; its records are keyed by a content hash instead (an edited record is then a new one)");
        }
    }
}
