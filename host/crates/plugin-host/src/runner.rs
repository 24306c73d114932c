//! Calling a loaded plugin: a warm instance out of the [`InstancePool`], per-call limits
//! (fuel, epoch and host-call deadline, memory, log cap), the result checked by
//! [`crate::output`], and every failure mapped to a [`CallError`].
//!
//! Every instance runs `init(config)` when it is created, so a plugin must behave as a pure
//! function of (config, record, context): the host may replace an instance at any time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::Resource;
use wasmtime::{Engine, Store};

use crate::engine_state::deadline_ticks;
use crate::errors::{CallError, ErrorKind, TrapKind};
use crate::imports::{CallContext, HostState};
use crate::instance_pool::{Checkout, InstancePool, Verdict};
use crate::limits::Limits;
use crate::output::{cut, Checker, MAX_ERROR_MESSAGE};
use crate::types::{ParseFailure, PluginDescription, PreprocessInput, PreprocessOutcome, Prompt, Score};
use crate::wit::{GuestInfo, PluginInstance, PluginPre};

thread_local! {
    /// Where [`capture_output`] collects what plugins print on this thread, while it runs.
    static OUTPUT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns, beside its result, everything the plugins it called on this thread
/// wrote to stdout or stderr (a Python `print`, a Rust `println!`), `init`s of new instances
/// included. Calls are synchronous, so a call made inside `f` runs on this thread.
/// `modelcall plugin run` shows it with each outcome.
pub fn capture_output<R>(f: impl FnOnce() -> R) -> (R, String) {
    let outer = OUTPUT.with(|c| c.borrow_mut().replace(String::new()));
    let r = f();
    let text = OUTPUT.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer)).unwrap_or_default();
    (r, text)
}

/// Runs `f` (which instantiates or calls a plugin) where wasmtime-wasi may block on a stream:
/// a plugin writing to stdout or stderr (Python's `print`, Rust's `eprintln!`) makes the host
/// `blocking-flush` inside tokio, which panics on a thread already running in a tokio runtime
/// ("Cannot start a runtime from within a runtime"). Such a caller (a task loading its plugins
/// from async code) gets `f` run on a scoped thread of its own; [`capture_output`] follows it.
/// Elsewhere (the engine's plugin worker threads, `modelcall plugin run`) `f` runs in place.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    let capturing = OUTPUT.with(|c| c.borrow().is_some());
    let (r, output) = std::thread::scope(|s| {
        let worker = s.spawn(move || if capturing { capture_output(f) } else { (f(), String::new()) });
        worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    if !output.is_empty() {
        OUTPUT.with(|c| {
            if let Some(buf) = c.borrow_mut().as_mut() {
                buf.push_str(&output);
            }
        });
    }
    r
}

/// Hands what the plugin wrote since `mark` to an active [`capture_output`] and, when the
/// plugin target logs at `debug`, to the log (within the call's log budget).
fn pass_on_output(store: &mut Store<HostState>, mark: u64) {
    let text = store.data().stderr.since(mark);
    if text.is_empty() {
        return;
    }
    OUTPUT.with(|c| {
        if let Some(buf) = c.borrow_mut().as_mut() {
            buf.push_str(&text);
        }
    });
    if tracing::enabled!(target: "modelcall::plugin", tracing::Level::DEBUG) {
        store.data_mut().log_output(&text);
    }
}

/// One initialised instance with its store.
struct Warm {
    store: Store<HostState>,
    instance: PluginInstance,
}

/// Why a new instance could not be initialised.
pub(crate) enum InitFailure {
    Plugin { kind: ErrorKind, message: String },
    Trap { kind: TrapKind, message: String, stderr: String },
    Link(String),
}

/// Cost of one call, for `modelcall plugin run|bench` and the task report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallStats {
    /// Wall time of the call itself (excluding instance creation).
    pub elapsed_us: u64,
    /// The same in nanoseconds, for benchmarks of sub-microsecond calls.
    pub elapsed_ns: u64,
    /// Fuel consumed by the call.
    pub fuel: u64,
    /// Whether a new instance (with `init`) had to be created for this call.
    pub fresh_instance: bool,
}

struct Inner {
    name: Arc<str>,
    description: PluginDescription,
    engine: Engine,
    pre: PluginPre,
    config_json: String,
    limits: Limits,
    task_name: Arc<str>,
    pool: InstancePool<Warm>,
}

/// A loaded plugin. Cheap to clone; `Send + Sync`. Calls are synchronous and CPU-bound:
/// run them on blocking threads. Concurrent calls each use their own warm instance.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

