//! Parquet reader: row groups are decoded batch by batch and each row becomes a JSON object.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use super::{SourceError, SourceItem};

const BATCH_ROWS: usize = 1024;

pub struct ParquetRows {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    pending: VecDeque<Map<String, Value>>,
    row: u64,
    done: bool,
}

impl ParquetRows {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let file = std::fs::File::open(path).map_err(|source| SourceError::Io { path: path.to_path_buf(), source })?;
        let err = |e: parquet::errors::ParquetError| SourceError::Parquet { path: path.to_path_buf(), message: e.to_string() };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(err)?.with_batch_size(BATCH_ROWS).build().map_err(err)?;
        Ok(ParquetRows { reader, path: path.to_path_buf(), pending: VecDeque::new(), row: 0, done: false })
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
        for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(map)) => self.pending.push_back(map),
                _ => return Err(err("a row did not convert to a JSON object".into())),
            }
        }
        Ok(true)
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
        self.row += 1;
        let record = self.pending.pop_front()?;
        Some(Ok(SourceItem::Record { line: self.row, record }))
    }
}
