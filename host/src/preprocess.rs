//! The preprocessing stage: raw files (e.g. Repomix/RenderGit packs) or records go through a
//! preprocessor plugin, and the records it keeps are written to one JSONL file per group
//! (the record's `language`, as the reference wrote one file per language) in the
//! preprocess output folder, which the scoring stage then reads.
//!
//! Exactly once, like scoring: every input (a file's relative path, or a record's key) gets one
//! journal entry holding the records it produced; a resumed run skips inputs already done and
//! the group files are rebuilt from the journal, atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use modelcall_io::{EntryStatus, Journal, JournalEntry, KeyAssigner, SourceItem};
use modelcall_plugin_host::{Plugin, PreprocessInput, PreprocessOutcome};
use serde_json::{json, Map, Value};

use crate::plugin_pool::PluginPool;

pub struct PreprocessPlan {
    pub plugin: Plugin,
    /// Raw files (`true`, e.g. repo-xml) or JSONL/Parquet records (`false`).
    pub file_mode: bool,
    pub input_root: PathBuf,
    pub output_folder: PathBuf,
    /// Only these top-level folders (languages), when given.
    pub languages: Option<Vec<String>>,
    /// Only raw files whose name matches this glob (e.g. `*.cxml` for RenderGit packs).
    pub file_pattern: Option<String>,
    /// At most this many inputs (debug / `preprocess.num_files`).
    pub max_inputs: Option<usize>,
    pub id_field: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn triplet_file_names_group_by_exact_language() {
        assert_eq!(super::group_for_stem("pt_data_C_part01"), "C");
        assert_eq!(super::group_for_stem("pt_data_C_sharp_part02"), "C_sharp");
        assert_eq!(super::group_for_stem("pt_data_Go"), "Go");
        assert_eq!(super::group_for_stem("english_texts"), "english_texts");
    }
}

#[derive(Debug, Default)]
pub struct PreprocessSummary {
    pub inputs_done_before: u64,
    pub inputs_processed: u64,
    pub inputs_failed: u64,
    pub inputs_skipped: u64,
    pub records: u64,
    pub files: Vec<PathBuf>,
    pub errors_file: PathBuf,
}

/// Raw input files under `root`, sorted, relative paths with `/`.
fn list_raw_files(root: &Path, languages: &Option<Vec<String>>) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                if let Some(langs) = languages {
                    let top = rel.split('/').next().unwrap_or("");
                    if !rel.contains('/') || !langs.iter().any(|l| l == top) {
                        continue;
                    }
                }
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The output group of a record file: the language of the reference's triplet files
/// (`pt_data_<Lang>_partNN` → `<Lang>`, `pt_data_<Lang>` → `<Lang>`), else the file's stem.
/// Parsed per file name, so `C` and `C_sharp` stay apart.
pub fn group_for_stem(stem: &str) -> String {
    match stem.strip_prefix("pt_data_") {
        Some(rest) => match rest.rfind("_part") {
            Some(i) if rest[i + 5..].chars().all(|c| c.is_ascii_digit()) => rest[..i].to_string(),
            _ => rest.to_string(),
        },
        None => stem.to_string(),
    }
}

fn group_of(records: &[Value], fallback: &str) -> String {
    records
        .iter()
        .find_map(|r| r.get("language").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string))
        .unwrap_or_else(|| fallback.to_string())
}

enum Work {
    File { rel: String, path: PathBuf },
    Record { key: String, group: String, record: Map<String, Value> },
}

