//! What the host gives a plugin: the per-store state (sandboxed WASI context, resource
//! table, memory limiter, stderr capture), the `host` interface (log, token counting) and
//! the `call-context` resource lent for each call.

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::v0_1::base::modelcall::plugin::{context, host, types};
use crate::stderr::StderrCapture;

/// Largest text accepted by `count-tokens` / `truncate-tokens`. Token counting is not
/// metered by fuel or epochs, so a cap bounds the time a guest can spend on the host side.
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
        }
    }
}

/// WASI p2 with nothing granted: no preopened directories, no environment, no arguments,
/// empty stdin, stdout discarded, stderr captured, and every network use denied (TCP, UDP,
/// name lookup, and an address check that refuses all addresses, in case a default changes).
fn sandbox_wasi(stderr: StderrCapture) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl context::Host for HostState {}

impl context::HostCallContext for HostState {
    fn task_name(&mut self, this: Resource<CallContext>) -> String {
        self.table.get(&this).map(|c| c.task_name.to_string()).unwrap_or_default()
    }
    fn record_id(&mut self, this: Resource<CallContext>) -> String {
        self.table.get(&this).map(|c| c.record_id.clone()).unwrap_or_default()
    }
    fn attempt(&mut self, this: Resource<CallContext>) -> u32 {
        self.table.get(&this).map(|c| c.attempt).unwrap_or(1)
    }
    fn drop(&mut self, rep: Resource<CallContext>) -> wasmtime::Result<()> {
        // The host lends call contexts as borrows and deletes them itself after the call;
        // a drop only arrives for handles the guest somehow owns.
        let _ = self.table.delete(rep);
        Ok(())
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: types::LogLevel, message: String) {
        let len = message.len() as u64;
        if len > self.log_budget {
            self.log_dropped += len;
            return;
        }
        self.log_budget -= len;
        let plugin = &*self.plugin;
        let record_id = self.record_id.as_str();
        match level {
            types::LogLevel::Trace => tracing::trace!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            types::LogLevel::Debug => tracing::debug!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            types::LogLevel::Info => tracing::info!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            types::LogLevel::Warn => tracing::warn!(target: "modelcall::plugin", plugin, record_id, "{message}"),
            types::LogLevel::Error => tracing::error!(target: "modelcall::plugin", plugin, record_id, "{message}"),
        }
    }

    fn count_tokens(&mut self, text: String) -> wasmtime::Result<u32> {
        check_tokenizer_input(&text)?;
        Ok(crate::tokenizer::count_tokens(&text).min(u32::MAX as usize) as u32)
    }

    fn truncate_tokens(&mut self, text: String, max_tokens: u32) -> wasmtime::Result<String> {
        check_tokenizer_input(&text)?;
        Ok(crate::tokenizer::truncate_tokens(&text, max_tokens as usize))
    }
}

fn check_tokenizer_input(text: &str) -> wasmtime::Result<()> {
    if text.len() > MAX_TOKENIZER_INPUT {
        wasmtime::bail!(
            "host.count-tokens/truncate-tokens input is {} bytes, over the {} MiB cap",
            text.len(),
            MAX_TOKENIZER_INPUT / (1024 * 1024)
        );
    }
    Ok(())
}
