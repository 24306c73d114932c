//! `modelcall merge`: the shard outputs of a task into its unsharded outputs, verified.
//!
//! For each input file, the journals of its pieces (one per shard) are joined into the
//! unsharded journal, `<stem>.journal.jsonl`, which is then finalized like any run's: so the
//! merged outputs have the unsharded names, and a later run without `--shard` resumes from them
//! (sending only what is missing). Every piece is read again with the keys its shard gave its
//! records, and every key must be in the journal of that piece (done or failed): what is missing
//! is reported by shard, and the merge exits non-zero.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelcall_config::{load_task_without_secrets as load_task, Overrides, RunPlan};
use modelcall_io::{AtomicFile, KeySet, ShardPlan};
use serde_json::{json, Value};

use super::exit::{exit_code, BadConfig, Finish};
use super::status::folder::{shard_states, ShardState};
use crate::engine::read_item::ReadItem;
use crate::engine::reader::read_unit;
use crate::engine::resume::Finished;
use crate::engine::{StopSignal, UnitInputs};
use crate::tasks::shards::{RecordOutputs, MERGED_MARKER};

#[derive(clap::Args, Debug, Clone)]
pub struct MergeArgs {
    /// The task YAML file the shards ran.
    pub task: PathBuf,
    /// Merge even when some shards have not finished (what they did is merged; the rest is
    /// reported missing, and a later unsharded run sends it).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: MergeArgs) -> ExitCode {
    exit_code(merge(&args), false)
}

fn merge(args: &MergeArgs) -> anyhow::Result<Finish> {
    let task = load_task(&args.task, &Overrides::default()).map_err(|e| BadConfig(e.to_string()))?;
    let mut finish = Finish::Done;
    for run in task.expand().map_err(|e| BadConfig(e.to_string()))? {
        let plan = RunPlan::from_task(&run).map_err(|e| BadConfig(e.to_string()))?;
        if let modelcall_config::Stages::MergeResults(m) = &plan.stages {
            finish = finish.and(merge_model_folders(m)?);
            continue;
        }
        let mut outputs = RecordOutputs::of(&run, &plan)?;
        if let (modelcall_config::Stages::Scoring(_), crate::engine::SinkKind::Rows { format, .. }) = (&plan.stages, &outputs.sink) {
            // `output.ordered`: the merged outputs in input order, as an unsharded run writes them.
            outputs.sink = crate::engine::SinkKind::Rows { format: *format, ordered: run.task.output.ordered.unwrap_or(false) };
        }
        finish = finish.and(merge_folder(&outputs, &plan.task_name, args.force)?);
        if let modelcall_config::Stages::Scoring(p) = &plan.stages {
            merged_stat_files(p, &run, &outputs.folder)?;
        }
    }
    Ok(finish)
}

/// The stat files of the merged outputs (`data.stat_folder`), from the files the merged
/// `run_summary.json` lists; the shards' per-piece stat files are merged into them.
fn merged_stat_files(plan: &modelcall_config::ScoringPlan, run: &modelcall_config::LoadedTask, folder: &Path) -> anyhow::Result<()> {
    let Some(stat_folder) = &plan.stat_folder else { return Ok(()) };
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(folder.join("run_summary.json"))?)?;
    let files: Vec<(PathBuf, PathBuf, u64, u64)> = summary["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((PathBuf::from(f["input"].as_str()?), PathBuf::from(f["output"].as_str()?), f["seen"].as_u64()?, f["scored"].as_u64()?)))
        .collect();
    let merged: Vec<crate::tasks::stat_files::Merged<'_>> =
        files.iter().map(|(input, output, seen, ok)| crate::tasks::stat_files::Merged { input, output, seen: *seen, ok: *ok }).collect();
    let model_conf = run.model.as_ref().map(|m| m.path.clone()).unwrap_or_default();
    crate::tasks::stat_files::write_merged(stat_folder, &merged, plan, &model_conf)?;
    Ok(())
}

