//! JSONL line reader over any byte stream (plain, gzip, zstd).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use super::{parse_record, BadLineCause, SourceError, SourceItem, SourceOptions};

/// Longest excerpt of a bad line kept for the error output.
const EXCERPT_BYTES: usize = 200;

/// Bytes of an over-long line kept (for its excerpt) while the rest is skipped.
const KEEP_OF_LONG_LINE: usize = 4096;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub struct JsonlLines {
    reader: BufReader<Box<dyn Read + Send>>,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
    done: bool,
    max_record_bytes: usize,
}

/// What reading one line found.
enum Line {
    Eof,
    /// The line is in `buf` (with its line end, if any).
    Complete,
    /// The line was longer than the limit: `buf` holds its start only.
    TooLong {
        bytes: u64,
        blank: bool,
    },
}

impl JsonlLines {
    pub fn with_options(inner: Box<dyn Read + Send>, path: PathBuf, options: SourceOptions) -> Self {
        JsonlLines { reader: BufReader::with_capacity(1 << 20, inner), path, line: 0, buf: Vec::new(), done: false, max_record_bytes: options.max_record_bytes }
    }

    /// Reads the next line into `buf`, never holding more than `max_record_bytes + 2` bytes of
    /// it: the rest of a longer line is consumed up to its newline and dropped.
    fn read_line(&mut self) -> std::io::Result<Line> {
        self.buf.clear();
        // Room for the content at the limit plus "\r\n".
        let limit = self.max_record_bytes as u64 + 2;
        let n = (&mut self.reader).take(limit).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(Line::Eof);
        }
        let ended = self.buf.last() == Some(&b'\n');
        if ended || (n as u64) < limit {
            let content = content_len(&self.buf);
            if content > self.max_record_bytes {
                let blank = trim(&self.buf).is_empty();
                return Ok(Line::TooLong { bytes: content as u64, blank });
            }
            return Ok(Line::Complete);
        }
        // Over the limit and no newline yet: skip to the newline without keeping the bytes.
        let mut blank = trim(&self.buf).is_empty();
        let mut prev_last = self.buf.last().copied();
        self.buf.truncate(KEEP_OF_LONG_LINE);
        self.buf.shrink_to(KEEP_OF_LONG_LINE);
        let mut total = n as u64;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let chunk = &available[..take];
            blank = blank && chunk.iter().all(u8::is_ascii_whitespace);
            total += take as u64;
            if newline.is_some() {
                let before = if take >= 2 { Some(chunk[take - 2]) } else { prev_last };
                total -= if before == Some(b'\r') { 2 } else { 1 };
                self.reader.consume(take);
                break;
            }
            prev_last = chunk.last().copied();
            self.reader.consume(take);
        }
        Ok(Line::TooLong { bytes: total, blank })
    }
}

/// Length of a line without its "\n" or "\r\n".
fn content_len(line: &[u8]) -> usize {
    let mut n = line.len();
    if n > 0 && line[n - 1] == b'\n' {
        n -= 1;
        if n > 0 && line[n - 1] == b'\r' {
            n -= 1;
        }
    }
    n
}

fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
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
            let read = match self.read_line() {
                Ok(Line::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(read) => read,
                Err(e) => {
                    self.done = true;
                    return Some(Err(SourceError::Read { path: self.path.clone(), line: self.line, source: e }));
                }
            };
            self.line += 1;
            let line_no = self.line;
            if let Line::TooLong { bytes, blank } = read {
                if blank {
                    continue;
                }
                return Some(Ok(SourceItem::Bad {
                    line: line_no,
                    cause: BadLineCause::RecordTooLarge { bytes, limit: self.max_record_bytes },
                    raw_excerpt: excerpt(trim(&self.buf)),
                }));
            }
            let line = trim(&self.buf);
            if line.is_empty() {
                continue;
            }
            if let Err(e) = std::str::from_utf8(line) {
                return Some(Ok(SourceItem::Bad { line: line_no, cause: BadLineCause::InvalidUtf8(e.valid_up_to()), raw_excerpt: excerpt(line) }));
            }
            return Some(Ok(match parse_record(line) {
                Ok(record) => SourceItem::Record { line: line_no, record },
                Err(cause) => SourceItem::Bad { line: line_no, cause, raw_excerpt: excerpt(line) },
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes of `x`, then `tail`; the long line is generated, never allocated.
    struct LongLine {
        len: u64,
        pos: u64,
        tail: &'static [u8],
    }

    impl Read for LongLine {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.pos < self.len {
                let n = out.len().min((self.len - self.pos) as usize);
                out[..n].fill(b'x');
                self.pos += n as u64;
                return Ok(n);
            }
            let at = (self.pos - self.len) as usize;
            let n = out.len().min(self.tail.len() - at);
            out[..n].copy_from_slice(&self.tail[at..at + n]);
            self.pos += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn an_over_long_line_is_skipped_without_being_held() {
        let len = 48u64 << 20;
        let reader = LongLine { len, pos: 0, tail: b"\r\n{\"a\":1}\n" };
        let mut lines = JsonlLines::with_options(Box::new(reader), "x.jsonl".into(), SourceOptions { max_record_bytes: 1000 });
        match lines.next().unwrap().unwrap() {
            SourceItem::Bad { line: 1, cause: BadLineCause::RecordTooLarge { bytes, limit: 1000 }, raw_excerpt } => {
                assert_eq!(bytes, len);
                assert_eq!(raw_excerpt.len(), EXCERPT_BYTES);
            }
            other => panic!("{other:?}"),
        }
        assert!(lines.buf.capacity() < 64 * 1024, "kept {} bytes", lines.buf.capacity());
        assert!(matches!(lines.next().unwrap().unwrap(), SourceItem::Record { line: 2, .. }));
        assert!(lines.next().is_none());
    }
}
