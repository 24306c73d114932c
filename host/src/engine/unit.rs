//! A unit of work: the inputs whose results end in one set of output files (an input file for
//! scoring, a language group for preprocessing, a dataset split for conversion, a merge group).

use std::path::PathBuf;

use modelcall_io::{FilePaths, OutputFormat, RecordsTarget, Slice};

/// What a unit reads.
#[derive(Debug, Clone)]
pub enum UnitInputs {
    /// JSONL/Parquet files read as records, in this order.
    Records(Vec<PathBuf>),
    /// Raw files handed whole to a file preprocessor; keys are their paths relative to `root`.
    RawFiles { root: PathBuf, files: Vec<PathBuf> },
    /// One shard's piece of a record file; `ordinal` is the piece's place in the file (so
    /// input-order positions stay ordered across pieces when shards are merged).
    RecordSlice { file: PathBuf, slice: Slice, ordinal: usize },
}

impl UnitInputs {
    /// The files the unit reads.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            UnitInputs::Records(f) => f.clone(),
            UnitInputs::RawFiles { files, .. } => files.clone(),
            UnitInputs::RecordSlice { file, .. } => vec![file.clone()],
        }
    }
}

/// How a unit's journal becomes its output files.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// One row per key (Parquet or JSONL) and an error file; `ordered` writes JSONL rows in
    /// input order instead of completion order.
    Rows { format: OutputFormat, ordered: bool },
    /// Records (0..n per input) to one file per group or one file in all.
    Records(RecordsTarget),
}

#[derive(Debug, Clone)]
pub struct Unit {
    /// The group name (records produced without a group of their own land in it) and the
    /// label used in messages.
    pub name: String,
    pub inputs: UnitInputs,
    pub paths: FilePaths,
    pub sink: SinkKind,
}

impl Unit {
    /// The inputs as one display string for summaries and error rows.
    pub fn input_label(&self) -> String {
        let files = match &self.inputs {
            UnitInputs::Records(f) => f,
            UnitInputs::RawFiles { root, .. } => return root.display().to_string(),
            UnitInputs::RecordSlice { file, slice: Slice::Bytes { start, end }, .. } => return format!("{} [bytes {start}..{end}]", file.display()),
            UnitInputs::RecordSlice { file, slice: Slice::RowGroups { start, end }, .. } => return format!("{} [row groups {start}..{end}]", file.display()),
            UnitInputs::RecordSlice { file, .. } => return file.display().to_string(),
        };
        match files.as_slice() {
            [one] => one.display().to_string(),
            many => many.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
        }
    }

    /// Whether rows need their input position (ordered outputs).
    pub fn ordered(&self) -> bool {
        matches!(self.sink, SinkKind::Rows { ordered: true, .. } | SinkKind::Records(RecordsTarget::File { ordered: true, .. }))
    }
}

/// The declared schema of a row output (`<out>/.modelcall/schema.json`, stored by the task
/// before its first row), for the unit whose files are `paths`; None when the task declared none
/// (a folder written before schemas: each Parquet file's schema is then inferred from its rows,
/// JSONL rows are written as they are).
pub fn declared_schema(paths: &FilePaths, _format: OutputFormat) -> Option<modelcall_io::sink::RowsSchema> {
    // The journal is `<out>/.modelcall/<stem>.journal.jsonl`.
    let folder = paths.journal.parent()?.parent()?;
    modelcall_io::sink::DeclaredSchema::load(folder).map(modelcall_io::sink::RowsSchema::new)
}
