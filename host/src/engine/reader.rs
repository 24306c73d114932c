//! Reading a unit: every input line becomes exactly one [`ReadItem`] (work, a bad line, or a
//! counted reason not to send it), so the collector can account for every line.
//!
//! Runs on a blocking thread and sends through a bounded channel: read-ahead is bounded, so
//! memory does not depend on the input size.

use std::path::PathBuf;

use modelcall_config::task::DuplicateIds;
use modelcall_io::key::internal_key;
use modelcall_io::keyset::key_hash;
use modelcall_io::{BadLine, ByteCounter, KeyAssigner, KeySet, MadeFrom, Slice, SourceItem};
use serde_json::Value;
use tokio::sync::mpsc;

use super::job::JobInput;
use super::stop::StopSignal;
use super::unit::UnitInputs;

pub enum ReadItem {
    /// A record to send. `made` is what its result will be made from (journaled with it);
    /// `retire` says why an earlier result of the key no longer counts (its input or settings
    /// changed), so the collector voids it before journaling the new one.
    Work {
        key: String,
        file: usize,
        line: u64,
        seq: u64,
        input: JobInput,
        made: MadeFrom,
        retire: Option<&'static str>,
    },
    Bad {
        key: String,
        bad: BadLine,
    },
    AlreadyDone,
    /// Its result was written by another tool and adopted (see [`super::adopt`]).
    Adopted,
    /// Failed permanently in an earlier run (a rejected request, an invalid record); its error
    /// row stays, and it is sent again only with `--retry-failed`.
    FailedBefore,
    DebugLimited,
    /// `retry_mode`: not listed in the error output, so not sent; `modelcall reparse`: not
    /// sent (it sends nothing).
    NotRetried,
    /// A record whose id was seen before in the unit; `skipped` when it is left out
    /// (`on_duplicate_id: skip`), else it is processed under its ordinal key as well.
    DuplicateId {
        skipped: bool,
    },
    /// The file could not be read further (a truncated archive, an I/O error).
    SourceFailed {
        key: String,
        file: String,
        message: String,
    },
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
    /// A hash of what shapes this stage's results besides the input (plugins and their config,
    /// the model and its request settings); journaled with each result.
    pub settings: Option<super::settings::Settings>,
    /// What a result made under other settings gets.
    pub other_settings: OtherSettings,
    /// `retry_mode`: send exactly the records the error output lists, nothing else.
    pub only_failed: bool,
    /// A hash of the score parser (plugin and config), journaled with each result: a result
    /// read by another parser has its stored replies parsed again.
    pub parser: Option<u64>,
    /// `modelcall reparse`: re-parse every stored reply (whatever parser read it), send nothing.
    pub offline: bool,
    /// Warn once per unit when the records of a file have none of `key_fields` (a user-named
    /// `id_field` no record has: the records are keyed by content hash instead).
    pub warn_missing_id: bool,
}

/// The retire reason of a result whose stored replies are parsed again (not a change of its
/// input: not counted as `changed`).
pub const REPARSED: &str = "its score parser changed";

impl ReadOptions {
    /// The hash journaled with each result (0: a stage with no settings of its own).
    pub fn settings_hash(&self) -> u64 {
        self.settings.as_ref().map_or(0, |s| s.hash)
    }
}

/// What a result made under other settings than this run's gets on resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtherSettings {
    /// Kept as done: `--keep-existing`, or a check before the run found none.
    #[default]
    Keep,
    /// Sent again: `--redo-changed`, and always for a stage that costs nothing (preprocessing).
    Redo,
}

/// What earlier runs finished, from the unit's journal.
#[derive(Default)]
pub struct Finished {
    pub ok: KeySet,
    pub failed_permanently: KeySet,
    /// Keys whose latest entry is an error (what the error output lists).
    pub failed: KeySet,
    /// What each journaled result was made from (journals before 0.3 have none: kept as is).
    pub made: std::collections::HashMap<u128, MadeFrom>,
    /// What each failed key's latest failure was made from.
    pub failed_made: std::collections::HashMap<u128, MadeFrom>,
    /// Where in the journal the rows of results read by another parser are (see
    /// [`stored_rows`]), and the journal itself.
    pub stored: std::collections::HashMap<u128, u64>,
    /// The journal, opened once for those reads (the reader thread is its only user).
    pub journal: Option<std::sync::Mutex<std::io::BufReader<std::fs::File>>>,
    /// Settings whose results the user chose to keep (`--keep-existing`).
    pub accepted_settings: Vec<u64>,
    /// `retry_mode`: the `uid`s the error output lists (it may have been written by another
    /// tool, with no journal behind it).
    pub listed_in_errors: KeySet,
}

