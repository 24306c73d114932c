//! The scoring preset: `[preprocess] → prompt → model → parse`, one output (Parquet or JSONL)
//! and one error file per input file. With preprocessing, scoring starts on each group file as
//! soon as the preprocessing stage finishes it.

use std::path::PathBuf;
use std::sync::Arc;

use modelcall_config::ScoringPlan;
use modelcall_io::{FilePaths, Naming, OutputFormat};
use serde_json::json;
use tokio::sync::mpsc;

use super::inputs::{preprocessed_inputs, scoring_inputs};
use super::score::ScoreJob;
use super::{load_plugin, preprocess, print_dry_run, TaskRun};
use crate::cli::exit::{BadConfig, Finish};
use crate::engine::adopt::RefKeyRule;
use crate::engine::{self, EngineOptions, ReadOptions, SinkKind, StopSignal, Unit, UnitInputs};
use crate::plugin_pool::PluginPool;

pub async fn run(run: &TaskRun<'_>, plan: &ScoringPlan) -> anyhow::Result<Finish> {
    let runtime = modelcall_plugin_host::PluginRuntime::new()?;
    let prompt = load_plugin(&runtime, run, &plan.prompt_builder)?;
    let score_parser = match &run.parser_override {
        Some((source, config)) => modelcall_config::PluginRef {
            slot: "--parser".into(),
            source: source.clone(),
            config: config.clone().unwrap_or_else(|| plan.score_parser.config.clone()),
            sha256: None,
            ..plan.score_parser.clone()
        },
        None => plan.score_parser.clone(),
    };
    let parser = load_plugin(&runtime, run, &score_parser)?;
    // A shard of a task with preprocessing scores the preprocessed files (preprocessed once,
    // before the shards, with `--stage preprocess`): shards must not preprocess side by side.
    let sharded = run.shard.is_some_and(|(_, n)| n > 1);
    let pre = match &plan.preprocess {
        Some(p) if !sharded || run.preprocess_only => Some((p, load_plugin(&runtime, run, &p.plugin)?)),
        _ => None,
    };
    let inputs = match (&plan.preprocess, &pre) {
        (_, Some(_)) => None,
        (Some(p), None) => Some(preprocessed_inputs(run.task, &p.output_folder)?),
        (None, None) => Some(scoring_inputs(run.task, plan)?),
    };
    if let Some(first) = inputs.as_ref().and_then(|f| f.first()) {
        check_placeholders(run, plan, first)?;
    }
    let model = run.task.model.clone().ok_or_else(|| BadConfig("scoring needs a model config (model.config_path)".into()))?;
    // What this run's results are made with besides their record: results made otherwise are
    // redone, kept or asked about (`settings_check`) before the first request.
    // The prompt file's `output_config` is the parser's: a new default or range re-parses the
    // stored replies (below) instead of stopping the run for changed settings.
    let prompt_config = match &plan.prompt_builder.config {
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.iter().filter(|(k, _)| *k != "output_config").map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        other => other.clone(),
    };
    let parser_hash = plan.require_json.then(|| engine::settings::Settings::new(engine::settings::Settings::plugin(&parser, &score_parser.config)).hash);
    let settings = engine::settings::Settings::new(json!({
        "prompt_builder": engine::settings::Settings::plugin(&prompt, &prompt_config),
        "input_key": plan.input_key,
        "stringify_input": plan.stringify_input,
        "request": engine::settings::answer_settings(&model),
    }));
    let format = match plan.output_format {
        modelcall_config::OutputFormat::Jsonl => OutputFormat::Jsonl,
        modelcall_config::OutputFormat::Parquet => OutputFormat::Parquet,
    };
    // `output.ordered: true`: each output's rows in input order instead of completion order.
    let sink = SinkKind::Rows { format, ordered: run.task.task.output.ordered.unwrap_or(false) };
    let out = plan.output_folder.clone();
    let paths = move |stem: &str, shard: Option<(u32, u32)>| FilePaths::named(stem, &out, format, shard, Naming::Scoring);
    if run.dry_run {
        let mut loaded = vec![(&plan.prompt_builder, &prompt), (&plan.score_parser, &parser)];
        if let Some((p, plugin)) = &pre {
            loaded.push((&p.plugin, plugin));
        }
        let endpoint = modelcall_secrets::Redactor::new(model.api_key.clone()).redact_string(&model.base_url);
        print_dry_run(run, &loaded, Some(&endpoint));
        match &inputs {
            Some(files) => {
                // What a run would send now, record by record, against the journals as they are.
                let units = super::shards::record_units(&plan.output_folder, files, run.shard, sink.clone(), &paths)?;
                let read = ReadOptions {
                    key_fields: vec![plan.id_field.clone()],
                    max_items: plan.max_items_per_file,
                    settings: Some(settings.clone()),
                    other_settings: run.other_settings(),
                    parser: parser_hash,
                    ..run.read_options()
                };
                let survey = engine::survey::survey(&units, &read).await?;
                super::print_resume_plan(run, &units, &settings, &survey);
                super::estimate::print(files, &prompt, &model, &run.task.task.budget, Some(survey.to_send()));
            }
            None => println!("resume      counted after preprocessing (run --stage preprocess first to see it here)"),
        }
        return Ok(Finish::Done);
    }
    let _lock = run.lock(&plan.output_folder)?;
    // The output schema, declared once before the first row (`.modelcall/schema.json`): every
    // file, shard, resume and merge of the task writes exactly it (Parquet and JSONL alike), in
    // row groups of `output.row_group_rows`.
    settle_schema(plan, inputs.as_deref(), run.task.task.output.row_group_rows.map(|n| n.get()));
    let _pre_lock = match &pre {
        Some((p, _)) if p.output_folder != plan.output_folder => Some(modelcall_io::OutputLock::acquire(&p.output_folder)?),
        _ => None,
    };
    let stop = StopSignal::with_ctrl_c();
    let unit_for = {
        let (sink, paths) = (sink.clone(), paths.clone());
        move |input: PathBuf| Unit {
            name: modelcall_io::input_stem(&input),
            paths: paths(&modelcall_io::input_stem(&input), None),
            inputs: UnitInputs::Records(vec![input]),
            sink: sink.clone(),
        }
    };
    let other_settings = match &plan.preprocess {
        // The scoring units are the group files; those of earlier runs are what can clash.
        Some(p) if pre.is_some() => {
            let earlier = modelcall_io::list_input_files(&p.output_folder, Some("*.jsonl")).unwrap_or_default();
            run.settings_check(&earlier.into_iter().map(&unit_for).collect::<Vec<_>>(), &settings)?
        }
        _ => engine::OtherSettings::Keep,
    };
    // The units: the input files, or the group files as preprocessing finishes them.
    let (unit_tx, units) = mpsc::unbounded_channel();
    let mut other_settings = other_settings;
    let mut preprocessing = None;
    // The preprocessor's call times, for this summary's `plugin_calls`.
    let preprocessor_calls: Arc<std::sync::Mutex<crate::stage_timing::PluginCallTimes>> = Default::default();
    let mut banner_records = crate::banner::Records::AfterPreprocessing;
    match (&pre, inputs.as_ref()) {
        (Some((p, plugin)), _) => {
            let (ready_tx, mut ready) = mpsc::unbounded_channel::<PathBuf>();
            let stage = preprocess::run(run, p, plugin.clone(), stop.clone(), Some(ready_tx), preprocessor_calls.clone());
            if run.preprocess_only {
                let outcome = stage.await?;
                preprocess::report(&outcome, &p.output_folder);
                return Ok(Finish::from_outcome(&outcome));
            }
            let unit_for = unit_for.clone();
            tokio::spawn(async move {
                while let Some(file) = ready.recv().await {
                    let _ = unit_tx.send(unit_for(file));
                }
            });
            preprocessing = Some((stage, p.output_folder.clone()));
        }
        (None, Some(files)) => {
            let units = super::shards::record_units(&plan.output_folder, files, run.shard, sink.clone(), &paths)?;
            other_settings = run.settings_check(&units, &settings)?;
            let read = ReadOptions {
                key_fields: vec![plan.id_field.clone()],
                max_items: plan.max_items_per_file,
                settings: Some(settings.clone()),
                other_settings,
                parser: parser_hash,
                offline: run.offline,
                ..run.read_options()
            };
            banner_records = super::banner_records(&units, &read, files, 1).await;
            for unit in units {
                let _ = unit_tx.send(unit);
            }
            drop(unit_tx);
        }
        (None, None) => unreachable!("inputs are listed when there is no preprocessing"),
    }

    let concurrency = run.plan.concurrency;
    let (client, sim) = super::endpoint::connect(&model, concurrency, run.plan).await?;
    // The response cache, when the task has one (`cache:`; `--no-cache` bypasses it).
    crate::response_cache::install(crate::response_cache::for_task(run.task, &model, run.no_cache).map_err(BadConfig)?);
    // `concurrency.mode: batch`: requests go through the Batch API (see `batch_mode`).
    let batch = super::batch_mode::open_for(run, &client, &plan.output_folder, &stop)?;
    let client_for_stats = client.clone();
    // A shard's banner goes to a scheduler's log: its token estimate (a tokenizer set-up, ~40 %
    // of a small shard's CPU) is left to `submit` and `--dry-run`.
    let estimate = inputs.as_deref().filter(|_| !sharded).and_then(|files| {
        crate::banner::sample(files, crate::banner::model_max_tokens(&model), |record| {
            let p = prompt.build_prompt("estimate", 1, &serde_json::Value::Object(record.clone()).to_string()).ok()?;
            let tokens: usize = p.messages.iter().map(|m| modelcall_plugin_host::tokenizer::count_tokens(&m.content)).sum();
            Some((tokens as u64, p.max_tokens.map(u64::from)))
        })
    });
    super::print_banner(run, &model, &client, banner_records, estimate, 1);
    let provenance = json!({
        "task_file": run.task.source_path.display().to_string(),
        "endpoint": client.endpoint(),
        "simulated": model.sim().is_some(),
        "model": model.model,
        "api_key": model.masked_key(),
        "concurrency": concurrency,
        "shard": run.shard.map(|(i, n)| format!("{i}/{n}")),
        // Every role, the preprocessor included (when it ran before the shards, as the task
        // names it: the shards read its output).
        "plugins": match (&pre, &plan.preprocess) {
            (Some((_, plugin)), _) => json!([plugin.info(), prompt.info(), parser.info()]),
            (None, Some(p)) => json!([{"role": p.plugin.role, "source": p.plugin.source, "sha256": p.plugin.sha256, "ran": "before the shards"}, prompt.info(), parser.info()]),
            (None, None) => json!([prompt.info(), parser.info()]),
        },
        "prompt_config": plan.prompt_file.as_ref().map(|p| p.display().to_string()),
        "modelcall_version": env!("CARGO_PKG_VERSION"),
    });
    let job = Arc::new(ScoreJob {
        prompt,
        parser,
        client,
        pool: PluginPool::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
        parse_retries: plan.parse_retries,
        audit_sample: plan.audit_sample,
        input_key: plan.input_key.clone(),
        stringify_input: plan.stringify_input,
        require_json: plan.require_json,
    });
    let job = super::batch_mode::routed(job, batch.clone());
    let options = EngineOptions {
        task_name: run.plan.task_name.clone(),
        // Shards read their own pieces of the input (the shard plan), so no key is filtered.
        read: ReadOptions {
            key_fields: vec![plan.id_field.clone()],
            max_items: plan.max_items_per_file,
            // The reference wrote `<stem>.parquet` with its rows' ids.
            adopt: (!run.no_adopt).then(|| RefKeyRule::IdField(plan.id_field.clone())),
            warn_missing_id: true,
            settings: Some(settings),
            other_settings,
            parser: parser_hash,
            offline: run.offline,
            ..run.read_options()
        },
        concurrency: batch.as_deref().map_or(concurrency, super::batch_mode::in_flight),
        max_concurrent_units: plan.max_concurrent_files,
        flush_interval: run.plan.flush_interval,
        fresh_start: run.plan.fresh_start,
        show_progress: run.show_progress,
        expected_records: inputs.as_deref().and_then(crate::input_count::count_all),
        summary: Some((plan.output_folder.join(summary_name(run.shard)), provenance)),
        budget: run.budget(&model)?,
        adaptive: run.plan.adaptive,
        prefix_groups: run.plan.prefix_groups,
        metrics: run.metrics.clone(),
        end_facts: {
            // The endpoint's facts, and for a completed run the judge's quality, read from the
            // outputs (finalized by the time the summary is written).
            let endpoint = super::endpoint::end_facts(client_for_stats.clone(), sim.clone());
            // Preprocessing's error rows stay in its folder: counted here, with their files.
            let pre_folder = pre.as_ref().map(|(p, _)| p.output_folder.clone());
            let preprocessor_calls = preprocessor_calls.clone();
            Some(Box::new(move |summary: &serde_json::Value| {
                let mut facts = endpoint(summary);
                if let Some(folder) = &pre_folder {
                    facts.insert("preprocess_errors".into(), preprocess::errors_fact(folder));
                    if let serde_json::Value::Object(pre) = preprocessor_calls.lock().unwrap().to_json() {
                        let mut calls = summary["plugin_calls"].as_object().cloned().unwrap_or_default();
                        calls.extend(pre);
                        facts.insert("plugin_calls".into(), serde_json::Value::Object(calls));
                    }
                }
                if summary["status"] == "completed" {
                    facts.insert("judge_quality".into(), crate::report::judge_quality(summary));
                }
                facts
            }))
        },
    };
    // Preprocessing runs concurrently, feeding `units` through its finished group files.
    let (scored, preprocessed) = match preprocessing {
        Some((stage, out)) => {
            let (scored, preprocessed) = tokio::join!(engine::run(options, job, units, stop.clone(), None), stage);
            (scored, Some((preprocessed, out)))
        }
        None => (engine::run(options, job, units, stop.clone(), None).await, None),
    };
    let mut finish = Finish::Done;
    let mut stage_errors = Vec::new();
    if let Some((preprocessed, out)) = preprocessed {
        let preprocessed = preprocessed?;
        preprocess::report(&preprocessed, &out);
        finish = Finish::from_outcome(&preprocessed);
        stage_errors = preprocess::error_files(&out).into_iter().map(|(p, _)| p).collect();
    }
    let scored = scored?;
    if !sharded && scored.stopped.is_none() {
        // The dataset card, so `datasets.load_dataset(folder)` reads the data files only (a
        // sharded run's card is written by `modelcall merge`).
        let mut made_with = vec![("model", model.model.clone()), ("task", run.task.source_path.display().to_string())];
        if let Some(prompt) = &plan.prompt_file {
            made_with.push(("prompt", prompt.display().to_string()));
        }
        if let Err(e) = modelcall_io::sink::card::write_card(&plan.output_folder, format, &run.plan.task_name, &made_with) {
            eprintln!("warning: cannot write the dataset card in {}: {e}", plan.output_folder.display());
        }
    }
    if scored.stopped.is_none() {
        if let Some(folder) = &plan.stat_folder {
            super::stat_files::write(folder, &scored, plan, &model.path)?;
        }
    }
    super::batch_mode::finish(batch.as_deref(), finish.and(super::report_with(run, &scored, &stage_errors))).await
}

