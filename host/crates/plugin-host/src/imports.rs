//! What the host gives a plugin: the per-store state (sandboxed WASI context, resource
//! table, memory limiter, stderr capture, the deadline of the call in progress), the
//! track-independent implementation of the `host` interface (log, token counting) and the
//! facts behind the `call-context` resource lent for each call. Each API track's bindings
//! (`crate::wit`) implement their generated host traits by delegating here.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::stderr::StderrCapture;
use crate::tokenizer;

/// Largest text accepted by `count-tokens` / `truncate-tokens`. Token counting is not
/// metered by fuel or epochs: this cap bounds the text, and the tokenizer works in bounded
/// chunks checking the call's deadline in between (see [`crate::tokenizer`]).
pub(crate) const MAX_TOKENIZER_INPUT: usize = 64 * 1024 * 1024;

/// How much stderr is retained per instance (the tail is kept).
pub(crate) const STDERR_CAPACITY: usize = 64 * 1024;

/// The facts behind a lent `call-context` handle.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub task_name: Arc<str>,
    pub record_id: String,
    pub attempt: u32,
}

/// Memory limiter that remembers that it refused a grow, so the resulting abort (a Rust
/// guest traps with `unreachable` when allocation fails) is reported as a memory trap.
pub(crate) struct MemoryCap {
    pub max_bytes: usize,
    pub denied: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

/// The data of one plugin instance's `Store`.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub memory: MemoryCap,
    pub stderr: StderrCapture,
    /// Plugin name for log attribution.
    pub plugin: Arc<str>,
    /// Record id of the call in progress, for log attribution.
    pub record_id: String,
    pub log_budget: u64,
    pub log_dropped: u64,
    /// Wall-clock end of the call (or `init`) in progress. The epoch deadline only fires
    /// in wasm code, so host functions that may run long check this themselves.
    pub deadline: Option<Instant>,
}

impl HostState {
    pub(crate) fn new(plugin: Arc<str>, memory_bytes: usize) -> Self {
        let stderr = StderrCapture::new(STDERR_CAPACITY);
        HostState {
            wasi: sandbox_wasi(stderr.clone()),
            table: ResourceTable::new(),
            memory: MemoryCap { max_bytes: memory_bytes, denied: false },
            stderr,
            plugin,
            record_id: String::new(),
            log_budget: 0,
            log_dropped: 0,
            deadline: None,
        }
    }
}

/// WASI p2 with nothing granted: no preopened directories, no environment, no arguments,
/// empty stdin, and every network use denied (TCP, UDP, name lookup, and an address check
/// that refuses all addresses, in case a default changes). `wasi:sockets` is linked for
/// interpreter runtimes that import it unconditionally (see `loader::SOCKETS_RUNTIMES`), so
/// these denials are what a Python plugin's `socket` module runs into.
///
/// stdout and stderr both go to the bounded capture that trap reports quote: a Python
/// plugin's `print()` writes to stdout, and a plugin has no other console. Clocks and random
/// are the host's (a plugin may time itself; results must not depend on them).
fn sandbox_wasi(stderr: StderrCapture) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stdout(stderr.clone()).stderr(stderr).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl HostState {
    /// `host.log`: a line attributed to the plugin and the record, within the call's log budget.
    pub(crate) fn log_line(&mut self, level: tracing::Level, message: &str) {
        let len = message.len() as u64;
        if len > self.log_budget {
            self.log_dropped += len;
            return;
        }
        self.log_budget -= len;
        let plugin = &*self.plugin;
        let record_id = self.record_id.as_str();
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "modelcall::plugin", plugin, record_id, "{message}"),
        }
    }

    /// What the plugin wrote to stdout/stderr during one call (Python's `print`), one `debug`
    /// line per line of text, marked `output`, within the same per-call budget as `host.log`.
    pub(crate) fn log_output(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let len = line.len() as u64;
            if len > self.log_budget {
                self.log_dropped += len;
                continue;
            }
            self.log_budget -= len;
            tracing::debug!(target: "modelcall::plugin", plugin = &*self.plugin, record_id = self.record_id.as_str(), output = true, "{line}");
        }
    }

    /// `host.count-tokens`, within the input cap and the call's deadline.
    pub(crate) fn count_tokens_bounded(&mut self, text: &str) -> wasmtime::Result<u32> {
        check_tokenizer_input(text)?;
        let n = tokenizer::count_tokens_until(text, self.deadline).map_err(|_| deadline_trap())?;
        Ok(n.min(u32::MAX as usize) as u32)
    }

    /// `host.truncate-tokens`, within the input cap and the call's deadline. The prefix is
    /// the guest's own text cut in place: no second copy.
    pub(crate) fn truncate_tokens_bounded(&mut self, mut text: String, max_tokens: u32) -> wasmtime::Result<String> {
        check_tokenizer_input(&text)?;
        let len = tokenizer::truncated_len(&text, max_tokens as usize, self.deadline).map_err(|_| deadline_trap())?;
        text.truncate(len);
        Ok(text)
    }
}

/// A host call that ran into the call's deadline ends the call the way the epoch deadline
/// does, so it is reported as a `deadline` trap naming the limit.
fn deadline_trap() -> wasmtime::Error {
    wasmtime::Error::from(wasmtime::Trap::Interrupt)
}

fn check_tokenizer_input(text: &str) -> wasmtime::Result<()> {
    if text.len() > MAX_TOKENIZER_INPUT {
        wasmtime::bail!("host.count-tokens/truncate-tokens input is {} bytes, over the {} MiB cap", text.len(), MAX_TOKENIZER_INPUT / (1024 * 1024));
    }
    Ok(())
}
