//! `modelcall report OUTPUT_FOLDER`: one self-contained `report.html` (inline SVG and one small
//! inline script, no network) from a run's `run_summary.json` and its output rows: what was
//! done, failed and skipped and why, a record browser (per score a sample of records, every
//! failure, searchable by id), the score distributions, the judge's behaviour in plain words,
//! latency and throughput over time, tokens and cost, the run history of the folder and the
//! settings the results were made with. Works on a merged sharded run (it reads the merged
//! outputs) and in one pass over the rows, so a million-row run reports in seconds.
//!
//! `modelcall report A B` compares two outputs of the same input instead ([`compare`]).
//!
//! One job per module: `stats.rs` (distributions and judge-quality telemetry), `quality.rs`
//! (that telemetry in plain words), `browser.rs` (the record browser), `history.rs` (run
//! records and settings), `compare.rs` (A vs B), `html.rs` (the page), `svg.rs` (charts).

mod browser;
mod compare;
mod history;
mod html;
mod quality;
pub mod stats;
mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

pub use stats::RowStats;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The task's output folder (where `run_summary.json` is).
    pub folder: PathBuf,
    /// A second output folder of the same input (another judge, prompt or model): writes a
    /// comparison of the two instead (score shift, agreement, confusion table, records that
    /// moved most), matched by record id; default FOLDER/compare.html.
    pub other: Option<PathBuf>,
    /// Where to write the report (default: FOLDER/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Open it in the default browser afterwards.
    #[arg(long)]
    pub open: bool,
}

/// The summary of the run in `folder`: `run_summary.json`, else the shards' summaries.
fn load_summary(folder: &Path) -> anyhow::Result<Value> {
    let path = folder.join("run_summary.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()));
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("run_summary.shard-")))
        .collect();
    shards.sort();
    let first = shards.first().with_context(|| format!("{} holds no run_summary.json: is it a task's output folder (after a run)?", folder.display()))?;
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(first)?)?;
    doc["note"] = Value::from(format!("{} shard summaries, the first shown; run `modelcall merge` for one summary", shards.len()));
    Ok(doc)
}

/// `(field, (min, max))` from the prompt config's `output_config.checks`.
fn prompt_scale(summary: &Value) -> (BTreeMap<String, (f64, f64)>, BTreeSet<String>) {
    let mut scale = BTreeMap::new();
    let mut keys = BTreeSet::new();
    let Some(path) = summary["run"]["prompt_config"].as_str() else { return (scale, keys) };
    let Ok(text) = std::fs::read_to_string(path) else { return (scale, keys) };
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else { return (scale, keys) };
    if let Some(checks) = doc.get("output_config").and_then(|o| o.get("checks")).and_then(|c| c.as_mapping()) {
        for (k, v) in checks {
            if let (Some(k), Some(lo), Some(hi)) = (k.as_str(), v.get("min").and_then(|x| x.as_f64()), v.get("max").and_then(|x| x.as_f64())) {
                scale.insert(k.to_string(), (lo, hi));
            }
        }
    }
    if let Some(list) = doc.get("output_config").and_then(|o| o.get("json_keys")).and_then(|c| c.as_sequence()) {
        keys.extend(list.iter().filter_map(|k| k.as_str().map(str::to_string)));
    }
    (scale, keys)
}

/// Calls `f(output file, row)` for every output row of every file the summary lists.
pub(crate) fn for_each_row(summary: &Value, mut f: impl FnMut(&str, &serde_json::Map<String, Value>)) {
    for file in summary["files"].as_array().into_iter().flatten() {
        if let Some(out) = file["output"].as_str() {
            if let Ok(source) = modelcall_io::open_source(Path::new(out)) {
                for item in source.flatten() {
                    if let modelcall_io::SourceItem::Record { record, .. } = item {
                        f(out, &record);
                    }
                }
            }
        }
    }
}

