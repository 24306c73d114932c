//! `modelcall batch export|import`: a task's requests as an OpenAI batch input file, for
//! `vllm run-batch` (or any runner of that format), and the runner's output file read back.
//!
//! Both run the task as `run-task` does (same prompts, plugins, journal, outputs), with the batch
//! coordinator writing the requests to a file (export) or handing each record its line of the
//! output files (import) instead of calling the Batch API; nothing is sent. Export writes only
//! what is left to do (records done or failed permanently are skipped, as on a resume); import is
//! exactly once: a record already done is not touched, so importing a file twice adds nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::exit::{exit_code, BadConfig};
use super::run_task_args::RunTaskArgs;
use crate::tasks::batch_mode::Mode;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BatchCommand {
    /// Write the requests the task has left to do as an OpenAI batch input file (one
    /// `{custom_id, method, url, body}` line each; custom_id = the record's key), for
    /// `vllm run-batch -i FILE -o results.jsonl`. Nothing is sent.
    Export(ExportArgs),
    /// Read batch output files (`vllm run-batch`'s, or the Batch API's) into the task's journal
    /// and outputs, through its parsers, exactly once. Nothing is sent.
    Import(ImportArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// The task YAML file.
    pub task: PathBuf,
    /// The batch input file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// One share of the input: `I/N`, as `run-task --shard`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The task YAML file.
    pub task: PathBuf,
    /// Batch output files (JSONL, one `{custom_id, response: {status_code, body}}` line each).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One share of the input: `I/N`, as `run-task --shard`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// `run-task`'s own arguments, as its parser builds them.
#[derive(Parser)]
struct AsRunTask {
    #[command(flatten)]
    args: RunTaskArgs,
}

pub fn run(cmd: BatchCommand) -> ExitCode {
    let (task, shard, mode) = match cmd {
        BatchCommand::Export(a) => (a.task, a.shard, Mode::Export(a.out)),
        BatchCommand::Import(a) => {
            if let Some(missing) = a.files.iter().find(|f| !f.is_file()) {
                return exit_code(Err(BadConfig(format!("batch import: {} is not a file", missing.display())).into()), false);
            }
            (a.task, a.shard, Mode::Import(a.files))
        }
    };
    // Only the tasks whose one model call per record the coordinator routes (a configuration
    // error is left to run-task to report).
    let plan = modelcall_config::load_task_without_secrets(&task, &modelcall_config::Overrides::default())
        .ok()
        .and_then(|t| modelcall_config::RunPlan::from_task(&t).ok());
    if plan.as_ref().is_some_and(|p| !matches!(p.stages, modelcall_config::Stages::Scoring(_) | modelcall_config::Stages::Generate(_))) {
        let e = BadConfig(format!(
            "{}: `modelcall batch` works on one run that calls a model (data scoring, generate_response); for a batch of models, export each model's task",
            task.display()
        ));
        return exit_code(Err(e.into()), false);
    }
    let mut argv: Vec<std::ffi::OsString> = vec!["modelcall batch".into(), task.into_os_string(), "--no-progress".into()];
    if let Some(s) = shard {
        argv.push("--shard".into());
        argv.push(s.into());
    }
    let mut run = match AsRunTask::try_parse_from(argv) {
        Ok(a) => a.args,
        Err(e) => return exit_code(Err(BadConfig(e.to_string()).into()), false),
    };
    run.batch_file = Some(mode);
    super::run_task::run(run)
}