/// `task_type: merge_distillation_results`: every listed model folder of a batch, merged.
pub fn merge_results(_run: &crate::tasks::TaskRun<'_>, m: &modelcall_config::step::MergeResults) -> anyhow::Result<Finish> {
    merge_model_folders(m)
}

fn merge_model_folders(m: &modelcall_config::step::MergeResults) -> anyhow::Result<Finish> {
    let mut finish = Finish::Done;
    for name in &m.models {
        let folder = m.output_base_dir.join(name);
        let Some(plan) = ShardPlan::load(&folder).map_err(|e| BadConfig(e.to_string()))? else {
            eprintln!("warning: {} has no shard plan: model `{name}` was not run in shards there; skipped", folder.display());
            continue;
        };
        let outputs = RecordOutputs::generated_folder(&folder, plan.files.iter().map(|f| f.path.clone()).collect());
        finish = finish.and(merge_folder(&outputs, name, false)?);
    }
    Ok(finish)
}

/// Merges the shards of one output folder.
fn merge_folder(outputs: &RecordOutputs, task_name: &str, force: bool) -> anyhow::Result<Finish> {
    let Some(shard_plan) = ShardPlan::load(&outputs.folder).map_err(|e| BadConfig(e.to_string()))? else {
        return Err(BadConfig(format!("{} has no shard plan (.modelcall/shards.json): the task was not run in shards there", outputs.folder.display())).into());
    };
    let n = shard_plan.shards;
    let states = shard_states(outputs, &shard_plan);
    let unfinished: Vec<String> = states.iter().filter(|s| !s.complete()).map(ShardState::describe).collect();
    if !unfinished.is_empty() && !force {
        return Err(anyhow::anyhow!(
            "{} of {n} shard(s) have not finished, so nothing was merged:\n  {}\nwait for them (`modelcall status`), resubmit the failed ones, or merge what is there with --force",
            unfinished.len(),
            unfinished.join("\n  ")
        ));
    }
    let _lock = modelcall_io::OutputLock::acquire(&outputs.folder)?;

    let mut missing_by_shard = vec![0u64; n as usize];
    let mut collisions = 0u64;
    let (mut rows_ok, mut rows_error) = (0u64, 0u64);
    let mut files = Vec::new();
    for file in &shard_plan.files {
        let stem = modelcall_io::input_stem(&file.path);
        let merged = outputs.paths(&stem, None);
        let mut journal = AtomicFile::create(&merged.journal)?;
        // An unsharded run's earlier results come first; the shards' later ones win.
        let earlier = merged.journal.exists();
        copy_journal(&merged.journal, &mut journal, None)?;
        let mut keys_in_pieces = 0u64;
        // Each piece's keys are checked against its input on other threads while the next
        // pieces' journals are copied (at most CHECKS_AT_ONCE + 1 pieces' keys in memory).
        const CHECKS_AT_ONCE: usize = 1;
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let mut checking: std::collections::VecDeque<std::thread::ScopedJoinHandle<'_, (u32, u64)>> = Default::default();
            for (ordinal, piece) in file.pieces.iter().enumerate() {
                let paths = outputs.paths(&stem, Some((piece.shard, n)));
                move_legacy_shard_files(&outputs.folder, &paths);
                let mut keys = KeySet::default();
                copy_journal(&paths.journal, &mut journal, Some(&mut keys))?;
                keys_in_pieces += keys.len() as u64;
                if checking.len() >= CHECKS_AT_ONCE {
                    let (shard, missing) = checking.pop_front().expect("one is running").join().expect("the key check does not panic");
                    missing_by_shard[shard as usize] += missing;
                }
                let inputs = UnitInputs::RecordSlice { file: file.path.clone(), slice: piece.slice, ordinal };
                let shard = piece.shard;
                checking.push_back(scope.spawn(move || (shard, missing_keys(inputs, outputs, keys))));
            }
            for done in checking {
                let (shard, missing) = done.join().expect("the key check does not panic");
                missing_by_shard[shard as usize] += missing;
            }
            Ok(())
        })?;
        journal.commit()?;
        let (ok, failed) = finalize(&merged, &outputs.sink)?;
        rows_ok += ok;
        rows_error += failed;
        let rows = ok + failed;
        files.push(json!({
            "input": file.path.display().to_string(),
            "output": merged.output.display().to_string(),
            "errors": if failed > 0 { merged.errors.display().to_string() } else { String::new() },
            "seen": rows,
            "scored": ok,
            "failed": failed,
        }));
        // Keys are distinct within a piece; fewer rows than keys means two pieces shared one
        // (counted without holding every key of the file in memory).
        if !earlier {
            collisions += keys_in_pieces.saturating_sub(rows);
        }
    }
    let mut summary = merged_summary(outputs, task_name, n, &states);
    // What the merged files hold (each shard counted only its own last run).
    summary["records"]["scored"] = json!(rows_ok);
    summary["records"]["in_error_output"] = json!(rows_error);
    summary["records"]["already_done"] = json!(0);
    summary["files"] = Value::Array(files);
    if summary["status"] == "completed" && rows_ok > 0 && summary["score_histogram"].as_object().is_some_and(|h| !h.is_empty()) {
        summary["judge_quality"] = crate::report::judge_quality(&summary);
    }
    crate::shown::shown_json(&mut summary);
    let text = serde_json::to_string_pretty(&summary)? + "\n";
    modelcall_io::write_atomically(&outputs.folder.join("run_summary.json"), text.as_bytes())?;
    if let crate::engine::SinkKind::Rows { format, .. } = &outputs.sink {
        let run = &summary["run"];
        let made_with: Vec<(&str, String)> = [("model", &run["model"]), ("prompt", &run["prompt_config"]), ("task", &run["task_file"])]
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect();
        if let Err(e) = modelcall_io::sink::card::write_card(&outputs.folder, *format, task_name, &made_with) {
            eprintln!("warning: cannot write the dataset card in {}: {e}", outputs.folder.display());
        }
    }
    let missing: u64 = missing_by_shard.iter().sum();
    let marker = json!({"shards": n, "merged_at": chrono::Local::now().to_rfc3339(), "missing": missing, "collisions": collisions});
    modelcall_io::write_atomically(&outputs.folder.join(".modelcall").join(MERGED_MARKER), marker.to_string().as_bytes())?;

    eprintln!("merged {n} shard(s) of {} input file(s) into {}", shard_plan.files.len(), outputs.folder.display());
    if collisions > 0 {
        eprintln!("warning: {collisions} key(s) were written by two shards (an id repeated on both sides of a cut); the later shard's result was kept");
    }
    if missing > 0 {
        let by: Vec<String> = missing_by_shard.iter().enumerate().filter(|(_, m)| **m > 0).map(|(i, m)| format!("shard {i}/{n}: {m}")).collect();
        return Err(anyhow::anyhow!(
            "{missing} input record(s) are in no shard's output ({}); run the task again without --shard to send just those",
            by.join(", ")
        ));
    }
    eprintln!("verified: every input record is in the merged output or its error file exactly once ({rows_ok} + {rows_error})");
    Ok(if rows_error > 0 { Finish::Failures(rows_error) } else { Finish::Done })
}

