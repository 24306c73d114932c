//! The declared output schema of a row task: declared once, before the first row, and written
//! exactly by every file of the task (every input file, shard, resume and merge), so the files
//! of one task always concatenate.
//!
//! Columns come in three kinds: the host's own columns (fixed types), the input columns carried
//! through (typed from the first records of the task's first input, or its Parquet schema) and
//! the verdict fields (typed from the prompt's `checks` and `json_default_values`). A value that
//! does not fit its column never changes the column's type:
//! - a verdict field's value goes, as a string (JSON text unless it was a string), to the field's
//!   `<field>_raw` column (declared for every verdict field), and the field itself is null;
//! - any other value that does not fit, and any field not declared, goes to `extra_json` (a JSON
//!   object of field → value, null when there is nothing).
//!
//! The schema is stored as `<out>/.modelcall/schema.json`; a later run (resume, shard, merge)
//! keeps the stored input columns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The column holding, as a JSON object, values that fit no declared column.
pub const EXTRA_COLUMN: &str = "extra_json";
/// Rows per Parquet row group unless `MODELCALL_ROW_GROUP_ROWS` says otherwise.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 100_000;
/// A row group is closed once its buffered data reaches this size.
pub const ROW_GROUP_BYTES: usize = 128 << 20;

/// A column type (a small, stable vocabulary; `json` is text holding a JSON value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColType {
    Int64,
    Float64,
    Bool,
    String,
    /// Any JSON value, stored as its JSON text (a string stays the string).
    Json,
    List(Box<ColType>),
    Struct(Vec<Column>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Input,
    Verdict,
    Host,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColType,
    #[serde(default = "host_role", skip_serializing_if = "is_struct_member")]
    pub role: Role,
}

fn host_role() -> Role {
    Role::Host
}

fn is_struct_member(_: &Role) -> bool {
    false
}

impl Column {
    pub fn new(name: impl Into<String>, ty: ColType, role: Role) -> Self {
        Column { name: name.into(), ty, role }
    }
}

/// The declared schema of a task's row outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredSchema {
    /// In output order: input columns, verdict fields, host columns.
    pub columns: Vec<Column>,
    /// Rows per Parquet row group (`output.row_group_rows`); None: `MODELCALL_ROW_GROUP_ROWS`,
    /// else [`DEFAULT_ROW_GROUP_ROWS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group_rows: Option<usize>,
    /// The columns are not known before the rows (a score parser that declares no fields): each
    /// Parquet file's schema is then inferred from its rows, JSONL rows are written as they are,
    /// and only `row_group_rows` applies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

/// How a task's rows become Parquet: its schema and its row-group bound.
#[derive(Debug, Clone)]
pub struct RowsSchema {
    pub schema: Arc<DeclaredSchema>,
    pub row_group_rows: usize,
}