/// With the built-in prompt builder, every `{placeholder}` of the prompt must be a field of
/// the records: checked against the first record before any request, so a typo (`{txet}`)
/// stops the run with the field list instead of failing every record.
fn check_placeholders(run: &TaskRun<'_>, plan: &ScoringPlan, first_input: &std::path::Path) -> Result<(), BadConfig> {
    let (Some(prompt), "builtin:template-prompt") = (&run.task.prompt, plan.prompt_builder.source.as_str()) else { return Ok(()) };
    let data = &run.task.task.data;
    let wanted = prompt.placeholders_from_record(data.input_key.as_deref(), data.prompt_format_key.as_deref());
    let Ok(source) = modelcall_io::open_source(first_input) else { return Ok(()) };
    let Some(record) = source.filter_map(Result::ok).find_map(|item| match item {
        modelcall_io::SourceItem::Record { record, .. } => Some(record),
        modelcall_io::SourceItem::Bad { .. } => None,
    }) else {
        return Ok(());
    };
    let fields: Vec<&str> = record.keys().map(String::as_str).collect();
    let missing = modelcall_config::missing_placeholders(&wanted, &fields);
    if missing.is_empty() {
        return Ok(());
    }
    Err(BadConfig(format!(
        "{}: prompt_template.prompt_text uses {} that the first record of {} does not have; its fields are: {}",
        prompt.path.display(),
        missing.iter().map(|m| format!("{{{m}}}")).collect::<Vec<_>>().join(", "),
        first_input.display(),
        fields.join(", ")
    )))
}