#[derive(serde::Deserialize)]
struct KeyOnly {
    key: String,
}

/// The merged journal into the unsharded outputs; returns the rows written (output, errors).
fn finalize(paths: &modelcall_io::FilePaths, sink: &crate::engine::SinkKind) -> anyhow::Result<(u64, u64)> {
    let stats = match sink {
        crate::engine::SinkKind::Rows { format, ordered } => {
            // The schema the shards declared (`.modelcall/schema.json`), so the merged file has it.
            let declared = crate::engine::unit::declared_schema(paths, *format);
            modelcall_io::sink::finalize_rows(&paths.journal, &paths.output, &paths.errors, *format, *ordered, declared.as_ref())?
        }
        crate::engine::SinkKind::Records(_) => anyhow::bail!("record sinks are not sharded"),
    };
    Ok((stats.rows_ok, stats.rows_error))
}

/// A folder written before shard files moved under `.modelcall/shards/` has them beside the
/// outputs: they are moved there, so the output folder holds one copy of each record.
fn move_legacy_shard_files(folder: &Path, paths: &modelcall_io::FilePaths) {
    for now in [&paths.output, &paths.errors] {
        let Some(name) = now.file_name() else { continue };
        let legacy = folder.join(name);
        if legacy != *now && legacy.exists() {
            if let Some(dir) = now.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = std::fs::rename(&legacy, now) {
                eprintln!("warning: cannot move the shard file {} to {}: {e}", legacy.display(), now.display());
            }
        }
    }
}

