//! Finalizing a journal into the user-facing files: the output (Parquet or JSONL) with the
//! latest `ok` row of every key, and the error file (JSONL) with the latest `error` row of every
//! key that never succeeded. Both are written under a temporary name, fsync'd and renamed, so a
//! reader never sees a partial file and a crash never corrupts a finished one.
//!
//! The journal is read in passes (which line wins for each key; the Parquet schema; the rows),
//! holding only keys in memory, never the rows.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::atomic::AtomicFile;
use crate::journal::EntryStatus;

pub mod card;
pub mod error;
pub(crate) mod lines;
mod parquet;
pub mod schema;
pub use error::SinkError;
use lines::for_each_line;
use parquet::{write_parquet, Flatten};
pub use schema::{DeclaredSchema, RowsSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Jsonl,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct FinalizeStats {
    pub rows_ok: u64,
    pub rows_error: u64,
    /// Journal entries superseded by a later entry of the same key.
    pub duplicates_collapsed: u64,
}

#[derive(Deserialize)]
pub(crate) struct RowOnly {
    pub(crate) row: Map<String, Value>,
}

pub fn finalize(journal: &Path, output: &Path, errors: &Path, format: OutputFormat) -> Result<FinalizeStats, SinkError> {
    finalize_rows(journal, output, errors, format, false, None)
}

/// [`finalize_rows`] in completion order.
pub fn finalize_with(journal: &Path, output: &Path, errors: &Path, format: OutputFormat, declared: Option<&RowsSchema>) -> Result<FinalizeStats, SinkError> {
    finalize_rows(journal, output, errors, format, false, declared)
}

/// Like [`finalize`] for JSONL, with the rows in input order (by their [`crate::ordered::SEQ_FIELD`]) instead of
/// completion order.
pub fn finalize_ordered(journal: &Path, output: &Path, errors: &Path) -> Result<FinalizeStats, SinkError> {
    finalize_rows(journal, output, errors, OutputFormat::Jsonl, true, None)
}

/// A journal into its output (the latest `ok` row of every key) and its error file (the latest
/// `error` row of every key that never succeeded; no file when nothing failed, so a data glob
/// never meets an empty file). With `ordered`, the rows are in input order (by their
/// [`crate::ordered::SEQ_FIELD`], removed) instead of completion order: the unordered rows go to
/// a scratch file first, so the real output is only ever the finished, ordered file. With the
/// task's declared schema, Parquet is written with exactly that schema (a file where every
/// record failed has it too, with 0 rows) in bounded row groups, and every field of a JSONL line
/// has its declared type.
pub fn finalize_rows(
    journal: &Path,
    output: &Path,
    errors: &Path,
    format: OutputFormat,
    ordered: bool,
    declared: Option<&RowsSchema>,
) -> Result<FinalizeStats, SinkError> {
    let mut stats = FinalizeStats::default();
    // Pass 1: the winning line of each key (latest ok, else latest error), kept on disk in
    // hash buckets when the journal is large so memory stays flat whatever the input size.
    let winners = crate::winners::Winners::build(journal, &mut stats.duplicates_collapsed)?;
    let winners = &winners;

    // Errors: JSONL, only when something failed.
    stats.rows_error = write_jsonl_to(journal, winners, EntryStatus::Error, errors)?;
    if stats.rows_error == 0 {
        if let Err(e) = std::fs::remove_file(errors) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(SinkError::Io { path: errors.to_path_buf(), source: e });
            }
        }
    }

    // In input order: the rows to a scratch file, then sorted into a second one (bounded
    // memory), which is the row source of the output.
    let mut sorted_scratch = None;
    let source = if ordered {
        let mut scratch = AtomicFile::scratch(output, "unordered")?;
        write_jsonl(journal, winners, EntryStatus::Ok, &mut scratch)?;
        scratch.flush().map_err(|e| SinkError::Io { path: scratch.temp_path().to_path_buf(), source: e })?;
        let mut sorted = AtomicFile::scratch(output, "ordered")?;
        crate::ordered::reorder_into(scratch.temp_path(), &mut sorted)?;
        sorted.flush().map_err(|e| SinkError::Io { path: sorted.temp_path().to_path_buf(), source: e })?;
        scratch.abandon();
        let path = sorted.temp_path().to_path_buf();
        sorted_scratch = Some(sorted);
        RowSource::Rows(path)
    } else {
        RowSource::Journal { journal, winners }
    };
    let declared = declared.filter(|d| !d.schema.inferred || format == OutputFormat::Parquet);

    // Output.
    let result = (|| -> Result<u64, SinkError> {
        match format {
            OutputFormat::Jsonl => {
                let mut out = AtomicFile::create(output)?;
                let rows = match (&source, declared) {
                    (RowSource::Journal { journal, winners }, None) => write_jsonl(journal, winners, EntryStatus::Ok, &mut out)?,
                    (source, declared) => write_rows_jsonl(source, declared.map(|d| &*d.schema), &mut out)?,
                };
                out.commit()?;
                Ok(rows)
            }
            OutputFormat::Parquet => {
                let mut last_err = None;
                // Each attempt is more forgiving about mixed types across rows (a declared
                // schema needs one).
                for mode in [Flatten::None, Flatten::Nested, Flatten::All] {
                    let mut out = AtomicFile::create(output)?;
                    match write_parquet(&source, &mut out, mode, declared) {
                        Ok(n) => {
                            out.commit()?;
                            return Ok(n);
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                Err(SinkError::Parquet { path: output.to_path_buf(), message: last_err.unwrap_or_default() })
            }
        }
    })();
    if let Some(sorted) = sorted_scratch {
        sorted.abandon();
    }
    stats.rows_ok = result?;
    Ok(stats)
}

/// Where the output's rows come from: the winning `ok` lines of a journal, or a JSONL file of
/// rows (already in input order).
pub(crate) enum RowSource<'a> {
    Journal { journal: &'a Path, winners: &'a crate::winners::Winners },
    Rows(PathBuf),
}

impl RowSource<'_> {
    /// Calls `f` with every row, in order.
    pub(crate) fn each(&self, mut f: impl FnMut(Map<String, Value>)) -> Result<(), SinkError> {
        match self {
            RowSource::Journal { journal, winners } => {
                let mut cursor = winners.cursor()?;
                for_each_line(journal, |index, line| {
                    if cursor.status_at(index) != Some(EntryStatus::Ok) {
                        return;
                    }
                    if let Ok(r) = serde_json::from_slice::<RowOnly>(line) {
                        f(r.row);
                    }
                })
            }
            RowSource::Rows(path) => for_each_line(path, |_, line| {
                if let Ok(row) = serde_json::from_slice::<Map<String, Value>>(line) {
                    f(row);
                }
            }),
        }
    }
}

