//! `modelcall status`: per-shard progress read from the journals.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// The task YAML file.
    pub task: PathBuf,
}

pub fn run(args: StatusArgs) -> ExitCode {
    eprintln!("error: `status` of {} is not available yet", args.task.display());
    ExitCode::from(2)
}