/// `run_summary.json`, or one per shard so shards sharing a folder never overwrite each other.
pub fn summary_name(shard: Option<(u32, u32)>) -> String {
    format!("run_summary{}.json", modelcall_io::naming::shard_suffix(shard))
}

/// Declares the task's output schema in its output folder (see [`declared_schema`]). Without
/// the inputs yet (they are preprocessed first), a schema stored before is kept; with no known
/// verdict fields, the columns are inferred from the rows. Either way `row_group_rows` applies.
fn settle_schema(plan: &ScoringPlan, inputs: Option<&[PathBuf]>, row_group_rows: Option<usize>) {
    use modelcall_io::sink::DeclaredSchema;
    let folder = &plan.output_folder;
    let schema = match inputs {
        Some(files) => declared_schema(plan, files).unwrap_or_else(DeclaredSchema::inferred),
        None => DeclaredSchema::load(folder).unwrap_or_else(DeclaredSchema::inferred),
    };
    schema.with_row_group_rows(row_group_rows).settle(folder);
}

/// The input columns carried into a task's output: typed from the first records of each input
/// (up to 64 files, 500 records each), or a Parquet input's own schema.
pub fn input_columns(inputs: &[PathBuf]) -> Vec<(String, modelcall_io::sink::schema::ColType)> {
    use modelcall_io::sink::schema::{infer_inputs, parquet_inputs, ColType};
    let mut inputs_cols: Vec<(String, ColType)> = Vec::new();
    let mut sample: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    for file in inputs.iter().take(64) {
        if file.extension().is_some_and(|e| e == "parquet") {
            for (name, ty) in parquet_inputs(file).unwrap_or_default() {
                if !inputs_cols.iter().any(|(n, _)| *n == name) {
                    inputs_cols.push((name, ty));
                }
            }
            continue;
        }
        let Ok(source) = modelcall_io::open_source(file) else { continue };
        sample.extend(
            source
                .filter_map(Result::ok)
                .filter_map(|item| match item {
                    modelcall_io::SourceItem::Record { record, .. } => Some(record),
                    modelcall_io::SourceItem::Bad { .. } => None,
                })
                .take(500),
        );
    }
    for (name, ty) in infer_inputs(&sample) {
        if !inputs_cols.iter().any(|(n, _)| *n == name) {
            inputs_cols.push((name, ty));
        }
    }
    inputs_cols
}

