//! Finalizing a preprocessing journal into one JSONL file per group (e.g. per language, as
//! the reference wrote one Parquet per language). Each journal row is
//! `{"group": G, "records": [...]}` for one input; the winning row of every input contributes
//! its records to `<dir>/<G>.jsonl`, so a record is written exactly once whatever crashes and
//! resumes happened. Files are written under temporary names and renamed when complete.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::atomic::AtomicFile;
use crate::journal::EntryStatus;
use crate::ordered::SEQ_FIELD;
use crate::sink::error::SinkError;
use crate::sink::lines::for_each_line;
use crate::winners::Winners;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct GroupedStats {
    /// Records written, per group file.
    pub records: BTreeMap<String, u64>,
    /// Inputs that failed (their error rows are in the errors file).
    pub errors: u64,
    pub files: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct Row {
    row: Map<String, Value>,
}

/// A group name that is safe as a file name.
pub fn group_file_stem(group: &str) -> String {
    let s: String = group.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '+' | '#' | '.') { c } else { '_' }).collect();
    let s = s.trim_matches('.').to_string();
    if s.is_empty() {
        "ungrouped".into()
    } else {
        s
    }
}

/// Where the records of a records journal go.
#[derive(Debug, Clone)]
pub enum RecordsTarget {
    /// One `<G>.jsonl` per group in this folder (preprocessing).
    Groups(PathBuf),
    /// Every record into one file (a converted split, a merged group); with `ordered`, in input
    /// order (rows carry [`crate::ordered::SEQ_FIELD`]) instead of completion order.
    File { path: PathBuf, ordered: bool },
}

pub fn finalize_grouped(journal: &Path, dir: &Path, errors: &Path) -> Result<GroupedStats, SinkError> {
    finalize_records(journal, &RecordsTarget::Groups(dir.to_path_buf()), errors)
}

/// Finalizes a records journal (rows `{"group": G, "records": [...]}`) into `target`, and the
/// failed inputs into `errors`.
pub fn finalize_records(journal: &Path, target: &RecordsTarget, errors: &Path) -> Result<GroupedStats, SinkError> {
    let mut dup = 0;
    let winners = Winners::build(journal, &mut dup)?;
    let mut stats = GroupedStats::default();
    let mut writers: BTreeMap<String, AtomicFile> = BTreeMap::new();
    let mut err_writer = AtomicFile::create(errors)?;
    let mut failure: Option<SinkError> = None;
    let single = match target {
        RecordsTarget::File { path, ordered: true } => Some(AtomicFile::scratch(path, "unordered")?),
        RecordsTarget::File { path, ordered: false } => Some(AtomicFile::create(path)?),
        RecordsTarget::Groups(_) => None,
    };
    let mut single = single;
    let mut cursor = winners.cursor()?;
    for_each_line(journal, |index, line| {
        if failure.is_some() {
            return;
        }
        let Some(status) = cursor.status_at(index).filter(|s| *s != EntryStatus::Retired) else { return };
        let Ok(Row { row }) = serde_json::from_slice::<Row>(line) else { return };
        if status == EntryStatus::Error {
            stats.errors += 1;
            let mut bytes = serde_json::to_vec(&row).expect("rows serialize");
            bytes.push(b'\n');
            if let Err(e) = err_writer.write_all(&bytes) {
                failure = Some(SinkError::Io { path: errors.to_path_buf(), source: e });
            }
            return;
        }
        let group = group_file_stem(row.get("group").and_then(Value::as_str).unwrap_or("ungrouped"));
        let seq = row.get(SEQ_FIELD).and_then(Value::as_u64);
        let records = row.get("records").and_then(Value::as_array).cloned().unwrap_or_default();
        let w = match (&mut single, target) {
            (Some(w), _) => w,
            (None, RecordsTarget::Groups(dir)) => {
                if !writers.contains_key(&group) {
                    match AtomicFile::create(&dir.join(format!("{group}.jsonl"))) {
                        Ok(f) => {
                            writers.insert(group.clone(), f);
                        }
                        Err(e) => {
                            failure = Some(e.into());
                            return;
                        }
                    }
                }
                writers.get_mut(&group).expect("inserted above")
            }
            (None, RecordsTarget::File { .. }) => unreachable!("a single target has its writer"),
        };
        for (i, mut r) in records.into_iter().enumerate() {
            if let (Some(seq), Value::Object(m)) = (seq, &mut r) {
                m.insert(SEQ_FIELD.into(), Value::from(seq + (i as u64).min(1023)));
            }
            let mut bytes = serde_json::to_vec(&r).expect("records serialize");
            bytes.push(b'\n');
            if let Err(e) = w.write_all(&bytes) {
                failure = Some(SinkError::Io { path: w.dest().to_path_buf(), source: e });
                return;
            }
            *stats.records.entry(group.clone()).or_default() += 1;
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    for (_, w) in writers {
        stats.files.push(w.dest().to_path_buf());
        w.commit()?;
    }
    match (single, target) {
        (Some(mut scratch), RecordsTarget::File { path, ordered: true }) => {
            scratch.flush().map_err(|e| SinkError::Io { path: path.clone(), source: e })?;
            let mut out = AtomicFile::create(path)?;
            crate::ordered::reorder_into(scratch.temp_path(), &mut out)?;
            out.commit()?;
            stats.files.push(path.clone());
        }
        (Some(w), RecordsTarget::File { path, .. }) => {
            w.commit()?;
            stats.files.push(path.clone());
        }
        _ => {}
    }
    err_writer.commit()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, JournalEntry};
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn one_file_per_group_with_each_inputs_latest_records_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join(".modelcall/pre.journal.jsonl");
        let (journal, _) = Journal::open(&j, Duration::from_millis(10)).unwrap();
        let add = |k: &str, s: EntryStatus, row: Value| journal.append(JournalEntry::new(k, s, row.as_object().unwrap().clone())).unwrap();
        add("Rust/a.xml", EntryStatus::Ok, json!({"group": "Rust", "records": [{"id": "a", "v": 1}]}));
        add("Rust/a.xml", EntryStatus::Ok, json!({"group": "Rust", "records": [{"id": "a", "v": 2}]})); // a re-run after a crash
        add("Go/b.xml", EntryStatus::Ok, json!({"group": "Go", "records": [{"id": "b1"}, {"id": "b2"}]}));
        add("Go/bad.xml", EntryStatus::Error, json!({"file": "Go/bad.xml", "cause": "plugin_invalid_input"}));
        add("C++/c.xml", EntryStatus::Ok, json!({"group": "C++", "records": []}));
        journal.close().unwrap();
        let out = dir.path().join("out");
        let stats = finalize_grouped(&j, &out, &out.join("preprocess.errors.jsonl")).unwrap();
        let rust = std::fs::read_to_string(out.join("Rust.jsonl")).unwrap();
        assert_eq!(rust.lines().count(), 1);
        assert!(rust.contains("\"v\":2"));
        assert_eq!(std::fs::read_to_string(out.join("Go.jsonl")).unwrap().lines().count(), 2);
        assert_eq!(std::fs::read_to_string(out.join("preprocess.errors.jsonl")).unwrap().lines().count(), 1);
        assert_eq!(stats.errors, 1);
        assert_eq!(stats.records["Go"], 2);
        assert_eq!(group_file_stem("C++"), "C++");
        assert_eq!(group_file_stem("a/b"), "a_b");
    }
}
