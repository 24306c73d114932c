//! What `plugin dev` prints for each sampled record: the record, what the preprocessor made of
//! it, the prompt, the reply and the verdict, or the typed error where the chain stopped.
//!
//! The reply and the verdict are the sample run's own rows (its output and error files). The
//! preprocessor's outcome and the prompt are computed again here by the same plugins with the
//! same config (plugins are pure functions of config, record and call context), since a run
//! keeps neither.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use modelcall_config::{LoadedTask, PluginRef, RunPlan, ScoringPlan};
use modelcall_plugin_host::{ChatRole, Limits, Plugin, PluginRuntime, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Role};
use serde_json::Value;

/// The sample a dev run reads.
pub(super) struct Sample {
    /// What the derived task reads (a file or a folder under the scratch folder).
    pub input: PathBuf,
    pub items: Vec<Item>,
}

impl Sample {
    pub fn records(&self) -> usize {
        self.items.len()
    }
}

/// One sampled input: a JSONL record, or a raw file for a preprocessor that reads files.
pub(super) enum Item {
    Record { file: String, line: usize, text: String },
    File { rel: String, path: PathBuf },
}

/// Width of the label column.
const LABEL: usize = 8;
/// Characters shown of a record, a message, a reply.
const SHOWN: usize = 400;

/// Prints the chain of every sampled item, then a one-line tally.
pub(super) fn show_chain(task: &LoadedTask, plan: &RunPlan, scoring: &ScoringPlan, sample: &Sample, out: &Path, w: &mut impl Write) -> anyhow::Result<()> {
    let rt = PluginRuntime::new()?;
    let load = |r: &PluginRef| load(&rt, plan, task, r);
    let reader = scoring.preprocess.as_ref().map(|p| load(&p.plugin)).transpose()?;
    let prompt = load(&scoring.prompt_builder)?;
    let rows = read_rows(out);
    let (mut scored, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for item in &sample.items {
        // The records that reach the prompt builder, as JSON text.
        let mut to_score: Vec<String> = Vec::new();
        let input = match item {
            Item::Record { file, line, text } => {
                let id = serde_json::from_str::<Value>(text).ok().and_then(|v| id_of(&v, &scoring.id_field)).unwrap_or_else(|| format!("line-{line}"));
                writeln!(w, "── {id}  ({file} line {line})")?;
                label(w, "record", text)?;
                if reader.is_none() {
                    to_score.push(text.clone());
                }
                PreprocessInput::Record(text.clone())
            }
            Item::File { rel, path } => {
                writeln!(w, "── {rel}")?;
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                label(w, "file", &format!("{rel} ({} bytes)", bytes.len()))?;
                PreprocessInput::File { path: rel.clone(), bytes }
            }
        };
        if let Some(reader) = &reader {
            let id = match item {
                Item::Record { line, .. } => format!("line-{line}"),
                Item::File { rel, .. } => rel.clone(),
            };
            match reader.preprocess(&id, 1, input) {
                Ok(PreprocessOutcome::Keep(items)) if items.is_empty() => label(w, "reader", "kept nothing")?,
                Ok(PreprocessOutcome::Keep(items)) => {
                    for it in items {
                        match it {
                            Ok(rec) => {
                                label(w, "reader", &format!("kept {rec}"))?;
                                to_score.push(rec);
                            }
                            Err(e) => {
                                failed += 1;
                                let at = e.location.map(|l| format!(" at {l}")).unwrap_or_default();
                                label(w, "error", &format!("[{}] reader item{at}: {}", e.kind.cause(), e.message))?;
                            }
                        }
                    }
                }
                Ok(PreprocessOutcome::Skip(reason)) => {
                    skipped += 1;
                    label(w, "reader", &format!("skipped: {reason}"))?;
                }
                Err(e) => {
                    failed += 1;
                    label(w, "error", &format!("[{}] reader: {e}", e.cause()))?;
                }
            }
        }
        // A file, or a record the preprocessor split: each record's chain says which it is.
        let several = to_score.len() > 1 || matches!(item, Item::File { .. });
        for record in to_score {
            if several {
                label(w, "record", &record)?;
            }
            let value: Value = serde_json::from_str(&record).unwrap_or(Value::Null);
            let id = id_of(&value, &scoring.id_field);
            match prompt.build_prompt(id.as_deref().unwrap_or("dev"), 1, &record) {
                Ok(p) => {
                    for (i, m) in p.messages.iter().enumerate() {
                        let role = match m.role {
                            ChatRole::System => "system",
                            ChatRole::User => "user",
                            ChatRole::Assistant => "assistant",
                        };
                        label(w, if i == 0 { "prompt" } else { "" }, &format!("[{role}] {}", m.content))?;
                    }
                }
                // The run's error row below says the same, with the cause it recorded.
                Err(e) => label(w, "prompt", &format!("(not built: [{}] {e})", e.cause()))?,
            }
            let Some(row) = find_row(&rows, id.as_deref(), &value, &scoring.id_field) else {
                failed += 1;
                label(w, "error", &format!("the sample run wrote no row for this record in {} (its messages are in the run's summary there)", out.display()))?;
                continue;
            };
            if let Some(reply) = row.get("api_return").and_then(Value::as_str) {
                let asked = row.get("replies").and_then(Value::as_array).map(Vec::len).or_else(|| row["parse_attempts"].as_u64().map(|n| n as usize));
                let again = asked.filter(|n| *n > 1).map(|n| format!(" (the last of {n}: the parser asked again)")).unwrap_or_default();
                label(w, "reply", &format!("{reply}{again}"))?;
            }
            if row["api_status"] == "success" {
                scored += 1;
                let mut verdict = format!("score {}", row["score_value"].as_f64().map(|v| v.to_string()).unwrap_or_else(|| row["score_value"].to_string()));
                if let Some(l) = row["score_label"].as_str() {
                    verdict.push_str(&format!(" [{l}]"));
                }
                if let Some(r) = row["score_rationale"].as_str() {
                    verdict.push_str(&format!(" — {r}"));
                }
                label(w, "verdict", &verdict)?;
            } else {
                failed += 1;
                label(w, "error", &format!("[{}] {}", row["cause"].as_str().unwrap_or("error"), row["message"].as_str().unwrap_or_default()))?;
            }
        }
    }
    writeln!(w, "── {} input(s): {scored} scored, {failed} failed, {skipped} skipped; the sample run's rows are in {}", sample.records(), out.display())?;
    Ok(())
}

/// `label` padded, then `text` shortened, its lines indented under the first.
fn label(w: &mut impl Write, label: &str, text: &str) -> std::io::Result<()> {
    let shown: String = if text.chars().count() > SHOWN { format!("{}…", text.chars().take(SHOWN).collect::<String>()) } else { text.to_string() };
    let indent = format!("\n{:LABEL$} ", "");
    writeln!(w, "{label:LABEL$} {}", shown.trim_end().replace('\n', &indent))
}

/// A record's id (its `id_field`, a string or a number).
fn id_of(v: &Value, id_field: &str) -> Option<String> {
    match v.get(id_field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The rows of the sample run: its outputs and error rows (`*.jsonl` in `out`).
fn read_rows(out: &Path) -> Vec<Value> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(out) else { return rows };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(".jsonl") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            rows.extend(text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()));
        }
    }
    rows
}

