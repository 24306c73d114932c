//! Task presets: each task type is a short module that picks a [`crate::engine::Job`] and a
//! [`crate::engine::SinkKind`] per unit and hands them to the one engine.
//!
//! - [`scoring`]: `[preprocess] → prompt → model → parse`, one output per input file;
//! - [`preprocess`]: raw packs or records through a preprocessor, one file per group;
//! - [`generate`]: a teacher model answers every conversation (`generate_response`);
//! - [`chatml`]: datasets in six format styles to ChatML (`chatml_conversion`);
//! - [`merge`]: groups of JSONL files into one file each (`jsonl_merge`).

pub mod batch_mode;
pub mod chatml;
pub mod dataset_card;
pub mod endpoint;
pub mod estimate;
pub mod generate;
pub mod generate_job;
pub mod inputs;
pub mod merge;
pub mod model_call;
pub mod preprocess;
pub mod preprocess_job;
pub mod score;
pub mod scoring;
pub mod shards;
pub mod stat_files;

use modelcall_config::{LoadedTask, PluginRef, RunPlan};
use modelcall_plugin_host::{Limits, Plugin, PluginRuntime, PluginSource, PluginSpec, Role};

use crate::cli::exit::{BadConfig, Finish};
use crate::engine::{ReadOptions, RunOutcome};

/// What every preset gets: the loaded task, its plan, and the command line's choices.
pub struct TaskRun<'a> {
    pub task: &'a LoadedTask,
    pub plan: &'a RunPlan,
    pub shard: Option<(u32, u32)>,
    pub dry_run: bool,
    pub preprocess_only: bool,
    pub show_progress: bool,
    /// `--retry-failed`: send permanent failures of earlier runs again.
    pub retry_failed: bool,
    /// `--no-adopt`: never import results another tool wrote.
    pub no_adopt: bool,
    /// `--redo-changed` / `--keep-existing`: what results made with other settings get.
    pub on_changed: crate::engine::settings::OnChanged,
    /// `modelcall reparse`: send nothing; parse every stored reply again.
    pub offline: bool,
    /// `--no-cache`: the task's response cache is neither read nor written.
    pub no_cache: bool,
    /// `modelcall reparse --parser`: the score parser (source, config) to use instead.
    pub parser_override: Option<(String, Option<serde_json::Value>)>,
    /// `--metrics-file` / `--metrics-listen`.
    pub metrics: crate::metrics::MetricsTarget,
    /// `--output-folder`, where the task type takes its output folder from the step.
    pub output_override: Option<std::path::PathBuf>,
    /// `--detach`, `modelcall batch export|import`: how batch mode runs (see [`batch_mode::Mode`]).
    pub batch: batch_mode::Mode,
}

impl TaskRun<'_> {
    /// Reading options every preset shares: the CLI's and the task's choices.
    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            samples_per_record: 1,
            on_duplicate_id: self.task.task.options.on_duplicate_id.unwrap_or_default(),
            retry_failed: self.retry_failed,
            max_record_bytes: self.plan.max_record_bytes,
            ..ReadOptions::default()
        }
    }

    /// The task's `budget:` with the model's pricing; `max_cost` without pricing is refused.
    pub fn budget(&self, model: &modelcall_config::ModelConfig) -> Result<Option<crate::engine::Budget>, BadConfig> {
        let b = self.task.task.budget;
        if b.max_tokens.is_none() && b.max_cost.is_none() {
            return Ok(None);
        }
        if b.max_cost.is_some() && model.pricing.is_none() {
            return Err(BadConfig(format!(
                "{}: budget.max_cost needs the price of tokens: add `pricing: {{prompt_per_million: …, completion_per_million: …}}` to {}",
                self.task.source_path.display(),
                model.path.display()
            )));
        }
        Ok(Some(crate::engine::Budget { max_tokens: b.max_tokens, max_cost: b.max_cost, pricing: model.pricing }))
    }

    /// Before a paid stage's first request: stops (exit 2) when earlier results of `units` were
    /// made with other settings and the user has not said what to do with them; else the
    /// reading options that carry the choice.
    pub fn settings_check(
        &self,
        units: &[crate::engine::Unit],
        settings: &crate::engine::settings::Settings,
    ) -> Result<crate::engine::OtherSettings, BadConfig> {
        crate::engine::settings::check_before_run(units, settings, self.on_changed, &self.task.source_path).map_err(BadConfig)?;
        Ok(self.other_settings())
    }

    /// How the reader treats results made with other settings, once the check has passed.
    pub fn other_settings(&self) -> crate::engine::OtherSettings {
        match self.on_changed {
            crate::engine::settings::OnChanged::Redo => crate::engine::OtherSettings::Redo,
            _ => crate::engine::OtherSettings::Keep,
        }
    }

    /// Takes the output folder for this run: a second run on the same folder is refused
    /// with a message naming this one.
    pub fn lock(&self, folder: &std::path::Path) -> anyhow::Result<modelcall_io::OutputLock> {
        let lock = modelcall_io::OutputLock::acquire_named(folder, &shards::lock_name(self.shard))?;
        // Shards may run on other machines, whose live processes this one cannot see: only an
        // unsharded run, alone in the folder, sweeps temp files left by dead ones.
        if self.shard.is_none_or(|(_, n)| n <= 1) {
            modelcall_io::sweep_temp_files(folder);
        }
        Ok(lock)
    }
}