/// The rows of `source` as JSONL, each fitted to `declared`.
fn write_rows_jsonl(source: &RowSource<'_>, declared: Option<&DeclaredSchema>, out: &mut AtomicFile) -> Result<u64, SinkError> {
    let mut rows = 0u64;
    let mut write_err = None;
    source.each(|row| {
        if write_err.is_some() {
            return;
        }
        let row = match declared {
            Some(d) => d.conform_line(row),
            None => row,
        };
        let mut bytes = serde_json::to_vec(&row).expect("rows serialize");
        bytes.push(b'\n');
        if let Err(e) = out.write_all(&bytes) {
            write_err = Some(e);
        }
        rows += 1;
    })?;
    if let Some(e) = write_err {
        return Err(SinkError::Io { path: out.dest().to_path_buf(), source: e });
    }
    Ok(rows)
}

/// Writes the rows of the winning lines with `want` status to `dest` as JSONL, atomically.
fn write_jsonl_to(journal: &Path, winners: &crate::winners::Winners, want: EntryStatus, dest: &Path) -> Result<u64, SinkError> {
    let mut out = AtomicFile::create(dest)?;
    let rows = write_jsonl(journal, winners, want, &mut out)?;
    out.commit()?;
    Ok(rows)
}

/// Writes the rows of the winning lines with `want` status to `out` as JSONL.
fn write_jsonl(journal: &Path, winners: &crate::winners::Winners, want: EntryStatus, out: &mut AtomicFile) -> Result<u64, SinkError> {
    let mut write_err = None;
    let mut rows = 0u64;
    let mut cursor = winners.cursor()?;
    for_each_line(journal, |index, line| {
        if write_err.is_some() || cursor.status_at(index) != Some(want) {
            return;
        }
        // The row as the journal wrote it (the winners pass parsed the line already); parsed and
        // written again only when the line has another shape.
        let written = match raw_row(line) {
            Some(row) => out.write_all(row).and_then(|_| out.write_all(b"\n")),
            None => match serde_json::from_slice::<RowOnly>(line) {
                Ok(r) => {
                    let mut bytes = serde_json::to_vec(&r.row).expect("rows serialize");
                    bytes.push(b'\n');
                    out.write_all(&bytes)
                }
                Err(_) => return,
            },
        };
        rows += 1;
        if let Err(e) = written {
            write_err = Some(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(SinkError::Io { path: out.dest().to_path_buf(), source: e });
    }
    Ok(rows)
}

/// The `row` object of a journal line as written (`{"key":…,"status":…,"row":{…}}`): the first
/// `,"row":` is the field (the key before it is a JSON string, whose quotes are escaped), and
/// the row ends before the entry's closing brace.
fn raw_row(line: &[u8]) -> Option<&[u8]> {
    const FIELD: &[u8] = b",\"row\":";
    let start = line.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let end = line.iter().rposition(|b| *b == b'}')?;
    (start < end && line[start] == b'{' && line[end - 1] == b'}').then(|| &line[start..end])
}

#[cfg(test)]
mod raw_row_tests {
    #[test]
    fn the_row_is_cut_out_of_a_journal_line_exactly_as_serialised() {
        let entry = crate::journal::JournalEntry::new(
            "k\",\"row\":{",
            crate::journal::EntryStatus::Ok,
            serde_json::json!({"a": 1, "b": {"c": [1, 2]}, "s": "x}"}).as_object().unwrap().clone(),
        );
        let line = serde_json::to_vec(&entry).unwrap();
        let row = super::raw_row(&line).unwrap();
        assert_eq!(row, serde_json::to_vec(&entry.row).unwrap().as_slice());
        // With what it was made from, the row is still the line's last field.
        let made = entry.made_from(Some(crate::journal::MadeFrom { input: 1, settings: 2, parser: Some(3) }));
        let line = serde_json::to_vec(&made).unwrap();
        assert_eq!(super::raw_row(&line).unwrap(), serde_json::to_vec(&made.row).unwrap().as_slice());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, JournalEntry};
    use crate::source::{open_source, SourceItem};
    use serde_json::json;
    use std::time::Duration;

    fn journal_with(dir: &Path, entries: &[(&str, EntryStatus, Value)]) -> PathBuf {
        let p = dir.join("j.jsonl");
        let (j, _) = Journal::open(&p, Duration::from_millis(10)).unwrap();
        for (k, s, row) in entries {
            j.append(JournalEntry::new(k.to_string(), *s, row.as_object().unwrap().clone())).unwrap();
        }
        j.close().unwrap();
        p
    }

    fn read_rows(path: &Path) -> Vec<Map<String, Value>> {
        open_source(path)
            .unwrap()
            .map(|i| match i.unwrap() {
                SourceItem::Record { record, .. } => record,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_retired_result_is_gone_from_both_files_and_what_follows_it_wins() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(
            dir.path(),
            &[
                // An edited record whose redo failed: its stale verdict must not stay.
                ("a", EntryStatus::Ok, json!({"id": "a", "score": 4})),
                ("a", EntryStatus::Retired, json!({"retired": "its input changed"})),
                ("a", EntryStatus::Error, json!({"id": "a", "why": "redo failed"})),
                // Redone and done.
                ("b", EntryStatus::Ok, json!({"id": "b", "score": 1})),
                ("b", EntryStatus::Retired, json!({"retired": "its input changed"})),
                ("b", EntryStatus::Ok, json!({"id": "b", "score": 5})),
                // Retired, and killed before its redo came back.
                ("c", EntryStatus::Ok, json!({"id": "c", "score": 2})),
                ("c", EntryStatus::Retired, json!({"retired": "its input changed"})),
            ],
        );
        for buckets in ["0", "1"] {
            // In memory, and through the on-disk buckets of large journals.
            std::env::set_var("MODELCALL_FINALIZE_BUCKET_KEYS", if buckets == "1" { "1" } else { "200000" });
            let out = dir.path().join("out.jsonl");
            let err = dir.path().join("out.errors.jsonl");
            finalize(&j, &out, &err, OutputFormat::Jsonl).unwrap();
            let rows = read_rows(&out);
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!((rows[0]["id"].as_str(), rows[0]["score"].as_i64()), (Some("b"), Some(5)));
            let errors = read_rows(&err);
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0]["why"], "redo failed");
        }
        std::env::remove_var("MODELCALL_FINALIZE_BUCKET_KEYS");
        let state = crate::journal::read_state(&j).unwrap();
        assert!(state.done_ok.contains("b") && !state.done_ok.contains("a") && !state.done_ok.contains("c"));
        assert!(state.failed.contains("a") && !state.failed.contains("c"));
    }

    #[test]
    fn one_row_per_key_later_ok_wins_and_errors_only_when_never_ok() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(
            dir.path(),
            &[
                ("a", EntryStatus::Error, json!({"id": "a", "why": "x"})),
                ("a", EntryStatus::Ok, json!({"id": "a", "score": 4})),
                ("b", EntryStatus::Error, json!({"id": "b", "why": "first"})),
                ("b", EntryStatus::Error, json!({"id": "b", "why": "second"})),
                ("c", EntryStatus::Ok, json!({"id": "c", "score": 2})),
                ("c", EntryStatus::Ok, json!({"id": "c", "score": 3})),
            ],
        );
        let out = dir.path().join("out.jsonl");
        let err = dir.path().join("out.errors.jsonl");
        let stats = finalize(&j, &out, &err, OutputFormat::Jsonl).unwrap();
        assert_eq!(stats.rows_ok, 2);
        assert_eq!(stats.rows_error, 1);
        let mut rows = read_rows(&out);
        rows.sort_by_key(|r| r["id"].as_str().unwrap().to_string());
        assert_eq!(rows[0]["score"], 4);
        assert_eq!(rows[1]["score"], 3);
        let errors = read_rows(&err);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["why"], "second");
    }

    #[test]
    fn parquet_roundtrip_keeps_values_and_nested_objects() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(
            dir.path(),
            &[
                ("a", EntryStatus::Ok, json!({"id": "a", "score": 4, "usage": {"prompt_tokens": 10, "completion_tokens": 3}, "tags": ["x"]})),
                ("b", EntryStatus::Ok, json!({"id": "b", "score": 5, "usage": null, "tags": []})),
            ],
        );
        let out = dir.path().join("out.parquet");
        let stats = finalize(&j, &out, &dir.path().join("e.jsonl"), OutputFormat::Parquet).unwrap();
        assert_eq!(stats.rows_ok, 2);
        let rows = read_rows(&out);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["id"], "a");
        assert_eq!(rows[0]["score"], 4);
        assert_eq!(rows[0]["usage"]["prompt_tokens"], 10);
        assert_eq!(rows[0]["tags"], json!(["x"]));
        assert_eq!(rows[1]["score"], 5);
        assert!(!dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-")));
    }

    #[test]
    fn parquet_survives_conflicting_types_across_rows() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(
            dir.path(),
            &[
                ("a", EntryStatus::Ok, json!({"id": "a", "v": {"x": 1}})),
                ("b", EntryStatus::Ok, json!({"id": "b", "v": "text"})),
                ("c", EntryStatus::Ok, json!({"id": "c", "v": [1, 2]})),
            ],
        );
        let out = dir.path().join("out.parquet");
        let stats = finalize(&j, &out, &dir.path().join("e.jsonl"), OutputFormat::Parquet).unwrap();
        assert_eq!(stats.rows_ok, 3);
        assert_eq!(read_rows(&out).len(), 3);
    }

    #[test]
    fn bucketed_winners_match_in_memory_winners_on_a_large_journal() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        // 30,000 keys, every third one failing first then succeeding, every seventh failing only.
        for i in 0..30_000u32 {
            let k = format!("k{i}");
            if i % 3 == 0 {
                entries.push((k.clone(), EntryStatus::Error, json!({"id": k, "try": 1})));
            }
            let status = if i % 7 == 0 { EntryStatus::Error } else { EntryStatus::Ok };
            entries.push((k.clone(), status, json!({"id": k, "try": 2})));
        }
        let p = dir.path().join("j.jsonl");
        let (j, _) = Journal::open(&p, Duration::from_millis(10)).unwrap();
        for (k, s, row) in &entries {
            j.append(JournalEntry::new(k.clone(), *s, row.as_object().unwrap().clone())).unwrap();
        }
        j.close().unwrap();
        std::env::set_var("MODELCALL_FINALIZE_BUCKET_KEYS", "1000");
        let out = dir.path().join("o.jsonl");
        let err = dir.path().join("e.jsonl");
        let stats = finalize(&p, &out, &err, OutputFormat::Jsonl).unwrap();
        std::env::remove_var("MODELCALL_FINALIZE_BUCKET_KEYS");
        let ok = read_rows(&out);
        let errors = read_rows(&err);
        let expected_errors = (0..30_000u32).filter(|i| i % 7 == 0).count();
        assert_eq!(errors.len(), expected_errors);
        assert_eq!(ok.len(), 30_000 - expected_errors);
        assert_eq!(stats.rows_ok as usize + stats.rows_error as usize, 30_000);
        assert!(ok.iter().all(|r| r["try"] == 2));
        let ids: std::collections::HashSet<String> = ok.iter().chain(errors.iter()).map(|r| r["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), 30_000);
        assert!(!dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".finalize")));
    }

    fn declared(row_group_rows: Option<usize>) -> RowsSchema {
        use schema::ColType;
        let schema = DeclaredSchema::build(
            vec![("id".into(), ColType::String)],
            vec![("score".into(), ColType::Int64), ("tags".into(), ColType::List(Box::new(ColType::String)))],
            vec![("api_status".into(), ColType::String)],
        );
        RowsSchema::new(schema.with_row_group_rows(row_group_rows))
    }

    #[test]
    fn no_error_file_when_nothing_failed_and_a_stale_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(dir.path(), &[("a", EntryStatus::Error, json!({"id": "a"})), ("a", EntryStatus::Ok, json!({"id": "a", "score": 1}))]);
        let err = dir.path().join("out.errors.jsonl");
        std::fs::write(&err, "{\"id\":\"a\"}\n").unwrap();
        for (format, ordered, name) in
            [(OutputFormat::Jsonl, false, "o.jsonl"), (OutputFormat::Jsonl, true, "p.jsonl"), (OutputFormat::Parquet, true, "o.parquet")]
        {
            let stats = finalize_rows(&j, &dir.path().join(name), &err, format, ordered, None).unwrap();
            assert_eq!((stats.rows_ok, stats.rows_error), (1, 0));
            assert!(!err.exists(), "{name}: no error file when every record succeeded");
        }
        let j = journal_with(dir.path(), &[("b", EntryStatus::Error, json!({"id": "b"}))]);
        finalize_rows(&j, &dir.path().join("o.jsonl"), &err, OutputFormat::Jsonl, false, None).unwrap();
        assert_eq!(read_rows(&err).len(), 1, "an error file when one failed");
    }

    #[test]
    fn jsonl_lines_have_their_declared_verdict_types_and_inputs_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(
            dir.path(),
            &[
                ("a", EntryStatus::Ok, json!({"id": "a", "score": 4.0, "tags": "en", "api_status": "success"})),
                ("b", EntryStatus::Ok, json!({"id": 7, "score": 2, "tags": ["x"], "api_status": 5, "odd": [1]})),
            ],
        );
        let out = dir.path().join("o.jsonl");
        let schema = declared(None);
        for ordered in [false, true] {
            finalize_rows(&j, &out, &dir.path().join("e.jsonl"), OutputFormat::Jsonl, ordered, Some(&schema)).unwrap();
            let text = std::fs::read_to_string(&out).unwrap();
            let rows: Vec<Map<String, Value>> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(rows.len(), 2);
            let a = rows.iter().find(|r| r["id"] == "a").unwrap();
            assert_eq!((&a["score"], a.get("tags"), &a["tags_raw"]), (&json!(4), None, &json!("en")));
            assert!(a.get(schema::EXTRA_COLUMN).is_none(), "{a:?}");
            assert!(text.contains("\"score\":4,"), "an integral float written as the integer: {text}");
            // Input fields (declared or not) as the input had them; a host column that does
            // not fit its type goes to extra_json.
            let b = rows.iter().find(|r| r["id"] == 7).unwrap();
            assert_eq!((&b["tags"], &b["odd"], b.get("api_status")), (&json!(["x"]), &json!([1]), None));
            assert_eq!(b[schema::EXTRA_COLUMN], json!("{\"api_status\":5}"));
        }
    }

    #[test]
    fn ordered_parquet_is_in_input_order_in_the_declared_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let seq = crate::ordered::SEQ_FIELD;
        let entries: Vec<(String, EntryStatus, Value)> = (0..50u64)
            .rev()
            .map(|i| (format!("k{i}"), EntryStatus::Ok, json!({"id": format!("r{i:02}"), "score": i, seq: crate::ordered::position(0, i, 0)})))
            .collect();
        let refs: Vec<(&str, EntryStatus, Value)> = entries.iter().map(|(k, s, v)| (k.as_str(), *s, v.clone())).collect();
        let j = journal_with(dir.path(), &refs);
        let out = dir.path().join("o.parquet");
        let stats = finalize_rows(&j, &out, &dir.path().join("e.jsonl"), OutputFormat::Parquet, true, Some(&declared(Some(7)))).unwrap();
        assert_eq!(stats.rows_ok, 50);
        let rows = read_rows(&out);
        let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let want: Vec<String> = (0..50).map(|i| format!("r{i:02}")).collect();
        assert_eq!(ids, want);
        assert!(rows.iter().all(|r| r.get(seq).is_none() && r.get(schema::EXTRA_COLUMN).is_none_or(Value::is_null)), "{:?}", rows[0]);
        let file = std::fs::File::open(&out).unwrap();
        let meta = ::parquet::file::reader::SerializedFileReader::new(file).unwrap();
        assert_eq!(::parquet::file::reader::FileReader::metadata(&meta).num_row_groups(), 8, "50 rows in groups of 7");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".modelcall-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn an_empty_journal_gives_empty_valid_files() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal_with(dir.path(), &[]);
        let out = dir.path().join("out.parquet");
        finalize(&j, &out, &dir.path().join("e.jsonl"), OutputFormat::Parquet).unwrap();
        assert!(read_rows(&out).is_empty());
    }
}
