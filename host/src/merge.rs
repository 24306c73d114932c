//! `jsonl_merge`: concatenate groups of JSONL files into one file per group, streaming.
//!
//! Unlike the reference, a missing input fails the task before anything is written (listing
//! every missing file), and lines that are not JSON objects or not UTF-8 are never silently
//! dropped: each goes to `<output stem>.bad_lines.jsonl` with its file, line and cause, and the
//! summary counts them. Outputs are written under a temporary name and renamed when complete,
//! so a killed merge never leaves a partial file behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use modelcall_config::distill::{JsonlMerge, MergeConfig};
use modelcall_io::SourceItem;
use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct GroupReport {
    pub name: String,
    pub output: PathBuf,
    pub records: u64,
    pub bad_lines: u64,
    pub duplicates_dropped: u64,
}

/// Merges one group. `dedup_key`: keep only the first record of each value of this field.
pub fn merge_group(name: &str, inputs: &[PathBuf], output: &Path, dedup_key: Option<&str>) -> anyhow::Result<GroupReport> {
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let stem = output.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = stem.strip_suffix(".jsonl").unwrap_or(&stem).to_string();
    let tmp = output.with_file_name(format!(".{stem}.jsonl.tmp-{}", std::process::id()));
    let bad_path = output.with_file_name(format!("{stem}.bad_lines.jsonl"));
    let bad_tmp = output.with_file_name(format!(".{stem}.bad_lines.jsonl.tmp-{}", std::process::id()));
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    let mut bad = BufWriter::new(std::fs::File::create(&bad_tmp)?);
    let mut report = GroupReport { name: name.to_string(), output: output.to_path_buf(), ..Default::default() };
    let mut seen = modelcall_io::KeySet::default();
    for input in inputs {
        for item in modelcall_io::open_source(input)? {
            match item? {
                SourceItem::Record { record, .. } => {
                    if let Some(field) = dedup_key {
                        let key = match record.get(field) {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => Value::Object(record.clone()).to_string(),
                        };
                        if !seen.insert(&key) {
                            report.duplicates_dropped += 1;
                            continue;
                        }
                    }
                    serde_json::to_writer(&mut out, &record)?;
                    out.write_all(b"\n")?;
                    report.records += 1;
                }
                SourceItem::Bad { line, cause, raw_excerpt } => {
                    report.bad_lines += 1;
                    let row = json!({"group": name, "file": input.display().to_string(), "line": line, "cause": cause.as_str(), "message": cause.to_string(), "raw_excerpt": raw_excerpt});
                    serde_json::to_writer(&mut bad, &row)?;
                    bad.write_all(b"\n")?;
                }
            }
        }
    }
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, output)?;
    let b = bad.into_inner().map_err(|e| e.into_error())?;
    b.sync_all()?;
    if report.bad_lines > 0 {
        std::fs::rename(&bad_tmp, &bad_path)?;
    } else {
        std::fs::remove_file(&bad_tmp)?;
        let _ = std::fs::remove_file(&bad_path);
    }
    Ok(report)
}

/// Runs the `jsonl_merge` step of a task.
pub fn run(task_file: &Path, step: &JsonlMerge, dedup_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = match MergeConfig::load(&step.merge_config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let groups = match config.select(&step.merge_groups) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {}: distillation.merge_groups: {e}", task_file.display());
            return Ok(ExitCode::from(2));
        }
    };
    // Every input of every selected group must exist before anything is written.
    let missing: Vec<String> = groups
        .iter()
        .flat_map(|g| g.input_files.iter().map(move |f| (g, f)))
        .filter(|(_, f)| !step.base_input_dir.join(f).is_file())
        .map(|(g, f)| format!("  {} (group `{}`)", step.base_input_dir.join(f).display(), g.name))
        .collect();
    if !missing.is_empty() {
        eprintln!("error: {}: {} input file(s) of the merge are missing; nothing was written:\n{}", task_file.display(), missing.len(), missing.join("\n"));
        return Ok(ExitCode::from(2));
    }
    let mut total_bad = 0;
    for g in groups {
        let inputs: Vec<PathBuf> = g.input_files.iter().map(|f| step.base_input_dir.join(f)).collect();
        let output = step.base_output_dir.join(&g.output_file);
        let r = merge_group(&g.name, &inputs, &output, dedup_key)?;
        total_bad += r.bad_lines;
        eprintln!(
            "merged `{}`: {} file(s) → {} record(s) in {}{}{}",
            r.name,
            inputs.len(),
            r.records,
            r.output.display(),
            if r.bad_lines > 0 { format!("; {} bad line(s) in {}.bad_lines.jsonl", r.bad_lines, r.output.with_extension("").display()) } else { String::new() },
            if r.duplicates_dropped > 0 { format!("; {} duplicate(s) dropped", r.duplicates_dropped) } else { String::new() },
        );
    }
    if total_bad > 0 {
        eprintln!("note: {total_bad} line(s) were not records; they are listed with file, line and cause beside the outputs");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_order_reports_bad_lines_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        std::fs::write(&a, "{\"id\":1}\n{oops\n{\"id\":2}\n").unwrap();
        std::fs::write(&b, b"{\"id\":2}\n{\"id\":\"caf\xe9\"}\n{\"id\":3}\n".to_vec()).unwrap();
        let out = dir.path().join("out/m.jsonl");
        let r = merge_group("g", &[a.clone(), b.clone()], &out, None).unwrap();
        assert_eq!((r.records, r.bad_lines), (4, 2));
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>(), vec!["{\"id\":1}", "{\"id\":2}", "{\"id\":2}", "{\"id\":3}"]);
        let bad = std::fs::read_to_string(dir.path().join("out/m.bad_lines.jsonl")).unwrap();
        assert!(bad.contains("a.jsonl") && bad.contains("\"line\":2") && bad.contains("invalid_utf8"), "{bad}");
        let r = merge_group("g", &[a, b], &out, Some("id")).unwrap();
        assert_eq!((r.records, r.duplicates_dropped), (3, 1));
    }
}
