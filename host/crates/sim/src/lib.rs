//! A SIMULATED OpenAI-compatible endpoint: a real HTTP server (hyper) whose replies are
//! deterministic functions of the prompt, with fault injection, for the quickstart, tests and
//! benchmarks. Its model id says it is simulated so nobody mistakes its verdicts for a model's.
//!
//! - [`options`]: what to simulate (latency, faults, scripted replies), from flags or a
//!   `sim://?…` URL (the one parser of that grammar; built even without the `server` feature);
//! - [`reply`]: the deterministic answer to a conversation, and the `replies=FILE` rules;
//! - [`schema`]: answers valid against a request's `response_format` JSON schema;
//! - [`server`]: the HTTP server and its route table; `chat` and `batch_api`: the chat and Batch
//!   API endpoints (fault injection, latency, JSON and SSE replies); [`batch`]: the Batch API's
//!   files, batches, faults and stats; `state` and `respond`: what they share.
//!
//! The `server` feature (on by default) holds everything but [`options`].
//!
//! # What a reply says
//!
//! First match wins:
//!
//! 1. **Scripted replies**, `sim://?replies=FILE` (`serve-sim --replies FILE`): a JSONL file of
//!    `{"match": "<regex>", "reply": "<text>" | <any JSON value>}` lines and at most one
//!    `{"default": …}` line. The first rule whose regex (the `regex` crate's syntax, searched
//!    anywhere in the text) is found in the last user message gives the content (a non-string
//!    reply is sent serialised as JSON); no rule found gives the default; no default, the
//!    simulator answers as below. A record id is matched as a regex too, e.g.
//!    `{"match": "\\brec-0042\\b", "reply": …}`. A relative FILE resolves against the current
//!    folder; the file is read when the server starts, and a missing file or a bad line stops the
//!    start with [`SimUrlError::RepliesFile`] / [`SimUrlError::RepliesLine`] (file and line).
//! 2. **Structured output**: a request with `response_format: {"type": "json_schema",
//!    "json_schema": {"schema": {…}}}` gets, as its whole content (no code fence), a JSON document
//!    valid against that schema by construction: every property and required key, `enum`/`const`,
//!    numeric bounds and `multipleOf`, string lengths and simple `pattern`s, array sizes, `anyOf`/
//!    `oneOf` (one branch), `allOf`, local `$ref`s, type lists and nullable types. Choices are a
//!    hash of the last user message and the `seed` option, so the same request gets the same
//!    reply and another seed another one (a pairwise judge's `"winner": "A" | "B" | "tie"` varies
//!    across questions, deterministically). See [`schema`] for what is and is not honoured.
//! 3. **JSON templates** (also for `{"type": "json_object"}`): when the prompt shows quoted
//!    `"key":` patterns, a fenced JSON object with those keys and plausible values.
//! 4. Otherwise a plain-text answer quoting the question.

#[cfg(feature = "server")]
pub mod batch;
#[cfg(feature = "server")]
mod batch_api;
#[cfg(feature = "server")]
mod chat;
pub mod options;
pub mod prefix_cache;
#[cfg(feature = "server")]
pub mod reply;
#[cfg(feature = "server")]
mod respond;
#[cfg(feature = "server")]
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod state;

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
    /// Seed of the fault sequence and of the choices in structured (`json_schema`) replies.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also send `reasoning_content`, as reasoning models do.
    #[arg(long)]
    pub reasoning: bool,
    /// Scripted replies: a JSONL file of {"match": REGEX, "reply": …} lines and an optional
    /// {"default": …} line (relative to the current folder).
    #[arg(long, value_name = "FILE")]
    pub replies: Option<std::path::PathBuf>,
    /// Stop by itself after this many seconds (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    pub exit_after_secs: u64,
    /// A saturating endpoint, as a GPU server is: up to C requests in flight take the
    /// latency, above C the latency grows with the queue, above 2·C requests get 429.
    #[arg(long, value_name = "C")]
    pub capacity: Option<u64>,
    /// Keep the last N prompt prefixes, as a server's prefix (KV) cache does, and report how
    /// many requests found theirs when the server stops.
    #[arg(long, value_name = "N")]
    pub prefix_cache: Option<usize>,
}

/// Runs the simulator in the foreground until Ctrl-C (or `--exit-after-secs`).
#[cfg(feature = "server")]
pub fn serve(args: ServeArgs) -> Result<(), SimError> {
    let mut opts = SimOptions {
        latency: std::time::Duration::from_millis(args.latency_ms),
        retry_after_secs: args.retry_after_secs,
        seed: args.seed,
        reasoning: args.reasoning,
        replies: args.replies.clone(),
        capacity: args.capacity.map(|c| c.max(1)),
        prefix_cache: args.prefix_cache.map(|n| n.max(1)),
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
            "modelcall SIMULATED endpoint (not a real model) listening on http://{}/v1 — model id \"{SIM_MODEL_ID}\"; latency {} ms; faults: {}{}",
            server.addr,
            opts.latency.as_millis(),
            if opts.faults.is_empty() { "none".to_string() } else { opts.faults.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ") },
            opts.replies.as_ref().map_or(String::new(), |p| format!("; scripted replies from {}", p.display()))
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
        eprintln!("simulated endpoint served {} requests ({} refused with 429)", stats.requests, stats.rate_limited);
        if args.prefix_cache.is_some() {
            eprintln!("prefix cache: {} of {} requests found their prefix cached", stats.prefix_hits, stats.prefix_lookups);
        }
        Ok(())
    })
}
