//! Record sources. Every source yields [`SourceItem`]s; a line that is not a record is a
//! [`SourceItem::Bad`] with its line number and cause, never the end of the stream.
//!
//! Every source applies the same limits to a record: at most [`MAX_DEPTH`] levels of nesting
//! (so the journal's wrapping stays under serde_json's recursion limit of 128) and at most
//! [`SourceOptions::max_record_bytes`] bytes; a JSONL line over the size limit is skipped to
//! its newline without being held in memory. A UTF-8 byte order mark at the start of a line
//! (the start of a file, or of a file concatenated onto another) is ignored.

mod jsonl;
mod parquet;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One item of a source, in input order.
#[derive(Debug)]
pub enum SourceItem {
    /// `line` is the 1-based line (JSONL) or row number (Parquet).
    Record {
        line: u64,
        record: Map<String, Value>,
    },
    Bad {
        line: u64,
        cause: BadLineCause,
        raw_excerpt: String,
    },
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadLineCause {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("the line is JSON but not an object (records must be JSON objects)")]
    NotAnObject,
    #[error("invalid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    #[error("the record is nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("the record is {bytes} bytes, over the limit of {limit} bytes (max_record_bytes)")]
    RecordTooLarge { bytes: u64, limit: usize },
}

impl BadLineCause {
    /// The typed cause written to the error output.
    pub fn as_str(&self) -> &'static str {
        match self {
            BadLineCause::InvalidJson(_) => "invalid_json",
            BadLineCause::NotAnObject => "not_an_object",
            BadLineCause::InvalidUtf8(_) => "invalid_utf8",
            BadLineCause::TooDeep { .. } => "too_deep",
            BadLineCause::RecordTooLarge { .. } => "record_too_large",
        }
    }
}

/// The file itself cannot be read (as opposed to one bad line in it).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Reading failed part-way (a truncated or corrupt `.gz`/`.zst`, a disk error): every line
    /// up to and including `line` was read and yielded.
    #[error("{path}: read failed after line {line} (the file may be truncated or corrupt): {source}")]
    Read { path: PathBuf, line: u64, source: std::io::Error },
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: unsupported input type (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)")]
    Unsupported { path: PathBuf },
}

/// Deepest nesting of arrays/objects a record may have (the record object itself is level 1).
pub const MAX_DEPTH: usize = 100;

/// Default [`SourceOptions::max_record_bytes`]: 32 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 32 << 20;

/// Limits applied while reading a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    /// Longest record accepted, in bytes of its JSON line (without the line end); longer ones
    /// become [`BadLineCause::RecordTooLarge`].
    pub max_record_bytes: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { max_record_bytes: DEFAULT_MAX_RECORD_BYTES }
    }
}

/// Parses one line (or Parquet row) as a record under the source limits: an object, at most
/// [`MAX_DEPTH`] levels deep (serde_json itself refuses beyond 128; between the two the parsed
/// value is measured), with representable numbers.
pub fn parse_record(bytes: &[u8]) -> Result<Map<String, Value>, BadLineCause> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(record)) if 1 + record.values().map(nesting).max().unwrap_or(0) > MAX_DEPTH => Err(BadLineCause::TooDeep { limit: MAX_DEPTH }),
        Ok(Value::Object(record)) => Ok(record),
        Ok(_) => Err(BadLineCause::NotAnObject),
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(BadLineCause::TooDeep { limit: MAX_DEPTH }),
        Err(e) => Err(BadLineCause::InvalidJson(e.to_string())),
    }
}

/// Levels of arrays/objects in `v` (a scalar is 0, `{}` is 1).
fn nesting(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(nesting).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

pub type SourceIter = Box<dyn Iterator<Item = Result<SourceItem, SourceError>> + Send>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Jsonl,
    JsonlGz,
    JsonlZst,
    Parquet,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    let base = |n: &str| n.ends_with(".jsonl") || n.ends_with(".json") || n.ends_with(".ndjson");
    if let Some(n) = name.strip_suffix(".gz") {
        return base(n).then_some(Kind::JsonlGz);
    }
    if let Some(n) = name.strip_suffix(".zst").or_else(|| name.strip_suffix(".zstd")) {
        return base(n).then_some(Kind::JsonlZst);
    }
    if name.ends_with(".parquet") {
        return Some(Kind::Parquet);
    }
    base(&name).then_some(Kind::Jsonl)
}

/// Whether `path` names an input this crate can read.
pub fn is_supported_input(path: &Path) -> bool {
    kind_of(path).is_some()
}

/// Opens `path` as a stream of records with the default [`SourceOptions`]. Memory does not
/// depend on the file's size.
pub fn open_source(path: &Path) -> Result<SourceIter, SourceError> {
    open_source_with(path, SourceOptions::default())
}

/// Opens `path` as a stream of records with the given limits.
pub fn open_source_with(path: &Path, options: SourceOptions) -> Result<SourceIter, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let lines = |reader: Box<dyn std::io::Read + Send>| -> SourceIter { Box::new(jsonl::JsonlLines::with_options(reader, path.to_path_buf(), options)) };
    match kind_of(path) {
        Some(Kind::Jsonl) => {
            let file = std::fs::File::open(path).map_err(io)?;
            Ok(lines(Box::new(file)))
        }
        Some(Kind::JsonlGz) => {
            let file = std::fs::File::open(path).map_err(io)?;
            let reader = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            Ok(lines(Box::new(reader)))
        }
        Some(Kind::JsonlZst) => {
            let file = std::fs::File::open(path).map_err(io)?;
            let reader = zstd::stream::read::Decoder::new(file).map_err(io)?;
            Ok(lines(Box::new(reader)))
        }
        Some(Kind::Parquet) => Ok(Box::new(parquet::ParquetRows::open_with(path, options)?)),
        None => Err(SourceError::Unsupported { path: path.to_path_buf() }),
    }
}

