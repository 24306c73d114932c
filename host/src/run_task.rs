//! `modelcall run-task`: from a task file to a finished run.
//!
//! This module only wires things together: config → inputs, plugins, model client → the
//! scoring engine → summary. Each piece lives in its own crate or module.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use modelcall_config::{load_task, LoadedTask, Overrides, TaskType};
use modelcall_io::OutputFormat;
use modelcall_model::{ClientSettings, ModelClient};
use modelcall_plugin_host::{Limits, Plugin, PluginRuntime, PluginSource, PluginSpec, Role};
use serde_json::{json, Value};

use crate::plugin_pool::PluginPool;
use crate::run_task_args::RunTaskArgs;
use crate::scoring::{self, record::Stages, ScoringPlan};

/// Runs the command; the exit code tells scripts whether everything was processed.
pub fn run(args: RunTaskArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides { model_config: args.model.clone(), output_folder: args.output_folder.clone() };
    let task = match load_task(&args.task, &overrides) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    for ignored in &task.ignored_keys {
        eprintln!("note: {ignored}");
    }
    for warning in &task.warnings {
        eprintln!("warning: {warning}");
    }
    match (&task.task.task_type, &task.task.distillation) {
        (TaskType::DataScoring, _) => {}
        (_, Some(modelcall_config::distill::DistillationStep::GenerateResponse(step))) => {
            let step = step.clone();
            return run_generate(&args, &task, &step);
        }
        (_, Some(modelcall_config::distill::DistillationStep::ChatmlConversion(step))) => {
            if args.dry_run {
                println!("task        {} (chatml_conversion): {} → {}", task.task.task_name, step.input_dir.display(), step.output_dir.display());
                println!("dry run: nothing written");
                return Ok(ExitCode::SUCCESS);
            }
            return crate::chatml::run(&task.source_path, &task.task.task_name, step);
        }
        (_, Some(modelcall_config::distill::DistillationStep::JsonlMerge(step))) => {
            if args.dry_run {
                println!("task        {} (jsonl_merge): {} → {}", task.task.task_name, step.base_input_dir.display(), step.base_output_dir.display());
                println!("dry run: nothing written");
                return Ok(ExitCode::SUCCESS);
            }
            return crate::merge::run(&task.source_path, step, step.dedup_key.as_deref());
        }
        (_, step) => {
            eprintln!(
                "error: {}: distillation step `{}` is not available in this version yet (generate_response is); see the open distillation issue",
                task.source_path.display(),
                step.as_ref().map(|s| s.name()).unwrap_or("none")
            );
            return Ok(ExitCode::from(2));
        }
    }
    if task.task.distributed.num_runs() > 1 {
        eprintln!(
            "error: {}: `distributed.num_runs: {}` (repeated independent passes) is not supported yet; run the task again with another output_folder instead",
            task.source_path.display(),
            task.task.distributed.num_runs()
        );
        return Ok(ExitCode::from(2));
    }
    let shard = resolve_shard(&args, &task)?;
    let runtime = PluginRuntime::new().context("starting the plugin runtime")?;
    let (prompt, parser) = match load_plugins(&runtime, &task) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let preprocess_plan = match preprocess_plan(&runtime, &task) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.stage == "preprocess" && preprocess_plan.is_none() {
        eprintln!("error: {}: --stage preprocess needs preprocess.enabled or a `preprocessor` plugin", task.source_path.display());
        return Ok(ExitCode::from(2));
    }
    let pool = PluginPool::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let model = task.model.clone().expect("scoring tasks have a model config");
    let concurrency = task.task.concurrency.max_concurrent_requests.unwrap_or(64).max(1);
    raise_open_file_limit(concurrency as u64 * 2 + 256);

    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async move {
        // Preprocessing (when configured) feeds the scoring stage with its group files.
        let (plan_inputs, preprocessing) = match preprocess_plan {
            Some(pre) if !args.dry_run => {
                let out = pre.output_folder.clone();
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let stage = tokio::spawn(crate::preprocess::run(pre, pool.clone(), !args.no_progress, Some(tx)));
                if args.stage == "preprocess" {
                    drop(rx);
                    let summary = stage.await??;
                    report_preprocessing(&summary, &out);
                    return Ok(ExitCode::SUCCESS);
                }
                // Scoring starts on each group file as soon as preprocessing finishes it.
                (crate::scoring::Inputs::Stream(rx), Some((stage, out)))
            }
            Some(pre) => (crate::scoring::Inputs::Files(vec![pre.output_folder.join("<group>.jsonl")]), None),
            None => match inputs(&task) {
                Ok(i) => (crate::scoring::Inputs::Files(i), None),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            },
        };
        // sim:// starts the built-in simulated endpoint on an ephemeral loopback port.
        let (client, _sim) = build_client(&model, concurrency, task.task.concurrency.requests_per_minute).await?;

        let output_folder = task.output_folder.clone().expect("checked by the config loader");
        let provenance = json!({
            "task_file": task.source_path.display().to_string(),
            "endpoint": client.endpoint(),
            "simulated": model.sim().is_some(),
            "model": model.model,
            "api_key": model.masked_key(),
            "concurrency": concurrency,
            "shard": shard.map(|(i, n)| format!("{i}/{n}")),
            "plugins": [prompt.info(), parser.info()],
            "modelcall_version": env!("CARGO_PKG_VERSION"),
        });
        let debug = &task.task.debug;
        let max_items = if debug.enabled { debug.max_items_per_file.filter(|n| *n >= 0).map(|n| n as u64) } else { None };
        let plan = ScoringPlan {
            task_name: task.task.task_name.clone(),
            inputs: plan_inputs,
            output_folder,
            stat_folder: task.stat_folder.clone(),
            output_format: match task.task.data.output_format.as_deref() {
                Some("jsonl") => OutputFormat::Jsonl,
                _ => OutputFormat::Parquet,
            },
            key_fields: vec![task.task.data.id_field.clone().unwrap_or_else(|| "id".into())],
            naming: crate::scoring::pipeline::Naming::Scoring,
            fresh_start: !task.task.options.resume() || task.task.options.delete_existing(),
            samples_per_record: 1,
            ordered: false,
            concurrency,
            max_concurrent_files: task.task.concurrency.max_concurrent_files.unwrap_or(2).max(1),
            max_items_per_file: max_items,
            shard,
            flush_interval: Duration::from_millis(200),
            show_progress: !args.no_progress,
            provenance,
            prompt_conf: task.prompt.as_ref().map(|p| p.path.display().to_string()).unwrap_or_default(),
            model_conf: model.path.display().to_string(),
        };

        if args.dry_run {
            print_plan(&task, &plan, &prompt, &parser, client.endpoint());
            return Ok(ExitCode::SUCCESS);
        }

        let require_json = task.prompt.as_ref().map(|p| p.require_json()).unwrap_or(true);
        let validation_retry = task.task.retry.enable_format_validation_retry.unwrap_or(true);
        let stages = Stages {
            task_name: task.task.task_name.clone(),
            prompt: Some(prompt),
            parser: Some(parser),
            generate: None,
            client,
            pool,
            parse_retries: if validation_retry { task.task.retry.max_retries.unwrap_or(2) } else { 0 },
            input_key: task.task.data.input_key.clone(),
            require_json,
        };
        let outcome = scoring::run(plan, stages).await?;
        if let Some((stage, out)) = preprocessing {
            match stage.await? {
                Ok(summary) => report_preprocessing(&summary, &out),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    eprintln!("the groups preprocessed before the error were scored; run the same command again to resume");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        eprintln!("{}", outcome.stats.render());
        eprintln!("summary: {}", outcome.summary_path.display());
        if let Some(reason) = outcome.stopped {
            eprintln!("error: the run stopped: {reason}");
            eprintln!("nothing in flight was marked failed; run the same command again to resume");
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn report_preprocessing(summary: &crate::preprocess::PreprocessSummary, out: &std::path::Path) {
    eprintln!(
        "preprocessed: {} input(s) now, {} done before, {} skipped, {} failed → {} record(s); {} group file(s) in {}",
        summary.inputs_processed,
        summary.inputs_done_before,
        summary.inputs_skipped,
        summary.inputs_failed,
        summary.records,
        summary.files.len(),
        out.display()
    );
    for e in &summary.errors_files {
        eprintln!("preprocessing errors: {}", e.display());
    }
}

/// Starts the in-process simulated endpoint for `sim://` and builds the client.
async fn build_client(
    model: &modelcall_config::ModelConfig,
    concurrency: usize,
    requests_per_minute: Option<u32>,
) -> anyhow::Result<(ModelClient, Option<modelcall_sim::SimServer>)> {
    let (base_url, sim) = match model.sim() {
        Some(spec) => {
            let opts = modelcall_sim::SimOptions::from_url(&spec.url)
                .map_err(|e| anyhow::anyhow!("{}: client_config.base_url: {e}", model.path.display()))?;
            let sim = modelcall_sim::start(opts).await?;
            eprintln!("using the SIMULATED endpoint at {} (replies are synthetic, not a model's)", sim.base_url());
            (sim.base_url(), Some(sim))
        }
        None => (model.base_url.clone(), None),
    };
    let mut settings = ClientSettings::new(base_url, model.model.clone());
    settings.api_key = model.api_key.clone();
    settings.timeout = model.timeout;
    settings.max_retries = model.max_retries;
    settings.pool_size = concurrency;
    settings.stream = model.stream;
    settings.chat_config = model.chat_config.clone();
    settings.backoff_base = model.backoff_base;
    settings.backoff_max = model.backoff_max;
    settings.requests_per_minute = requests_per_minute;
    let client = ModelClient::new(settings).map_err(|e| anyhow::anyhow!("{}: {e}", model.path.display()))?;
    Ok((client, sim))
}

/// `generate_response` (both reference schemas): a teacher model answers every conversation of
/// a JSONL file or of every `*.jsonl` in a folder; `<out>/<B>.jsonl` and `<out>/<B>_error.jsonl`,
/// exactly one line per uid across both, resumable; `retry_mode` re-runs the failures (which
/// every run does anyway: failed uids are never done).
fn run_generate(args: &RunTaskArgs, task: &LoadedTask, step: &modelcall_config::distill::GenerateResponse) -> anyhow::Result<ExitCode> {
    let file = task.source_path.display();
    let Some(model) = task.model.clone() else {
        eprintln!("error: {file}: generate_response needs a model config (distillation.response_config_path / model_config)");
        return Ok(ExitCode::from(2));
    };
    let input = &step.input_path;
    let inputs: Vec<PathBuf> = if input.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(input)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        v.sort();
        v
    } else if input.exists() {
        vec![input.clone()]
    } else {
        eprintln!("error: {file}: distillation.input_path: {} does not exist", input.display());
        return Ok(ExitCode::from(2));
    };
    if inputs.is_empty() {
        eprintln!("error: {file}: distillation.input_path: no *.jsonl files in {}", input.display());
        return Ok(ExitCode::from(2));
    }
    let concurrency = step.concurrency.max(1);
    raise_open_file_limit(concurrency as u64 * 2 + 256);
    let shard = resolve_shard(args, task)?;
    let output_folder = args.output_folder.clone().unwrap_or_else(|| step.output_path.clone());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async move {
        let (client, _sim) = build_client(&model, concurrency, task.task.concurrency.requests_per_minute).await?;
        let plan = ScoringPlan {
            task_name: task.task.task_name.clone(),
            inputs: crate::scoring::Inputs::Files(inputs),
            output_folder,
            stat_folder: None,
            output_format: OutputFormat::Jsonl,
            key_fields: vec!["uid".into(), "id".into()],
            naming: crate::scoring::pipeline::Naming::Distillation,
            fresh_start: !step.resume,
            samples_per_record: step.n.max(1),
            ordered: step.ordered,
            concurrency,
            max_concurrent_files: 1,
            max_items_per_file: None,
            shard,
            flush_interval: Duration::from_secs_f64(step.flush_interval_secs.clamp(0.01, 60.0)),
            show_progress: !args.no_progress,
            provenance: json!({
                "task_file": task.source_path.display().to_string(),
                "step": "generate_response",
                "endpoint": client.endpoint(),
                "simulated": model.sim().is_some(),
                "model": model.model,
                "api_key": model.masked_key(),
                "concurrency": concurrency,
                "retry_mode": step.retry_mode,
            }),
            prompt_conf: String::new(),
            model_conf: model.path.display().to_string(),
        };
        if args.dry_run {
            println!("task        {} (generate_response) from {}", plan.task_name, task.source_path.display());
            for i in plan.inputs.known().unwrap_or_default() {
                println!("input       {}", i.display());
            }
            println!("outputs     {}", plan.output_folder.display());
            println!("endpoint    {}", client.endpoint());
            println!("dry run: no request sent");
            return Ok(ExitCode::SUCCESS);
        }
        let stages = Stages {
            task_name: task.task.task_name.clone(),
            prompt: None,
            parser: None,
            generate: Some(crate::scoring::generate::GenerateOptions {
                first_user_only: step.first_user_only,
                allow_truncated: step.allow_truncated,
                reasoning: step.reasoning,
            }),
            client,
            pool: PluginPool::new(1),
            parse_retries: 0,
            input_key: None,
            require_json: false,
        };
        let outcome = scoring::run(plan, stages).await?;
        eprintln!("{}", outcome.stats.render());
        eprintln!("summary: {}", outcome.summary_path.display());
        if let Some(reason) = outcome.stopped {
            eprintln!("error: the run stopped: {reason}");
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The preprocessing stage of a task: a `preprocessor` entry of the `plugins:` block, or the
/// reference's `preprocess:` block (`enabled`, `script_type`, `input_folder`, `output_folder`,
/// `max_tokens`, `languages`, `num_files`).
fn preprocess_plan(runtime: &PluginRuntime, task: &LoadedTask) -> anyhow::Result<Option<crate::preprocess::PreprocessPlan>> {
    let t = &task.task;
    let pre = &t.preprocess;
    let entry = t.plugins.values().find(|p| p.role == "preprocessor");
    let enabled = pre.enabled;
    if entry.is_none() && !enabled {
        return Ok(None);
    }
    let file = task.source_path.display();
    let data_input = t.data.input_folder.clone().or_else(|| t.data.input_file.clone());
    let input = pre.input_folder.clone().or(data_input.clone()).ok_or_else(|| {
        anyhow::anyhow!("{file}: `preprocess.input_folder` (or data.input_folder) is needed to preprocess")
    })?;
    let input_root = task.resolve(&input);
    if !input_root.exists() {
        bail!("{file}: `preprocess.input_folder`: {} does not exist", input_root.display());
    }
    let output = pre
        .output_folder
        .as_deref()
        .map(|o| task.resolve(o))
        .unwrap_or_else(|| PathBuf::from(format!("{}_preprocessed", input_root.display())));
    let max_tokens = pre.max_tokens;
    let (source, mut config, limits, name) = match entry {
        Some(e) => {
            let source = if e.path.starts_with("builtin:") { PluginSource::parse(&e.path) } else { PluginSource::Path(task.resolve(&e.path)) };
            let limits: Limits = if e.limits.is_null() {
                Limits::default()
            } else {
                serde_json::from_value(e.limits.clone()).map_err(|err| anyhow::anyhow!("{file}: `plugins.{}.limits`: {err}", e.name))?
            };
            (source, if e.config.is_null() { json!({}) } else { e.config.clone() }, limits, format!("plugins.{}", e.name))
        }
        None => {
            let builtin = match pre.script_type {
                modelcall_config::task::ScriptType::RepoXml => "repo-xml",
                modelcall_config::task::ScriptType::GithubRawCode => "github-raw-code",
                modelcall_config::task::ScriptType::Universal => "universal",
                modelcall_config::task::ScriptType::TripletFilter => "triplet-filter",
            };
            let mut config = json!({});
            if builtin == "universal" {
                // The reference's universal keys become the plugin's config.
                let transformations = pre.transformations.clone().unwrap_or_else(|| json!({}));
                let mut t = transformations.as_object().cloned().unwrap_or_default();
                let computed = t.remove("computed_fields");
                config = json!({
                    "field_mapping": pre.field_mapping.clone().unwrap_or_else(|| json!({})),
                    "filters": pre.filters.clone().unwrap_or_else(|| json!({})),
                    "transformations": Value::Object(t),
                    "source_name": pre.source_name.clone().unwrap_or_else(|| "unknown".into()),
                });
                if let Some(c) = computed {
                    config["computed_fields"] = c;
                }
            }
            (PluginSource::Builtin(builtin.into()), config, Limits::default(), "preprocess.script_type".to_string())
        }
    };
    if let (Some(mt), Some(obj)) = (max_tokens, config.as_object_mut()) {
        if matches!(&source, PluginSource::Builtin(n) if n == "repo-xml" || n == "github-raw-code" || n == "universal" || n == "triplet-filter") && !obj.contains_key("max_tokens") {
            obj.insert("max_tokens".into(), json!(mt));
        }
    }
    if let (Some(langs), Some(obj)) = (&pre.languages, config.as_object_mut()) {
        if matches!(&source, PluginSource::Builtin(n) if n == "github-raw-code") && !obj.contains_key("languages") {
            obj.insert("languages".into(), json!(langs));
        }
    }
    let mut spec = PluginSpec::new(source, Role::Preprocessor);
    spec.config = config;
    spec.limits = limits;
    spec.task_name = t.task_name.clone();
    let plugin = runtime.load(spec).map_err(|e| anyhow::anyhow!("{file}: `{name}` (preprocessor): {e}"))?;
    // Record inputs (JSONL/Parquet files in the folder) go through as records; anything else
    // (e.g. <Language>/*.xml packs) as raw files.
    let file_mode = input_root.is_dir() && modelcall_io::list_input_files(&input_root, None).map(|f| f.is_empty()).unwrap_or(true);
    let languages = pre.languages.clone();
    let mut max_inputs = pre.num_files.filter(|n| *n > 0).map(|n| n as usize);
    if t.debug.enabled {
        if let Some(n) = t.debug.max_files.filter(|n| *n > 0) {
            max_inputs = Some(n as usize);
        }
    }
    Ok(Some(crate::preprocess::PreprocessPlan {
        plugin,
        file_mode,
        input_root,
        output_folder: output,
        languages,
        // Triplet inputs are the reference's pt_data_<Lang>[_partNN].jsonl files.
        file_pattern: pre.file_pattern.clone().or_else(|| {
            (pre.script_type == modelcall_config::task::ScriptType::TripletFilter && entry.is_none()).then(|| "pt_data_*.jsonl".to_string())
        }),
        max_inputs,
        id_field: t.data.id_field.clone().or_else(|| Some("id".into())),
    }))
}

/// `--shard I/N`, else `--job_index/--world_size`, else `distributed.world_size` with index 0,
/// else Slurm / Kubernetes variables.
fn resolve_shard(args: &RunTaskArgs, task: &LoadedTask) -> anyhow::Result<Option<(u32, u32)>> {
    if let Some(spec) = &args.shard {
        return modelcall_config::parse_shard(spec).map(Some).map_err(|e| anyhow::anyhow!(e));
    }
    if let Some(n) = args.world_size.or(task.task.distributed.world_size).filter(|n| *n > 1) {
        let i = args.job_index.unwrap_or(0);
        if i >= n {
            bail!("--job_index {i} must be below --world_size {n}");
        }
        return Ok(Some((i, n)));
    }
    modelcall_config::shard_from_env_checked().map_err(|e| anyhow::anyhow!(e))
}

fn inputs(task: &LoadedTask) -> anyhow::Result<Vec<PathBuf>> {
    let data = &task.task.data;
    let (key, raw) = match (&data.input_file, &data.input_folder) {
        (Some(f), _) => ("data.input_file", f),
        (None, Some(d)) => ("data.input_folder", d),
        (None, None) => bail!("{}: data.input_folder is missing", task.source_path.display()),
    };
    let path = task.resolve(raw);
    if !path.exists() {
        bail!("{}: `{key}`: {} does not exist", task.source_path.display(), path.display());
    }
    let mut files = modelcall_io::list_input_files(&path, data.file_pattern.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: `{key}`: {e}", task.source_path.display()))?;
    if files.is_empty() {
        bail!(
            "{}: `{key}`: no input files in {} (expected *.jsonl, *.jsonl.gz, *.jsonl.zst or *.parquet)",
            task.source_path.display(),
            path.display()
        );
    }
    if task.task.debug.enabled {
        if let Some(n) = task.task.debug.max_files.filter(|n| *n >= 0) {
            files.truncate(n as usize);
        }
    }
    Ok(files)
}

/// The prompt builder and score parser: from the `plugins:` block when given, else the
/// built-ins configured from the prompt config (the reference's behaviour).
fn load_plugins(runtime: &PluginRuntime, task: &LoadedTask) -> anyhow::Result<(Plugin, Plugin)> {
    let t = &task.task;
    let by_role = |role: &str| t.plugins.values().find(|p| p.role == role);
    let load = |role: Role, entry: Option<&modelcall_config::PluginEntry>, default_source: &str, default_config: Value| -> anyhow::Result<Plugin> {
        let (source, config, limits, name) = match entry {
            Some(e) => {
                let source = if e.path.starts_with("builtin:") {
                    PluginSource::parse(&e.path)
                } else {
                    PluginSource::Path(task.resolve(&e.path))
                };
                let limits: Limits = if e.limits.is_null() {
                    Limits::default()
                } else {
                    serde_json::from_value(e.limits.clone()).map_err(|err| {
                        anyhow::anyhow!("{}: `plugins.{}.limits`: {err}", task.source_path.display(), e.name)
                    })?
                };
                let config = if e.config.is_null() { default_config } else { e.config.clone() };
                (source, config, limits, format!("plugins.{}", e.name))
            }
            None => (PluginSource::parse(default_source), default_config, Limits::default(), default_source.to_string()),
        };
        let mut spec = PluginSpec::new(source, role);
        spec.config = config;
        spec.limits = limits;
        spec.task_name = t.task_name.clone();
        runtime.load(spec).map_err(|e| anyhow::anyhow!("{}: `{name}` ({role}): {e}", task.source_path.display()))
    };
    let mut prompt_config = task.prompt.as_ref().map(|p| p.raw.clone()).unwrap_or_else(|| json!({}));
    if let Some(obj) = prompt_config.as_object_mut() {
        if let Some(k) = &t.data.input_key {
            obj.insert("input_key".into(), json!(k));
        }
        if let Some(k) = &t.data.prompt_format_key {
            obj.insert("prompt_format_key".into(), json!(k));
        }
    }
    let output_config = task.prompt.as_ref().map(|p| p.output_config()).unwrap_or_else(|| json!({}));
    let prompt = load(Role::PromptBuilder, by_role("prompt-builder"), "builtin:template-prompt", prompt_config)?;
    let parser = load(Role::ScoreParser, by_role("score-parser"), "builtin:json-score", output_config)?;
    Ok((prompt, parser))
}

fn print_plan(task: &LoadedTask, plan: &ScoringPlan, prompt: &Plugin, parser: &Plugin, endpoint: &str) {
    println!("task        {} (data_scoring) from {}", plan.task_name, task.source_path.display());
    match plan.inputs.known() {
        Some(inputs) => {
            println!("inputs      {} file(s):", inputs.len());
            for i in inputs.iter().take(20) {
                println!("              {}", i.display());
            }
            if inputs.len() > 20 {
                println!("              … and {} more", inputs.len() - 20);
            }
        }
        None => println!("inputs      streamed from the preprocessing stage"),
    }
    println!("outputs     {} ({:?})", plan.output_folder.display(), plan.output_format);
    println!("endpoint    {endpoint}");
    if let Some(m) = &task.model {
        println!("model       {} (key {})", m.model, m.masked_key().unwrap_or_else(|| "none".into()));
    }
    println!("concurrency {} requests in flight", plan.concurrency);
    if let Some((i, n)) = plan.shard {
        println!("shard       {i}/{n}");
    }
    for p in [prompt, parser] {
        let info = p.info();
        println!("plugin      {} {} {} (WIT {}, sha256 {}…)", info.role, info.name, info.version, info.wit_version, &info.sha256[..12]);
    }
    println!("dry run: no request sent");
}

/// Thousands of connections in flight need thousands of file descriptors; raise the soft limit
/// towards the hard one instead of failing with "too many open files" mid-run.
fn raise_open_file_limit(wanted: u64) {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && (lim.rlim_cur as u64) < wanted {
            lim.rlim_cur = (wanted as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
