//! Adopting results another tool wrote: a folder the Python modelcall filled holds
//! `<B>.jsonl` (generation, rows keyed by `uid`) or `<stem>.parquet` (scoring, rows keyed by
//! their id) but no journal. Before the unit's first run, their rows are imported into the
//! journal under `adopted:<reference key>`; a record whose reference key has a row there is
//! counted `adopted` and never sent, and the outputs written at the end hold the adopted rows
//! (once each) beside the new ones, so nothing the other tool paid for is lost or paid again.
//!
//! The import is idempotent and marked on disk (`<journal>.adoption`): `in-progress` while it
//! runs (a killed import is redone on the next run), then `done N`. A unit that already has a
//! journal is never imported from: its outputs are this tool's own.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use modelcall_io::key::internal_key;
use modelcall_io::{EntryStatus, FilePaths, Journal, JournalEntry, SourceItem};
use serde_json::{Map, Value};

/// How a record of the input and a row the other tool wrote are matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefKeyRule {
    /// Scoring: the record's id field (the reference scored rows by `id`); only rows with
    /// `api_status: success` (or without that field) are results.
    IdField(String),
    /// generate_response: the reference's `ensure_uid`: `uid`, else `id`, else the md5 of
    /// `messages[0].content` (hex).
    ConversationUid,
}

impl RefKeyRule {
    /// The reference's key of `record`; `None` when it has none this tool can compute.
    pub fn key(&self, record: &Map<String, Value>) -> Option<String> {
        let field = |name: &str| match record.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match self {
            RefKeyRule::IdField(id) => field(id),
            RefKeyRule::ConversationUid => field("uid").or_else(|| field("id")).or_else(|| {
                let first = record.get("messages")?.as_array()?.first()?.get("content")?.as_str()?;
                Some(hex(&Md5::digest(first.as_bytes())))
            }),
        }
    }

    fn is_result(&self, row: &Map<String, Value>) -> bool {
        match self {
            RefKeyRule::IdField(_) => row.get("api_status").is_none_or(|s| s == "success"),
            RefKeyRule::ConversationUid => true,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The journal key an adopted row is kept under.
pub fn adopted_key(reference_key: &str) -> String {
    internal_key("adopted", reference_key)
}

/// The marker beside a unit's journal.
pub fn marker_path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".adoption");
    journal.with_file_name(name)
}

/// Whether the unit's journal holds adopted rows (the reader then matches records to them).
pub fn has_adopted(journal: &Path) -> bool {
    std::fs::read_to_string(marker_path(journal)).is_ok_and(|m| m.starts_with("done") && m.trim() != "done 0")
}

/// The files of the unit another tool may have written: its output, and for scoring the
/// reference's Parquet (or JSONL) of the same stem.
fn candidates(paths: &FilePaths) -> Vec<PathBuf> {
    let mut files = vec![paths.output.clone()];
    for ext in ["parquet", "jsonl"] {
        let sibling = paths.output.with_extension(ext);
        if !files.contains(&sibling) {
            files.push(sibling);
        }
    }
    files.into_iter().filter(|f| f.is_file()).collect()
}

/// Imports the rows of the unit's existing outputs into its journal, before the run opens it.
/// Returns how many rows were adopted (0 when there was nothing to adopt or the unit already
/// had a journal of its own).
pub fn import(paths: &FilePaths, rule: &RefKeyRule) -> anyhow::Result<u64> {
    let marker = marker_path(&paths.journal);
    let resuming_import = std::fs::read_to_string(&marker).is_ok_and(|m| m.starts_with("in-progress"));
    if paths.journal.exists() && !resuming_import {
        return Ok(0);
    }
    let files = candidates(paths);
    if files.is_empty() {
        return Ok(0);
    }
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&marker, "in-progress\n")?;
    let (journal, _) = Journal::open(&paths.journal, std::time::Duration::from_millis(200))
        .map_err(|e| anyhow::anyhow!("opening journal {}: {e}", paths.journal.display()))?;
    let mut adopted = 0u64;
    for file in &files {
        let source = modelcall_io::open_source(file).map_err(|e| anyhow::anyhow!("reading {} to adopt its results: {e}", file.display()))?;
        let mut from_file = 0u64;
        for item in source {
            let item = item.map_err(|e| anyhow::anyhow!("reading {} to adopt its results: {e}", file.display()))?;
            let SourceItem::Record { record, .. } = item else { continue };
            if !rule.is_result(&record) {
                continue;
            }
            let Some(reference) = rule.key(&record) else { continue };
            journal
                .append(JournalEntry::new(adopted_key(&reference), EntryStatus::Ok, record))
                .map_err(|e| anyhow::anyhow!("journal {}: {e}", paths.journal.display()))?;
            from_file += 1;
        }
        if from_file > 0 {
            eprintln!(
                "adopted {from_file} result(s) from {} (written without a journal, e.g. by the Python modelcall): they are kept and not sent again (--no-adopt sends them again)",
                file.display()
            );
        }
        adopted += from_file;
    }
    journal.close().map_err(|e| anyhow::anyhow!("closing journal {}: {e}", paths.journal.display()))?;
    std::fs::write(&marker, format!("done {adopted}\n"))?;
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn conversation_uids_follow_the_reference_ensure_uid() {
        let rule = RefKeyRule::ConversationUid;
        assert_eq!(rule.key(&obj(json!({"uid": "u1", "id": "i1"}))).as_deref(), Some("u1"));
        assert_eq!(rule.key(&obj(json!({"id": 7}))).as_deref(), Some("7"));
        // hashlib.md5("What is 2+2?".encode()).hexdigest()
        let r = obj(json!({"messages": [{"role": "user", "content": "What is 2+2?"}]}));
        assert_eq!(rule.key(&r).as_deref(), Some("936dbc8755f623c951d96ea2b03e13bc"));
        assert_eq!(rule.key(&obj(json!({"x": 1}))), None);
    }

    #[test]
    fn scoring_rows_are_results_only_when_they_succeeded() {
        let rule = RefKeyRule::IdField("id".into());
        assert!(rule.is_result(&obj(json!({"id": "a", "api_status": "success"}))));
        assert!(!rule.is_result(&obj(json!({"id": "a", "api_status": "error"}))));
        assert_eq!(rule.key(&obj(json!({"id": "a"}))).as_deref(), Some("a"));
    }
}
