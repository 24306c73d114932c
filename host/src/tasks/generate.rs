//! The `generate_response` preset: every conversation of every `*.jsonl` input answered by a
//! teacher model; `<B>.jsonl` and `<B>_error.jsonl` (the reference's names), one line per uid,
//! in input order on request (`ordered: true`), `n` answers per conversation.

use std::sync::Arc;

use modelcall_config::step::GenerateResponse;
use modelcall_io::{FilePaths, Naming, OutputFormat};
use serde_json::json;

use super::generate_job::GenerateJob;
use super::inputs::generate_inputs;
use super::{print_dry_run, report, TaskRun};
use crate::cli::exit::{BadConfig, Finish};
use crate::engine::adopt::RefKeyRule;
use crate::engine::{self, EngineOptions, ReadOptions, SinkKind, StopSignal};

pub async fn run(run: &TaskRun<'_>, step: &GenerateResponse) -> anyhow::Result<Finish> {
    let file = run.task.source_path.display();
    let model = run
        .task
        .model
        .clone()
        .ok_or_else(|| BadConfig(format!("{file}: generate_response needs a model config (distillation.response_config_path / model_config)")))?;
    let inputs = generate_inputs(run.task, step)?;
    if run.dry_run {
        print_dry_run(run, &[], Some(&modelcall_secrets::Redactor::new(model.api_key.clone()).redact_string(&model.base_url)));
        return Ok(Finish::Done);
    }
    let output_folder = run.output_override.clone().unwrap_or_else(|| step.output_path.clone());
    let _lock = run.lock(&output_folder)?;
    let stop = StopSignal::with_ctrl_c();
    let concurrency = run.plan.concurrency;
    let (client, sim) = super::endpoint::connect(&model, concurrency, run.plan).await?;
    // The response cache, when the task has one (`cache:`; `--no-cache` bypasses it).
    crate::response_cache::install(crate::response_cache::for_task(run.task, &model, run.no_cache).map_err(BadConfig)?);
    // `concurrency.mode: batch`: requests go through the Batch API (see `batch_mode`).
    let batch = super::batch_mode::open_for(run, &client, &output_folder, &stop)?;
    let client_for_stats = client.clone();
    let provenance = json!({
        "task_file": run.task.source_path.display().to_string(),
        "step": "generate_response",
        "endpoint": client.endpoint(),
        "simulated": model.sim().is_some(),
        "model": model.model,
        "api_key": model.masked_key(),
        "concurrency": concurrency,
        "retry_mode": step.retry_mode,
    });
    // The output schema, declared once before the first row (`.modelcall/schema.json`), so every
    // file, shard, resume and merge of the task has the same fields with the same types.
    declared_schema(&inputs, step).with_row_group_rows(run.task.task.output.row_group_rows.map(|n| n.get())).settle(&output_folder);
    let out = output_folder.clone();
    let paths = move |stem: &str, shard: Option<(u32, u32)>| FilePaths::named(stem, &out, OutputFormat::Jsonl, shard, Naming::Distillation);
    let sink = SinkKind::Rows { format: OutputFormat::Jsonl, ordered: step.ordered };
    let units = super::shards::record_units(&output_folder, &inputs, run.shard, sink, &paths)?;
    let settings = engine::settings::Settings::new(json!({
        "request": engine::settings::answer_settings(&model),
        "send": if step.first_user_only { "first_user" } else { "conversation" },
    }));
    let other_settings = run.settings_check(&units, &settings)?;
    if step.retry_mode {
        for unit in &units {
            archive_for_retry(&unit.paths)?;
        }
    }
    let per_record = step.n.max(1) as u64;
    let banner_read = ReadOptions {
        key_fields: vec!["uid".into(), "id".into()],
        samples_per_record: step.n.max(1),
        retry_failed: run.retry_failed || step.retry_mode,
        only_failed: step.retry_mode,
        settings: Some(settings.clone()),
        other_settings,
        ..run.read_options()
    };
    let records = super::banner_records(&units, &banner_read, &inputs, per_record).await;
    let estimate = crate::banner::sample(&inputs, crate::banner::model_max_tokens(&model), |record| {
        Some((crate::banner::text_tokens(&serde_json::Value::Object(record.clone())), None))
    });
    super::print_banner(run, &model, &client_for_stats, records, estimate, per_record);
    let job = Arc::new(GenerateJob { client, first_user_only: step.first_user_only, allow_truncated: step.allow_truncated, reasoning: step.reasoning });
    let job = super::batch_mode::routed(job, batch.clone());
    let options = EngineOptions {
        task_name: run.plan.task_name.clone(),
        read: ReadOptions {
            key_fields: vec!["uid".into(), "id".into()],
            samples_per_record: step.n.max(1),
            // The reference's `<B>.jsonl` rows, by its uid rule (one answer per conversation).
            adopt: (!run.no_adopt && step.n <= 1).then_some(RefKeyRule::ConversationUid),
            // Retry mode sends exactly what the error output lists, whatever the cause.
            retry_failed: run.retry_failed || step.retry_mode,
            only_failed: step.retry_mode,
            // How the answer is written (reasoning inline, apart or dropped): a change re-derives
            // the stored answers instead of buying them again.
            parser: Some(xxhash_rust::xxh3::xxh3_64(format!("reasoning:{:?}", step.reasoning).as_bytes())),
            settings: Some(settings),
            other_settings,
            ..run.read_options()
        },
        concurrency: batch.as_deref().map_or(concurrency, super::batch_mode::in_flight),
        max_concurrent_units: 1,
        flush_interval: run.plan.flush_interval,
        fresh_start: run.plan.fresh_start,
        show_progress: run.show_progress,
        expected_records: crate::input_count::count_all(&inputs).map(|n| n * step.n.max(1) as u64),
        summary: Some((output_folder.join(super::scoring::summary_name(run.shard)), provenance)),
        budget: run.budget(&model)?,
        adaptive: run.plan.adaptive,
        prefix_groups: run.plan.prefix_groups,
        metrics: run.metrics.clone(),
        end_facts: Some(super::endpoint::end_facts(client_for_stats.clone(), sim.clone())),
    };
    let outcome = engine::run(options, job, engine::feed(units), stop, None).await?;
    if run.shard.is_none_or(|(_, n)| n <= 1) && outcome.stopped.is_none() {
        // The dataset card, so `datasets.load_dataset(folder)` reads the data files only (a
        // sharded run's card is written by `modelcall merge`).
        let made_with = vec![("model", model.model.clone()), ("task", run.task.source_path.display().to_string())];
        if let Err(e) = modelcall_io::sink::card::write_card(&output_folder, OutputFormat::Jsonl, &run.plan.task_name, &made_with) {
            eprintln!("warning: cannot write the dataset card in {}: {e}", output_folder.display());
        }
    }
    super::batch_mode::finish(batch.as_deref(), report(run, &outcome)).await
}

