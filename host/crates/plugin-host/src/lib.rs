//! Loads and runs modelcall WebAssembly plugins (preprocessors, prompt builders, score
//! parsers) in a sandbox with per-call limits.
//!
//! The contract is `wit/plugin.wit` (package `modelcall:plugin@0.1.0`). One process-wide
//! [`PluginRuntime`] owns the wasmtime engine (epoch ticker, fuel, on-disk compile cache);
//! [`PluginRuntime::load`] validates a component and runs its `init(config)` once;
//! the returned [`Plugin`] is a cheap handle whose synchronous calls check a warm instance
//! out of a pool, run one call under the limits and map every failure to a [`CallError`].
//!
//! PLUGINS.md at the repository root documents the behaviour for users.

mod bindings;
pub mod builtins;
mod engine;
pub mod errors;
mod imports;
pub mod limits;
mod loader;
mod runner;
mod stderr;
pub mod tokenizer;
mod types;

pub use engine::{PluginRuntime, RuntimeOptions};
pub use loader::{ComponentSummary, MAX_COMPONENT_BYTES};
pub use errors::{CallError, ErrorKind, LoadError, TrapKind};
pub use limits::Limits;
pub use runner::{CallStats, Plugin};
pub use types::{
    ChatMessage, ChatRole, ParseFailure, PluginDescription, PluginSource, PluginSpec, PreprocessInput,
    PreprocessOutcome, Prompt, Role, Score, SUPPORTED_TRACK,
};

/// `Plugin` is shared across the engine's worker threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Plugin>();
    assert_send_sync::<PluginRuntime>();
};