/// Part of an input file: what one shard of a sharded run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case")]
pub enum Slice {
    /// All of it (compressed files can only be read whole).
    Whole,
    /// Bytes `[start, end)` of a plain JSONL file; both ends are line starts.
    Bytes { start: u64, end: u64 },
    /// Row groups `[start, end)` of a Parquet file.
    RowGroups { start: usize, end: usize },
}

/// Counts the bytes a source reads from its file (for "each shard reads about 1/N").
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ByteCounter {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `slice` of `path` as a stream of records. Line numbers count from the slice's start.
/// `counter` (when given) adds up the bytes read from the file.
pub fn open_slice(path: &Path, slice: Slice, options: SourceOptions, counter: Option<ByteCounter>) -> Result<SourceIter, SourceError> {
    use std::io::{Read, Seek};
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let counter = counter.unwrap_or_default();
    match (slice, kind_of(path)) {
        (Slice::Whole, Some(Kind::Parquet)) | (Slice::RowGroups { .. }, Some(Kind::Parquet)) => {
            let groups = match slice {
                Slice::RowGroups { start, end } => Some(start..end),
                _ => None,
            };
            if let Ok(meta) = std::fs::metadata(path) {
                counter.0.fetch_add(meta.len(), std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Box::new(parquet::ParquetRows::open_groups(path, options, groups)?))
        }
        (Slice::Bytes { start, end }, Some(Kind::Jsonl)) => {
            let mut file = std::fs::File::open(path).map_err(io)?;
            file.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
            let reader = Counting { inner: file.take(end.saturating_sub(start)), counter };
            Ok(Box::new(jsonl::JsonlLines::with_options(Box::new(reader), path.to_path_buf(), options)))
        }
        (Slice::Whole, Some(kind)) => {
            let file = std::fs::File::open(path).map_err(io)?;
            let counted: Box<dyn Read + Send> = Box::new(Counting { inner: file, counter });
            let reader: Box<dyn Read + Send> = match kind {
                Kind::JsonlGz => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(counted))),
                Kind::JsonlZst => Box::new(zstd::stream::read::Decoder::new(counted).map_err(io)?),
                _ => counted,
            };
            Ok(Box::new(jsonl::JsonlLines::with_options(reader, path.to_path_buf(), options)))
        }
        (_, None) => Err(SourceError::Unsupported { path: path.to_path_buf() }),
        (slice, Some(_)) => Err(SourceError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{slice:?} does not apply to this kind of file")),
        }),
    }
}

/// Whether a file can be cut into byte slices (plain JSONL) or row groups (Parquet).
pub fn slice_kind(path: &Path) -> Option<&'static str> {
    match kind_of(path)? {
        Kind::Jsonl => Some("bytes"),
        Kind::Parquet => Some("row_groups"),
        _ => None,
    }
}

/// Minimal shell-style matching of one file name: `*` any run, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list_input_files;
    use std::io::Write;

    fn collect(path: &Path) -> Vec<SourceItem> {
        open_source(path).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn jsonl_bad_lines_are_typed_and_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"{\"a\":1}\n");
        bytes.extend_from_slice(b"{\"a\":\n");
        bytes.extend_from_slice(b"\n");
        bytes.extend_from_slice(b"[1]\n");
        bytes.extend_from_slice(b"{\"a\":\"caf\xe9\"}\n");
        bytes.extend_from_slice(b"  {\"a\":2}  \r\n");
        bytes.extend_from_slice(b"{\"a\":3}"); // no trailing newline
        std::fs::write(&p, bytes).unwrap();
        let items = collect(&p);
        let summary: Vec<(u64, &str)> = items
            .iter()
            .map(|i| match i {
                SourceItem::Record { line, .. } => (*line, "ok"),
                SourceItem::Bad { line, cause, .. } => (*line, cause.as_str()),
            })
            .collect();
        assert_eq!(summary, vec![(1, "ok"), (2, "invalid_json"), (4, "not_an_object"), (5, "invalid_utf8"), (6, "ok"), (7, "ok")]);
        if let SourceItem::Record { record, .. } = &items[5] {
            assert_eq!(record["a"], 3);
        }
    }

    #[test]
    fn gz_and_zst_read_like_plain() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"id\":1}\n{\"id\":2}\n";
        let gz = dir.path().join("x.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("y.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        for p in [gz, zst] {
            let items = collect(&p);
            assert_eq!(items.len(), 2, "{p:?}");
            assert!(matches!(&items[1], SourceItem::Record { line: 2, record } if record["id"] == 2));
        }
    }

    #[test]
    fn listing_is_sorted_filtered_and_skips_hidden_and_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.jsonl", "a.parquet", "c.txt", ".hidden.jsonl", "d.jsonl.gz"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let names = |v: Vec<PathBuf>| v.iter().map(|p| p.file_name().unwrap().to_string_lossy().to_string()).collect::<Vec<_>>();
        assert_eq!(names(list_input_files(dir.path(), None).unwrap()), vec!["a.parquet", "b.jsonl", "d.jsonl.gz"]);
        assert_eq!(names(list_input_files(dir.path(), Some("*.jsonl*")).unwrap()), vec!["b.jsonl", "d.jsonl.gz"]);
    }

    #[test]
    fn glob() {
        assert!(glob_match("*.jsonl", "a.jsonl"));
        assert!(glob_match("part-??.jsonl", "part-01.jsonl"));
        assert!(!glob_match("part-??.jsonl", "part-1.jsonl"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "acd"));
    }
}