impl Finished {
    /// What a unit's journal (`state`, read from `paths.journal`) says, for a read with
    /// `options`: the run and its survey build it alike.
    pub fn for_unit(state: modelcall_io::JournalState, paths: &modelcall_io::FilePaths, options: &ReadOptions) -> Finished {
        let mut finished = Finished {
            ok: state.done_ok,
            failed_permanently: state.failed_permanently,
            failed: state.failed,
            made: state.made,
            failed_made: state.failed_made,
            stored: Default::default(),
            journal: None,
            accepted_settings: super::settings::accepted(&paths.journal, options.settings_hash()),
            listed_in_errors: if options.only_failed { listed_in_errors(&paths.errors) } else { Default::default() },
        };
        finished.find_stored_rows(&paths.journal, options.parser, options.offline);
        finished
    }
}

/// What the reader does with a key, given what earlier runs journaled.
pub enum Decision {
    /// Not sent; counted as this item.
    Skip(ReadItem),
    /// Sent; with the reason its earlier result is void, if it had one.
    Send(Option<&'static str>),
    /// Its stored replies are parsed again (the score parser changed); see
    /// [`JobInput::Reparse`] for the flags.
    Reparse { then_send: bool, recovering: bool },
}

impl Finished {
    /// Why `key`'s journaled result no longer matches `made`, if it does not.
    pub fn changed(&self, key: &str, made: &MadeFrom, opts: &ReadOptions) -> Option<&'static str> {
        let before = self.made.get(&key_hash(key))?;
        if before.input != made.input {
            Some("its input changed")
        } else if before.settings != made.settings && opts.other_settings == OtherSettings::Redo && !self.accepted_settings.contains(&before.settings) {
            Some("the settings it was made with changed")
        } else {
            None
        }
    }

    /// `reference_key`: the record's key as another tool wrote it (see [`super::adopt`]).
    pub fn decide(&self, key: &str, made: &MadeFrom, opts: &ReadOptions, reference_key: Option<&str>) -> Decision {
        let decision = self.decide_sending(key, made, opts, reference_key);
        match decision {
            // `modelcall reparse` sends nothing.
            Decision::Send(_) if opts.offline => Decision::Skip(ReadItem::NotRetried),
            Decision::Reparse { recovering, .. } if opts.offline => Decision::Reparse { then_send: false, recovering },
            other => other,
        }
    }

    fn decide_sending(&self, key: &str, made: &MadeFrom, opts: &ReadOptions, reference_key: Option<&str>) -> Decision {
        let h = key_hash(key);
        let read_by_another_parser =
            |before: &MadeFrom| (opts.offline || before.parser.is_some() && before.parser != made.parser) && self.stored.contains_key(&h);
        // A failure whose replies are stored and that another parser read: those replies first.
        let reparse_failure = || {
            let before = self.failed_made.get(&h)?;
            (self.failed.contains(key) && before.input == made.input && read_by_another_parser(before))
                .then(|| Decision::Reparse { then_send: opts.retry_failed || !self.failed_permanently.contains(key), recovering: true })
        };
        if opts.only_failed {
            let listed = self.failed.contains(key) || self.listed_in_errors.contains(key) || reference_key.is_some_and(|r| self.listed_in_errors.contains(r));
            return match (listed, reparse_failure()) {
                (true, Some(reparse)) => reparse,
                (true, None) => Decision::Send(None),
                (false, _) => Decision::Skip(ReadItem::NotRetried),
            };
        }
        if self.ok.contains(key) {
            return match self.changed(key, made, opts) {
                Some(why) => Decision::Send(Some(why)),
                None if self.made.get(&h).is_some_and(read_by_another_parser) => Decision::Reparse { then_send: false, recovering: false },
                None => Decision::Skip(ReadItem::AlreadyDone),
            };
        }
        if let Some(reparse) = reparse_failure() {
            return reparse;
        }
        if !opts.retry_failed && self.failed_permanently.contains(key) {
            // A record fixed since it failed is a new record: sent again.
            return match self.failed_made.get(&h) {
                Some(before) if before.input != made.input => Decision::Send(Some("its input changed")),
                _ => Decision::Skip(ReadItem::FailedBefore),
            };
        }
        Decision::Send(None)
    }

