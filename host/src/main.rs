//! The `modelcall` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "modelcall", version, about = "Run LLM scoring and distillation jobs over datasets, with sandboxed WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check, run or benchmark a plugin on its own.
    #[command(subcommand)]
    Plugin(modelcall::plugin_cmd::PluginCommand),
    /// Serve the SIMULATED OpenAI-compatible endpoint (deterministic replies, fault injection).
    ServeSim(modelcall_sim::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugin(cmd) => modelcall::plugin_cmd::run(cmd),
        Command::ServeSim(args) => modelcall_sim::serve_blocking(args),
    }
}
