//! `modelcall submit`: write and submit the cluster job of a sharded run.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct SubmitArgs {
    /// The task YAML file.
    pub task: PathBuf,
}

pub fn run(args: SubmitArgs) -> ExitCode {
    eprintln!("error: `submit` of {} is not available yet", args.task.display());
    ExitCode::from(2)
}
