//! Task, model and prompt YAML configs, in the reference tool's schema, checked up front.
//!
//! - [`load`]: `load_task`, from a task file to a checked [`LoadedTask`];
//! - [`task`]: the typed task sections; [`model`], [`prompt`], [`distill`]: the files a task names;
//! - [`step`]: the typed steps a task resolves to, parsed by [`distill`] and [`batch`];
//! - [`schema`]: the keys a task file may hold, and those accepted but ignored;
//! - [`error`]: errors that name the file, line and dotted key, with suggestions;
//! - [`locate`], [`yaml`], [`fields`]: finding keys' lines; reading YAML; typed key reads;
//!   [`plugin_config`]: a plugin config's schema violations placed in its YAML;
//! - [`env`]: `${VAR}` interpolation and env files; [`sim`]: `sim://` options;
//! - [`paths`]: `{timestamp}`/`{task_name}` templating, resume folders, path resolution;
//! - [`shard`]: `--shard I/N` and scheduler variables; [`plan`]: a dry-run summary.

pub mod batch;
pub mod distill;
pub mod env;
pub mod error;
pub mod fields;
pub mod load;
pub mod locate;
pub mod model;
mod model_display;
mod model_pool;
pub mod paths;
pub mod plan;
pub mod plugin_config;
pub mod prompt;
pub mod run_plan;
pub mod schema;
pub mod script_presets;
pub mod shard;
pub mod sim;
pub mod step;
pub mod task;
pub mod task_options;
pub mod yaml;

pub use distill::{DatasetsConfig, MergeConfig, UnknownMergeGroup};
pub use env::{MissingVar, Vars};
pub use error::ConfigError;
pub use load::{load_task, load_task_with, load_task_without_secrets};
pub use model::{ModelConfig, ModelDefaults};
pub use plan::dry_run_plan;
pub use prompt::{missing_placeholders, OutputConfig, PromptChecks, PromptConfig};
pub use run_plan::{PluginRef, PreprocessPlan, RunPlan, ScoringPlan, Stages};
pub use schema::IgnoredKey;
pub use shard::{parse_shard, shard_from_env, shard_from_env_checked, shard_from_vars, ShardError};
pub use sim::{SimFault, SimSpec, SimUrlError};
pub use step::DistillationStep;
pub use task::{LoadedTask, OutputFormat, Overrides, PluginEntry, TaskConfig, TaskType};
