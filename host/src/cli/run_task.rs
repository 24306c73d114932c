//! `modelcall run-task`: load the task, resolve it into a plan, hand the plan to its preset,
//! map the end to an exit code. Dispatch only: the work lives in `crate::tasks`.

use std::process::ExitCode;

use modelcall_config::{load_task, Overrides, RunPlan, Stages};

use super::exit::{exit_code, BadConfig};
use super::run_task_args::RunTaskArgs;
use crate::tasks::{self, TaskRun};

pub fn run(args: RunTaskArgs) -> ExitCode {
    // Ctrl-C / SIGTERM from the start (plugins take a while to load): "interrupted", exit 130.
    crate::engine::stop::install_early();
    let overrides = Overrides { model_config: args.model.clone(), output_folder: args.output_folder.clone() };
    let task = match load_task(&args.task, &overrides) {
        Ok(t) => t,
        Err(e) => return exit_code(Err(BadConfig(e.to_string()).into()), false),
    };
    // `execution.dry_run: true` is `--dry-run`, for every task type (a batch's runs included).
    let args = RunTaskArgs { dry_run: args.dry_run || task.task.dry_run(), ..args };
    crate::engine::collect::set_max_field_bytes(task.task.output.max_field_bytes());
    if task.task.dry_run() {
        eprintln!("dry run: {} sets execution.dry_run: true (nothing is sent or written)", task.source_path.display());
    }
    // Once per task file, not once per key nor per run of a batch; the reasons on a dry run.
    if let Some(block) = modelcall_config::schema::notes_block(&task.ignored_keys, args.dry_run) {
        eprintln!("{block}");
    }
    // `environment.tos_config_path`: the object-storage credentials it holds, over the
    // environment as in the reference, before any thread starts (the store reads them there).
    for (k, v) in &task.storage_env.0 {
        std::env::set_var(k, v);
    }
    for warning in &task.warnings {
        eprintln!("warning: {warning}");
    }
    // The model's key and the object storage's secrets are never printed.
    let redactor = task.model.as_ref().map(|m| m.redactor()).unwrap_or_default();
    super::exit::install_redactor(redactor.with(crate::remote::storage_secrets()));
    let logging = &task.task.logging;
    let level = match logging.level.as_deref() {
        None => None,
        Some(l) => match crate::logging::parse_level(l) {
            Some(level) => Some(level),
            None => {
                let e = BadConfig(format!("{}: logging.level: `{l}` is not a level (trace, debug, info, warning, error)", task.source_path.display()));
                return exit_code(Err(e.into()), false);
            }
        },
    };
    let log_dir = logging.log_dir.as_deref().map(|d| task.resolve(d));
    match crate::logging::configure(&task.task.task_name, level, log_dir.as_deref()) {
        Ok(Some(path)) => eprintln!("log: {}", path.display()),
        Ok(None) => {}
        Err(e) => {
            let e = BadConfig(format!(
                "{}: logging.log_dir: cannot write a log file under {}: {e}",
                task.source_path.display(),
                log_dir.unwrap_or_default().display()
            ));
            return exit_code(Err(e.into()), false);
        }
    }
    let allow_failures = task.task.options.allow_failures();
    // `distributed.num_runs: K`: K independent passes, each in its own `{run_index}` folder,
    // each resuming on its own.
    let runs = task.task.distributed.num_runs();
    if let Err(e) = modelcall_config::run_plan::check_num_runs(&task) {
        return exit_code(Err(BadConfig(e.to_string()).into()), false);
    }
    // A batch of models is one run per model (each its own output folder).
    let expanded = match task.expand() {
        Ok(t) => t,
        Err(e) => return exit_code(Err(BadConfig(e.to_string()).into()), false),
    };
    let passes = expanded.iter().flat_map(|t| (1..=runs).map(move |i| (t, i)));
    let mut result = Ok(super::exit::Finish::Done);
    for (task, run_index) in passes {
        let mut pass = task.clone();
        if runs > 1 {
            pass.output_folder = task.output_folder_for_run(run_index);
            pass.stat_folder = task.stat_folder.as_deref().map(|p| modelcall_config::paths::with_run_index(p, run_index));
            eprintln!("pass {run_index} of {runs}: {}", pass.output_folder.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
        } else if expanded.len() > 1 {
            eprintln!("run {}: {}", pass.task.task_name, pass.output_folder.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
        }
        let finish = run_pass(&args, &pass);
        result = match (result, finish) {
            (Ok(a), Ok(b)) => Ok(a.and(b)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if !matches!(result, Ok(super::exit::Finish::Done) | Ok(super::exit::Finish::Failures(_))) {
            break;
        }
    }
    exit_code(result, allow_failures)
}

/// One pass of the task; paths on object storage are staged locally around it (see
/// [`crate::remote`]): inputs and earlier state down first, results up at the end, journals up
/// during the run.
fn run_pass(args: &RunTaskArgs, task: &modelcall_config::LoadedTask) -> anyhow::Result<super::exit::Finish> {
    let has_remote = |s: &str| s.contains("s3://") || s.contains("tos://");
    if !has_remote(&task.json.to_string()) && !task.output_folder.as_deref().is_some_and(|o| has_remote(&o.to_string_lossy())) {
        return run_local(args, task);
    }
    let storage = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if args.dry_run {
        // The plan is of the staged copy: stage (download only), plan, upload nothing.
        eprintln!("dry run: staging the object-storage paths to check them (download only; nothing is sent or uploaded)");
        return match storage.block_on(crate::remote::stage(task))? {
            Some((staged_task, _)) => run_local(args, &staged_task),
            None => run_local(args, task),
        };
    }
    let Some((staged_task, mut staged)) = storage.block_on(crate::remote::stage(task))? else {
        return run_local(args, task);
    };
    staged.start_periodic(storage.handle());
    let finish = run_local(args, &staged_task);
    // Uploaded whatever the end: what finished is in the journal, and must reach the bucket.
    let uploaded = storage.block_on(staged.finish());
    match (finish, uploaded) {
        (Ok(f), Ok(())) => Ok(f),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.context("the run finished but its results could not all be uploaded; run the same command again to retry the upload")),
    }
}

/// One pass of the task on local paths: plan, preset, end.
fn run_local(args: &RunTaskArgs, task: &modelcall_config::LoadedTask) -> anyhow::Result<super::exit::Finish> {
    // `concurrency.mode: batch`: tokens cost `pricing.batch_discount` less (cost, estimate, budget).
    let batch_priced = crate::tasks::batch_mode::priced(task);
    let task = batch_priced.as_ref().unwrap_or(task);
    let plan = RunPlan::from_task(task).map_err(|e| BadConfig(e.to_string()))?;
    let shard = resolve_shard(args, task)?;
    let run = TaskRun {
        task,
        plan: &plan,
        shard,
        dry_run: args.dry_run,
        preprocess_only: args.stage == "preprocess",
        show_progress: !args.no_progress,
        retry_failed: args.retry_failed,
        no_adopt: args.no_adopt,
        on_changed: args.on_changed(),
        offline: args.offline,
        no_cache: args.no_cache,
        parser_override: args.parser_override.clone(),
        metrics: crate::metrics::MetricsTarget { file: args.metrics_file.clone(), listen: args.metrics_listen },
        output_override: args.output_folder.clone(),
        batch: crate::tasks::batch_mode::Mode::of(args.detach, args.batch_file.clone()),
    };
    if run.preprocess_only && !matches!(&plan.stages, Stages::Scoring(s) if s.preprocess.is_some()) {
        return Err(BadConfig(format!("{}: --stage preprocess needs preprocess.enabled or a `preprocessor` plugin", task.source_path.display())).into());
    }
    match &plan.stages {
        // Merging reads files only (it blocks, so it runs outside the async runtime).
        Stages::MergeResults(m) if !run.dry_run => return super::merge::merge_results(&run, m),
        Stages::MergeResults(_) => {
            crate::tasks::print_dry_run(&run, &[], None);
            return Ok(super::exit::Finish::Done);
        }
        Stages::Batch(_) => unreachable!("a batch is expanded into its runs first"),
        _ => {}
    }
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        match &plan.stages {
            Stages::Scoring(s) => tasks::scoring::run(&run, s).await,
            Stages::Generate(g) => tasks::generate::run(&run, g).await,
            Stages::Chatml(c) => tasks::chatml::run(&run, c).await,
            Stages::Merge(m) => tasks::merge::run(&run, m).await,
            Stages::MergeResults(_) | Stages::Batch(_) => unreachable!("handled before the runtime starts"),
        }
    })
}

/// `--shard I/N`, else `--job_index/--world_size`, else `distributed.world_size` with index 0,
/// else Slurm / Kubernetes variables.
fn resolve_shard(args: &RunTaskArgs, task: &modelcall_config::LoadedTask) -> anyhow::Result<Option<(u32, u32)>> {
    if let Some(spec) = &args.shard {
        return Ok(Some(modelcall_config::parse_shard(spec).map_err(|e| BadConfig(format!("--shard: {e}")))?));
    }
    if let Some(n) = args.world_size.or(task.task.distributed.world_size).filter(|n| *n > 1) {
        let i = args.job_index.unwrap_or(0);
        if i >= n {
            return Err(BadConfig(format!("--job_index {i} must be below --world_size {n}")).into());
        }
        return Ok(Some((i, n)));
    }
    Ok(modelcall_config::shard_from_env_checked().map_err(|e| BadConfig(e.to_string()))?)
}