/// Loads one plugin of the plan; a plugin that does not load is a configuration error naming
/// the task file and the slot.
pub fn load_plugin(runtime: &PluginRuntime, run: &TaskRun<'_>, r: &PluginRef) -> Result<Plugin, BadConfig> {
    let file = run.task.source_path.display();
    let role = match r.role {
        "preprocessor" => Role::Preprocessor,
        "prompt-builder" => Role::PromptBuilder,
        _ => Role::ScoreParser,
    };
    let source = if r.source.starts_with("builtin:") { PluginSource::parse(&r.source) } else { PluginSource::Path(r.source.clone().into()) };
    let limits: Limits = if r.limits.is_null() {
        Limits::default()
    } else {
        serde_json::from_value(r.limits.clone()).map_err(|e| BadConfig(format!("{file}: `{}.limits`: {e}", r.slot)))?
    };
    let mut spec = PluginSpec::new(source, role);
    spec.config = r.config.clone();
    spec.limits = limits;
    spec.task_name = run.plan.task_name.clone();
    let block: Option<Vec<&str>> = r.slot.strip_prefix("plugins.").map(|name| vec!["plugins", name, "config"]);
    let plugin = runtime.load(spec).map_err(|e| {
        BadConfig(
            crate::plugin_pool::load_error_message(&e, &run.task.source_path, block.as_deref())
                .unwrap_or_else(|| format!("{file}: `{}` ({}): {e}", r.slot, r.role)),
        )
    })?;
    match &r.sha256 {
        Some(pinned) if !pinned.eq_ignore_ascii_case(&plugin.info().sha256) => Err(BadConfig(format!(
            "{file}: `{}.sha256` pins {pinned}, but {} has sha256 {}; update the pin if the new build is trusted",
            r.slot,
            r.source,
            plugin.info().sha256
        ))),
        _ => Ok(plugin),
    }
}

/// Prints the plan (the one printer, with what loading told about each plugin).
pub fn print_dry_run(run: &TaskRun<'_>, loaded: &[(&PluginRef, &Plugin)], endpoint: Option<&str>) {
    let facts = |r: &PluginRef| {
        loaded
            .iter()
            .find(|(p, _)| std::ptr::eq(*p, r))
            .map(|(_, plugin)| {
                let i = plugin.info();
                format!("→ {} {} (WIT {}, sha256 {})", i.name, i.version, i.wit_version, i.sha256)
            })
            .unwrap_or_default()
    };
    print!("{}", run.plan.render(run.task, &facts));
    if let Some(e) = endpoint {
        println!("endpoint    {e}");
    }
    if let Some((i, n)) = run.shard {
        println!("shard       {i}/{n}");
    }
    println!("dry run: no request sent, nothing written");
}

/// The dry run's resume lines: what a run would do with each record, and whether results made
/// with other settings would stop it.
pub fn print_resume_plan(
    run: &TaskRun<'_>,
    units: &[crate::engine::Unit],
    settings: &crate::engine::settings::Settings,
    survey: &crate::engine::survey::Survey,
) {
    println!("{}", survey.render());
    let other = crate::engine::settings::mismatches(units, settings);
    let n: u64 = other.iter().map(|m| m.results).sum();
    if n > 0 {
        match run.on_changed {
            crate::engine::settings::OnChanged::Ask => println!(
                "settings    {n} done result(s) were made with other settings: a run stops before its first request; --redo-changed sends them again (+{n} to send), --keep-existing keeps them"
            ),
            crate::engine::settings::OnChanged::Redo => println!("settings    {n} done result(s) were made with other settings: sent again (--redo-changed; counted as changed)"),
            crate::engine::settings::OnChanged::Keep => println!("settings    {n} done result(s) were made with other settings: kept (--keep-existing)"),
        }
    }
}

/// The start banner of a run that calls `model` through `client`: printed once on stderr before
/// the first request (see [`crate::banner`]).
pub fn print_banner(
    run: &TaskRun<'_>,
    model: &modelcall_config::ModelConfig,
    client: &modelcall_model::ModelClient,
    records: crate::banner::Records,
    estimate: Option<crate::banner::Estimate>,
    per_record: u64,
) {
    let redactor = modelcall_secrets::Redactor::new(model.api_key.clone());
    let endpoints = match model.sim() {
        Some(_) => vec![format!("{} (served at {})", redactor.redact_string(&model.base_url), client.endpoint())],
        None => {
            let listed: Vec<String> = client.endpoint_stats().into_iter().map(|e| redactor.redact_string(&e.endpoint)).collect();
            if listed.is_empty() {
                vec![redactor.redact_string(client.endpoint())]
            } else {
                listed
            }
        }
    };
    // A fresh start discards the earlier results: every record is sent.
    let records = match records {
        crate::banner::Records::Surveyed(s) if run.plan.fresh_start => {
            crate::banner::Records::Inputs(Some(s.to_send() + s.done + s.adopted + s.failed_permanent))
        }
        r => r,
    };
    crate::banner::Banner {
        task_name: &run.plan.task_name,
        model,
        endpoints,
        records,
        concurrency: run.plan.concurrency,
        adaptive: run.plan.adaptive,
        per_record,
        estimate,
        shard: run.shard,
    }
    .print();
}

