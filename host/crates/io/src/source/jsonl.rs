//! JSONL line reader over any byte stream (plain, gzip, zstd).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use serde_json::Value;

use super::{BadLineCause, SourceError, SourceItem};

/// Longest excerpt of a bad line kept for the error output.
const EXCERPT_BYTES: usize = 200;

pub struct JsonlLines {
    reader: BufReader<Box<dyn Read + Send>>,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl JsonlLines {
    pub fn new(inner: Box<dyn Read + Send>, path: PathBuf) -> Self {
        JsonlLines { reader: BufReader::with_capacity(1 << 20, inner), path, line: 0, buf: Vec::new(), done: false }
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map(|i| i + 1).unwrap_or(start);
    &bytes[start..end.max(start)]
}

impl Iterator for JsonlLines {
    type Item = Result<SourceItem, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(SourceError::Io { path: self.path.clone(), source: e }));
                }
            }
            self.line += 1;
            let line = trim(&self.buf);
            if line.is_empty() {
                continue;
            }
            let line_no = self.line;
            if let Err(e) = std::str::from_utf8(line) {
                return Some(Ok(SourceItem::Bad {
                    line: line_no,
                    cause: BadLineCause::InvalidUtf8(e.valid_up_to()),
                    raw_excerpt: excerpt(line),
                }));
            }
            return Some(Ok(match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(record)) => SourceItem::Record { line: line_no, record },
                Ok(_) => SourceItem::Bad { line: line_no, cause: BadLineCause::NotAnObject, raw_excerpt: excerpt(line) },
                Err(e) => SourceItem::Bad {
                    line: line_no,
                    cause: BadLineCause::InvalidJson(e.to_string()),
                    raw_excerpt: excerpt(line),
                },
            }));
        }
    }
}
