//! The dataset card (`README.md`) of an output folder, so `datasets.load_dataset(folder)` reads
//! exactly the data files (its YAML `configs:` lists them; error files, summaries and the state
//! folder are left out) and a reader sees the schema, the counts and what made the data.
//!
//! A `README.md` that modelcall did not write is never replaced.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::OutputFormat;
use crate::sink::schema::DeclaredSchema;

/// The first line of every card modelcall writes (how it knows it may replace it).
pub const CARD_MARKER: &str = "<!-- dataset card written by modelcall; rewritten at the end of every run -->";

/// The data files at the top of `folder`: outputs of `format`, not error files, not shard files.
pub fn data_files(folder: &Path, format: OutputFormat) -> Vec<PathBuf> {
    let ext = match format {
        OutputFormat::Parquet => ".parquet",
        OutputFormat::Jsonl => ".jsonl",
    };
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            name.ends_with(ext) && !name.starts_with('.') && !name.contains(".shard-") && !is_not_data(&name)
        })
        .collect();
    files.sort();
    files
}

/// Files beside the data that are not data: error files, bad lines, and generation's retry
/// archives (`<B>_error_retry_N.jsonl`, `<B>_success_retry_N.jsonl`, copies of earlier outputs).
fn is_not_data(name: &str) -> bool {
    let stem = name.strip_suffix(".jsonl").unwrap_or(name);
    let retry_archive =
        stem.rsplit_once("_retry_").is_some_and(|(base, n)| (base.ends_with("_error") || base.ends_with("_success")) && n.parse::<u32>().is_ok());
    name.ends_with(".errors.jsonl") || name.ends_with("_error.jsonl") || name.ends_with(".bad_lines.jsonl") || retry_archive
}

