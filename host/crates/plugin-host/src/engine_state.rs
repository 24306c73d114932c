//! What every load and call of a plugin shares, apart from how the runtime is built: the
//! wasmtime engine and linker with the components compiled so far ([`RuntimeInner`]), and the
//! epoch clock that turns a wall-clock budget into ticks. The runtime (`engine.rs`), the loader
//! and the runner all read it; it reads none of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use crate::imports::HostState;

/// Resolution of the epoch clock: deadlines are rounded up to a multiple of this.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

pub(crate) struct RuntimeInner {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// Whether the compile cache is actually in use (it is skipped if unavailable).
    pub cache_enabled: bool,
    /// The on-disk cache handed to the engine (a clone sharing its hit and miss counters).
    pub cache: Option<wasmtime::Cache>,
    /// Components already compiled (or fetched from the disk cache) by this runtime, by the
    /// sha256 of their bytes: `plugin check` inspects then loads, and a task may name one
    /// component in several roles; each is deserialised once per process.
    pub compiled: Mutex<HashMap<String, Component>>,
}

/// At most this many compiled components are kept in a runtime's memory for reuse.
const MEMO_COMPONENTS: usize = 8;

/// How a component was obtained, for the load log line and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompileSource {
    /// Compiled by this runtime earlier (in memory).
    Memory,
    /// Read from wasmtime's on-disk cache.
    DiskCache,
    /// Compiled now, and written to the on-disk cache.
    CompiledAndCached,
    /// Compiled now; nothing cached (cache off or unavailable, or the write failed).
    Compiled,
}

impl CompileSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CompileSource::Memory => "already compiled in this process",
            CompileSource::DiskCache => "compile cache hit",
            CompileSource::CompiledAndCached => "compile cache miss: compiled and stored",
            CompileSource::Compiled => "compiled (not cached)",
        }
    }
}

impl RuntimeInner {
    /// The compiled component for `bytes` (whose sha256 is `sha256`): from this runtime's
    /// memory, else through the engine (which reads or fills the on-disk cache), and which of
    /// these it was. wasmtime's hit and miss counters tell a disk hit from a compile; with
    /// loads running at once on other threads the attribution is a best effort.
    pub(crate) fn compile(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<(Component, CompileSource)> {
        if let Some(c) = self.compiled.lock().unwrap().get(sha256) {
            return Ok((c.clone(), CompileSource::Memory));
        }
        let counts = |c: &wasmtime::Cache| (c.cache_hits(), c.cache_misses());
        let before = self.cache.as_ref().map(counts);
        let component = Component::new(&self.engine, bytes)?;
        let source = match (before, self.cache.as_ref().map(counts)) {
            (Some((h0, m0)), Some((h1, m1))) if h1 > h0 && m1 == m0 => CompileSource::DiskCache,
            (Some((_, m0)), Some((_, m1))) if m1 > m0 => CompileSource::CompiledAndCached,
            _ => CompileSource::Compiled,
        };
        let mut compiled = self.compiled.lock().unwrap();
        // A long-lived runtime (`plugin dev --watch` rebuilding a plugin) must not keep every
        // build it has seen: a few recent ones are all the reuse there is.
        if compiled.len() >= MEMO_COMPONENTS {
            compiled.clear();
        }
        compiled.insert(sha256.to_string(), component.clone());
        Ok((component, source))
    }
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