impl RowsSchema {
    /// The row-group bound is the task's `output.row_group_rows` (stored with the schema), else
    /// `MODELCALL_ROW_GROUP_ROWS`, else [`DEFAULT_ROW_GROUP_ROWS`].
    pub fn new(schema: DeclaredSchema) -> Self {
        let from_env = || std::env::var("MODELCALL_ROW_GROUP_ROWS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0);
        let row_group_rows = schema.row_group_rows.filter(|n| *n > 0).or_else(from_env).unwrap_or(DEFAULT_ROW_GROUP_ROWS);
        RowsSchema { schema: Arc::new(schema), row_group_rows }
    }
}

/// `<out>/.modelcall/schema.json`.
pub fn schema_path(output_folder: &Path) -> PathBuf {
    output_folder.join(".modelcall").join("schema.json")
}

impl DeclaredSchema {
    /// The schema from its parts: `inputs` first (those named like a verdict or host column are
    /// carried as `input_<name>`), then the verdict fields (each with its `<field>_raw`), then the
    /// host columns, then [`EXTRA_COLUMN`].
    pub fn build(inputs: Vec<(String, ColType)>, verdict: Vec<(String, ColType)>, host: Vec<(String, ColType)>) -> Self {
        let mut columns: Vec<Column> = Vec::new();
        let taken: std::collections::HashSet<String> = verdict
            .iter()
            .map(|(n, _)| n.clone())
            .chain(verdict.iter().map(|(n, _)| format!("{n}_raw")))
            .chain(host.iter().map(|(n, _)| n.clone()))
            .chain([EXTRA_COLUMN.to_string()])
            .collect();
        for (name, ty) in inputs {
            let name = if taken.contains(&name) { format!("input_{name}") } else { name };
            if !columns.iter().any(|c| c.name == name) {
                columns.push(Column::new(name, ty, Role::Input));
            }
        }
        for (name, ty) in verdict {
            if host.iter().any(|(h, _)| *h == name) {
                continue;
            }
            columns.push(Column::new(name.clone(), ty, Role::Verdict));
            columns.push(Column::new(format!("{name}_raw"), ColType::String, Role::Host));
        }
        for (name, ty) in host {
            columns.push(Column::new(name, ty, Role::Host));
        }
        columns.push(Column::new(EXTRA_COLUMN, ColType::Json, Role::Host));
        DeclaredSchema { columns, row_group_rows: None, inferred: false }
    }

    /// A schema whose columns are inferred from each file's rows (see [`DeclaredSchema::inferred`]).
    pub fn inferred() -> Self {
        DeclaredSchema { columns: Vec::new(), row_group_rows: None, inferred: true }
    }

    /// This schema with the row-group bound `rows` (`output.row_group_rows`).
    pub fn with_row_group_rows(mut self, rows: Option<usize>) -> Self {
        self.row_group_rows = rows;
        self
    }