/// Appends the complete lines of `from` (if it exists) to `to`, adding their keys to `keys`.
fn copy_journal(from: &Path, to: &mut AtomicFile, mut keys: Option<&mut KeySet>) -> anyhow::Result<()> {
    let file = match std::fs::File::open(from) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", from.display())),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
            return Ok(()); // the end, or a torn last line of a killed shard
        }
        if let Some(key) = line_key(&buf) {
            if let Some(keys) = keys.as_deref_mut() {
                keys.insert(&key);
            }
            to.write_all(&buf)?;
        }
    }
}

/// The key of a journal line, read from its start (`{"key":"…"`, as the journal writes it)
/// without parsing the row; a line of another shape is parsed whole.
fn line_key(line: &[u8]) -> Option<String> {
    const PREFIX: &[u8] = b"{\"key\":\"";
    if let Some(rest) = line.strip_prefix(PREFIX) {
        let mut escaped = false;
        let end = rest.iter().position(|&b| {
            let close = b == b'"' && !escaped;
            escaped = b == b'\\' && !escaped;
            close
        });
        if let Some(end) = end {
            return serde_json::from_slice::<String>(&line[PREFIX.len() - 1..PREFIX.len() + end + 1]).ok();
        }
    }
    serde_json::from_slice::<KeyOnly>(line).ok().map(|k| k.key)
}

/// How many records of `inputs`, keyed as its shard keyed them, have no entry in `journaled`.
fn missing_keys(inputs: UnitInputs, outputs: &RecordOutputs, journaled: KeySet) -> u64 {
    let done = Finished { ok: journaled, ..Finished::default() };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let read = outputs.read.clone();
    std::thread::scope(|scope| {
        let done = &done;
        scope.spawn(move || read_unit(inputs, read, done, &StopSignal::default(), Default::default(), tx));
        let mut missing = 0u64;
        while let Some(item) = rx.blocking_recv() {
            match item {
                ReadItem::Work { .. } => missing += 1,
                ReadItem::Bad { key, .. } | ReadItem::SourceFailed { key, .. } if !done.ok.contains(&key) => missing += 1,
                _ => {}
            }
        }
        missing
    })
}

