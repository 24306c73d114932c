//! Simulated OpenAI-compatible endpoint with fault injection, for tests, demos and benchmarks

/// Command-line options of `modelcall serve-sim` (placeholder until the simulator lands).
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

pub fn serve_blocking(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve-sim is not built yet")
}
