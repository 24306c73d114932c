//! The `modelcall` command line.

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the engine allocates and frees per request on every
/// worker thread, where glibc malloc spent ~17 % of the client's CPU (perf; see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's arenas committed as they are used rather than whole when reserved: at 4,096
/// requests in flight this keeps peak RSS where glibc had it (249 MB, against 300 MB with
/// eager commit) for the same CPU saving. It must be set before the first allocation reserves
/// an arena, so it runs as an ELF constructor, before the Rust runtime starts (and allocates).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static LAZY_ARENA_COMMIT: extern "C" fn() = {
    extern "C" fn lazy_arena_commit() {
        /// `mi_option_arena_eager_commit` of mimalloc v3's `mi_option_e` (libmimalloc-sys
        /// names only the v2 options).
        const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        // SAFETY: sets a process-wide allocator option before any allocation.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
    lazy_arena_commit
};

#[derive(Parser)]
#[command(
    name = "modelcall",
    version,
    about = "Run LLM scoring and distillation jobs over datasets, with sandboxed WebAssembly plugins",
    after_help = modelcall::cli::TOP_LEVEL_AFTER_HELP
)]
struct Cli {
    /// More log lines: -v one per request attempt (key, status, latency, cause), -vv
    /// modelcall's trace lines. Runtime internals only by target: MODELCALL_LOG=wasmtime=debug.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    verbose: u8,
    /// Errors only on stderr: no warnings, problem lines or plugin log lines.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = "Global options")]
    quiet: bool,
    /// Colour in the help and the log lines: auto (at a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Colour::Auto, global = true, help_heading = "Global options")]
    color: Colour,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Colour {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task file (data scoring, preprocessing, distillation) end to end, resuming where an earlier run stopped.
    RunTask(modelcall::cli::run_task_args::RunTaskArgs),
    /// Check, run or benchmark a plugin on its own.
    #[command(subcommand)]
    Plugin(modelcall::cli::plugin_cmd::PluginCommand),
    /// Write and submit a cluster job that runs the task in N shards (Slurm job array or Kubernetes Indexed Job).
    Submit(modelcall::cli::submit::SubmitArgs),
    /// Show how far a run is, for a task file or any output folder (sharded or not): per unit and shard done, failed, remaining, running or not, last progress, spend, and the scheduler's state (no request sent, no API key needed).
    Status(modelcall::cli::status::StatusArgs),
    /// Merge the shard outputs of a task into its unsharded outputs and verify every input record is there once.
    Merge(modelcall::cli::merge::MergeArgs),
    /// Serve the SIMULATED OpenAI-compatible endpoint (deterministic replies, fault injection).
    ServeSim(modelcall_sim::ServeArgs),
    /// Parse every stored reply of a scoring task again with its score parser (or another one, `--parser`), sending nothing; into a new folder with `--output-folder`.
    Reparse(modelcall::cli::reparse::ReparseArgs),
    /// Batches without the Batch API: `export` the requests left to do as an OpenAI batch input file (for `vllm run-batch`), `import` its output file, exactly once.
    #[command(subcommand)]
    Batch(modelcall::cli::batch_cmd::BatchCommand),
    /// The response cache on this machine (a task's `cache:`): stats, prune, clear.
    #[command(subcommand)]
    Cache(modelcall::cli::cache_cmd::CacheCommand),
    /// Write report.html for a run's output folder: counts, score distributions, judge quality, latency over time, failures, plugins.
    Report(modelcall::report::ReportArgs),
    /// Compatibility with the Python modelcall: its scoring without a task file (its flags); writes the task file and runs it.
    #[command(name = "api-call", hide = true)]
    ApiCall(modelcall::cli::compat::ApiCallArgs),
    /// Compatibility with the Python modelcall: its preprocessing alone, `preprocess github|repomix` with its flags.
    #[command(subcommand, hide = true)]
    Preprocess(modelcall::cli::compat::PreprocessCommand),
    /// Compatibility with the Python modelcall: its demo, score = text length / 100 (at most 5) for every JSONL line.
    #[command(hide = true)]
    Pipeline(modelcall::cli::compat::PipelineArgs),
}

/// `--color` as given on the command line, read before clap parses it (the help clap prints
/// while parsing is coloured by it); `NO_COLOR` counts as `never` for `auto`.
fn colour_choice() -> Colour {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut choice = None;
    for (i, a) in args.iter().enumerate() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        let value = match a.strip_prefix("--color") {
            Some(rest) if rest.starts_with('=') => Some(rest[1..].to_string()),
            Some("") => args.get(i + 1).map(|v| v.to_string_lossy().to_string()),
            _ => None,
        };
        match value.as_deref() {
            Some("always") => choice = Some(Colour::Always),
            Some("never") => choice = Some(Colour::Never),
            Some("auto") => choice = Some(Colour::Auto),
            _ => {}
        }
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match choice.unwrap_or(Colour::Auto) {
        Colour::Auto if no_color => Colour::Never,
        c => c,
    }
}

/// A closed stdout (`modelcall … | head -1`) ends the process quietly, as it does for other
/// command-line tools, instead of a panic in `println!`: the default action of SIGPIPE, which
/// the Rust runtime ignores. Nothing is lost by it: what a command does (a submitted job, a
/// journal line) is done before what it prints about it, and a run's journal survives any kill.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: sets a signal disposition at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> std::process::ExitCode {
    default_sigpipe();
    let colour = colour_choice();
    match colour {
        // Everything that decides colour by itself (the progress bar) follows NO_COLOR.
        Colour::Never => std::env::set_var("NO_COLOR", "1"),
        Colour::Always => std::env::set_var("CLICOLOR_FORCE", "1"),
        Colour::Auto => {}
    }
    let clap_colour = match colour {
        Colour::Auto => clap::ColorChoice::Auto,
        Colour::Always => clap::ColorChoice::Always,
        Colour::Never => clap::ColorChoice::Never,
    };
    let command = modelcall::cli::with_examples(<Cli as clap::CommandFactory>::command().color(clap_colour));
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
    let ansi = match colour {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    modelcall::logging::init(verbosity, ansi);
    let result = match cli.command {
        Command::RunTask(args) => return modelcall::cli::run_task::run(args),
        Command::Submit(args) => return modelcall::cli::submit::run(args),
        Command::Status(args) => return modelcall::cli::status::run(args),
        Command::Reparse(args) => return modelcall::cli::reparse::run(args),
        Command::Batch(cmd) => return modelcall::cli::batch_cmd::run(cmd),
        Command::Merge(args) => return modelcall::cli::merge::run(args),
        Command::ApiCall(args) => return modelcall::cli::compat::api_call(args),
        Command::Preprocess(cmd) => return modelcall::cli::compat::preprocess(cmd),
        Command::Pipeline(args) => return modelcall::cli::compat::pipeline(args),
        Command::Cache(cmd) => modelcall::cli::cache_cmd::run(cmd).map(|_| std::process::ExitCode::SUCCESS),
        Command::Report(args) => modelcall::report::run(args).map(|_| std::process::ExitCode::SUCCESS),
        Command::Plugin(cmd) => modelcall::cli::plugin_cmd::run(cmd).map(|_| std::process::ExitCode::SUCCESS),
        Command::ServeSim(args) => modelcall_sim::serve(args).map(|_| std::process::ExitCode::SUCCESS).map_err(anyhow::Error::from),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
