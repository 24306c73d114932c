//! What a key an earlier run journaled gets now ([`Finished::decide`]): kept as done, sent again
//! (its input, settings or parser changed), or parsed again from its stored replies; with the
//! hashes that say what a result was made from.

use modelcall_io::keyset::key_hash;
use modelcall_io::{KeySet, MadeFrom, SourceItem};
use serde_json::Value;

use super::read_item::{OtherSettings, ReadItem, ReadOptions};

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
    pub(super) fn stored_row(&self, key: &str) -> Option<(serde_json::Map<String, Value>, Vec<String>)> {
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
