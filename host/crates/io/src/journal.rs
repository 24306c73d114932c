//! The append-only journal: the durable record of every result, and the basis of resume.
//!
//! One line per result: `{"key": …, "status": "ok"|"error", "row": {…}}`. A single writer
//! thread writes each line to the file as soon as it is queued (so a kill -9 of the process
//! loses nothing that had arrived) and fsyncs every `flush_interval` (or sooner when many lines
//! are unsynced), so the cost of durability does not grow with the request rate. A machine
//! crash can lose at most the last interval's results (they are simply processed again) and
//! can leave a torn last line, which [`Journal::open`] drops by truncating the file to its last complete
//! line. Keys whose latest entry is `ok` are done; `error` entries are retried by the next run.

use crate::keyset::KeySet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    Ok,
    Error,
    /// The key's earlier entries no longer match its input or settings (a record edited in
    /// place, a preprocessor changed): they are void, and the key is not done until a later
    /// entry says so. Written before such a key is sent again, so a crash in between leaves
    /// it to be sent again rather than its stale result kept.
    Retired,
}

/// What a result was made from: a hash of its input (the record's content, or a raw file's
/// bytes) and of the settings that shape the answer (plugins with their config, the model and
/// the request settings). Compared on resume, so a result never outlives its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeFrom {
    #[serde(with = "hex64")]
    pub input: u64,
    #[serde(with = "hex64")]
    pub settings: u64,
    /// The score parser (plugin and config) that read the reply, where one did: a change
    /// re-parses the stored reply instead of buying a new one.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex64_opt")]
    pub parser: Option<u64>,
}

/// u64 hashes as 16 hex digits: JSON readers that hold numbers as doubles (jq, JavaScript)
/// would round them.
mod hex64 {
    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

mod hex64_opt {
    pub fn serialize<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::hex64::serialize(v, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
        text.map(|t| u64::from_str_radix(&t, 16).map_err(serde::de::Error::custom)).transpose()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub key: String,
    pub status: EntryStatus,
    /// Absent in journals written before 0.3 (their results are taken as matching). Before
    /// `row`: the sinks cut the row out of a line as its last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made: Option<MadeFrom>,
    pub row: Map<String, Value>,
}

impl JournalEntry {
    pub fn new(key: impl Into<String>, status: EntryStatus, row: Map<String, Value>) -> Self {
        JournalEntry { key: key.into(), status, row, made: None }
    }

    /// The entry that voids `key`'s earlier results (see [`EntryStatus::Retired`]).
    pub fn retired(key: impl Into<String>, why: &str) -> Self {
        let mut row = Map::new();
        row.insert("retired".into(), Value::String(why.into()));
        JournalEntry::new(key, EntryStatus::Retired, row)
    }

