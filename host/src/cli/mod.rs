//! The command line: `run-task`, `submit`, `status`, `merge`, `plugin`, `serve-sim`, the
//! Python modelcall's `api-call`, `preprocess` and `pipeline`, and the mapping of a run's end
//! to an exit code.

pub mod compat;
pub mod exit;
pub mod merge;
pub mod plugin_cmd;
pub mod run_task;
pub mod run_task_args;
pub mod status;
pub mod submit;