pub async fn run(plan: PreprocessPlan, pool: PluginPool, show_progress: bool) -> anyhow::Result<PreprocessSummary> {
    let journal_path = plan.output_folder.join(".modelcall").join("preprocess.journal.jsonl");
    let (journal, state) = Journal::open(&journal_path, Duration::from_millis(200))
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", journal_path.display()))?;
    let mut summary = PreprocessSummary::default();

    // What to process, minus what an earlier run finished.
    let mut work = Vec::new();
    if plan.file_mode {
        for (rel, path) in list_raw_files(&plan.input_root, &plan.languages)? {
            let name = rel.rsplit('/').next().unwrap_or(&rel);
            if plan.file_pattern.as_deref().is_some_and(|g| !modelcall_io::source::glob_match(g, name)) {
                continue;
            }
            if state.done_ok.contains(&rel) {
                summary.inputs_done_before += 1;
            } else {
                work.push(Work::File { rel, path });
            }
        }
    } else {
        for file in modelcall_io::list_input_files(&plan.input_root, plan.file_pattern.as_deref())? {
            let stem = crate::scoring::pipeline::input_stem(&file);
            let group = group_for_stem(&stem);
            let mut keys = KeyAssigner::new(plan.id_field.clone());
            for item in modelcall_io::open_source(&file)? {
                match item? {
                    SourceItem::Record { record, .. } => {
                        let key = format!("{stem}/{}", keys.key_for(&record));
                        if state.done_ok.contains(&key) {
                            summary.inputs_done_before += 1;
                        } else {
                            work.push(Work::Record { key, group: group.clone(), record });
                        }
                    }
                    SourceItem::Bad { line, cause, raw_excerpt } => {
                        let key = format!("{stem}/bad-line:{line}");
                        let row = json!({"file": file.display().to_string(), "line": line, "cause": cause.as_str(), "message": cause.to_string(), "raw_excerpt": raw_excerpt});
                        journal.append(JournalEntry { key, status: EntryStatus::Error, row: row.as_object().cloned().unwrap_or_default() })?;
                        summary.inputs_failed += 1;
                    }
                }
            }
        }
    }
    if let Some(max) = plan.max_inputs {
        work.truncate(max);
    }
    let total = work.len();
    if show_progress {
        eprintln!("preprocessing {total} input(s) with {} ({} already done)", plan.plugin.info().source, summary.inputs_done_before);
    }

    let plugin = Arc::new(plan.plugin.clone());
    let mut results = futures::stream::iter(work.into_iter().map(|w| {
        let plugin = plugin.clone();
        let pool = pool.clone();
        async move {
            match w {
                Work::File { rel, path } => {
                    let bytes = tokio::fs::read(&path).await;
                    let key = rel.clone();
                    let fallback = rel.split('/').next().filter(|_| rel.contains('/')).unwrap_or("preprocessed").to_string();
                    let outcome = match bytes {
                        Ok(bytes) => pool
                            .run(move || plugin.preprocess(&rel, 1, PreprocessInput::File { path: rel.clone(), bytes }))
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                    };
                    (key, fallback, outcome)
                }
                Work::Record { key, group, record } => {
                    let json = Value::Object(record).to_string();
                    let k = key.clone();
                    let outcome = pool.run(move || plugin.preprocess(&k, 1, PreprocessInput::Record(json))).await.map_err(|e| e.to_string());
                    (key, group, outcome)
                }
            }
        }
    }))
    .buffer_unordered(pool.threads() * 2);

    let mut fatal = None;
    let group_by_language = plan.file_mode;
    while let Some((key, fallback, outcome)) = results.next().await {
        let entry = match outcome {
            Ok(Ok(PreprocessOutcome::Keep(records))) => {
                let records: Vec<Value> = records.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
                summary.inputs_processed += 1;
                summary.records += records.len() as u64;
                // Packs group by language (the reference's <Language> files); records by input file.
                let group = if group_by_language { group_of(&records, &fallback) } else { fallback };
                JournalEntry { key, status: EntryStatus::Ok, row: json!({"group": group, "records": records}).as_object().cloned().unwrap_or_default() }
            }
            Ok(Ok(PreprocessOutcome::Skip(reason))) => {
                summary.inputs_skipped += 1;
                JournalEntry { key, status: EntryStatus::Ok, row: json!({"group": fallback, "records": [], "skipped": reason}).as_object().cloned().unwrap_or_default() }
            }
            Ok(Err(e)) if e.is_fatal() => {
                fatal = Some(e.to_string());
                break;
            }
            Ok(Err(e)) => {
                summary.inputs_failed += 1;
                JournalEntry { key: key.clone(), status: EntryStatus::Error, row: json!({"input": key, "cause": e.cause(), "message": e.to_string()}).as_object().cloned().unwrap_or_default() }
            }
            Err(host) => {
                summary.inputs_failed += 1;
                JournalEntry { key: key.clone(), status: EntryStatus::Error, row: json!({"input": key, "cause": "host_error", "message": host}).as_object().cloned().unwrap_or_default() }
            }
        };
        journal.append(entry)?;
    }
    drop(results);
    journal.close().map_err(|e| anyhow::anyhow!("closing {}: {e}", journal_path.display()))?;
    if let Some(message) = fatal {
        anyhow::bail!("preprocessing stopped: {message}");
    }
    let errors_file = plan.output_folder.join("preprocess.errors.jsonl");
    let (jp, out, ef) = (journal_path.clone(), plan.output_folder.clone(), errors_file.clone());
    let grouped = tokio::task::spawn_blocking(move || modelcall_io::finalize_grouped(&jp, &out, &ef)).await??;
    summary.files = grouped.files;
    summary.files.sort();
    summary.errors_file = errors_file;
    Ok(summary)
}
