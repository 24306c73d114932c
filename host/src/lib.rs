//! modelcall: the command line over one record pipeline. The heavy lifting lives in the crates
//! under `host/crates/` (plugin runtime, model client, simulated endpoint, io, config).
//!
//! - [`cli`]: commands and exit codes;
//! - [`tasks`]: one preset per task type (a job and a sink);
//! - [`engine`]: the pipeline every preset runs on;
//! - [`plugin_pool`], [`progress`], [`summary`], [`input_count`]: what the engine uses.

pub mod banner;
pub mod cli;
pub mod engine;
pub mod input_count;
pub mod logging;
pub mod metrics;
pub mod numbers;
pub mod plugin_pool;
pub mod progress;
pub mod remote;
pub mod report;
pub mod response_cache;
pub mod run_records;
pub mod shown;
pub mod stage_timing;
pub mod summary;
pub mod tasks;