    /// The stored schema of `output_folder`, if any.
    pub fn load(output_folder: &Path) -> Option<Self> {
        let text = std::fs::read(schema_path(output_folder)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn store(&self, output_folder: &Path) -> Result<(), crate::atomic::WriteError> {
        let text = serde_json::to_string_pretty(self).expect("schemas serialize") + "\n";
        crate::atomic::write_atomically(&schema_path(output_folder), text.as_bytes())
    }

    /// This schema with the input columns of `stored` (an earlier run's), so a resume, a shard
    /// or a merge writes what the first run declared.
    pub fn with_inputs_of(&self, stored: &DeclaredSchema) -> Self {
        if self.inferred || stored.inferred {
            return self.clone();
        }
        let inputs: Vec<Column> = stored.columns.iter().filter(|c| c.role == Role::Input).cloned().collect();
        let mut columns = inputs;
        columns.extend(self.columns.iter().filter(|c| c.role != Role::Input).cloned());
        DeclaredSchema { columns, ..self.clone() }
    }

    /// The input columns of the stored schema, else this one (`now`), stored when there was none.
    pub fn settle(self, output_folder: &Path) -> Self {
        let settled = match Self::load(output_folder) {
            Some(stored) => self.with_inputs_of(&stored),
            None => self,
        };
        if Self::load(output_folder).as_ref() != Some(&settled) {
            if let Err(e) = settled.store(output_folder) {
                tracing::warn!("cannot store the output schema in {}: {e}", output_folder.display());
            }
        }
        settled
    }

    pub fn arrow(&self) -> Schema {
        Schema::new(self.columns.iter().map(arrow_field).collect::<Vec<_>>())
    }

    /// A row fitted to the schema: every declared value converted for its column, anything that
    /// does not fit moved to `<field>_raw` or [`EXTRA_COLUMN`], never dropped.
    pub fn conform(&self, mut row: Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::with_capacity(self.columns.len());
        let mut extra = Map::new();
        for col in &self.columns {
            if col.name == EXTRA_COLUMN {
                continue;
            }
            let value = row.remove(&col.name);
            let Some(value) = value else { continue };
            match fit(&value, &col.ty) {
                Some(v) => {
                    out.insert(col.name.clone(), v);
                }
                None if col.role == Role::Verdict => {
                    let text = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.insert(format!("{}_raw", col.name), Value::String(text));
                }
                None => {
                    extra.insert(col.name.clone(), value);
                }
            }
        }
        if let Some(Value::String(earlier)) = row.remove(EXTRA_COLUMN) {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&earlier) {
                extra.extend(m);
            }
        }
        extra.extend(row);
        if !extra.is_empty() {
            out.insert(EXTRA_COLUMN.into(), Value::String(Value::Object(extra).to_string()));
        }
        out
    }

    /// A JSONL line fitted to the schema: the verdict fields and the host's columns get their
    /// declared types (a verdict value that does not fit goes to `<field>_raw`, another to
    /// [`EXTRA_COLUMN`]); the input fields stay exactly as the input had them (JSON has no
    /// column types of its own, and rows written before are kept as they were). A line leaves
    /// out the fields it has no value for. An inferred schema leaves the row as it is.
    pub fn conform_line(&self, mut row: Map<String, Value>) -> Map<String, Value> {
        if self.inferred {
            return row;
        }
        let mut extra = Map::new();
        for col in self.columns.iter().filter(|c| c.role != Role::Input && c.name != EXTRA_COLUMN) {
            let Some(value) = row.remove(&col.name) else { continue };
            match fit(&value, &col.ty) {
                Some(v) => {
                    row.insert(col.name.clone(), v);
                }
                None if col.role == Role::Verdict => {
                    let text = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    row.insert(format!("{}_raw", col.name), Value::String(text));
                }
                None => {
                    extra.insert(col.name.clone(), value);
                }
            }
        }
        if !extra.is_empty() {
            if let Some(Value::String(earlier)) = row.get(EXTRA_COLUMN) {
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(earlier) {
                    for (k, v) in m {
                        extra.entry(k).or_insert(v);
                    }
                }
            }
            row.insert(EXTRA_COLUMN.into(), Value::String(Value::Object(extra).to_string()));
        }
        row
    }

    /// The `features` of a dataset card's `dataset_info` (the Hugging Face YAML form), so
    /// `datasets` types every file alike, JSONL included.
    pub fn features(&self) -> Value {
        Value::Array(self.columns.iter().map(feature).collect())
    }

    /// The schema as a plain list for a dataset card (`name: type`).
    pub fn describe(&self) -> Vec<(String, String)> {
        self.columns.iter().map(|c| (c.name.clone(), type_name(&c.ty))).collect()
    }
}

fn type_name(t: &ColType) -> String {
    match t {
        ColType::Int64 => "int64".into(),
        ColType::Float64 => "float64".into(),
        ColType::Bool => "bool".into(),
        ColType::String => "string".into(),
        ColType::Json => "string (JSON text)".into(),
        ColType::List(item) => format!("list<{}>", type_name(item)),
        ColType::Struct(fields) => format!("struct<{}>", fields.iter().map(|f| format!("{}: {}", f.name, type_name(&f.ty))).collect::<Vec<_>>().join(", ")),
    }
}

fn feature(c: &Column) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(c.name.clone()));
    let (key, value) = feature_type(&c.ty);
    m.insert(key.into(), value);
    Value::Object(m)
}

/// A column type in the card's YAML form: `dtype: int64`, `list: <item>`, `struct: [fields]`.
fn feature_type(t: &ColType) -> (&'static str, Value) {
    let dtype = |s: &str| ("dtype", Value::String(s.into()));
    match t {
        ColType::Int64 => dtype("int64"),
        ColType::Float64 => dtype("float64"),
        ColType::Bool => dtype("bool"),
        ColType::String | ColType::Json => dtype("string"),
        ColType::List(item) => (
            "list",
            match feature_type(item) {
                ("dtype", v) => v,
                ("struct", fields) => fields,
                (key, v) => Value::Object(Map::from_iter([(key.to_string(), v)])),
            },
        ),
        ColType::Struct(fields) => ("struct", Value::Array(fields.iter().map(feature).collect())),
    }
}