/// The row of `record`: by its id when it has one (an output row's id field, an error row's
/// record's), else by its fields (an error row's `record_json`; an output row holding every
/// field of the record, as itself or as `input_<name>` when an output column took the name).
fn find_row<'a>(rows: &'a [Value], id: Option<&str>, record: &Value, id_field: &str) -> Option<&'a Value> {
    let of_error = |row: &Value| row["record_json"].as_str().and_then(|r| serde_json::from_str::<Value>(r).ok());
    match id {
        Some(id) => rows.iter().find(|row| {
            let ok = row["api_status"] == "success";
            (ok && id_of(row, id_field).as_deref() == Some(id)) || (!ok && of_error(row).and_then(|r| id_of(&r, id_field)).as_deref() == Some(id))
        }),
        None => rows.iter().find(|row| match of_error(row) {
            Some(r) => &r == record,
            None => record.as_object().is_some_and(|fields| fields.iter().all(|(k, v)| row.get(k) == Some(v) || row.get(format!("input_{k}")) == Some(v))),
        }),
    }
}

/// One plugin of the plan, loaded as the run loads it (config, limits).
fn load(rt: &PluginRuntime, plan: &RunPlan, task: &LoadedTask, r: &PluginRef) -> anyhow::Result<Plugin> {
    let role = match r.role {
        "preprocessor" => Role::Preprocessor,
        "prompt-builder" => Role::PromptBuilder,
        _ => Role::ScoreParser,
    };
    let source = if r.source.starts_with("builtin:") { PluginSource::parse(&r.source) } else { PluginSource::Path(r.source.clone().into()) };
    let mut spec = PluginSpec::new(source, role);
    spec.config = r.config.clone();
    if !r.limits.is_null() {
        spec.limits = serde_json::from_value::<Limits>(r.limits.clone()).with_context(|| format!("{}: `{}.limits`", task.source_path.display(), r.slot))?;
    }
    spec.task_name = plan.task_name.clone();
    rt.load(spec).with_context(|| format!("{}: `{}` ({})", task.source_path.display(), r.slot, r.role))
}
