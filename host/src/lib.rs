//! modelcall: the scheduling engine and CLI wiring. The heavy lifting lives in the crates under
//! `host/crates/` (plugin runtime, model client, simulated endpoint, io, config).

pub mod chatml;
pub mod input_count;
pub mod merge;
pub mod plugin_cmd;
pub mod plugin_pool;
pub mod preprocess;
pub mod progress;
pub mod run_task;
pub mod run_task_args;
pub mod scoring;
pub mod summary;
