//! `modelcall plugin list|check|run|bench`: inspect and exercise one plugin on its own,
//! with the same runtime, sandbox and limits a task uses. Plugin authors use `run` to try a
//! plugin on sample data; `check` is what to run when a task refuses to load a plugin.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use modelcall_plugin_host::{
    builtins, CallError, Limits, ParseFailure, Plugin, PluginRuntime, PluginSource, PluginSpec, PreprocessInput,
    PreprocessOutcome, Role, RuntimeOptions,
};
use serde_json::{json, Value};

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// List the plugins built into this binary (use them as `builtin:<name>`).
    List,
    /// Validate a plugin and print its name, version, WIT version, sha256, imports and exports.
    Check {
        /// A `.wasm` component or `builtin:<name>`.
        plugin: String,
        /// The role to load it as; default: the one role it exports.
        #[arg(long)]
        role: Option<Role>,
        /// Config (YAML or JSON file) passed to the plugin's `init`; default `{}`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run records (or files) through a plugin and print one JSON line per outcome.
    Run {
        #[command(flatten)]
        target: PluginTarget,
        /// Limits (YAML or JSON file, the `limits:` block of a task); default: the defaults.
        #[arg(long)]
        limits: Option<PathBuf>,
        /// JSONL file of records.
        #[arg(long, conflicts_with = "files", required_unless_present = "files")]
        input: Option<PathBuf>,
        /// Directory whose files (recursively) are each given to a preprocessor as raw bytes.
        #[arg(long)]
        files: Option<PathBuf>,
        /// Task name lent to the plugin through its call context.
        #[arg(long, default_value = "plugin-run")]
        task_name: String,
    },
    /// Measure a plugin: first compile (no cache), load with a warm cache, µs per record warm.
    Bench {
        #[command(flatten)]
        target: PluginTarget,
        /// JSONL file of records (for a score parser each needs the completion field).
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 1000)]
        iterations: u32,
    },
}

/// The plugin that `run` and `bench` exercise, and how.
#[derive(clap::Args)]
pub struct PluginTarget {
    /// A `.wasm` component or `builtin:<name>`.
    plugin: String,
    #[arg(long)]
    role: Role,
    /// Config (YAML or JSON file) passed to the plugin's `init`; default `{}`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// For a score parser: the record field holding the model's completion.
    #[arg(long, default_value = "completion")]
    completion_field: String,
}

pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    // Plugin authors want to see what their plugin logs through `host.log`: show it on
    // stderr (RUST_LOG overrides). Ignored if the binary already installed a subscriber.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,modelcall::plugin=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(crate::progress::colour_on_stderr()).try_init();
    match cmd {
        PluginCommand::List => {
            for name in builtins::names() {
                println!("builtin:{name}");
            }
            Ok(())
        }
        PluginCommand::Check { plugin, role, config } => check(&plugin, role, config.as_deref()),
        PluginCommand::Run { target: PluginTarget { plugin, role, config, completion_field }, limits, input, files, task_name } => {
            let mut spec = PluginSpec::new(PluginSource::parse(&plugin), role);
            spec.config = read_config(config.as_deref())?;
            spec.task_name = task_name;
            if let Some(path) = limits {
                spec.limits = read_limits(&path)?;
            }
            let rt = PluginRuntime::new()?;
            let plugin = rt.load(spec)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let fatal = match (input, files) {
                (Some(path), _) => run_records(&plugin, role, &path, &completion_field, &mut out)?,
                (None, Some(dir)) => {
                    if role != Role::Preprocessor {
                        bail!("--files gives raw files to a preprocessor; a {role} takes records: use --input records.jsonl");
                    }
                    run_files(&plugin, &dir, &mut out)?
                }
                (None, None) => bail!("give --input records.jsonl or --files DIR"),
            };
            if let Some(e) = fatal {
                bail!("{e}");
            }
            Ok(())
        }
        PluginCommand::Bench { target: PluginTarget { plugin, role, config, completion_field }, input, iterations } => {
            bench(&plugin, role, config.as_deref(), &input, iterations, &completion_field)
        }
    }
}

