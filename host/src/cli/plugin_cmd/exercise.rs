//! `plugin run` and `plugin bench`: records or files through one plugin, one JSON line per
//! outcome, or timed.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _};
use modelcall_plugin_host::{
    CallError, ItemError, ParseFailure, Plugin, PluginRuntime, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Role, RuntimeOptions,
};
use serde_json::{json, Value};

use super::read_config;

/// The record's `id` (string or number) or its line number.
fn record_id(rec: &Value, line: usize) -> String {
    match rec.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("line-{line}"),
    }
}

fn error_json(record_id: &str, e: &CallError) -> Value {
    let mut v = json!({"record_id": record_id, "outcome": "error", "cause": e.cause(), "fatal": e.is_fatal(), "message": e.to_string()});
    if let CallError::Trap { stderr, .. } = e {
        if !stderr.is_empty() {
            v["stderr"] = json!(stderr);
        }
    }
    v
}

/// A `keep` as one JSON line: the records as JSON, and the items that failed on their own
/// (track 0.2) with the cause an error row would carry.
fn keep_json(id: &str, items: &[Result<String, ItemError>]) -> Value {
    let records: Vec<Value> = items.iter().flatten().map(|r| serde_json::from_str(r).unwrap_or_else(|_| json!(r))).collect();
    let mut v = json!({"record_id": id, "outcome": "keep", "records": records});
    let errors: Vec<Value> = items
        .iter()
        .enumerate()
        .filter_map(|(item, r)| {
            r.as_ref().err().map(|e| {
                let mut v = json!({"item": item, "cause": e.kind.cause(), "message": e.message, "location": e.location});
                // The source line the location names, as a task's error row shows it.
                if let Some(line) = e.line() {
                    v["line"] = json!(line);
                }
                v
            })
        })
        .collect();
    if !errors.is_empty() {
        v["item_errors"] = json!(errors);
    }
    v
}

/// What the plugin printed during a call (stdout and stderr), as the `output` of its line; a
/// trap's line already quotes it as `stderr`.
fn add_output(v: &mut Value, output: &str) {
    if !output.is_empty() && v.get("stderr").is_none() {
        v["output"] = json!(output);
    }
}

/// One call on one record: the JSON line (with what the plugin printed), the fatal error if
/// any, and the call's duration in ns.
fn call_one(plugin: &Plugin, role: Role, id: &str, line: &str, rec: &Value, completion_field: &str) -> (Value, Option<CallError>, u64) {
    let ((mut v, err, ns), output) = modelcall_plugin_host::capture_output(|| call_one_quiet(plugin, role, id, line, rec, completion_field));
    add_output(&mut v, &output);
    (v, err, ns)
}

fn call_one_quiet(plugin: &Plugin, role: Role, id: &str, line: &str, rec: &Value, completion_field: &str) -> (Value, Option<CallError>, u64) {
    let (mut v, stats, err) = match role {
        Role::Preprocessor => {
            let (r, s) = plugin.preprocess_with_stats(id, 1, PreprocessInput::Record(line.to_string()));
            match r {
                Ok(PreprocessOutcome::Keep(items)) => (keep_json(id, &items), s, None),
                Ok(PreprocessOutcome::Skip(reason)) => (json!({"record_id": id, "outcome": "skip", "reason": reason}), s, None),
                Err(e) => (error_json(id, &e), s, Some(e)),
            }
        }
        Role::PromptBuilder => {
            let (r, s) = plugin.build_prompt_with_stats(id, 1, line);
            match r {
                Ok(p) => (json!({"record_id": id, "outcome": "prompt", "prompt": p}), s, None),
                Err(e) => (error_json(id, &e), s, Some(e)),
            }
        }
        Role::ScoreParser => {
            let Some(completion) = rec.get(completion_field).and_then(Value::as_str) else {
                let v = json!({"record_id": id, "outcome": "error", "cause": "missing_completion",
                    "message": format!("record has no string field `{completion_field}` (set --completion-field)")});
                return (v, None, 0);
            };
            let (r, s) = plugin.parse_score_with_stats(id, 1, line, completion);
            match r {
                Ok(Ok(score)) => {
                    // `extra` crosses the contract as JSON text; show it as JSON.
                    let mut shown = json!(score);
                    if let Some(extra) = score.extra.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()) {
                        shown["extra"] = extra;
                    }
                    (json!({"record_id": id, "outcome": "score", "score": shown}), s, None)
                }
                Ok(Err(ParseFailure::Retry(hint))) => (json!({"record_id": id, "outcome": "retry", "hint": hint}), s, None),
                Ok(Err(ParseFailure::Invalid(msg))) => (json!({"record_id": id, "outcome": "invalid", "message": msg}), s, None),
                Err(e) => (error_json(id, &e), s, Some(e)),
            }
        }
    };
    v["elapsed_us"] = json!(stats.elapsed_us);
    v["fuel"] = json!(stats.fuel);
    (v, err.filter(CallError::is_fatal), stats.elapsed_ns)
}

