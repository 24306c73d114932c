//! `modelcall plugin dev TASK.yaml`: the plugin author's loop. Rebuilds the task's plugins whose
//! sources are newer than their `.wasm`, runs the task (the real `run-task`, as a child process)
//! on the first N records into a scratch folder, never the task's own output, and prints each
//! record's chain: record → what the preprocessor made of it → prompt → reply → verdict, or the
//! typed error where it stopped. `--watch` does it again whenever a plugin's source changes.
//!
//! Nothing goes to a paid endpoint unless asked: a task whose model is not `sim://` runs against
//! the simulator, with a notice, unless `--live` is given.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use modelcall_config::{load_task_without_secrets, LoadedTask, Overrides, RunPlan, ScoringPlan, Stages};

use super::dev_show::{show_chain, Sample};
use super::dev_watch::{stale_projects, Watched};

#[derive(clap::Args)]
pub struct DevArgs {
    /// The task file (a `data_scoring` task).
    pub task: PathBuf,
    /// How many input records to run.
    #[arg(long, default_value_t = 5)]
    pub sample: usize,
    /// Run again whenever a plugin's source changes (or the task file, its model or prompt
    /// config, the simulator's replies file); Ctrl-C ends it.
    #[arg(long)]
    pub watch: bool,
    /// Send to the task's endpoint even when it is not the simulator (it may cost money).
    #[arg(long)]
    pub live: bool,
    /// The scratch folder (emptied first); default: `.modelcall-dev/` beside the task file.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// With --watch: stop after this many runs (default: until Ctrl-C).
    #[arg(long, hide = true)]
    pub max_runs: Option<u32>,
}

/// The marker that makes a folder ours to empty.
const MARKER: &str = ".modelcall-dev";

pub fn dev(args: DevArgs) -> anyhow::Result<()> {
    if args.sample == 0 {
        bail!("--sample must be at least 1");
    }
    let mut runs = 0u32;
    loop {
        let started = SystemTime::now();
        let outcome = once(&args);
        runs += 1;
        if !args.watch {
            return outcome;
        }
        if let Err(e) = outcome {
            eprintln!("error: {e:#}");
        }
        if args.max_runs.is_some_and(|max| runs >= max) {
            return Ok(());
        }
        let watched = Watched::of(&args.task);
        eprintln!("watching {} (Ctrl-C ends it)…", watched.describe());
        watched.wait_for_change(started);
        eprintln!("a source changed: running again");
    }
}

/// One pass: load, rebuild, run, show.
fn once(args: &DevArgs) -> anyhow::Result<()> {
    let task = load_task_without_secrets(&args.task, &Overrides::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = RunPlan::from_task(&task).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Stages::Scoring(scoring) = &plan.stages else {
        bail!("{}: plugin dev runs scoring tasks (task_type: data_scoring); this one is {}", task.source_path.display(), plan.stages.name());
    };
    for root in stale_projects(&plan.plugins())? {
        eprintln!("rebuilding the plugins in {} (their sources are newer than the .wasm)", root.display());
        super::build::build_dir(&root)?;
    }
    let scratch = scratch_folder(args, &task, scoring)?;
    let sample = write_sample(scoring, &scratch, args.sample)?;
    let (live, simulated) = endpoint_check(&task, args.live)?;
    let derived = derive_task(&task, scoring, &scratch, &sample, live)?;
    eprintln!("running {} on {} record(s) into {} (not its output folder)", task.source_path.display(), sample.records(), scratch.display());
    let exe = std::env::current_exe().context("finding the modelcall binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["run-task"]).arg(&derived).arg("--no-progress");
    if simulated {
        // A response cache (`cache:`) would answer an edited replies file with the old reply.
        cmd.arg("--no-cache");
    }
    let out = cmd.stdin(Stdio::null()).output().context("running the task")?;
    // 0: every record scored; 3: some failed (shown below, record by record).
    if !matches!(out.status.code(), Some(0) | Some(3)) {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("the task did not run ({}); the run's messages are above", out.status);
    }
    show_chain(&task, &plan, scoring, &sample, &scratch.join("out"), &mut std::io::stdout().lock())
}

/// The scratch folder, emptied: `--scratch` or `.modelcall-dev/` beside the task. Refused when
/// it would hold, or be, one of the task's own output folders.
fn scratch_folder(args: &DevArgs, task: &LoadedTask, scoring: &ScoringPlan) -> anyhow::Result<PathBuf> {
    let dir = args.scratch.clone().unwrap_or_else(|| task.task_dir.join(MARKER));
    let abs = absolute(&dir);
    let real: Vec<PathBuf> = [Some(&scoring.output_folder), scoring.stat_folder.as_ref(), scoring.preprocess.as_ref().map(|p| &p.output_folder)]
        .into_iter()
        .flatten()
        .map(|p| absolute(p))
        .collect();
    if let Some(clash) = real.iter().find(|r| abs.starts_with(r) || r.starts_with(&abs)) {
        bail!("the scratch folder {} overlaps the task's output folder {}; choose another with --scratch", abs.display(), clash.display());
    }
    if abs.exists() {
        let ours = abs.join(MARKER).is_file();
        let empty = std::fs::read_dir(&abs).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !ours && !empty {
            bail!("{} exists and was not made by plugin dev (no {MARKER} marker in it): choose another --scratch", abs.display());
        }
        std::fs::remove_dir_all(&abs).with_context(|| format!("emptying the scratch folder {}", abs.display()))?;
    }
    std::fs::create_dir_all(&abs).with_context(|| format!("creating {}", abs.display()))?;
    std::fs::write(abs.join(MARKER), "scratch folder of `modelcall plugin dev`: emptied on each run\n")?;
    Ok(abs)
}

/// `p` from the current folder, without `.` components.
fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()) };
    joined.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// Copies the first `n` records of the task's input (JSONL lines; or, for a preprocessor that
