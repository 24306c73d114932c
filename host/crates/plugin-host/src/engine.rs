//! The process-wide wasmtime engine: Cranelift, fuel metering, epoch interruption driven
//! by a 10 ms ticker thread, wasmtime's on-disk compile cache, and one `Linker` holding
//! the sandboxed WASI p2 and the modelcall host imports. Build one [`PluginRuntime`] per
//! process and load every plugin through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::errors::LoadError;
use crate::imports::HostState;
use crate::loader::{self, ComponentSummary};
use crate::runner::Plugin;
use crate::types::{PluginSource, PluginSpec};

/// Resolution of the epoch clock: deadlines are rounded up to a multiple of this.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the engine is set up. The defaults are what the CLI uses.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Use wasmtime's on-disk cache of compiled components (keyed by wasm bytes and engine
    /// settings), so a plugin is compiled once per machine rather than once per run.
    pub compile_cache: bool,
    /// Where the cache lives; default `<cache dir>/modelcall/wasmtime`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { compile_cache: true, cache_dir: None }
    }
}

pub(crate) struct RuntimeInner {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// Whether the compile cache is actually in use (it is skipped if unavailable).
    pub cache_enabled: bool,
}

/// The wasmtime engine or linker could not be set up (a host problem, not a plugin's).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the plugin runtime: {0:#}")]
pub struct RuntimeError(wasmtime::Error);

/// Owns the engine and linker; cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    pub(crate) inner: Arc<RuntimeInner>,
}

impl PluginRuntime {
    /// The engine with the default options (compile cache on when a cache dir exists).
    pub fn new() -> Result<Self, RuntimeError> {
        Self::with_options(RuntimeOptions::default())
    }

    pub fn with_options(opts: RuntimeOptions) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.strategy(wasmtime::Strategy::Cranelift);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let mut cache_enabled = false;
        if opts.compile_cache {
            match build_cache(opts.cache_dir) {
                Ok(cache) => {
                    config.cache(Some(cache));
                    cache_enabled = true;
                }
                // A read-only home or a missing cache dir must not stop a run: compile each time.
                Err(e) => tracing::debug!("wasmtime compile cache unavailable, compiling without it: {e:#}"),
            }
        }
        let engine = Engine::new(&config).map_err(RuntimeError)?;
        spawn_ticker(&engine);

        let mut linker = Linker::<HostState>::new(&engine);
        // All of WASI 0.2, `wasi:sockets` included: the loader's allowlist decides what a
        // component may import (sockets only for interpreter runtimes such as componentize-py,
        // which import them unconditionally) and `imports::sandbox_wasi` denies every use.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(RuntimeError)?;
        crate::wit::add_to_linker(&mut linker).map_err(RuntimeError)?;
        Ok(PluginRuntime { inner: Arc::new(RuntimeInner { engine, linker, cache_enabled }) })
    }

    /// Loads, validates and initialises a plugin (runs `init(config)` once).
    pub fn load(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        loader::load(&self.inner, spec)
    }

    /// Compiles and inspects a component without instantiating it: imports, exports, roles.
    pub fn inspect(&self, source: &PluginSource) -> Result<ComponentSummary, LoadError> {
        loader::inspect(&self.inner, source)
    }

    /// Whether compiled components are cached on disk.
    pub fn compile_cache_enabled(&self) -> bool {
        self.inner.cache_enabled
    }
}

fn build_cache(dir: Option<PathBuf>) -> anyhow::Result<wasmtime::Cache> {
    let dir = match dir {
        Some(d) => d,
        None => dirs::cache_dir().ok_or_else(|| anyhow::anyhow!("no cache directory on this system"))?.join("modelcall").join("wasmtime"),
    };
    std::fs::create_dir_all(&dir)?;
    let mut cfg = wasmtime::CacheConfig::new();
    cfg.with_directory(dir);
    Ok(wasmtime::Cache::new(cfg)?)
}

/// Advances the engine's epoch every tick. The thread holds only a weak reference, so it
/// ends by itself once the engine (and every plugin using it) is dropped.
fn spawn_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("modelcall-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Epoch ticks for a wall-clock budget, rounded up, at least one.
pub(crate) fn deadline_ticks(ms: u64) -> u64 {
    let tick = EPOCH_TICK.as_millis() as u64;
    ms.div_ceil(tick).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_ticks() {
        assert_eq!(deadline_ticks(1), 1);
        assert_eq!(deadline_ticks(10), 1);
        assert_eq!(deadline_ticks(11), 2);
        assert_eq!(deadline_ticks(1000), 100);
    }
}
