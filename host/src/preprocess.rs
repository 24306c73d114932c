//! The preprocessing stage: raw files (e.g. Repomix/RenderGit packs) or records go through a
//! preprocessor plugin, and the records it keeps are written to one JSONL file per group (the
//! language folder of packs, as the reference wrote one file per language; the language of
//! `pt_data_<Lang>` triplet files; else the input file) in the preprocess output folder.
//!
//! Groups are processed one after another and each group file is handed to the scoring stage
//! as soon as it is complete, so scoring runs while later groups are still being preprocessed.
//!
//! Exactly once, like scoring: every input (a file's relative path, or a record's key) gets one
//! entry in its group's journal holding the records it produced; a resumed run skips inputs
//! already done and each group file is rebuilt from its journal, atomically.

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
    /// Per-group error files that hold at least one failed input.
    pub errors_files: Vec<PathBuf>,
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


enum Work {
    File { rel: String, path: PathBuf },
    Record { key: String, group: String, record: Map<String, Value> },
}

/// Inputs of one output group, in order.
enum GroupInputs {
    Files(Vec<(String, PathBuf)>),
    RecordFiles(Vec<PathBuf>),
}

/// What the lazy input stream yields for one group.
enum Item {
    Work(Work),
    AlreadyDone,
    Bad(JournalEntry),
}

type Outcome = (String, String, Result<Result<PreprocessOutcome, modelcall_plugin_host::CallError>, String>);