/// What a run over `units` known up front will send: surveyed record by record (as `--dry-run`
/// does) when the inputs are small enough to read twice, else their record count.
pub async fn banner_records(units: &[crate::engine::Unit], read: &ReadOptions, inputs: &[std::path::PathBuf], per_record: u64) -> crate::banner::Records {
    const SURVEY_UP_TO_BYTES: u64 = 1 << 30;
    let bytes: u64 = inputs.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    if bytes <= SURVEY_UP_TO_BYTES {
        // Adoption is imported as each unit starts; the survey reads without it.
        let read = ReadOptions { adopt: None, ..read.clone() };
        if let Ok(s) = crate::engine::survey::survey(units, &read).await {
            return crate::banner::Records::Surveyed(s);
        }
    }
    crate::banner::Records::Inputs(crate::input_count::count_all(inputs).map(|n| n * per_record))
}

/// The console block at the end of an engine run (counts, tokens and cost, output and error
/// files with the causes and an example each, the next command), and how it ended.
pub fn report(run: &TaskRun<'_>, outcome: &RunOutcome) -> Finish {
    report_with(run, outcome, &[])
}

/// [`report`], listing also the error files of an earlier stage (preprocessing: its error rows
/// are in the preprocess folder, not beside the outputs) with the others.
pub fn report_with(run: &TaskRun<'_>, outcome: &RunOutcome, stage_errors: &[std::path::PathBuf]) -> Finish {
    let stats = &outcome.stats;
    let pricing = run.task.model.as_ref().and_then(|m| m.pricing);
    let error_files: Vec<crate::summary::ErrorFile> = outcome.units.iter().filter_map(|u| crate::summary::ErrorFile::read(&u.unit.paths.errors)).collect();
    let cumulative = outcome.summary_path.as_ref().and_then(|p| p.parent()).and_then(|folder| {
        let records = crate::run_records::load(folder);
        (records.len() > 1).then(|| {
            let s = crate::run_records::Spent::of(&records, pricing);
            crate::summary::Cumulative { runs: s.runs, tokens: s.tokens(), cost: s.cost }
        })
    });
    let (retryable, permanent) = error_files.iter().flat_map(|f| &f.causes).fold((0, 0), |(r, p), c| (r + c.retryable, p + c.count - c.retryable));
    // The earlier stage's files are shown, not counted in what a rerun sends.
    let mut error_files = error_files;
    error_files.extend(stage_errors.iter().filter_map(|p| crate::summary::ErrorFile::read(p)));
    let command = next_command(run);
    let g = crate::numbers::grouped;
    let next = match &outcome.stopped {
        Some(_) => Some(format!("{command}   (resumes: what is done is kept)")),
        None if retryable > 0 && permanent > 0 => Some(format!(
            "{command}   (sends the {} retryable failure(s) again)\n      {command} --retry-failed   (also sends the {} permanent one(s), once their cause is fixed)",
            g(retryable),
            g(permanent)
        )),
        None if retryable > 0 => Some(format!("{command}   (sends the {} retryable failure(s) again)", g(retryable))),
        None if permanent > 0 => Some(format!(
            "{command} --retry-failed   (the {} failure(s) are permanent: fix their cause first, a plain rerun does not send them)",
            g(permanent)
        )),
        None => None,
    };
    let end = crate::summary::EndReport {
        stopped: outcome.stopped.as_ref().map(|r| crate::shown::shown(&r.to_string())),
        failed_items: outcome.failed_items(),
        cost: pricing.map(|p| p.cost(stats.prompt_tokens, stats.completion_tokens)),
        batch_discount: pricing.and_then(|p| p.applied_discount()),
        cumulative,
        error_files,
        next,
    };
    eprintln!("{}", stats.render_end(&end));
    if let Some(p) = &outcome.summary_path {
        eprintln!("summary: {}", p.display());
        if let Some(folder) = p.parent() {
            eprintln!("report:  modelcall report {}   (score distributions, judge quality, failures, latency over time)", folder.display());
        }
    }
    Finish::from_outcome(outcome)
}

/// The command that ran this task, to run it again: the command line as typed for `run-task`
/// (without `--retry-failed`, which the caller adds when it is wanted), else `modelcall
/// run-task <task file>`.
fn next_command(run: &TaskRun<'_>) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quote = |a: &str| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    let words: Vec<String> = if args.iter().any(|a| a == "run-task") {
        args.iter().filter(|a| *a != "--retry-failed").map(|a| quote(a)).collect()
    } else {
        let mut w = vec!["run-task".to_string(), quote(&run.task.source_path.display().to_string())];
        if let Some((i, n)) = run.shard {
            w.push(format!("--shard {i}/{n}"));
        }
        w
    };
    crate::shown::shown(&format!("modelcall {}", words.join(" ")))
}