    pub fn made_from(mut self, made: Option<MadeFrom>) -> Self {
        self.made = made;
        self
    }
}

/// What an existing journal says, read at open.
#[derive(Debug, Default)]
pub struct JournalState {
    /// Keys whose latest entry is `ok`: never processed again.
    pub done_ok: KeySet,
    /// Keys whose latest entry is `error`: processed again by this run.
    pub failed: KeySet,
    /// Of those, the ones whose failure is permanent (`retryable: false` in the row): sent
    /// again only on request (`--retry-failed`).
    pub failed_permanently: KeySet,
    /// What each done key's result was made from, where its entry says (see [`MadeFrom`]).
    pub made: std::collections::HashMap<u128, MadeFrom>,
    /// What each failed key's latest failure was made from, where its entry says.
    pub failed_made: std::collections::HashMap<u128, MadeFrom>,
    /// Unterminated or unreadable last lines removed at open (left by a crash).
    pub torn_lines_dropped: u64,
    /// Complete lines that could not be parsed (should never happen; counted, skipped).
    pub unreadable_lines: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("journal writer stopped: {0}")]
    WriterGone(String),
}

enum Command {
    Line(Vec<u8>),
    Close,
}

/// Handle to the journal's writer thread.
pub struct Journal {
    sender: Sender<Command>,
    writer: Option<JoinHandle<Result<(), JournalError>>>,
    path: PathBuf,
}

/// Lines per batch before a write is forced even if the interval has not elapsed.
const MAX_BATCH_LINES: usize = 4096;

impl Journal {
    /// Opens (creating if needed) the journal at `path`, repairs a torn tail and returns the
    /// state of the keys it holds.
    pub fn open(path: &Path, flush_interval: Duration) -> Result<(Journal, JournalState), JournalError> {
        let io = |source| JournalError::Io { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let state = repair_and_read(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        let (sender, receiver) = bounded::<Command>(MAX_BATCH_LINES * 4);
        let writer_path = path.to_path_buf();
        let writer =
            std::thread::Builder::new().name("modelcall-journal".into()).spawn(move || write_loop(file, receiver, flush_interval, writer_path)).map_err(io)?;
        Ok((Journal { sender, writer: Some(writer), path: path.to_path_buf() }, state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one entry. Cheap; blocks only if the writer is far behind.
    pub fn append(&self, entry: JournalEntry) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(&entry).expect("journal entries serialize");
        line.push(b'\n');
        self.sender.send(Command::Line(line)).map_err(|_| self.writer_gone())
    }

    fn writer_gone(&self) -> JournalError {
        JournalError::WriterGone(format!("{} (see the previous error)", self.path.display()))
    }

    /// Writes and fsyncs everything queued, then stops the writer.
    pub fn close(mut self) -> Result<(), JournalError> {
        let _ = self.sender.send(Command::Close);
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(JournalError::WriterGone("the writer thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(h) = self.writer.take() {
            let _ = self.sender.send(Command::Close);
            let _ = h.join();
        }
    }
}

/// Lines reach the file (a write to the OS, which a kill -9 of this process does not lose) as
/// soon as they are queued: a finished answer is never paid for twice because it sat in a
/// buffer. Only the fsync (what a power loss would need) waits for `interval` or a large batch,
/// so durability against the machine going down costs one sync per interval, whatever the rate.
fn write_loop(mut file: File, receiver: Receiver<Command>, interval: Duration, path: PathBuf) -> Result<(), JournalError> {
    let io = |source| JournalError::Io { path: path.clone(), source };
    let mut batch: Vec<u8> = Vec::with_capacity(1 << 16);
    // Lines written since the last sync.
    let mut unsynced = 0usize;
    let mut last_sync = Instant::now();
    loop {
        // With nothing unsynced there is no deadline: wait for the next line.
        let command = if unsynced == 0 {
            receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            receiver.recv_timeout(interval.saturating_sub(last_sync.elapsed()))
        };
        let mut closing = match command {
            Ok(Command::Line(line)) => {
                batch.extend_from_slice(&line);
                false
            }
            Ok(Command::Close) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        // Take what is already queued without waiting, so one write carries it all.
        while !closing && batch.len() < MAX_BATCH_BYTES {
            match receiver.try_recv() {
                Ok(Command::Line(line)) => batch.extend_from_slice(&line),
                Ok(Command::Close) => closing = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            unsynced += bytecount_lines(&batch);
            file.write_all(&batch).map_err(io)?;
            batch.clear();
        }
        if unsynced > 0 && (closing || unsynced >= MAX_BATCH_LINES || last_sync.elapsed() >= interval) {
            file.sync_data().map_err(io)?;
            unsynced = 0;
            last_sync = Instant::now();
        }
        if closing {
            return Ok(());
        }
    }
}

/// Bytes taken from the queue into one write.
const MAX_BATCH_BYTES: usize = 1 << 20;

fn bytecount_lines(batch: &[u8]) -> usize {
    batch.iter().filter(|b| **b == b'\n').count()
}

/// What a journal says, read only (a torn tail is skipped, not repaired): for checks before a
/// run (settings changed, the dry run's counts) that must not touch a journal a live run owns.
pub fn read_state(path: &Path) -> Result<JournalState, JournalError> {
    Ok(scan(path)?.0)
}

/// Reads the journal's entries' keys and statuses, truncating a torn tail.
fn repair_and_read(path: &Path) -> Result<JournalState, JournalError> {
    let io = |source| JournalError::Io { path: path.to_path_buf(), source };
    let (mut state, good_end, torn) = scan(path)?;
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
        Err(e) => return Err(io(e)),
    };
    if len > good_end {
        // The tail after the last good line is torn (unterminated and/or unparseable).
        state.torn_lines_dropped = torn.max(1);
        let f = OpenOptions::new().write(true).open(path).map_err(io)?;
        f.set_len(good_end).map_err(io)?;
        let mut f = f;
        f.seek(SeekFrom::End(0)).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    Ok(state)
}

/// The state of the journal's complete lines, the offset where they end, and how many torn
/// lines follow.
fn scan(path: &Path) -> Result<(JournalState, u64, u64), JournalError> {
    let io = |source| JournalError::Io { path: path.to_path_buf(), source };
    let mut state = JournalState::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((state, 0, 0)),
        Err(e) => return Err(io(e)),
    };
    #[derive(Deserialize)]
    struct KeyStatus {
        key: String,
        status: EntryStatus,
        #[serde(default)]
        row: RowFlags,
        #[serde(default)]
        made: Option<MadeFrom>,
    }
    /// The one row field the journal itself reads: `retryable: false` marks a failure that a
    /// plain rerun must not send again (a rejected request, an invalid record).
    #[derive(Deserialize)]
    struct RowFlags {
        #[serde(default = "yes")]
        retryable: bool,
    }
    impl Default for RowFlags {
        fn default() -> Self {
            RowFlags { retryable: true }
        }
    }
    fn yes() -> bool {
        true
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let mut good_end: u64 = 0;
    let mut offset: u64 = 0;
    // Unparseable complete lines since the last good one: kept (and counted as unreadable) if
    // a good line follows, else part of the torn tail.
    let mut pending_bad: u64 = 0;
    let mut unterminated = false;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        if buf.last() != Some(&b'\n') {
            // Unterminated: a torn write. Everything from good_end on goes.
            unterminated = true;
            break;
        }
        match serde_json::from_slice::<KeyStatus>(&buf) {
            Ok(entry) => {
                // Unparseable lines followed by good ones: not a tail, keep and count them.
                state.unreadable_lines += std::mem::take(&mut pending_bad);
                match entry.status {
                    EntryStatus::Ok => {
                        state.failed.remove(&entry.key);
                        state.failed_permanently.remove(&entry.key);
                        state.done_ok.insert(&entry.key);
                        state.failed_made.remove(&crate::keyset::key_hash(&entry.key));
                        match entry.made {
                            Some(made) => state.made.insert(crate::keyset::key_hash(&entry.key), made),
                            None => state.made.remove(&crate::keyset::key_hash(&entry.key)),
                        };
                    }
                    EntryStatus::Retired => {
                        state.failed.remove(&entry.key);
                        state.failed_permanently.remove(&entry.key);
                        state.done_ok.remove(&entry.key);
                        state.made.remove(&crate::keyset::key_hash(&entry.key));
                        state.failed_made.remove(&crate::keyset::key_hash(&entry.key));
                    }
                    EntryStatus::Error => {
                        if !state.done_ok.contains(&entry.key) {
                            // A failed record's input, so a fixed record is told from the same.
                            if let Some(made) = entry.made {
                                state.failed_made.insert(crate::keyset::key_hash(&entry.key), made);
                            }
                            state.failed.insert(&entry.key);
                            if entry.row.retryable {
                                state.failed_permanently.remove(&entry.key);
                            } else {
                                state.failed_permanently.insert(&entry.key);
                            }
                        }
                    }
                }
                good_end = offset;
            }
            Err(_) => pending_bad += 1,
        }
    }
    let _ = offset;
    Ok((state, good_end, pending_bad + u64::from(unterminated)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(key: &str, status: EntryStatus) -> JournalEntry {
        JournalEntry::new(key, status, json!({"k": key}).as_object().unwrap().clone())
    }

    #[test]
    fn permanent_failures_are_told_apart_until_a_later_success_or_retryable_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let (j, _) = Journal::open(&p, Duration::from_millis(50)).unwrap();
        let failed =
            |key: &str, retryable: bool| JournalEntry::new(key, EntryStatus::Error, json!({"cause": "x", "retryable": retryable}).as_object().unwrap().clone());
        j.append(failed("p", false)).unwrap();
        j.append(failed("t", true)).unwrap();
        j.append(failed("later-ok", false)).unwrap();
        j.append(entry("later-ok", EntryStatus::Ok)).unwrap();
        j.append(failed("flip", false)).unwrap();
        j.append(failed("flip", true)).unwrap();
        j.close().unwrap();
        let (_j, state) = Journal::open(&p, Duration::from_millis(50)).unwrap();
        assert_eq!(state.failed_permanently, ["p"].into_iter().collect());
        assert_eq!(state.failed, ["p", "t", "flip"].into_iter().collect());
    }

    #[test]
    fn entries_survive_close_and_reopen_with_latest_status() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let (j, state) = Journal::open(&p, Duration::from_millis(50)).unwrap();
        assert!(state.done_ok.is_empty());
        j.append(entry("a", EntryStatus::Error)).unwrap();
        j.append(entry("a", EntryStatus::Ok)).unwrap();
        j.append(entry("b", EntryStatus::Error)).unwrap();
        j.append(entry("c", EntryStatus::Ok)).unwrap();
        j.close().unwrap();
        let (_j, state) = Journal::open(&p, Duration::from_millis(50)).unwrap();
        assert_eq!(state.done_ok, ["a", "c"].into_iter().collect());
        assert_eq!(state.failed, ["b"].into_iter().collect());
        assert_eq!(state.torn_lines_dropped, 0);
    }

    #[test]
    fn a_torn_last_line_is_dropped_at_every_cut_point() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let (j, _) = Journal::open(&p, Duration::from_millis(10)).unwrap();
        j.append(entry("a", EntryStatus::Ok)).unwrap();
        j.append(entry("b", EntryStatus::Ok)).unwrap();
        j.close().unwrap();
        let full = std::fs::read(&p).unwrap();
        let first_end = full.iter().position(|b| *b == b'\n').unwrap() + 1;
        for cut in first_end..full.len() {
            std::fs::write(&p, &full[..cut]).unwrap();
            let (j, state) = Journal::open(&p, Duration::from_millis(10)).unwrap();
            assert!(state.done_ok.contains("a"), "cut {cut}");
            assert!(!state.done_ok.contains("b"), "cut {cut}");
            assert_eq!(state.torn_lines_dropped, if cut == first_end { 0 } else { 1 }, "cut {cut}");
            // Appending after repair yields a well-formed file.
            j.append(entry("c", EntryStatus::Ok)).unwrap();
            j.close().unwrap();
            let (_j, state) = Journal::open(&p, Duration::from_millis(10)).unwrap();
            assert!(state.done_ok.contains("c") && state.done_ok.contains("a"), "cut {cut}");
            assert_eq!(state.torn_lines_dropped, 0);
        }
    }

    /// The child half of the kill -9 test: appends forever until killed.
    #[test]
    #[ignore]
    fn child_appends_until_killed() {
        let Ok(path) = std::env::var("MODELCALL_JOURNAL_CHILD") else { return };
        let (j, state) = Journal::open(Path::new(&path), Duration::from_millis(5)).unwrap();
        let start = state.done_ok.len();
        for i in start.. {
            j.append(entry(&format!("k{i:08}"), EntryStatus::Ok)).unwrap();
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn kill_dash_nine_leaves_only_complete_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let exe = std::env::current_exe().unwrap();
        let mut previous = 0usize;
        for round in 0..3 {
            let mut child = std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "journal::tests::child_appends_until_killed", "--nocapture"])
                .env("MODELCALL_JOURNAL_CHILD", &p)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300 + 100 * round));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let (j, state) = Journal::open(&p, Duration::from_millis(5)).unwrap();
            drop(j);
            assert!(state.done_ok.len() >= previous, "entries never disappear");
            assert_eq!(state.unreadable_lines, 0);
            // Keys are dense: k0..kN with no gaps and no duplicates.
            let text = std::fs::read_to_string(&p).unwrap();
            let keys: Vec<String> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].as_str().unwrap().to_string()).collect();
            let unique: std::collections::HashSet<&String> = keys.iter().collect();
            assert_eq!(unique.len(), keys.len(), "no duplicate entries");
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(k, &format!("k{i:08}"));
            }
            previous = state.done_ok.len();
        }
        assert!(previous > 0, "the child wrote something");
    }
}
