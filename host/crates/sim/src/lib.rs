//! A SIMULATED OpenAI-compatible endpoint: a real HTTP server (hyper) whose replies are
//! deterministic functions of the prompt, with fault injection, for the quickstart, tests and
//! benchmarks. Its model id says it is simulated so nobody mistakes its verdicts for a model's.
//!
//! - [`options`]: what to simulate (latency, faults), from flags or a `sim://?…` URL (the one
//!   parser of that grammar; built even without the `server` feature);
//! - [`reply`]: the deterministic answer to a conversation;
//! - [`server`]: the HTTP server and fault injection.
//!
//! The `server` feature (on by default) holds everything but [`options`].

pub mod options;
#[cfg(feature = "server")]
pub mod reply;
#[cfg(feature = "server")]
pub mod server;

pub use options::{Fault, FaultError, FaultKind, SimOptions, SimUrlError};
#[cfg(feature = "server")]
pub use server::{start, start_on, SimError, SimServer, SimStats};

/// The model id the simulator reports.
pub const SIM_MODEL_ID: &str = "modelcall-sim (SIMULATED)";

/// Command-line options of `modelcall serve-sim`.
#[cfg(feature = "server")]
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one; the banner prints the address).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind; loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Added to every reply, without blocking a thread.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault injection, repeatable: KIND=RATE with KIND one of 429, 500, drop, malformed, hang,
    /// 401 (e.g. --fault 429=0.05 --fault drop=0.01).
    #[arg(long = "fault", value_name = "KIND=RATE")]
    pub faults: Vec<String>,
    /// Seconds in the Retry-After header of simulated 429s.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Seed of the fault sequence.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also send `reasoning_content`, as reasoning models do.
    #[arg(long)]
    pub reasoning: bool,
    /// Stop by itself after this many seconds (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    pub exit_after_secs: u64,
}

/// Runs the simulator in the foreground until Ctrl-C (or `--exit-after-secs`).
#[cfg(feature = "server")]
pub fn serve(args: ServeArgs) -> Result<(), SimError> {
    let mut opts = SimOptions {
        latency: std::time::Duration::from_millis(args.latency_ms),
        retry_after_secs: args.retry_after_secs,
        seed: args.seed,
        reasoning: args.reasoning,
        ..SimOptions::default()
    };
    for spec in &args.faults {
        opts.faults.push(Fault::parse(spec)?);
    }
    let addr: std::net::SocketAddr = format!("{}:{}", args.host, args.port).parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(SimError::Runtime)?;
    runtime.block_on(async move {
        let server = server::start_on(addr, opts.clone()).await?;
        println!(
            "modelcall SIMULATED endpoint (not a real model) listening on http://{}/v1 — model id \"{SIM_MODEL_ID}\"; latency {} ms; faults: {}",
            server.addr,
            opts.latency.as_millis(),
            if opts.faults.is_empty() { "none".to_string() } else { opts.faults.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ") }
        );
        use std::io::Write;
        std::io::stdout().flush().ok();
        if args.exit_after_secs > 0 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = tokio::time::sleep(std::time::Duration::from_secs(args.exit_after_secs)) => {},
            }
        } else {
            tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
        }
        let stats = server.stats();
        eprintln!("simulated endpoint served {} requests", stats.requests);
        Ok(())
    })
}