fn arrow_type(t: &ColType) -> DataType {
    match t {
        ColType::Int64 => DataType::Int64,
        ColType::Float64 => DataType::Float64,
        ColType::Bool => DataType::Boolean,
        ColType::String | ColType::Json => DataType::Utf8,
        ColType::List(item) => DataType::List(Arc::new(Field::new("item", arrow_type(item), true))),
        ColType::Struct(fields) => DataType::Struct(Fields::from(fields.iter().map(arrow_field).collect::<Vec<_>>())),
    }
}

fn arrow_field(c: &Column) -> Field {
    Field::new(&c.name, arrow_type(&c.ty), true)
}

/// `value` as column type `ty` accepts it, or None when it does not fit. An integral float fits
/// an integer column (as the integer); an integer fits a float column.
pub fn fit(value: &Value, ty: &ColType) -> Option<Value> {
    if value.is_null() {
        return Some(Value::Null);
    }
    match (ty, value) {
        (ColType::Int64, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Some(Value::from(i))
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Value::from(f as i64))
            }
        }
        (ColType::Float64, Value::Number(n)) => n.as_f64().map(Value::from),
        (ColType::Bool, Value::Bool(_)) | (ColType::String, Value::String(_)) => Some(value.clone()),
        (ColType::Json, Value::String(_)) => Some(value.clone()),
        (ColType::Json, other) => Some(Value::String(other.to_string())),
        (ColType::List(item), Value::Array(items)) => items.iter().map(|v| fit(v, item)).collect::<Option<Vec<_>>>().map(Value::Array),
        (ColType::Struct(fields), Value::Object(m)) => {
            if m.keys().any(|k| !fields.iter().any(|f| f.name == *k)) {
                return None;
            }
            let mut out = Map::new();
            for f in fields {
                if let Some(v) = m.get(&f.name) {
                    out.insert(f.name.clone(), fit(v, &f.ty)?);
                }
            }
            Some(Value::Object(out))
        }
        _ => None,
    }
}

/// The column type of an inferred Arrow type (input columns); what has no type of its own
/// (all nulls, unions) is JSON text.
pub fn from_arrow(t: &DataType) -> ColType {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => ColType::Int64,
        DataType::UInt64 => ColType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColType::Float64,
        DataType::Boolean => ColType::Bool,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColType::String,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => match f.data_type() {
            DataType::Null => ColType::List(Box::new(ColType::Json)),
            other => ColType::List(Box::new(from_arrow(other))),
        },
        DataType::Struct(fields) if !fields.is_empty() => {
            ColType::Struct(fields.iter().map(|f| Column::new(f.name(), from_arrow(f.data_type()), Role::Host)).collect())
        }
        _ => ColType::Json,
    }
}

/// The input columns of `records` (in first-seen order), typed by inference over all of them.
pub fn infer_inputs(records: &[Map<String, Value>]) -> Vec<(String, ColType)> {
    let mut order: Vec<String> = Vec::new();
    for r in records {
        for k in r.keys() {
            if !order.contains(k) {
                order.push(k.clone());
            }
        }
    }
    let values: Vec<Value> = records.iter().map(|r| Value::Object(r.clone())).collect();
    let inferred = arrow_json::reader::infer_json_schema_from_iterator(values.iter().map(Ok)).ok();
    order
        .into_iter()
        .map(|name| {
            let ty = inferred.as_ref().and_then(|s| s.field_with_name(&name).ok()).map(|f| from_arrow(f.data_type())).unwrap_or(ColType::Json);
            (name, ty)
        })
        .collect()
}