/// The output schema of generation: the input columns (see [`super::scoring::input_columns`];
/// one the job writes itself is the job's), `uid` (with `n` > 1 also `source_uid` and
/// `sample_index`), and what the job adds: `response`,
/// `final_messages` (role and content of each turn), `usage`, `finish_reason`, `latency_ms`,
/// `attempts`, and `reasoning` when it is kept apart.
pub fn declared_schema(inputs: &[std::path::PathBuf], step: &GenerateResponse) -> modelcall_io::sink::DeclaredSchema {
    use modelcall_io::sink::schema::{ColType, Column, Role};
    let text = || ColType::String;
    let int = || ColType::Int64;
    let turn = ColType::Struct(vec![Column::new("role", text(), Role::Host), Column::new("content", text(), Role::Host)]);
    let mut host = vec![
        ("response".to_string(), text()),
        ("final_messages".into(), ColType::List(Box::new(turn))),
        ("usage".into(), ColType::Struct(["prompt_tokens", "completion_tokens", "total_tokens"].iter().map(|n| Column::new(*n, int(), Role::Host)).collect())),
        ("finish_reason".into(), text()),
        ("latency_ms".into(), int()),
        ("attempts".into(), int()),
    ];
    if step.reasoning == modelcall_config::step::ReasoningMode::Separate {
        host.push(("reasoning".into(), text()));
    }
    let mut inputs: Vec<(String, ColType)> =
        super::scoring::input_columns(inputs).into_iter().filter(|(name, _)| !host.iter().any(|(h, _)| h == name)).collect();
    let uid = inputs.iter().position(|(name, _)| name == "uid");
    if step.n > 1 {
        // n answers per conversation: `uid` is the sample's key (`<uid>#<i>`), the input's uid
        // is kept as `source_uid`, and `sample_index` says which answer it is.
        let source = uid.map(|i| inputs.remove(i).1).unwrap_or_else(text);
        inputs.extend([("uid".into(), text()), ("source_uid".into(), source), ("sample_index".into(), int())]);
    } else if uid.is_none() {
        inputs.push(("uid".into(), text()));
    }
    modelcall_io::sink::DeclaredSchema::build(inputs, Vec::new(), host)
}

/// `retry_mode: true`, the reference's archive step without its data loss: `<B>_error.jsonl`
/// and `<B>.jsonl` are copied (atomically, never moved) to `<B>_error_retry_N.jsonl` and
/// `<B>_success_retry_N.jsonl` (N the first free number), as scripts written for the
/// reference expect. The run then sends exactly the records the error output lists (whatever
/// their cause), nothing else, and rewrites `<B>.jsonl` with the old and the new results, one line per uid:
/// a kill at any point leaves the originals, the archives or the journal holding everything.
fn archive_for_retry(paths: &FilePaths) -> anyhow::Result<()> {
    let errors = &paths.errors;
    if !errors.is_file() {
        eprintln!("retry mode: no {} (nothing failed before): nothing to send", errors.display());
        return Ok(());
    }
    let stem = errors.file_name().map(|n| n.to_string_lossy().trim_end_matches(".jsonl").to_string()).unwrap_or_default();
    let base = stem.strip_suffix("_error").unwrap_or(&stem).to_string();
    let folder = errors.parent().unwrap_or(std::path::Path::new("."));
    let n = (1..).find(|n| !folder.join(format!("{base}_error_retry_{n}.jsonl")).exists()).expect("a free number");
    for (from, to) in
        [(errors.clone(), folder.join(format!("{base}_error_retry_{n}.jsonl"))), (paths.output.clone(), folder.join(format!("{base}_success_retry_{n}.jsonl")))]
    {
        if from.is_file() {
            // Streamed: an output may be far larger than memory.
            let mut source = std::fs::File::open(&from).map_err(|e| anyhow::anyhow!("reading {}: {e}", from.display()))?;
            let mut archive = modelcall_io::AtomicFile::create(&to)?;
            std::io::copy(&mut source, &mut archive).map_err(|e| anyhow::anyhow!("archiving {} as {}: {e}", from.display(), to.display()))?;
            archive.commit()?;
            eprintln!("retry mode: archived {} as {}", from.display(), to.display());
        }
    }
    Ok(())
}