    /// The journaled row at `key`'s stored offset, with the replies it holds (oldest first).
    fn stored_row(&self, key: &str) -> Option<(serde_json::Map<String, Value>, Vec<String>)> {
        use std::io::{BufRead, Seek};
        let offset = *self.stored.get(&key_hash(key))?;
        let mut file = self.journal.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        file.seek(std::io::SeekFrom::Start(offset)).ok()?;
        let mut line = Vec::new();
        file.read_until(b'\n', &mut line).ok()?;
        let entry: modelcall_io::JournalEntry = serde_json::from_slice(&line).ok()?;
        let replies: Vec<String> = match entry.row.get("replies").and_then(Value::as_array) {
            Some(all) => all.iter().filter_map(|r| r.as_str().map(str::to_string)).collect(),
            None => entry.row.get("api_return").and_then(Value::as_str).map(|r| vec![r.to_string()]).unwrap_or_default(),
        };
        // A generation row holds its answer as `response`, re-derived rather than re-parsed.
        (!replies.is_empty() || entry.row.contains_key("response")).then_some((entry.row, replies))
    }
}

/// Where the latest rows of the keys `wanted` are in `journal` (byte offsets): the results a
/// changed parser reads again. One pass, done only when some result was read by another parser.
pub fn stored_rows(journal: &std::path::Path, wanted: &std::collections::HashSet<u128>) -> std::collections::HashMap<u128, u64> {
    use std::io::BufRead;
    let mut found = std::collections::HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    let Ok(file) = std::fs::File::open(journal) else { return found };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut offset, mut line) = (0u64, Vec::new());
    #[derive(serde::Deserialize)]
    struct KeyOnly {
        key: String,
    }
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => n as u64,
        };
        if let Ok(k) = serde_json::from_slice::<KeyOnly>(&line) {
            let h = key_hash(&k.key);
            if wanted.contains(&h) {
                found.insert(h, offset);
            }
        }
        offset += n;
    }
    found
}

impl Finished {
    /// Reads [`Finished::stored`] for the results (done or failed) another parser than
    /// `parser` read.
    /// `everything`: every result with replies (`modelcall reparse`).
    pub fn find_stored_rows(&mut self, journal: &std::path::Path, parser: Option<u64>, everything: bool) {
        let Some(parser) = parser else { return };
        let other = |m: &MadeFrom| everything || m.parser.is_some_and(|p| p != parser);
        let wanted: std::collections::HashSet<u128> = self.made.iter().chain(self.failed_made.iter()).filter(|(_, m)| other(m)).map(|(h, _)| *h).collect();
        self.stored = stored_rows(journal, &wanted);
        if !self.stored.is_empty() {
            self.journal = std::fs::File::open(journal).ok().map(|f| std::sync::Mutex::new(std::io::BufReader::new(f)));
        }
    }
}

/// The `uid`s (else `key`s) of the rows of an error output: what `retry_mode` sends again.
pub fn listed_in_errors(errors: &std::path::Path) -> KeySet {
    let mut listed = KeySet::default();
    let Ok(source) = modelcall_io::open_source(errors) else { return listed };
    for item in source.flatten() {
        if let SourceItem::Record { record, .. } = item {
            for field in ["uid", "key"] {
                match record.get(field) {
                    Some(Value::String(s)) => {
                        listed.insert(s);
                    }
                    Some(Value::Number(n)) => {
                        listed.insert(&n.to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    listed
}

/// The hash of a record's content, as its results are matched to it.
pub fn record_hash(record: &serde_json::Map<String, Value>) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    // serde_json writes into the hasher directly: no copy of the record.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), record);
    hasher.digest()
}

/// The hash of a file's bytes; 0 when it cannot be read (the job then reports why).
pub fn file_hash(path: &std::path::Path) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    match std::fs::File::open(path) {
        Ok(mut f) => match std::io::copy(&mut f, &mut HashWriter(&mut hasher)) {
            Ok(_) => hasher.digest(),
            Err(_) => 0,
        },
        Err(_) => 0,
    }
}

struct HashWriter<'a>(&'a mut xxhash_rust::xxh3::Xxh3);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    fn read_records(&mut self, index: usize, file: &PathBuf, slice: Slice, keys: &mut KeyAssigner, stop: &StopSignal) -> bool {
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
