//! Loads and runs modelcall WebAssembly plugins (preprocessors, prompt builders, score
//! parsers) in a sandbox with per-call limits.
//!
//! The contract is `wit/plugin.wit` (package `modelcall:plugin@0.1.0`). One process-wide
//! [`PluginRuntime`] owns the wasmtime engine (epoch ticker, fuel, on-disk compile cache);
//! [`PluginRuntime::load`] validates a component and runs its `init(config)` once;
//! the returned [`Plugin`] is a cheap handle whose synchronous calls check a warm instance
//! out of a pool, run one call under the limits and map every failure to a [`CallError`].
//!
//! Layout: `engine` (the wasmtime engine and linker), `loader` (validation at load),
//! `runner` (the [`Plugin`] handle and one call under the limits), `instance_pool` (warm
//! instances, recycling, the consecutive-trap breaker), `output` (checks on what a plugin
//! returns), `imports` (per-store host state and the host functions), `wit` (one module per
//! WIT API track: bindings and conversions to the plain types of `types`).
//!
//! PLUGINS.md at the repository root documents the behaviour for users.

pub mod builtins;
pub mod config_check;
mod engine;
mod engine_state;
pub mod errors;
mod imports;
mod instance_pool;
pub mod limits;
mod loader;
mod output;
mod runner;
mod stderr;
pub mod tokenizer;
mod types;
mod wit;

pub use config_check::ConfigViolation;
pub use engine::{PluginRuntime, RuntimeError, RuntimeOptions};
pub use errors::{CallError, ErrorKind, LoadError, TrapKind};
pub use limits::{Limits, LimitsError};
pub use loader::{ComponentSummary, MAX_COMPONENT_BYTES};
pub use runner::{capture_output, CallStats, Plugin};
pub use types::location_line;
pub use types::{
    ChatMessage, ChatRole, ItemError, ParseFailure, PluginDescription, PluginSource, PluginSpec, PreprocessInput, PreprocessOutcome, Prompt, Role, Score,
    CURRENT_TRACK, SUPPORTED_TRACKS,
};

/// `Plugin` is shared across the engine's worker threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Plugin>();
    assert_send_sync::<PluginRuntime>();
};
