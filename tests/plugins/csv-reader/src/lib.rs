//! Reads raw CSV files (a header line, then one record per row; no quoting) and splits each
//! into records. A row whose field count differs from the header's is an item error at its
//! line (`ItemError::at_line`), and the other rows are kept. It prints a summary line per file
//! to stdout, which `modelcall plugin run` shows as the call's `output`, and a line to stderr
//! when an instance starts (`plugin run` shows it on its stderr).

use modelcall_plugin_sdk::preprocessor::{Input, ItemError, Outcome, Preprocessor};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_delimiter")]
    delimiter: String,
    /// At most this many rows per file (the rest are ignored).
    #[serde(default)]
    max_rows: Option<u32>,
}

fn default_delimiter() -> String {
    ",".into()
}

pub struct CsvReader {
    delimiter: char,
    max_rows: usize,
}

impl Preprocessor for CsvReader {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        let mut chars = cfg.delimiter.chars();
        let (Some(delimiter), None) = (chars.next(), chars.next()) else {
            return Err(Error::invalid_config(format!("`delimiter` must be one character, not {:?}", cfg.delimiter)));
        };
        // A rule of its own, beyond what the schema says.
        if delimiter.is_alphanumeric() {
            return Err(Error::invalid_config(format!("`delimiter` must not be a letter or a digit, not {delimiter:?}")));
        }
        eprintln!("csv-reader: ready (delimiter {delimiter:?})");
        Ok(CsvReader { delimiter, max_rows: cfg.max_rows.map_or(usize::MAX, |n| n as usize) })
    }

    fn config_schema() -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
                "max_rows": {"type": "integer", "minimum": 1}
            },
            "additionalProperties": false
        }))
    }

    fn process(&mut self, _ctx: &Context, input: Input) -> Result<Outcome, Error> {
        let Input::File { path, bytes } = input else {
            return Err(Error::unsupported("csv-reader reads raw CSV files, not records"));
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::invalid_input(format!("{path} is not UTF-8")))?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else { return Ok(Outcome::skip("an empty file")) };
        let columns: Vec<&str> = header.split(self.delimiter).map(str::trim).collect();
        let mut items = Vec::new();
        for (i, line) in lines.take(self.max_rows) {
            let fields: Vec<&str> = line.split(self.delimiter).map(str::trim).collect();
            if fields.len() != columns.len() {
                let e = Error::invalid_input(format!("{} fields, the header has {}", fields.len(), columns.len()));
                items.push(Err(ItemError::at_line(e, i + 1)));
                continue;
            }
            let record: serde_json::Map<String, Value> = columns.iter().zip(fields).map(|(c, f)| (c.to_string(), json!(f))).collect();
            items.push(Ok(Value::Object(record)));
        }
        let bad = items.iter().filter(|r| r.is_err()).count();
        println!("csv-reader: {path}: {} row(s), {bad} bad", items.len());
        Ok(Outcome::Items(items))
    }
}

modelcall_plugin_sdk::register_preprocessor!(CsvReader);
