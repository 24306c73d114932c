//! The `generate_response` preset: every conversation of every `*.jsonl` input answered by a
//! teacher model; `<B>.jsonl` and `<B>_error.jsonl` (the reference's names), one line per uid,
//! in input order on request (`ordered: true`), `n` answers per conversation.

use std::path::PathBuf;
use std::sync::Arc;

use modelcall_config::distill::GenerateResponse;
use modelcall_io::{FilePaths, Naming, OutputFormat};
use serde_json::json;

use super::generate_job::GenerateJob;
use super::{print_dry_run, report, TaskRun};
use crate::cli::exit::{BadConfig, Finish};
use crate::engine::{self, EngineOptions, ReadOptions, SinkKind, StopSignal, Unit, UnitInputs};

pub async fn run(run: &TaskRun<'_>, step: &GenerateResponse) -> anyhow::Result<Finish> {
    let file = run.task.source_path.display();
    let model = run
        .task
        .model
        .clone()
        .ok_or_else(|| BadConfig(format!("{file}: generate_response needs a model config (distillation.response_config_path / model_config)")))?;
    let input = &step.input_path;
    if !input.exists() {
        return Err(BadConfig(format!("{file}: distillation.input_path: {} does not exist", input.display())).into());
    }
    let inputs = modelcall_io::listing::list_files(input, false, &|p| p.extension().is_some_and(|x| x == "jsonl"))?;
    if inputs.is_empty() {
        return Err(BadConfig(format!("{file}: distillation.input_path: no *.jsonl files in {}", input.display())).into());
    }
    modelcall_io::naming::unique_stems(&inputs).map_err(|e| BadConfig(format!("{file}: distillation.input_path: {e}")))?;
    if run.dry_run {
        print_dry_run(run, &[], Some(&modelcall_secrets::Redactor::new(model.api_key.clone()).redact_string(&model.base_url)));
        return Ok(Finish::Done);
    }
    let output_folder = run.output_override.clone().unwrap_or_else(|| step.output_path.clone());
    let _lock = run.lock(&output_folder)?;
    let stop = StopSignal::with_ctrl_c();
    let concurrency = run.plan.concurrency;
    let (client, _sim) = super::endpoint::connect(&model, concurrency, run.plan.requests_per_minute).await?;
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
    let units: Vec<Unit> = inputs
        .iter()
        .map(|input: &PathBuf| {
            let stem = modelcall_io::input_stem(input);
            Unit {
                paths: FilePaths::named(&stem, &output_folder, OutputFormat::Jsonl, run.shard, Naming::Distillation),
                name: stem,
                inputs: UnitInputs::Records(vec![input.clone()]),
                sink: SinkKind::Rows { format: OutputFormat::Jsonl, ordered: step.ordered },
            }
        })
        .collect();
    let job = Arc::new(GenerateJob { client, first_user_only: step.first_user_only, allow_truncated: step.allow_truncated, reasoning: step.reasoning });
    let options = EngineOptions {
        task_name: run.plan.task_name.clone(),
        read: ReadOptions { key_fields: vec!["uid".into(), "id".into()], samples_per_record: step.n.max(1), shard: run.shard, ..run.read_options() },
        concurrency,
        max_concurrent_units: 1,
        flush_interval: run.plan.flush_interval,
        fresh_start: run.plan.fresh_start,
        show_progress: run.show_progress,
        expected_records: crate::input_count::count_all(&inputs).map(|n| n * step.n.max(1) as u64),
        summary: Some((output_folder.join(super::scoring::summary_name(run.shard)), provenance)),
    };
    let outcome = engine::run(options, job, engine::feed(units), stop, None).await?;
    Ok(report(&outcome))
}