/// The input columns of a Parquet file's own schema.
pub fn parquet_inputs(path: &Path) -> Option<Vec<(String, ColType)>> {
    let file = std::fs::File::open(path).ok()?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
    Some(builder.schema().fields().iter().map(|f| (f.name().clone(), from_arrow(f.data_type()))).collect())
}

/// A verdict field's type from its `checks` type and its default value: `integer` → int64,
/// `number` → float64, `string`, `boolean`, `array` (list of strings when the default is, else
/// JSON text), `object` → JSON text; without a check, from the default (a number → float64).
pub fn verdict_type(check: Option<&str>, default: Option<&Value>) -> ColType {
    let list_of = |d: Option<&Value>| match d {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => ColType::List(Box::new(ColType::String)),
        None => ColType::List(Box::new(ColType::String)),
        _ => ColType::Json,
    };
    match check {
        Some("integer") => ColType::Int64,
        Some("number") => ColType::Float64,
        Some("string") => ColType::String,
        Some("boolean") => ColType::Bool,
        Some("array") => list_of(default),
        Some("object") => ColType::Json,
        _ => match default {
            Some(Value::Number(_)) => ColType::Float64,
            Some(Value::String(_)) => ColType::String,
            Some(Value::Bool(_)) => ColType::Bool,
            Some(Value::Array(_)) => list_of(default),
            _ => ColType::Json,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> DeclaredSchema {
        DeclaredSchema::build(
            vec![("id".into(), ColType::String), ("score".into(), ColType::Int64)],
            vec![("score".into(), ColType::Int64), ("tags".into(), ColType::List(Box::new(ColType::String)))],
            vec![("api_status".into(), ColType::String)],
        )
    }

    #[test]
    fn the_task_files_row_group_rows_wins_over_the_variable_and_is_stored() {
        std::env::set_var("MODELCALL_ROW_GROUP_ROWS", "11");
        assert_eq!(RowsSchema::new(schema()).row_group_rows, 11);
        assert_eq!(RowsSchema::new(schema().with_row_group_rows(Some(5))).row_group_rows, 5);
        std::env::remove_var("MODELCALL_ROW_GROUP_ROWS");
        assert_eq!(RowsSchema::new(schema()).row_group_rows, DEFAULT_ROW_GROUP_ROWS);
        let dir = tempfile::tempdir().unwrap();
        let settled = schema().with_row_group_rows(Some(5)).settle(dir.path());
        assert_eq!(DeclaredSchema::load(dir.path()), Some(settled));
        // A schema stored before the key existed loads, with no bound of its own.
        std::fs::write(schema_path(dir.path()), r#"{"columns": [{"name": "id", "type": "string", "role": "input"}]}"#).unwrap();
        let old = DeclaredSchema::load(dir.path()).unwrap();
        assert_eq!((old.row_group_rows, old.inferred), (None, false));
        // A run whose parser declares no fields stores an inferred schema, with its bound.
        let next = DeclaredSchema::inferred().with_row_group_rows(Some(9)).settle(dir.path());
        assert!(next.inferred && next.row_group_rows == Some(9));
    }

    #[test]
    fn values_that_do_not_fit_go_to_raw_columns_never_change_a_type() {
        let s = schema();
        assert!(s.columns.iter().any(|c| c.name == "input_score"));
        let row = s.conform(json!({"id": "a", "score": 4.0, "tags": "en", "api_status": "success", "other": 1}).as_object().unwrap().clone());
        assert_eq!(row["score"], json!(4));
        assert_eq!(row["tags_raw"], json!("en"));
        assert!(row.get("tags").is_none());
        assert_eq!(row[EXTRA_COLUMN], json!("{\"other\":1}"));
        let row = s.conform(json!({"id": 5, "score": 3.5}).as_object().unwrap().clone());
        assert_eq!(row["score_raw"], json!("3.5"));
        assert_eq!(row[EXTRA_COLUMN], json!("{\"id\":5}"));
    }
}