/// The task's output schema (see `modelcall_io::sink::schema`): the input columns of the first
/// records of each input (or its Parquet schema), the verdict fields of `builtin:json-score`'s
/// `json_keys` typed by `checks` and `json_default_values`, and the host's own columns. None when
/// the verdict fields are not known up front (another parser, or no `json_keys`): then each
/// file's schema is inferred from its rows as before.
pub fn declared_schema(plan: &ScoringPlan, inputs: &[PathBuf]) -> Option<modelcall_io::sink::DeclaredSchema> {
    use modelcall_io::sink::schema::{verdict_type, ColType, Column, Role};
    let verdict: Vec<(String, ColType)> = if !plan.require_json {
        Vec::new()
    } else {
        if plan.score_parser.source != "builtin:json-score" {
            return None;
        }
        let cfg = &plan.score_parser.config;
        let cfg = cfg.get("output_config").unwrap_or(cfg);
        let keys: Vec<String> = cfg["json_keys"].as_array()?.iter().filter_map(|k| k.as_str().map(String::from)).collect();
        if keys.is_empty() {
            return None;
        }
        keys.into_iter()
            .map(|k| {
                let ty = verdict_type(cfg["checks"][&k]["type"].as_str(), cfg["json_default_values"].get(&k));
                (k, ty)
            })
            .collect()
    };
    let inputs_cols = input_columns(inputs);
    let int = || ColType::Int64;
    let text = || ColType::String;
    let mut host = vec![
        ("api_status".to_string(), text()),
        ("api_fail_reason".into(), text()),
        ("api_return".into(), text()),
        ("usage".into(), ColType::Struct(["prompt_tokens", "completion_tokens", "total_tokens"].iter().map(|n| Column::new(*n, int(), Role::Host)).collect())),
        ("finish_reason".into(), text()),
        ("latency_ms".into(), int()),
        ("attempts".into(), int()),
        ("parse_attempts".into(), int()),
    ];
    if plan.require_json {
        host.extend([("score_value".to_string(), ColType::Float64), ("score_label".into(), text()), ("score_rationale".into(), text())]);
    }
    if plan.audit_sample > 0.0 {
        host.push(("audit_score".into(), ColType::Float64));
    }
    Some(modelcall_io::sink::DeclaredSchema::build(inputs_cols, verdict, host))
}