/// Runs the stage group by group (a language folder of packs, or the record files of one
/// group); each group's file is finalized as soon as its inputs are done and, when `ready` is
/// given, handed to the scoring stage at once, so scoring runs while later groups are still
/// being preprocessed. Each group has its own journal, so finalizing a group reads only its own
/// results.
pub async fn run(
    plan: PreprocessPlan,
    pool: PluginPool,
    show_progress: bool,
    ready: Option<tokio::sync::mpsc::UnboundedSender<PathBuf>>,
) -> anyhow::Result<PreprocessSummary> {
    let mut summary = PreprocessSummary::default();
    // Group the inputs, keeping their order.
    let mut groups: Vec<(String, GroupInputs)> = Vec::new();
    if plan.file_mode {
        for (rel, path) in list_raw_files(&plan.input_root, &plan.languages)? {
            let name = rel.rsplit('/').next().unwrap_or(&rel);
            if plan.file_pattern.as_deref().is_some_and(|g| !modelcall_io::source::glob_match(g, name)) {
                continue;
            }
            let group = if rel.contains('/') { rel.split('/').next().unwrap_or("preprocessed").to_string() } else { "preprocessed".to_string() };
            match groups.last_mut() {
                Some((g, GroupInputs::Files(files))) if *g == group => files.push((rel, path)),
                _ => groups.push((group, GroupInputs::Files(vec![(rel, path)]))),
            }
        }
    } else {
        for file in modelcall_io::list_input_files(&plan.input_root, plan.file_pattern.as_deref())? {
            let group = group_for_stem(&crate::scoring::pipeline::input_stem(&file));
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, GroupInputs::RecordFiles(files))) => files.push(file),
                _ => groups.push((group, GroupInputs::RecordFiles(vec![file]))),
            }
        }
    }
    if show_progress {
        eprintln!("preprocessing {} group(s) with {}", groups.len(), plan.plugin.info().source);
    }

    let plugin = Arc::new(plan.plugin.clone());
    let mut budget = plan.max_inputs.unwrap_or(usize::MAX);
    for (group, inputs) in groups {
        let stem = modelcall_io::grouped::group_file_stem(&group);
        let journal_path = plan.output_folder.join(".modelcall").join(format!("preprocess-{stem}.journal.jsonl"));
        let (journal, state) = Journal::open(&journal_path, Duration::from_millis(200))
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", journal_path.display()))?;
        let state = Arc::new(state);
        let id_field = plan.id_field.clone();
        let items: Box<dyn Iterator<Item = anyhow::Result<Item>> + Send> = match inputs {
            GroupInputs::Files(files) => {
                let state = state.clone();
                Box::new(files.into_iter().map(move |(rel, path)| {
                    Ok(if state.done_ok.contains(&rel) { Item::AlreadyDone } else { Item::Work(Work::File { rel, path }) })
                }))
            }
            GroupInputs::RecordFiles(files) => {
                let state = state.clone();
                let group = group.clone();
                Box::new(files.into_iter().flat_map(move |file| {
                    let stem = crate::scoring::pipeline::input_stem(&file);
                    let mut keys = KeyAssigner::new(id_field.clone());
                    let state = state.clone();
                    let group = group.clone();
                    let source: Box<dyn Iterator<Item = anyhow::Result<Item>> + Send> = match modelcall_io::open_source(&file) {
                        Err(e) => Box::new(std::iter::once(Err(anyhow::anyhow!(e)))),
                        Ok(src) => Box::new(src.map(move |item| {
                            Ok(match item? {
                                SourceItem::Record { record, .. } => {
                                    let key = format!("{stem}/{}", keys.key_for(&record));
                                    if state.done_ok.contains(&key) {
                                        Item::AlreadyDone
                                    } else {
                                        Item::Work(Work::Record { key, group: group.clone(), record })
                                    }
                                }
                                SourceItem::Bad { line, cause, raw_excerpt } => {
                                    let row = json!({"file": file.display().to_string(), "line": line, "cause": cause.as_str(), "message": cause.to_string(), "raw_excerpt": raw_excerpt});
                                    Item::Bad(JournalEntry { key: format!("{stem}/bad-line:{line}"), status: EntryStatus::Error, row: row.as_object().cloned().unwrap_or_default() })
                                }
                            })
                        })),
                    };
                    source
                }))
            }
        };
        // Inputs already done or bad lines are accounted for on the way; the budget counts work.
        let mut pending: Vec<JournalEntry> = Vec::new();
        let mut source_error = None;
        let (mut done_before, mut bad_lines) = (0u64, 0u64);
        let mut lazy = items;
        let mut results = futures::stream::iter(std::iter::from_fn(|| loop {
            if budget == 0 {
                return None;
            }
            match lazy.next()? {
                Ok(Item::Work(w)) => {
                    budget -= 1;
                    return Some(w);
                }
                Ok(Item::AlreadyDone) => done_before += 1,
                Ok(Item::Bad(entry)) => {
                    bad_lines += 1;
                    pending.push(entry);
                }
                Err(e) => {
                    source_error = Some(e);
                    return None;
                }
            }
        }))
        .map(|w| run_one(plugin.clone(), pool.clone(), w))
        .buffer_unordered(pool.threads() * 2);
        let mut fatal = None;
        while let Some((key, fallback, outcome)) = results.next().await {
            let entry = match outcome {
                Ok(Ok(PreprocessOutcome::Keep(records))) => {
                    let records: Vec<Value> = records.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
                    summary.inputs_processed += 1;
                    summary.records += records.len() as u64;
                    JournalEntry { key, status: EntryStatus::Ok, row: json!({"group": fallback, "records": records}).as_object().cloned().unwrap_or_default() }
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
        summary.inputs_done_before += done_before;
        summary.inputs_failed += bad_lines;
        for entry in pending {
            journal.append(entry)?;
        }
        journal.close().map_err(|e| anyhow::anyhow!("closing {}: {e}", journal_path.display()))?;
        if let Some(message) = fatal {
            anyhow::bail!("preprocessing stopped: {message}");
        }
        if let Some(e) = source_error {
            return Err(e.context(format!("reading the inputs of group `{group}`")));
        }
        let errors_file = plan.output_folder.join(format!("{stem}.preprocess.errors.jsonl"));
        let (jp, out, ef) = (journal_path.clone(), plan.output_folder.clone(), errors_file.clone());
        let grouped = tokio::task::spawn_blocking(move || modelcall_io::finalize_grouped(&jp, &out, &ef)).await??;
        if grouped.errors > 0 {
            summary.errors_files.push(errors_file);
        }
        for file in grouped.files {
            if let Some(tx) = &ready {
                let _ = tx.send(file.clone());
            }
            summary.files.push(file);
        }
    }
    Ok(summary)
}

async fn run_one(plugin: Arc<Plugin>, pool: PluginPool, w: Work) -> Outcome {
    match w {
        Work::File { rel, path } => {
            let bytes = tokio::fs::read(&path).await;
            let key = rel.clone();
            let group = rel.split('/').next().filter(|_| rel.contains('/')).unwrap_or("preprocessed").to_string();
            let outcome = match bytes {
                Ok(bytes) => pool
                    .run(move || plugin.preprocess(&rel, 1, PreprocessInput::File { path: rel.clone(), bytes }))
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            };
            (key, group, outcome)
        }
        Work::Record { key, group, record } => {
            let json = Value::Object(record).to_string();
            let k = key.clone();
            let outcome = pool.run(move || plugin.preprocess(&k, 1, PreprocessInput::Record(json))).await.map_err(|e| e.to_string());
            (key, group, outcome)
        }
    }
}
