//! Parquet reader: row groups are decoded batch by batch and each row becomes a JSON object.
//! A row over the size or depth limit becomes a [`SourceItem::Bad`] like a JSONL line would.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{parse_record, BadLineCause, SourceError, SourceItem, SourceOptions};

/// Longest excerpt of a bad row kept for the error output.
const EXCERPT_BYTES: usize = 200;

const BATCH_ROWS: usize = 1024;

pub struct ParquetRows {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    pending: VecDeque<SourceItem>,
    row: u64,
    done: bool,
    max_record_bytes: usize,
}

impl ParquetRows {
    pub fn open_with(path: &Path, options: SourceOptions) -> Result<Self, SourceError> {
        Self::open_groups(path, options, None)
    }

    /// Only the row groups in `groups` (all when `None`).
    pub fn open_groups(path: &Path, options: SourceOptions, groups: Option<std::ops::Range<usize>>) -> Result<Self, SourceError> {
        let file = std::fs::File::open(path).map_err(|source| SourceError::Io { path: path.to_path_buf(), source })?;
        let err = |e: parquet::errors::ParquetError| SourceError::Parquet { path: path.to_path_buf(), message: e.to_string() };
        let builder = match ParquetRecordBatchReaderBuilder::try_new(file) {
            Ok(b) => b,
            // The embedded Arrow schema can be unreadable where the Parquet schema is fine (a
            // deeply nested type is over the flatbuffer verifier's depth limit): use the latter.
            Err(first) => {
                let file = std::fs::File::open(path).map_err(|source| SourceError::Io { path: path.to_path_buf(), source })?;
                let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
                ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).map_err(|_| err(first))?
            }
        };
        let builder = match groups {
            Some(g) => builder.with_row_groups(g.collect()),
            None => builder,
        };
        let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(err)?;
        Ok(ParquetRows { reader, path: path.to_path_buf(), pending: VecDeque::new(), row: 0, done: false, max_record_bytes: options.max_record_bytes })
    }

    fn fill(&mut self) -> Result<bool, SourceError> {
        let Some(batch) = self.reader.next() else { return Ok(false) };
        let err = |message: String| SourceError::Parquet { path: self.path.clone(), message };
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let mut buf = Vec::with_capacity(batch.get_array_memory_size());
        {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut buf);
            writer.write(&batch).map_err(|e| err(e.to_string()))?;
            writer.finish().map_err(|e| err(e.to_string()))?;
        }
        // One line per row (the writer escapes newlines inside strings).
        let lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        if lines.len() != batch.num_rows() {
            return Err(err(format!("a batch of {} rows converted to {} JSON lines", batch.num_rows(), lines.len())));
        }
        for line in lines {
            self.row += 1;
            let item = self.row_item(self.row, line);
            self.pending.push_back(item);
        }
        Ok(true)
    }

    fn row_item(&self, line_no: u64, line: &[u8]) -> SourceItem {
        let bad = |cause| SourceItem::Bad { line: line_no, cause, raw_excerpt: excerpt(line) };
        if line.len() > self.max_record_bytes {
            return bad(BadLineCause::RecordTooLarge { bytes: line.len() as u64, limit: self.max_record_bytes });
        }
        match parse_record(line) {
            Ok(record) => SourceItem::Record { line: line_no, record },
            Err(cause) => bad(cause),
        }
    }
}

impl Iterator for ParquetRows {
    type Item = Result<SourceItem, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pending.is_empty() {
            if self.done {
                return None;
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.pending.pop_front().map(Ok)
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]).into_owned()
}