fn rows_in(path: &Path) -> u64 {
    if path.extension().is_some_and(|e| e == "parquet") {
        let Ok(file) = std::fs::File::open(path) else { return 0 };
        return parquet::file::reader::SerializedFileReader::new(file)
            .map(|r| parquet::file::reader::FileReader::metadata(&r).file_metadata().num_rows() as u64)
            .unwrap_or(0);
    }
    std::fs::read(path).map(|b| b.split(|c| *c == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count() as u64).unwrap_or(0)
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Writes `<folder>/README.md` for the data files of `format` in `folder`. `made_with` holds
/// short facts (`model`, `prompt`, `task`…) shown in the card. Returns whether a card was
/// written (not when the folder has no data file, or a README of someone else's is there).
pub fn write_card(folder: &Path, format: OutputFormat, title: &str, made_with: &[(&str, String)]) -> std::io::Result<bool> {
    let card = folder.join("README.md");
    if let Ok(existing) = std::fs::read_to_string(&card) {
        if !existing.starts_with(CARD_MARKER) && !existing.contains(&format!("\n{CARD_MARKER}")) {
            return Ok(false);
        }
    }
    let files = data_files(folder, format);
    let counted: Vec<(String, u64)> = files.iter().map(|f| (f.file_name().unwrap().to_string_lossy().to_string(), rows_in(f))).collect();
    // A file with no rows (every record of its input failed) is left out: `datasets` cannot
    // read a 0-row Parquet file (its batch size would be 0), nor type an empty JSONL one.
    let listed: Vec<&(String, u64)> = counted.iter().filter(|(_, n)| *n > 0).collect();
    if listed.is_empty() {
        return Ok(false);
    }
    let schema = DeclaredSchema::load(folder).filter(|s| !s.inferred && !s.columns.is_empty());
    let mut text = String::new();
    text.push_str("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path:\n");
    for (name, _) in &listed {
        text.push_str(&format!("    - {}\n", quote(name)));
    }
    if let Some(schema) = &schema {
        // The declared types, so `datasets` reads every file alike (JSON text has no types of
        // its own). JSON flow style is YAML.
        text.push_str(&format!("dataset_info:\n  features: {}\n", schema.features()));
    }
    text.push_str("---\n");
    text.push_str(CARD_MARKER);
    text.push('\n');
    text.push_str(&format!("\n# {title}\n\nWritten by modelcall {}. Load it with `datasets.load_dataset(\"<this folder>\")`, or read the data files below with pandas, pyarrow or polars.\n", env!("CARGO_PKG_VERSION")));
    let total: u64 = counted.iter().map(|(_, n)| n).sum();
    text.push_str(&format!("\n## Data files ({total} rows)\n\n| file | rows |\n|---|---|\n"));
    for (name, n) in &counted {
        let note = if *n == 0 { " (no rows: every record failed; not listed in `configs:`)" } else { "" };
        text.push_str(&format!("| `{name}` | {n}{note} |\n"));
    }
    if let Some(schema) = &schema {
        let every = match format {
            OutputFormat::Parquet => "Every data file has exactly this schema",
            OutputFormat::Jsonl => "Every verdict and host field of every line of every data file has this type, and the input fields are as the input had them (a line leaves out a field it has no value for; read with these types, as `datasets` does from this card, every file has every column)",
        };
        text.push_str(&format!("\n## Schema\n\n{every} (declared before the first row; every column is nullable). A verdict value that does not fit its column is kept, as text, in `<field>_raw`; other values that fit no column are in `extra_json`, a JSON object.\n\n| column | type |\n|---|---|\n"));
        for (name, ty) in schema.describe() {
            text.push_str(&format!("| `{name}` | {ty} |\n"));
        }
    }
    if !made_with.is_empty() {
        text.push_str("\n## Made with\n\n");
        for (k, v) in made_with {
            text.push_str(&format!("- {k}: `{v}`\n"));
        }
    }
    text.push_str("\n## Not data\n\nFailed records are in the error files (`<stem>.errors.jsonl`, or `<stem>_error.jsonl` for generation; written only when a record failed), the run's counts in `run_summary.json`, and the run's state (journals, shard files, the schema) under `.modelcall/`. The `configs:` above leave them out.\n");
    crate::atomic::write_atomically(&card, text.as_bytes()).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::schema::ColType;

    #[test]
    fn the_card_lists_only_data_files_with_the_declared_features() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, text) in [
            ("a.jsonl", "{\"id\":\"x\",\"tags\":[\"t\"]}\n{\"id\":\"y\"}\n"),
            ("empty.jsonl", ""),
            ("a_error.jsonl", "{\"id\":\"z\"}\n"),
            ("a_error_retry_1.jsonl", "{\"id\":\"z\"}\n"),
            ("a_success_retry_1.jsonl", "{\"id\":\"x\"}\n"),
            ("b.errors.jsonl", "{\"id\":\"z\"}\n"),
            ("m.bad_lines.jsonl", "{\"line\":1}\n"),
        ] {
            std::fs::write(d.join(name), text).unwrap();
        }
        let schema = DeclaredSchema::build(vec![("id".into(), ColType::String)], vec![("tags".into(), ColType::List(Box::new(ColType::String)))], vec![]);
        schema.store(d).unwrap();
        assert!(write_card(d, OutputFormat::Jsonl, "t", &[("model", "m".into())]).unwrap());
        let card = std::fs::read_to_string(d.join("README.md")).unwrap();
        let front = card.split("\n---\n").next().unwrap();
        assert!(front.contains("    - \"a.jsonl\"\n"), "{card}");
        for not_data in ["empty.jsonl", "a_error", "retry", "errors.jsonl", "bad_lines"] {
            assert!(!front.contains(not_data), "{not_data} listed: {card}");
        }
        assert!(front.contains("{\"list\":\"string\",\"name\":\"tags\"}") || front.contains("{\"name\":\"tags\",\"list\":\"string\"}"), "{card}");
        assert!(card.contains("| `a.jsonl` | 2 |") && card.contains("| `tags_raw` | string |"), "{card}");
        // Someone else's README is never replaced.
        std::fs::write(d.join("README.md"), "# mine\n").unwrap();
        assert!(!write_card(d, OutputFormat::Jsonl, "t", &[]).unwrap());
        assert_eq!(std::fs::read_to_string(d.join("README.md")).unwrap(), "# mine\n");
    }
}
