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
#[command(name = "modelcall", version, about = "Run LLM scoring and distillation jobs over datasets, with sandboxed WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Show per shard what is done, failed and pending, from the journals (no request sent).
    Status(modelcall::cli::status::StatusArgs),
    /// Merge the shard outputs of a task into its unsharded outputs and verify every input record is there once.
    Merge(modelcall::cli::merge::MergeArgs),
    /// Serve the SIMULATED OpenAI-compatible endpoint (deterministic replies, fault injection).
    ServeSim(modelcall_sim::ServeArgs),
    /// Write report.html for a run's output folder: counts, score distributions, judge quality, latency over time, failures, plugins.
    Report(modelcall::report::ReportArgs),
    /// The Python modelcall's scoring without a task file (its flags); writes the task file and runs it.
    #[command(name = "api-call")]
    ApiCall(modelcall::cli::compat::ApiCallArgs),
    /// The Python modelcall's preprocessing alone: `preprocess github|repomix` with its flags.
    #[command(subcommand)]
    Preprocess(modelcall::cli::compat::PreprocessCommand),
    /// The Python modelcall's demo: score = text length / 100 (at most 5) for every JSONL line.
    Pipeline(modelcall::cli::compat::PipelineArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    modelcall::logging::init();
    let result = match cli.command {
        Command::RunTask(args) => return modelcall::cli::run_task::run(args),
        Command::Submit(args) => return modelcall::cli::submit::run(args),
        Command::Status(args) => return modelcall::cli::status::run(args),
        Command::Merge(args) => return modelcall::cli::merge::run(args),
        Command::ApiCall(args) => return modelcall::cli::compat::api_call(args),
        Command::Preprocess(cmd) => return modelcall::cli::compat::preprocess(cmd),
        Command::Pipeline(args) => return modelcall::cli::compat::pipeline(args),
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