/// A plugin config file: YAML (so also JSON). An empty file means `{}`.
fn read_config(path: Option<&Path>) -> anyhow::Result<Value> {
    let Some(path) = path else { return Ok(json!({})) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading plugin config {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_yaml::from_str(&text).with_context(|| format!("parsing plugin config {} as YAML/JSON", path.display()))
}

fn read_limits(path: &Path) -> anyhow::Result<Limits> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading limits {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing limits {} (keys: timeout_ms, init_timeout_ms, fuel, memory_mib, max_output_bytes, max_records_per_call, max_log_bytes, max_calls_per_instance, max_consecutive_traps)", path.display()))
}

fn check(plugin: &str, role: Option<Role>, config: Option<&Path>) -> anyhow::Result<()> {
    let source = PluginSource::parse(plugin);
    let rt = PluginRuntime::new()?;
    let summary = rt.inspect(&source)?;
    let role = match role {
        Some(r) => r,
        None => match summary.roles.as_slice() {
            [r] => *r,
            [] => bail!(
                "plugin {plugin} exports no modelcall plugin role (exports: {}); build it with modelcall-plugin-sdk and one of register_preprocessor!/register_prompt_builder!/register_score_parser!",
                summary.exports.join(", ")
            ),
            many => bail!(
                "plugin {plugin} exports several roles ({}); pick one with --role",
                many.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let mut spec = PluginSpec::new(source, role);
    spec.config = read_config(config)?;
    let loaded = match rt.load(spec) {
        Ok(p) => p,
        Err(e @ modelcall_plugin_host::LoadError::InvalidConfig { .. }) if config.is_none() => {
            bail!("{e}\n(the plugin needs a config: pass one with --config cfg.yaml)")
        }
        Err(e) => return Err(e.into()),
    };
    let d = loaded.info();
    println!("plugin:      {}", d.source);
    println!("name:        {}", d.name);
    println!("version:     {}", d.version);
    println!("role:        {}", d.role);
    println!("wit version: {}", d.wit_version);
    println!("sha256:      {}", d.sha256);
    println!("size:        {} bytes", d.size_bytes);
    println!("config schema: {}", if d.config_schema.is_some() { "published" } else { "none" });
    println!("imports:");
    for i in &d.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &d.exports {
        println!("  {e}");
    }
    println!("ok: loads as {role}");
    Ok(())
}

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

fn parse_records(records: &[String]) -> Value {
    Value::Array(records.iter().map(|r| serde_json::from_str(r).unwrap_or_else(|_| json!(r))).collect())
}

/// One call on one record; returns the JSON line and the fatal error, if any.
/// Returns the JSON line, the fatal error if any, and the call's duration in ns.
fn call_one(plugin: &Plugin, role: Role, id: &str, line: &str, rec: &Value, completion_field: &str) -> (Value, Option<CallError>, u64) {
    let (mut v, stats, err) = match role {
        Role::Preprocessor => {
            let (r, s) = plugin.preprocess_with_stats(id, 1, PreprocessInput::Record(line.to_string()));
            match r {
                Ok(PreprocessOutcome::Keep(recs)) => (json!({"record_id": id, "outcome": "keep", "records": parse_records(&recs)}), s, None),
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
                Ok(Ok(score)) => (json!({"record_id": id, "outcome": "score", "score": score}), s, None),
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

fn run_records(plugin: &Plugin, role: Role, path: &Path, completion_field: &str, out: &mut impl Write) -> anyhow::Result<Option<CallError>> {
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
                writeln!(out, "{}", json!({"record_id": format!("line-{n}"), "outcome": "error", "cause": "invalid_json",
                    "message": format!("{} line {n}: {e}", path.display())}))?;
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

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, files)?;
        } else {
            files.push(p);
        }
    }
    Ok(())
}

fn run_files(plugin: &Plugin, dir: &Path, out: &mut impl Write) -> anyhow::Result<Option<CallError>> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (r, s) = plugin.preprocess_with_stats(&rel, 1, PreprocessInput::File { path: rel.clone(), bytes });
        let (mut v, fatal) = match r {
            Ok(PreprocessOutcome::Keep(recs)) => (json!({"record_id": rel, "outcome": "keep", "records": parse_records(&recs)}), None),
            Ok(PreprocessOutcome::Skip(reason)) => (json!({"record_id": rel, "outcome": "skip", "reason": reason}), None),
            Err(e) => (error_json(&rel, &e), Some(e).filter(CallError::is_fatal)),
        };
        v["elapsed_us"] = json!(s.elapsed_us);
        v["fuel"] = json!(s.fuel);
        writeln!(out, "{v}")?;
        if fatal.is_some() {
            return Ok(fatal);
        }
    }
    Ok(None)
}

fn bench(plugin: &str, role: Role, config: Option<&Path>, input: &Path, iterations: u32, completion_field: &str) -> anyhow::Result<()> {
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