impl Plugin {
    /// Creates the first instance (running `init`) and returns the handle. `describe` turns
    /// the plugin's `plugin-info` into the description kept for provenance.
    pub(crate) fn start(
        engine: Engine,
        name: Arc<str>,
        pre: PluginPre,
        config_json: String,
        limits: Limits,
        task_name: Arc<str>,
        describe: impl FnOnce(&GuestInfo) -> PluginDescription,
    ) -> Result<Plugin, InitFailure> {
        let placeholder = PluginDescription {
            source: name.to_string(),
            role: String::new(),
            name: String::new(),
            version: String::new(),
            wit_version: String::new(),
            sha256: String::new(),
            size_bytes: 0,
            imports: vec![],
            exports: vec![],
            config_schema: None,
        };
        let pool = InstancePool::new(limits.max_calls_per_instance, limits.max_consecutive_traps);
        let mut inner = Inner { name, description: placeholder, engine, pre, config_json, limits, task_name, pool };
        let (warm, info) = off_runtime(|| inner.spawn())?;
        inner.description = describe(&info);
        inner.pool.seed(warm);
        Ok(Plugin { inner: Arc::new(inner) })
    }

    /// Name, version, WIT version, sha256, imports, exports and config schema.
    pub fn info(&self) -> &PluginDescription {
        &self.inner.description
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// True once `max_consecutive_traps` traps in a row have happened; every call then
    /// fails with [`CallError::Disabled`].
    pub fn is_disabled(&self) -> bool {
        self.inner.pool.is_disabled()
    }

    /// Drops every warm instance (the next call builds a fresh one). Used by benchmarks.
    pub fn clear_instances(&self) {
        self.inner.pool.clear();
    }

    pub fn preprocess(&self, record_id: &str, attempt: u32, input: PreprocessInput) -> Result<PreprocessOutcome, CallError> {
        self.preprocess_with_stats(record_id, attempt, input).0
    }

    pub fn build_prompt(&self, record_id: &str, attempt: u32, record_json: &str) -> Result<Prompt, CallError> {
        self.build_prompt_with_stats(record_id, attempt, record_json).0
    }

    pub fn parse_score(&self, record_id: &str, attempt: u32, record_json: &str, completion: &str) -> Result<Result<Score, ParseFailure>, CallError> {
        self.parse_score_with_stats(record_id, attempt, record_json, completion).0
    }

    pub fn preprocess_with_stats(&self, record_id: &str, attempt: u32, input: PreprocessInput) -> (Result<PreprocessOutcome, CallError>, CallStats) {
        let input_bytes = preprocess_input_bytes(&input);
        self.inner.call(record_id, attempt, input_bytes, |store, inst, ctx, check| {
            Ok(match inst.process(store, ctx, input)? {
                Ok(outcome) => check.preprocess(outcome),
                Err(e) => Err(check.plugin_error(e)),
            })
        })
    }

    pub fn build_prompt_with_stats(&self, record_id: &str, attempt: u32, record_json: &str) -> (Result<Prompt, CallError>, CallStats) {
        self.inner.call(record_id, attempt, record_json.len() as u64, |store, inst, ctx, check| {
            Ok(match inst.build(store, ctx, record_json)? {
                Ok(prompt) => check.prompt(prompt),
                Err(e) => Err(check.plugin_error(e)),
            })
        })
    }

    pub fn parse_score_with_stats(
        &self,
        record_id: &str,
        attempt: u32,
        record_json: &str,
        completion: &str,
    ) -> (Result<Result<Score, ParseFailure>, CallError>, CallStats) {
        let input_bytes = (record_json.len() + completion.len()) as u64;
        self.inner.call(record_id, attempt, input_bytes, |store, inst, ctx, check| {
            Ok(match inst.parse(store, ctx, record_json, completion)?.split() {
                Ok(verdict) => check.parse(verdict),
                Err(e) => Err(check.plugin_error(e)),
            })
        })
    }
}

impl Inner {
    fn new_store(&self) -> Store<HostState> {
        let memory = (self.limits.memory_mib as usize).saturating_mul(1024 * 1024);
        let mut store = Store::new(&self.engine, HostState::new(self.name.clone(), memory));
        store.limiter(|s| &mut s.memory);
        store
    }