/// The shards' summaries added up (latency percentiles: the largest over the shards).
fn merged_summary(outputs: &RecordOutputs, task_name: &str, n: u32, states: &[ShardState]) -> Value {
    let mut records = serde_json::Map::new();
    let mut by_cause: [(String, serde_json::Map<String, Value>); 3] =
        [("failures_by_cause".into(), Default::default()), ("retries_by_cause".into(), Default::default()), ("skips_by_reason".into(), Default::default())];
    let (mut requests, mut prompt, mut completion) = (0u64, 0u64, 0u64);
    let mut latency = serde_json::Map::new();
    let mut histogram = serde_json::Map::new();
    let (mut elapsed, mut started_at, mut run) = (0f64, None::<String>, Value::Null);
    for s in states.iter().filter_map(|s| s.summary.as_ref()) {
        add_counts(&mut records, &s["records"]);
        add_counts(&mut histogram, &s["score_histogram"]);
        elapsed = elapsed.max(s["elapsed_s"].as_f64().unwrap_or(0.0));
        if let Some(at) = s["started_at"].as_str() {
            if started_at.as_deref().is_none_or(|first| at < first) {
                started_at = Some(at.to_string());
            }
        }
        if run.is_null() && s["run"].is_object() {
            run = s["run"].clone();
            run["shard"] = Value::Null;
            run["merged_from_shards"] = json!(n);
        }
        for (field, map) in by_cause.iter_mut() {
            add_counts(map, &s[field.as_str()]);
        }
        requests += s["requests"].as_u64().unwrap_or(0);
        prompt += s["tokens"]["prompt"].as_u64().unwrap_or(0);
        completion += s["tokens"]["completion"].as_u64().unwrap_or(0);
        for q in ["p50", "p90", "p99", "max"] {
            let v = s["latency_ms"][q].as_u64().unwrap_or(0).max(latency.get(q).and_then(Value::as_u64).unwrap_or(0));
            latency.insert(q.into(), json!(v));
        }
    }
    let mut doc = json!({
        "task_name": task_name,
        "status": if states.iter().all(ShardState::complete) { "completed" } else { "partial" },
        "merged_from_shards": n,
        "finished_at": chrono::Local::now().to_rfc3339(),
        "records": records,
        "requests": requests,
        "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
        "latency_ms": latency,
        "latency_note": "the largest of the shards' percentiles",
        "stop_reason": Value::Null,
        "started_at": started_at,
        "elapsed_s": elapsed,
        "elapsed_note": "the longest shard's (shards run side by side)",
        "score_histogram": histogram,
        "files": [],
        "run": run,
        "output_folder": outputs.folder.display().to_string(),
    });
    for (field, map) in by_cause {
        doc[field] = Value::Object(map);
    }
    // What was paid: every run of every shard (and any unsharded run of the folder), from the
    // run records; the shards' summaries above count only each shard's last run.
    let cumulative = crate::run_records::cumulative_json(&crate::run_records::load(&outputs.folder), None);
    let paid = |k: &str| cumulative[k].as_u64().unwrap_or(0);
    if paid("requests") >= requests && paid("prompt_tokens") + paid("completion_tokens") >= prompt + completion {
        doc["requests"] = json!(paid("requests"));
        doc["tokens"] = json!({"prompt": paid("prompt_tokens"), "completion": paid("completion_tokens"), "total": paid("total_tokens")});
        doc["requests_note"] = json!("requests and tokens over every run of every shard (the run records under .modelcall/runs)");
    }
    if !cumulative["cost"].is_null() {
        doc["cost"] = cumulative["cost"].clone();
    }
    doc["cumulative"] = cumulative;
    doc
}

fn add_counts(into: &mut serde_json::Map<String, Value>, from: &Value) {
    if let Some(obj) = from.as_object() {
        for (k, v) in obj {
            if let Some(n) = v.as_u64() {
                let sum = into.get(k).and_then(Value::as_u64).unwrap_or(0) + n;
                into.insert(k.clone(), json!(sum));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_read_from_the_start_of_journal_lines() {
        assert_eq!(super::line_key(br#"{"key":"a\"b","status":"ok","row":{}}"#).as_deref(), Some("a\"b"));
        assert_eq!(super::line_key(b"{\"key\":\"\\u0001bad-line:0:2\",\"status\":\"error\"}").as_deref(), Some("\u{1}bad-line:0:2"));
        assert_eq!(super::line_key(br#"{"status":"ok","key":"k","row":{}}"#).as_deref(), Some("k"));
        assert_eq!(super::line_key(b"garbage"), None);
    }
}