pub(super) fn run_records(plugin: &Plugin, role: Role, path: &Path, completion_field: &str, out: &mut impl Write) -> anyhow::Result<Option<CallError>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading {} line {n}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                writeln!(
                    out,
                    "{}",
                    json!({"record_id": format!("line-{n}"), "outcome": "error", "cause": "invalid_json",
                    "message": format!("{} line {n}: {e}", path.display())})
                )?;
                continue;
            }
        };
        let id = record_id(&rec, n);
        let (v, fatal, _) = call_one(plugin, role, &id, &line, &rec, completion_field);
        writeln!(out, "{v}")?;
        if fatal.is_some() {
            return Ok(fatal);
        }
    }
    Ok(None)
}

pub(super) fn run_files(plugin: &Plugin, dir: &Path, out: &mut impl Write) -> anyhow::Result<Option<CallError>> {
    let files = modelcall_io::listing::list_files(dir, true, &|_| true).with_context(|| format!("reading {}", dir.display()))?;
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let ((r, s), output) =
            modelcall_plugin_host::capture_output(|| plugin.preprocess_with_stats(&rel, 1, PreprocessInput::File { path: rel.clone(), bytes }));
        let (mut v, fatal) = match r {
            Ok(PreprocessOutcome::Keep(items)) => (keep_json(&rel, &items), None),
            Ok(PreprocessOutcome::Skip(reason)) => (json!({"record_id": rel, "outcome": "skip", "reason": reason}), None),
            Err(e) => (error_json(&rel, &e), Some(e).filter(CallError::is_fatal)),
        };
        v["elapsed_us"] = json!(s.elapsed_us);
        v["fuel"] = json!(s.fuel);
        add_output(&mut v, &output);
        writeln!(out, "{v}")?;
        if fatal.is_some() {
            return Ok(fatal);
        }
    }
    Ok(None)
}

pub(super) fn bench(plugin: &str, role: Role, config: Option<&Path>, input: &Path, iterations: u32, completion_field: &str) -> anyhow::Result<()> {
    let source = PluginSource::parse(plugin);
    let mut spec = PluginSpec::new(source.clone(), role);
    spec.config = read_config(config)?;
    spec.task_name = "bench".into();

    // First compile: a runtime without the on-disk cache compiles from scratch.
    let cold = PluginRuntime::with_options(RuntimeOptions { compile_cache: false, cache_dir: None })?;
    let t = Instant::now();
    cold.inspect(&source)?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;

    // Warm cache: populate it once, then time a load (compile-or-fetch + link + init) on a
    // fresh runtime, as a new `modelcall` process would see it.
    PluginRuntime::new()?.load(spec.clone())?;
    let rt = PluginRuntime::new()?;
    let t = Instant::now();
    let loaded = rt.load(spec)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let records: Vec<(String, Value)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok((l.to_string(), serde_json::from_str(l)?)))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("{} must be JSONL", input.display()))?;
    if records.is_empty() {
        bail!("{} has no records", input.display());
    }
    let bytes: usize = records.iter().map(|(l, _)| l.len()).sum();
    // Warm-up pass (also surfaces errors before timing).
    for (i, (line, rec)) in records.iter().enumerate() {
        let (v, _, _) = call_one(&loaded, role, &format!("warmup-{i}"), line, rec, completion_field);
        if v["outcome"] == "error" {
            bail!("record {} fails, not benchmarking: {v}", i + 1);
        }
    }
    let mut samples = Vec::with_capacity(iterations as usize * records.len());
    let mut fuel = 0u64;
    let started = Instant::now();
    for it in 0..iterations {
        for (i, (line, rec)) in records.iter().enumerate() {
            let (v, _, ns) = call_one(&loaded, role, &format!("{it}-{i}"), line, rec, completion_field);
            samples.push(ns);
            fuel = v["fuel"].as_u64().unwrap_or(0);
        }
    }
    let wall = started.elapsed();
    samples.sort_unstable();
    let calls = samples.len() as f64;
    let report = json!({
        "plugin": plugin,
        "role": role,
        "records": records.len(),
        "mean_record_bytes": bytes / records.len(),
        "iterations": iterations,
        "first_compile_ms": (compile_ms * 100.0).round() / 100.0,
        "warm_cache_load_ms": (load_ms * 100.0).round() / 100.0,
        "compile_cache": rt.compile_cache_enabled(),
        // The call itself (what the runtime measures), then the same plus this command's
        // own JSON handling per record.
        "per_record_us_mean": ((samples.iter().sum::<u64>() as f64 / calls / 1e3) * 100.0).round() / 100.0,
        "per_record_us_with_cli_overhead": ((wall.as_secs_f64() * 1e6 / calls) * 100.0).round() / 100.0,
        "per_record_us_p50": samples[samples.len() / 2] as f64 / 1e3,
        "per_record_us_p99": samples[(samples.len() * 99 / 100).min(samples.len() - 1)] as f64 / 1e3,
        "fuel_per_record_last": fuel,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
