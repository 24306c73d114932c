//! Writing a journal's winning `ok` rows as Parquet: the schema is inferred over every row (in
//! batches), then the rows are decoded into Arrow batches and written, ZSTD-compressed. Mixed
//! types across rows are handled by retrying with more forgiving [`Flatten`] modes.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};

use super::schema::{RowsSchema, ROW_GROUP_BYTES};
use super::RowSource;
use crate::atomic::AtomicFile;

/// Rows per Parquet record batch.
const BATCH_ROWS: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub(super) enum Flatten {
    /// Keep nested objects and lists as Parquet structs and lists.
    None,
    /// Encode objects and lists as JSON text.
    Nested,
    /// Encode every value as text (the last resort for columns with mixed types).
    All,
}

fn flatten_row(row: Map<String, Value>, mode: Flatten) -> Map<String, Value> {
    match mode {
        Flatten::None => row,
        Flatten::Nested => row
            .into_iter()
            .map(|(k, v)| match v {
                Value::Object(_) | Value::Array(_) => (k, Value::String(v.to_string())),
                other => (k, other),
            })
            .collect(),
        Flatten::All => row
            .into_iter()
            .map(|(k, v)| match v {
                Value::Null => (k, Value::Null),
                Value::String(s) => (k, Value::String(s)),
                other => (k, Value::String(other.to_string())),
            })
            .collect(),
    }
}

pub(super) fn write_parquet(source: &RowSource<'_>, out: &mut AtomicFile, mode: Flatten, declared: Option<&RowsSchema>) -> Result<u64, String> {
    let row_group_rows = declared.map_or(crate::sink::schema::DEFAULT_ROW_GROUP_ROWS, |d| d.row_group_rows);
    if let Some(declared) = declared.filter(|d| !d.schema.inferred) {
        return write_declared(source, out, declared);
    }
    // Schema over every selected row.
    let mut values: Vec<Value> = Vec::new();
    let mut schema: Option<Schema> = None;
    let mut infer_err = None;
    let mut merge = |values: &mut Vec<Value>| {
        if values.is_empty() {
            return;
        }
        match arrow_json::reader::infer_json_schema_from_iterator(values.iter().map(Ok)) {
            Ok(s) => {
                schema = Some(match schema.take() {
                    None => s,
                    Some(prev) => match Schema::try_merge([prev, s]) {
                        Ok(m) => m,
                        Err(e) => {
                            infer_err = Some(e.to_string());
                            Schema::empty()
                        }
                    },
                })
            }
            Err(e) => infer_err = Some(e.to_string()),
        }
        values.clear();
    };
    source
        .each(|row| {
            values.push(Value::Object(flatten_row(row, mode)));
            if values.len() >= BATCH_ROWS {
                merge(&mut values);
            }
        })
        .map_err(|e| e.to_string())?;
    merge(&mut values);
    if let Some(e) = infer_err {
        return Err(e);
    }
    // A journal with no rows still yields a valid (empty) file with one placeholder column.
    let schema = Arc::new(schema.filter(|s| !s.fields().is_empty()).unwrap_or_else(|| Schema::new(vec![Field::new("api_status", DataType::Utf8, true)])));

    let props = writer_properties(row_group_rows);
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    let mut decoder =
        arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(BATCH_ROWS).with_coerce_primitive(true).build_decoder().map_err(|e| e.to_string())?;
    let mut rows = 0u64;
    let mut pending = 0usize;
    let mut err: Option<String> = None;
    source
        .each(|row| {
            if err.is_some() {
                return;
            }
            let row = Value::Object(flatten_row(row, mode));
            if let Err(e) = decoder.serialize(&[row]) {
                err = Some(e.to_string());
                return;
            }
            rows += 1;
            pending += 1;
            if pending >= BATCH_ROWS {
                pending = 0;
                match decoder.flush() {
                    Ok(Some(batch)) => {
                        if let Err(e) = writer.write(&batch) {
                            err = Some(e.to_string());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => err = Some(e.to_string()),
                }
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    Ok(rows)
}

fn writer_properties(row_group_rows: usize) -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_size(row_group_rows)
        .build()
}

/// The rows written with the task's declared schema (no inference): each row is fitted to it
/// first ([`super::schema::DeclaredSchema::conform`]); row groups close at `row_group_rows` rows
/// or [`ROW_GROUP_BYTES`] of buffered data.
fn write_declared(source: &RowSource<'_>, out: &mut AtomicFile, declared: &RowsSchema) -> Result<u64, String> {
    let schema = Arc::new(declared.schema.arrow());
    let batch_rows = BATCH_ROWS.min(declared.row_group_rows);
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(writer_properties(declared.row_group_rows))).map_err(|e| e.to_string())?;
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(batch_rows).build_decoder().map_err(|e| e.to_string())?;
    let mut rows = 0u64;
    let mut pending = 0usize;
    let mut err: Option<String> = None;
    let flush = |decoder: &mut arrow_json::reader::Decoder, writer: &mut parquet::arrow::ArrowWriter<&mut AtomicFile>| -> Result<(), String> {
        if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
            writer.write(&batch).map_err(|e| e.to_string())?;
            if writer.in_progress_size() >= ROW_GROUP_BYTES {
                writer.flush().map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    };
    source
        .each(|row| {
            if err.is_some() {
                return;
            }
            let row = Value::Object(declared.schema.conform(row));
            if let Err(e) = decoder.serialize(&[row]) {
                err = Some(e.to_string());
                return;
            }
            rows += 1;
            pending += 1;
            if pending >= batch_rows {
                pending = 0;
                if let Err(e) = flush(&mut decoder, &mut writer) {
                    err = Some(e);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = err {
        return Err(e);
    }
    flush(&mut decoder, &mut writer)?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(rows)
}
