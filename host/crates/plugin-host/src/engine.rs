//! The process-wide wasmtime engine: Cranelift, fuel metering, epoch interruption driven
//! by a 10 ms ticker thread, wasmtime's on-disk compile cache, and one `Linker` holding
//! the sandboxed WASI p2 and the modelcall host imports. Build one [`PluginRuntime`] per
//! process and load every plugin through it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::engine_state::{RuntimeInner, EPOCH_TICK};
use crate::errors::LoadError;
use crate::imports::HostState;
use crate::loader::{self, ComponentSummary};
use crate::runner::Plugin;
use crate::types::{PluginSource, PluginSpec};

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
        let mut kept_cache = None;
        if opts.compile_cache {
            match build_cache(opts.cache_dir) {
                Ok(cache) => {
                    kept_cache = Some(cache.clone());
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
        Ok(PluginRuntime { inner: Arc::new(RuntimeInner { engine, linker, cache_enabled, cache: kept_cache, compiled: Mutex::new(HashMap::new()) }) })
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

    /// wasmtime's on-disk cache counters for this runtime: `(hits, misses)` (a miss is a
    /// compile whose result was stored); `None` when the cache is off.
    pub fn compile_cache_stats(&self) -> Option<(usize, usize)> {
        self.inner.cache.as_ref().map(|c| (c.cache_hits(), c.cache_misses()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_state::CompileSource;

    #[test]
    fn a_second_runtime_gets_the_component_from_the_disk_cache() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RuntimeOptions { compile_cache: true, cache_dir: Some(dir.path().to_path_buf()) };
        let bytes = crate::builtins::get("json-score").expect("a built-in");
        let rt = PluginRuntime::with_options(opts.clone()).unwrap();
        let (_, how) = rt.inner.compile("k", bytes).unwrap();
        assert_eq!(how, CompileSource::CompiledAndCached);
        assert_eq!(rt.compile_cache_stats(), Some((0, 1)));
        // The same runtime keeps it in memory; a new one (a new process) reads the disk cache.
        assert_eq!(rt.inner.compile("k", bytes).unwrap().1, CompileSource::Memory);
        let rt2 = PluginRuntime::with_options(opts).unwrap();
        assert_eq!(rt2.inner.compile("k", bytes).unwrap().1, CompileSource::DiskCache);
        assert_eq!(rt2.compile_cache_stats(), Some((1, 0)));
        let off = PluginRuntime::with_options(RuntimeOptions { compile_cache: false, cache_dir: None }).unwrap();
        assert_eq!(off.inner.compile("k", bytes).unwrap().1, CompileSource::Compiled);
        assert_eq!(off.compile_cache_stats(), None);
    }
}