    /// Arms the per-call budgets: fuel, the epoch deadline for wasm code and the same
    /// deadline as a wall-clock instant for host functions, and the log budget.
    fn arm(store: &mut Store<HostState>, limits: &Limits, timeout_ms: u64) {
        store.set_fuel(limits.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(deadline_ticks(timeout_ms));
        let data = store.data_mut();
        // `None` only for a timeout too far away to represent: no deadline then.
        data.deadline = Instant::now().checked_add(Duration::from_millis(timeout_ms));
        data.log_budget = limits.max_log_bytes;
        data.log_dropped = 0;
        data.memory.denied = false;
    }

    /// A fresh instance with `init(config)` run under the init deadline.
    fn spawn(&self) -> Result<(Warm, GuestInfo), InitFailure> {
        let mut store = self.new_store();
        Self::arm(&mut store, &self.limits, self.limits.init_timeout_ms);
        let mark = store.data().stderr.mark();
        let trap = |store: &Store<HostState>, e| {
            let (kind, message, stderr) = classify(store, mark, e, &self.limits, "init_timeout_ms");
            InitFailure::Trap { kind, message, stderr }
        };
        let instance = match self.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) if e.downcast_ref::<wasmtime::Trap>().is_some() => return Err(trap(&store, e)),
            Err(e) => return Err(InitFailure::Link(format!("{e:#}"))),
        };
        let init = instance.init(&mut store, &self.config_json);
        store.data_mut().deadline = None;
        pass_on_output(&mut store, mark);
        match init {
            Ok(Ok(info)) => Ok((Warm { store, instance }, info)),
            Ok(Err(e)) => Err(InitFailure::Plugin { kind: e.kind, message: cut(e.message, MAX_ERROR_MESSAGE) }),
            Err(e) => Err(trap(&store, e)),
        }
    }

    /// A new instance for a call, its failure as the call's error.
    fn spawn_for_call(&self) -> Result<Warm, CallError> {
        let plugin = self.name.to_string();
        match self.spawn() {
            Ok((w, _)) => Ok(w),
            // init worked at load time; failing now is a plugin bug (or a config it cannot
            // handle any more, which is fatal: see CallError::is_fatal). Not a trap.
            Err(InitFailure::Plugin { kind, message }) => {
                Err(CallError::Plugin { plugin, kind, message: format!("init on a fresh instance failed: {message}") })
            }
            Err(InitFailure::Trap { kind, message, stderr }) => {
                self.note_trap();
                Err(CallError::Trap { plugin, kind, message: format!("init on a fresh instance trapped: {message}"), stderr })
            }
            Err(InitFailure::Link(message)) => {
                self.note_trap();
                Err(CallError::Trap { plugin, kind: TrapKind::Other, message, stderr: String::new() })
            }
        }
    }

    /// Runs one call on a warm instance under the per-call limits. `f` makes the wasm call
    /// (an `Err` is a trap) and checks its result (a `CallError::Trap` from the checks also
    /// discards the instance).
    /// `input_bytes` is the size of what the call is given: a budget trap on an outsized input
    /// is that input's failure and leaves the breaker alone (see `InstancePool::is_outsized`).
    fn call<R: Send>(
        &self,
        record_id: &str,
        attempt: u32,
        input_bytes: u64,
        f: impl FnOnce(&mut Store<HostState>, &PluginInstance, Resource<CallContext>, &Checker) -> wasmtime::Result<Result<R, CallError>> + Send,
    ) -> (Result<R, CallError>, CallStats) {
        off_runtime(|| self.call_here(record_id, attempt, input_bytes, f))
    }

