//! `modelcall reparse`: every stored reply of a scoring task parsed again, offline, with the
//! task's score parser or another one; no request is sent. With `--output-folder` the results
//! go to a new folder (the task's journals are copied there first), so two parsers' outputs
//! can be compared with `modelcall report A B`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use super::exit::{exit_code, BadConfig};
use super::run_task_args::RunTaskArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct ReparseArgs {
    /// The task YAML file whose stored replies are parsed again.
    pub task: PathBuf,

    /// Another score parser: `builtin:NAME` or the path of a score-parser component (.wasm).
    #[arg(long, value_name = "PLUGIN")]
    pub parser: Option<String>,

    /// Its config, as JSON (default: the task's score parser config).
    #[arg(long, value_name = "JSON", requires = "parser")]
    pub parser_config: Option<String>,

    /// Write the re-parsed outputs here and leave the task's output folder as it is (its
    /// journals are copied here first).
    #[arg(long, value_name = "DIR")]
    pub output_folder: Option<PathBuf>,

    /// No progress bar or periodic progress lines.
    #[arg(long)]
    pub no_progress: bool,
}

/// `run-task`'s own arguments, as its parser builds them (new run-task flags keep their
/// defaults here without this file knowing them).
#[derive(Parser)]
struct AsRunTask {
    #[command(flatten)]
    args: RunTaskArgs,
}

pub fn run(args: ReparseArgs) -> ExitCode {
    let parser_config = match args.parser_config.as_deref().map(serde_json::from_str::<serde_json::Value>).transpose() {
        Ok(c) => c,
        Err(e) => return exit_code(Err(BadConfig(format!("--parser-config: not JSON: {e}")).into()), false),
    };
    let mut argv: Vec<std::ffi::OsString> = vec!["modelcall reparse".into(), args.task.clone().into()];
    if args.no_progress {
        argv.push("--no-progress".into());
    }
    if let Some(dest) = &args.output_folder {
        if let Err(e) = copy_state(&args.task, dest) {
            return exit_code(Err(e), false);
        }
        argv.push("--output-folder".into());
        argv.push(dest.clone().into());
    }
    let mut run = match AsRunTask::try_parse_from(argv) {
        Ok(a) => a.args,
        Err(e) => return exit_code(Err(BadConfig(e.to_string()).into()), false),
    };
    run.offline = true;
    run.parser_override = args.parser.map(|p| (p, parser_config));
    super::run_task::run(run)
}

/// Copies the journals (and what each result was made with) of the task's output folder into
/// `dest`'s state folder, unless `dest` already has its own.
fn copy_state(task: &Path, dest: &Path) -> anyhow::Result<()> {
    let loaded = modelcall_config::load_task_without_secrets(task, &modelcall_config::Overrides::default()).map_err(|e| BadConfig(e.to_string()))?;
    let source = loaded.output_folder.clone().ok_or_else(|| BadConfig(format!("{}: the task has no output folder", task.display())))?;
    let (from, to) = (source.join(".modelcall"), dest.join(".modelcall"));
    if !from.is_dir() {
        return Err(BadConfig(format!("{} has no results to parse again (no {})", source.display(), from.display())).into());
    }
    let has_journal = |dir: &Path| std::fs::read_dir(dir).is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".journal.jsonl")));
    if has_journal(&to) {
        eprintln!("note: {} already holds results; they are parsed again in place", dest.display());
        return Ok(());
    }
    std::fs::create_dir_all(&to)?;
    let mut copied = 0;
    for entry in std::fs::read_dir(&from)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".journal.jsonl") || name.ends_with(".journal.jsonl.settings.json") {
            std::fs::copy(entry.path(), to.join(&name))?;
            copied += 1;
        }
    }
    eprintln!("reparse: copied {copied} state file(s) from {} to {}", from.display(), to.display());
    Ok(())
}