/// reads raw files, the first `n` files) under `scratch/input/`.
fn write_sample(scoring: &ScoringPlan, scratch: &Path, n: usize) -> anyhow::Result<Sample> {
    let source = match (&scoring.preprocess, &scoring.input) {
        (Some(p), _) => p.input_root.clone(),
        (None, Some((_, path))) => path.clone(),
        (None, None) => bail!("the task names no input"),
    };
    let files: Vec<PathBuf> = if source.is_dir() {
        let pattern = scoring.preprocess.as_ref().and_then(|p| p.file_pattern.clone()).or_else(|| scoring.file_pattern.clone());
        let keep = |f: &Path| pattern.as_deref().is_none_or(|g| f.file_name().is_some_and(|n| modelcall_io::source::glob_match(g, &n.to_string_lossy())));
        modelcall_io::listing::list_files(&source, true, &keep).with_context(|| format!("reading {}", source.display()))?
    } else {
        vec![source.clone()]
    };
    let input = scratch.join("input");
    // Records or raw files, as the run decides (`preprocess.input`, else what the folder holds).
    let packed = |f: &PathBuf| {
        let n = file_name(f);
        n.ends_with(".parquet") || n.ends_with(".jsonl.gz") || n.ends_with(".jsonl.zst")
    };
    let records_mode = match scoring.preprocess.as_ref().and_then(|p| p.input) {
        Some(modelcall_config::task::PreprocessInputKind::Files) => false,
        Some(modelcall_config::task::PreprocessInputKind::Records) => true,
        None => files.iter().any(|f| is_jsonl(f) || packed(f)),
    };
    if records_mode && files.iter().any(packed) {
        bail!(
            "{}: plugin dev samples records from plain .jsonl files; take a few records of this input into a .jsonl file and point a copy of the task at it",
            source.display()
        );
    }
    let mut sample = Sample { input: if source.is_dir() { input.clone() } else { input.join(file_name(&source)) }, items: Vec::new() };
    for file in &files {
        if sample.items.len() >= n {
            break;
        }
        let rel = if source.is_dir() { file.strip_prefix(&source).unwrap_or(file).to_path_buf() } else { PathBuf::from(file_name(file)) };
        let dest = input.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap_or(&input))?;
        let rel = rel.to_string_lossy().replace('\\', "/");
        if records_mode {
            if !is_jsonl(file) {
                continue;
            }
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let mut kept = String::new();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                if sample.items.len() >= n {
                    break;
                }
                kept.push_str(line);
                kept.push('\n');
                sample.items.push(super::dev_show::Item::Record { file: rel.clone(), line: i + 1, text: line.to_string() });
            }
            std::fs::write(&dest, kept)?;
        } else {
            std::fs::copy(file, &dest).with_context(|| format!("copying {}", file.display()))?;
            sample.items.push(super::dev_show::Item::File { rel: rel.clone(), path: dest.clone() });
        }
    }
    if sample.items.is_empty() {
        bail!("{} holds no input to sample (plugin dev reads JSONL records, or raw files for a preprocessor)", source.display());
    }
    if !records_mode && scoring.preprocess.is_none() {
        bail!("{} holds no .jsonl file: plugin dev samples JSONL records (or raw files read by a preprocessor)", source.display());
    }
    Ok(sample)
}

fn is_jsonl(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "jsonl")
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "input.jsonl".into())
}

/// Whether to send to the task's own endpoint (yes when it is the simulator, or with `--live`;
/// otherwise the run goes to the simulator, and this says so), and whether the run's endpoint is
/// then the simulator.
fn endpoint_check(task: &LoadedTask, live: bool) -> anyhow::Result<(bool, bool)> {
    let Some(model) = &task.model else { bail!("{}: the task has no model config", task.source_path.display()) };
    let sim = |u: &str| modelcall_config::sim::SimOptions::is_sim_url(u);
    let real: Vec<&str> = std::iter::once(model.base_url.as_str()).chain(model.client.pool.iter().map(|e| e.url.as_str())).filter(|u| !sim(u)).collect();
    if real.is_empty() {
        return Ok((true, true));
    }
    if live {
        eprintln!("--live: sending to {} (a real endpoint: this may cost money)", real.join(", "));
        return Ok((true, false));
    }
    eprintln!(
        "note: the task's endpoint is {} (not sim://): plugin dev runs against the SIMULATOR instead; pass --live to send the sample there (it may cost money)",
        real.join(", ")
    );
    Ok((false, true))
}