    /// [`Inner::call`] on this thread.
    fn call_here<R>(
        &self,
        record_id: &str,
        attempt: u32,
        input_bytes: u64,
        f: impl FnOnce(&mut Store<HostState>, &PluginInstance, Resource<CallContext>, &Checker) -> wasmtime::Result<Result<R, CallError>>,
    ) -> (Result<R, CallError>, CallStats) {
        let mut stats = CallStats::default();
        let mut lease = match self.pool.checkout(|| self.spawn_for_call()) {
            Checkout::Ready(lease) => lease,
            Checkout::SpawnFailed(e) => return (Err(e), CallStats { fresh_instance: true, ..stats }),
            Checkout::Disabled { consecutive_traps } => return (Err(CallError::Disabled { plugin: self.name.to_string(), consecutive_traps }), stats),
        };
        stats.fresh_instance = lease.fresh;

        let Warm { store, instance } = &mut lease.instance;
        Self::arm(store, &self.limits, self.limits.timeout_ms);
        let mark = {
            let data = store.data_mut();
            data.record_id.clear();
            data.record_id.push_str(record_id);
            data.stderr.mark()
        };
        let ctx = CallContext { task_name: self.task_name.clone(), record_id: record_id.to_string(), attempt };
        let handle = match store.data_mut().table.push(ctx) {
            Ok(h) => h,
            Err(e) => {
                let e = CallError::Trap { plugin: self.name.to_string(), kind: TrapKind::Other, message: e.to_string(), stderr: String::new() };
                if self.pool.release(lease, Verdict::Trapped) {
                    self.log_tripped();
                }
                return (Err(e), stats);
            }
        };
        let check = Checker { plugin: &self.name, limits: &self.limits };
        let started = Instant::now();
        let outcome = f(store, instance, Resource::new_borrow(handle.rep()), &check);
        let elapsed = started.elapsed();
        stats.elapsed_us = elapsed.as_micros() as u64;
        stats.elapsed_ns = elapsed.as_nanos() as u64;
        stats.fuel = self.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        store.data_mut().deadline = None;
        let _ = store.data_mut().table.delete(handle);
        pass_on_output(store, mark);
        if store.data().log_dropped > 0 {
            tracing::warn!(
                target: "modelcall::plugin",
                plugin = &*self.name,
                record_id,
                "dropped {} bytes of plugin log over limits.max_log_bytes = {}",
                store.data().log_dropped,
                self.limits.max_log_bytes
            );
        }

        let (result, verdict) = match outcome {
            Ok(Err(e @ CallError::Trap { .. })) => (Err(e), Verdict::Trapped),
            Ok(r) => (r, Verdict::Healthy),
            Err(e) => {
                let (kind, message, stderr) = classify(store, mark, e, &self.limits, "timeout_ms");
                (Err(CallError::Trap { plugin: self.name.to_string(), kind, message, stderr }), Verdict::Trapped)
            }
        };
        let verdict = match (&result, verdict) {
            (_, Verdict::Healthy) => {
                self.pool.note_healthy_input(input_bytes);
                Verdict::Healthy
            }
            (Err(CallError::Trap { kind, .. }), Verdict::Trapped) if is_budget_trap(*kind) && self.pool.is_outsized(input_bytes) => {
                tracing::debug!(target: "modelcall::plugin", plugin = &*self.name, record_id, input_bytes, "a {kind} trap on an outsized input: the record fails, the breaker does not count it");
                Verdict::TrappedOnOutsizedInput
            }
            (_, v) => v,
        };
        if self.pool.release(lease, verdict) {
            self.log_tripped();
        }
        (result, stats)
    }

    /// Counts a trap that happened outside a leased call (a new instance failing to start).
    fn note_trap(&self) {
        if self.pool.note_trap() {
            self.log_tripped();
        }
    }

    fn log_tripped(&self) {
        let n = self.pool.consecutive_traps();
        tracing::error!(target: "modelcall::plugin", plugin = &*self.name, "plugin disabled after {n} consecutive traps");
    }
}

/// Traps of a budget running out (as opposed to a plugin bug), which an outsized input explains.
fn is_budget_trap(kind: TrapKind) -> bool {
    matches!(kind, TrapKind::Fuel | TrapKind::Deadline | TrapKind::Memory | TrapKind::OutputTooLarge)
}

/// The bytes a preprocessor call is given.
fn preprocess_input_bytes(input: &PreprocessInput) -> u64 {
    match input {
        PreprocessInput::Record(text) => text.len() as u64,
        PreprocessInput::File { path, bytes } => (path.len() + bytes.len()) as u64,
    }
}

/// Trap kind, message and the stderr written during the call.
/// `timeout_key` names the deadline in force (`timeout_ms` or `init_timeout_ms`).
fn classify(store: &Store<HostState>, mark: u64, e: wasmtime::Error, limits: &Limits, timeout_key: &str) -> (TrapKind, String, String) {
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    let kind = TrapKind::classify(trap, store.data().memory.denied);
    // The outermost context is wasmtime's wasm backtrace (function indices of a stripped
    // binary): noise for a dead-letter row. The trap itself or the root cause says more.
    let cause = match trap {
        Some(t) => t.to_string(),
        None => anyhow::Error::from(e).root_cause().to_string(),
    };
    let timeout = if timeout_key == "init_timeout_ms" { limits.init_timeout_ms } else { limits.timeout_ms };
    let message = match kind {
        TrapKind::Deadline => format!("the call exceeded limits.{timeout_key} = {timeout} ms (wall clock)"),
        TrapKind::Fuel => format!("the call exceeded limits.fuel = {}", limits.fuel),
        TrapKind::Memory => format!("the plugin tried to grow its memory past limits.memory_mib ({cause})"),
        _ => cause,
    };
    (kind, message, store.data().stderr.since(mark))
}