/// Gathers the rows of every output the summary lists, and with `browser` their error rows and
/// the record browser's samples.
fn gather_with(summary: &Value, mut browser: Option<&mut browser::Browser>) -> RowStats {
    let expected = summary["records"]["scored"].as_u64().unwrap_or(0)
        + summary["records"]["already_done"].as_u64().unwrap_or(0)
        + summary["records"]["adopted"].as_u64().unwrap_or(0);
    let (_, keys) = prompt_scale(summary);
    let mut rows = RowStats::new(expected, None);
    for_each_row(summary, |out, record| {
        rows.add(out, record, &keys);
        if let Some(b) = browser.as_deref_mut() {
            b.add(out, record, rows.headline.as_deref(), &keys);
        }
    });
    if let Some(b) = browser {
        for f in summary["files"].as_array().into_iter().flatten() {
            if let Some(err) = f["errors"].as_str() {
                if let Ok(source) = modelcall_io::open_source(Path::new(err)) {
                    for item in source.flatten() {
                        if let modelcall_io::SourceItem::Record { record, .. } = item {
                            b.add_failure(&record);
                        }
                    }
                }
            }
        }
    }
    rows
}

/// Gathers the rows of every output the summary lists.
pub fn gather(summary: &Value) -> RowStats {
    gather_with(summary, None)
}

/// The judge-quality block of `run_summary.json`, from the run's summary and outputs.
pub fn judge_quality(summary: &Value) -> Value {
    let rows = gather(summary);
    let (scale, _) = prompt_scale(summary);
    rows.judge_quality(&scale)
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    if let Some(other) = &args.other {
        return run_compare(&args, other);
    }
    let summary = load_summary(&args.folder)?;
    let mut browser = browser::Browser::default();
    let rows = gather_with(&summary, Some(&mut browser));
    let (scale, _) = prompt_scale(&summary);
    // Recomputed from the rows (not the summary's copy): a summary written by an older version
    // may count `score_value` as a second field.
    let quality = rows.judge_quality(&scale);
    let task_file = summary["run"]["task_file"].as_str().and_then(|p| std::fs::read_to_string(p).ok());
    let page = html::render(&html::Page {
        summary: &summary,
        folder: &args.folder,
        rows: &rows,
        browser: &browser,
        quality: &quality,
        task_file: task_file.as_deref(),
    });
    let out = args.out.clone().unwrap_or_else(|| args.folder.join("report.html"));
    write_and_open(&out, &page, args.open)
}

/// `report A B`: the two runs compared.
fn run_compare(args: &ReportArgs, other: &Path) -> anyhow::Result<()> {
    let a = load_summary(&args.folder)?;
    let b = load_summary(other)?;
    let (c, rows) = compare::compare(&a, &b);
    if c.pairs == 0 {
        eprintln!("warning: no record scored in both {} and {} (records are matched by id): is it the same input?", args.folder.display(), other.display());
    }
    let page = compare::render((&args.folder, &a), (other, &b), &c, &rows);
    eprintln!(
        "compared {} records: exact agreement {}, within 1 {}",
        c.pairs,
        c.exact_share().map(|x| format!("{:.1} %", x * 100.0)).unwrap_or_else(|| "–".into()),
        c.within_one_share().map(|x| format!("{:.1} %", x * 100.0)).unwrap_or_else(|| "–".into())
    );
    let out = args.out.clone().unwrap_or_else(|| args.folder.join("compare.html"));
    write_and_open(&out, &page, args.open)
}

fn write_and_open(out: &Path, page: &str, open: bool) -> anyhow::Result<()> {
    modelcall_io::write_atomically(out, page.as_bytes())?;
    println!("{}", out.display());
    eprintln!("report: {} ({} KB)", out.display(), page.len() / 1024);
    if open {
        let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        if std::process::Command::new(opener).arg(out).status().is_err() {
            eprintln!("note: could not start {opener}; open {} in a browser", out.display());
        }
    }
    Ok(())
}