/// Writes `scratch/task.yaml`: the task file with its input replaced by the sample, every folder
/// it writes moved under `scratch`, the paths it reads made absolute, no resume, one pass, JSONL
/// rows; and `scratch/model.yaml` when the model config needs changing (the simulator instead of
/// a real endpoint; a relative `replies=` file made absolute).
fn derive_task(task: &LoadedTask, scoring: &ScoringPlan, scratch: &Path, sample: &Sample, live: bool) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(&task.source_path).with_context(|| format!("reading {}", task.source_path.display()))?;
    let mut y: serde_yaml::Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", task.source_path.display()))?;
    let s = |p: &Path| serde_yaml::Value::String(p.display().to_string());
    let set = |y: &mut serde_yaml::Value, section: &str, key: &str, v: serde_yaml::Value| {
        if !y[section].is_mapping() {
            y[section] = serde_yaml::Value::Mapping(Default::default());
        }
        y[section][key] = v;
    };
    // Input: the sample (the same kind of key as the task's).
    let input = s(&sample.input);
    if y["data"]["input_folder"].is_string() {
        set(&mut y, "data", "input_folder", input.clone());
    } else {
        set(&mut y, "data", "input_file", input.clone());
    }
    if scoring.preprocess.is_some() && y["preprocess"]["input_folder"].is_string() {
        set(&mut y, "preprocess", "input_folder", input);
    }
    // Outputs: under the scratch folder.
    set(&mut y, "data", "output_folder", s(&scratch.join("out")));
    set(&mut y, "data", "stat_folder", s(&scratch.join("stats")));
    // JSONL whatever the task writes: the rows are read back to be shown.
    set(&mut y, "data", "output_format", "jsonl".into());
    if scoring.preprocess.is_some() {
        set(&mut y, "preprocess", "output_folder", s(&scratch.join("preprocessed")));
    }
    if y["logging"]["log_dir"].is_string() {
        set(&mut y, "logging", "log_dir", s(&scratch.join("logs")));
    }
    set(&mut y, "options", "resume", serde_yaml::Value::Bool(false));
    if let Some(m) = y.as_mapping_mut() {
        m.remove("distributed");
    }
    // The sample is the input already (a split may give more records): no debug caps on top.
    y["debug"] = serde_yaml::from_str("{enabled: false}")?;
    // Inputs read beside the task: absolute, since the derived task lives elsewhere.
    if let Some(p) = y["prompt"]["config_path"].as_str().map(|p| task.resolve(p)) {
        set(&mut y, "prompt", "config_path", s(&absolute(&p)));
    }
    if let Some(p) = y["environment"]["config_path"].as_str().filter(|p| !p.contains("${")).map(|p| task.resolve(p)) {
        set(&mut y, "environment", "config_path", s(&absolute(&p)));
    }
    if let Some(plugins) = y.get_mut("plugins").and_then(serde_yaml::Value::as_mapping_mut) {
        for (_, entry) in plugins.iter_mut() {
            if let Some(p) = entry["path"].as_str().filter(|p| !p.starts_with("builtin:")).map(|p| task.resolve(p)) {
                entry["path"] = s(&absolute(&p));
            }
        }
    }
    let model = task.model.as_ref().expect("checked by endpoint_check");
    set(&mut y, "model", "config_path", s(&derive_model(&model.path, scratch, live)?));
    let path = scratch.join("task.yaml");
    std::fs::write(&path, serde_yaml::to_string(&y)?)?;
    Ok(path)
}

/// The model config the sample runs with: the task's own when it can be used as it is; else a
/// copy in `scratch` on the simulator (not `live`), or with its `replies=` file made absolute.
fn derive_model(path: &Path, scratch: &Path, live: bool) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut y: serde_yaml::Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base = y["client_config"]["base_url"].as_str().unwrap_or_default().to_string();
    let sim = modelcall_config::sim::SimOptions::is_sim_url(&base);
    let url = if !live {
        if let Some(c) = y["client_config"].as_mapping_mut() {
            c.remove("endpoints");
        }
        y["client_config"]["api_key"] = "not-needed".into();
        if sim {
            absolute_replies(&base, path)
        } else {
            "sim://".to_string()
        }
    } else if sim {
        absolute_replies(&base, path)
    } else {
        return Ok(absolute(path));
    };
    y["client_config"]["base_url"] = url.into();
    let out = scratch.join("model.yaml");
    std::fs::write(&out, serde_yaml::to_string(&y)?)?;
    Ok(out)
}

/// `sim://?…replies=REL…` with REL made absolute (found from the current folder, else beside
/// the model config, as the task's paths are).
fn absolute_replies(url: &str, model_path: &Path) -> String {
    let Some((head, query)) = url.split_once('?') else { return url.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.strip_prefix("replies=") {
            Some(rel) if !Path::new(rel).is_absolute() && !rel.contains('%') => {
                let dir = model_path.parent().unwrap_or(Path::new("."));
                format!("replies={}", absolute(&modelcall_config::paths::resolve(rel, dir)).display())
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{head}?{}", parts.join("&"))
}
