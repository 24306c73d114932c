//! `modelcall merge`: shard outputs into the unsharded outputs, verified.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct MergeArgs {
    /// The task YAML file.
    pub task: PathBuf,
}

pub fn run(args: MergeArgs) -> ExitCode {
    eprintln!("error: `merge` of {} is not available yet", args.task.display());
    ExitCode::from(2)
}
