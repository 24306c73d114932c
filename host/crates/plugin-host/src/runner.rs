//! Calling a loaded plugin: a pool of warm instances (one per concurrently calling thread),
//! per-call limits (fuel, epoch deadline, memory, output and log caps), recycling after
//! `max_calls_per_instance` calls or any trap, and the consecutive-trap breaker.
//!
//! Every instance runs `init(config)` when it is created, so a plugin must behave as a pure
//! function of (config, record, context): the host may replace an instance at any time.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{InstancePre, Resource};
use wasmtime::{Engine, Store};

use crate::bindings::v0_1::{preprocessor as pp, prompt_builder as pb, score_parser as sp, types as wit};
use crate::engine::deadline_ticks;
use crate::errors::{CallError, ErrorKind, TrapKind};
use crate::imports::{CallContext, HostState};
use crate::limits::Limits;
use crate::types::{
    ChatMessage, ChatRole, ParseFailure, PluginDescription, PreprocessInput, PreprocessOutcome, Prompt, Role, Score,
};

/// Plugin error messages longer than this are cut (they end up in dead-letter rows).
const MAX_ERROR_MESSAGE: usize = 64 * 1024;

/// The typed pre-instantiated component for the role it was loaded as.
pub(crate) enum RolePre {
    Preprocessor(pp::PreprocessorPluginPre<HostState>),
    PromptBuilder(pb::PromptBuilderPluginPre<HostState>),
    ScoreParser(sp::ScoreParserPluginPre<HostState>),
}

impl RolePre {
    pub(crate) fn new(role: Role, pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(match role {
            Role::Preprocessor => RolePre::Preprocessor(pp::PreprocessorPluginPre::new(pre)?),
            Role::PromptBuilder => RolePre::PromptBuilder(pb::PromptBuilderPluginPre::new(pre)?),
            Role::ScoreParser => RolePre::ScoreParser(sp::ScoreParserPluginPre::new(pre)?),
        })
    }
}

enum RoleInstance {
    Preprocessor(pp::PreprocessorPlugin),
    PromptBuilder(pb::PromptBuilderPlugin),
    ScoreParser(sp::ScoreParserPlugin),
}

/// One initialised instance with its store.
struct Warm {
    store: Store<HostState>,
    instance: RoleInstance,
    calls: u32,
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
    pre: RolePre,
    config_json: String,
    limits: Limits,
    task_name: Arc<str>,
    pool: Mutex<Vec<Warm>>,
    consecutive_traps: AtomicU32,
    disabled: AtomicBool,
}

/// A loaded plugin. Cheap to clone; `Send + Sync`. Calls are synchronous and CPU-bound:
/// run them on blocking threads. Concurrent calls each use their own warm instance.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

fn to_role(r: wit::Role) -> ChatRole {
    match r {
        wit::Role::System => ChatRole::System,
        wit::Role::User => ChatRole::User,
        wit::Role::Assistant => ChatRole::Assistant,
    }
}

fn to_kind(k: wit::ErrorKind) -> ErrorKind {
    match k {
        wit::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
        wit::ErrorKind::InvalidConfig => ErrorKind::InvalidConfig,
        wit::ErrorKind::Unsupported => ErrorKind::Unsupported,
        wit::ErrorKind::Internal => ErrorKind::Internal,
    }
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("… [truncated]");
    }
    s
}

/// Is `text` one syntactically valid JSON object?
fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

impl Plugin {
    /// Creates the first instance (running `init`) and returns the handle. `describe` turns
    /// the plugin's `plugin-info` into the description kept for provenance.
    pub(crate) fn start(
        engine: Engine,
        name: Arc<str>,
        pre: RolePre,
        config_json: String,
        limits: Limits,
        task_name: Arc<str>,
        describe: impl FnOnce(&wit::PluginInfo) -> PluginDescription,
    ) -> Result<(Plugin, wit::PluginInfo), InitFailure> {
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
        let mut inner = Inner {
            name,
            description: placeholder,
            engine,
            pre,
            config_json,
            limits,
            task_name,
            pool: Mutex::new(Vec::new()),
            consecutive_traps: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
        };
        let (warm, info) = inner.spawn()?;
        inner.description = describe(&info);
        inner.pool.get_mut().unwrap().push(warm);
        Ok((Plugin { inner: Arc::new(inner) }, info))
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
        self.inner.disabled.load(Ordering::Relaxed)
    }

    /// Drops every warm instance (the next call builds a fresh one). Used by benchmarks.
    pub fn clear_instances(&self) {
        self.inner.pool.lock().unwrap().clear();
    }

    pub fn preprocess(&self, record_id: &str, attempt: u32, input: PreprocessInput) -> Result<PreprocessOutcome, CallError> {
        self.preprocess_with_stats(record_id, attempt, input).0
    }

    pub fn build_prompt(&self, record_id: &str, attempt: u32, record_json: &str) -> Result<Prompt, CallError> {
        self.build_prompt_with_stats(record_id, attempt, record_json).0
    }

    pub fn parse_score(
        &self,
        record_id: &str,
        attempt: u32,
        record_json: &str,
        completion: &str,
    ) -> Result<Result<Score, ParseFailure>, CallError> {
        self.parse_score_with_stats(record_id, attempt, record_json, completion).0
    }

    pub fn preprocess_with_stats(
        &self,
        record_id: &str,
        attempt: u32,
        input: PreprocessInput,
    ) -> (Result<PreprocessOutcome, CallError>, CallStats) {
        let input = match input {
            PreprocessInput::Record(json) => pp::exports::modelcall::plugin::preprocessor::Input::Record(json),
            PreprocessInput::File { path, bytes } => {
                pp::exports::modelcall::plugin::preprocessor::Input::File(pp::exports::modelcall::plugin::preprocessor::RawFile { path, bytes })
            }
        };
        let max_out = self.inner.limits.max_output_bytes;
        self.inner.call(record_id, attempt, |store, inst, ctx| {
            let RoleInstance::Preprocessor(p) = inst else { unreachable!("role checked at load") };
            use pp::exports::modelcall::plugin::preprocessor::Outcome;
            Ok(match p.modelcall_plugin_preprocessor().call_process(store, ctx, &input)? {
                Err(e) => Err(self.inner.plugin_error(e)),
                Ok(Outcome::Skip(reason)) => {
                    self.inner.check_size(reason.len() as u64, max_out).map(|_| PreprocessOutcome::Skip(reason))
                }
                Ok(Outcome::Keep(records)) => {
                    let total: u64 = records.iter().map(|r| r.len() as u64).sum();
                    self.inner.check_size(total, max_out).and_then(|_| {
                        match records.iter().position(|r| !is_json_object(r)) {
                            Some(i) => Err(self.inner.bad_output(format!("kept record #{i} is not a JSON object"))),
                            None => Ok(PreprocessOutcome::Keep(records)),
                        }
                    })
                }
            })
        })
    }

    pub fn build_prompt_with_stats(&self, record_id: &str, attempt: u32, record_json: &str) -> (Result<Prompt, CallError>, CallStats) {
        let max_out = self.inner.limits.max_output_bytes;
        let record = record_json.to_string();
        self.inner.call(record_id, attempt, |store, inst, ctx| {
            let RoleInstance::PromptBuilder(p) = inst else { unreachable!("role checked at load") };
            Ok(match p.modelcall_plugin_prompt_builder().call_build(store, ctx, &record)? {
                Err(e) => Err(self.inner.plugin_error(e)),
                Ok(prompt) => {
                    let total: u64 = prompt.messages.iter().map(|m| m.content.len() as u64).sum::<u64>()
                        + prompt.stop.iter().map(|s| s.len() as u64).sum::<u64>()
                        + prompt.response_schema.as_ref().map_or(0, |s| s.len() as u64);
                    self.inner.check_size(total, max_out).and_then(|_| {
                        if prompt.messages.is_empty() {
                            return Err(self.inner.bad_output("the prompt has no messages".into()));
                        }
                        if let Some(schema) = &prompt.response_schema {
                            if !is_json_object(schema) {
                                return Err(self.inner.bad_output("response-schema is not a JSON object".into()));
                            }
                        }
                        if prompt.temperature.is_some_and(|t| !t.is_finite() || t < 0.0) {
                            return Err(self.inner.bad_output("temperature must be a finite number >= 0".into()));
                        }
                        Ok(Prompt {
                            messages: prompt
                                .messages
                                .into_iter()
                                .map(|m| ChatMessage { role: to_role(m.role), content: m.content })
                                .collect(),
                            max_tokens: prompt.max_tokens,
                            temperature: prompt.temperature,
                            stop: prompt.stop,
                            response_schema: prompt.response_schema,
                        })
                    })
                }
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
        let max_out = self.inner.limits.max_output_bytes;
        let record = record_json.to_string();
        self.inner.call(record_id, attempt, |store, inst, ctx| {
            let RoleInstance::ScoreParser(p) = inst else { unreachable!("role checked at load") };
            use sp::exports::modelcall::plugin::score_parser::ParseError;
            Ok(match p.modelcall_plugin_score_parser().call_parse(store, ctx, &record, completion)? {
                Err(ParseError::Retry(hint)) => self.inner.check_size(hint.len() as u64, max_out).map(|_| Err(ParseFailure::Retry(hint))),
                Err(ParseError::Invalid(msg)) => Ok(Err(ParseFailure::Invalid(cut(msg, MAX_ERROR_MESSAGE)))),
                Ok(s) => {
                    let total = s.label.as_ref().map_or(0, |x| x.len())
                        + s.rationale.as_ref().map_or(0, |x| x.len())
                        + s.extra.as_ref().map_or(0, |x| x.len());
                    self.inner.check_size(total as u64, max_out).and_then(|_| {
                        if !s.value.is_finite() {
                            return Err(self.inner.bad_output(format!("score value {} is not a finite number", s.value)));
                        }
                        if let Some(extra) = &s.extra {
                            if !is_json_object(extra) {
                                return Err(self.inner.bad_output("score extra is not a JSON object".into()));
                            }
                        }
                        Ok(Ok(Score { value: s.value, label: s.label, rationale: s.rationale, extra: s.extra }))
                    })
                }
            })
        })
    }
}

impl Inner {
    fn plugin_error(&self, e: wit::PluginError) -> CallError {
        CallError::Plugin { plugin: self.name.to_string(), kind: to_kind(e.kind), message: cut(e.message, MAX_ERROR_MESSAGE) }
    }

    fn bad_output(&self, message: String) -> CallError {
        CallError::Trap { plugin: self.name.to_string(), kind: TrapKind::BadOutput, message, stderr: String::new() }
    }

    fn check_size(&self, total: u64, max: u64) -> Result<(), CallError> {
        if total > max {
            return Err(CallError::Trap {
                plugin: self.name.to_string(),
                kind: TrapKind::OutputTooLarge,
                message: format!("the call returned {total} bytes, over limits.max_output_bytes = {max}"),
                stderr: String::new(),
            });
        }
        Ok(())
    }

    fn new_store(&self) -> Store<HostState> {
        let memory = (self.limits.memory_mib as usize).saturating_mul(1024 * 1024);
        let mut store = Store::new(&self.engine, HostState::new(self.name.clone(), memory));
        store.limiter(|s| &mut s.memory);
        store
    }

    /// A fresh instance with `init(config)` run under the init deadline.
    fn spawn(&self) -> Result<(Warm, wit::PluginInfo), InitFailure> {
        let mut store = self.new_store();
        store.set_fuel(self.limits.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(deadline_ticks(self.limits.init_timeout_ms));
        store.data_mut().log_budget = self.limits.max_log_bytes;
        let mark = store.data().stderr.mark();
        let result = match &self.pre {
            RolePre::Preprocessor(pre) => pre.instantiate(&mut store).map(RoleInstance::Preprocessor),
            RolePre::PromptBuilder(pre) => pre.instantiate(&mut store).map(RoleInstance::PromptBuilder),
            RolePre::ScoreParser(pre) => pre.instantiate(&mut store).map(RoleInstance::ScoreParser),
        };
        let instance = match result {
            Ok(i) => i,
            Err(e) => {
                return Err(match e.downcast_ref::<wasmtime::Trap>() {
                    Some(_) => {
                        let (kind, message, stderr) = classify(&store, mark, e, &self.limits, "init_timeout_ms");
                        InitFailure::Trap { kind, message, stderr }
                    }
                    None => InitFailure::Link(format!("{e:#}")),
                })
            }
        };
        let config = &self.config_json;
        let init = match &instance {
            RoleInstance::Preprocessor(p) => p.modelcall_plugin_preprocessor().call_init(&mut store, config),
            RoleInstance::PromptBuilder(p) => p.modelcall_plugin_prompt_builder().call_init(&mut store, config),
            RoleInstance::ScoreParser(p) => p.modelcall_plugin_score_parser().call_init(&mut store, config),
        };
        match init {
            Ok(Ok(info)) => Ok((Warm { store, instance, calls: 0 }, info)),
            Ok(Err(e)) => Err(InitFailure::Plugin { kind: to_kind(e.kind), message: cut(e.message, MAX_ERROR_MESSAGE) }),
            Err(e) => {
                let (kind, message, stderr) = classify(&store, mark, e, &self.limits, "init_timeout_ms");
                Err(InitFailure::Trap { kind, message, stderr })
            }
        }
    }

    /// Runs one call on a warm instance under the per-call limits. `f` makes the wasm call
    /// (an `Err` is a trap) and converts/checks its result (a `CallError::Trap` from the
    /// checks also discards the instance).
    fn call<R>(
        &self,
        record_id: &str,
        attempt: u32,
        f: impl FnOnce(&mut Store<HostState>, &RoleInstance, Resource<CallContext>) -> wasmtime::Result<Result<R, CallError>>,
    ) -> (Result<R, CallError>, CallStats) {
        let mut stats = CallStats::default();
        if self.disabled.load(Ordering::Relaxed) {
            return (Err(self.disabled_error()), stats);
        }
        let pooled = self.pool.lock().unwrap().pop();
        let mut warm = match pooled {
            Some(w) => w,
            None => {
                stats.fresh_instance = true;
                match self.spawn() {
                    Ok((w, _)) => w,
                    Err(InitFailure::Plugin { kind, message }) => {
                        // init worked at load time; failing now is a plugin bug (or a config
                        // it cannot handle any more, which is fatal: see CallError::is_fatal).
                        return (Err(CallError::Plugin { plugin: self.name.to_string(), kind, message: format!("init on a fresh instance failed: {message}") }), stats);
                    }
                    Err(InitFailure::Trap { kind, message, stderr }) => {
                        self.note_trap();
                        return (Err(CallError::Trap { plugin: self.name.to_string(), kind, message: format!("init on a fresh instance trapped: {message}"), stderr }), stats);
                    }
                    Err(InitFailure::Link(message)) => {
                        self.note_trap();
                        return (Err(CallError::Trap { plugin: self.name.to_string(), kind: TrapKind::Other, message, stderr: String::new() }), stats);
                    }
                }
            }
        };

        let store = &mut warm.store;
        store.set_fuel(self.limits.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout_ms));
        let mark = {
            let data = store.data_mut();
            data.memory.denied = false;
            data.record_id.clear();
            data.record_id.push_str(record_id);
            data.log_budget = self.limits.max_log_bytes;
            data.log_dropped = 0;
            data.stderr.mark()
        };
        let ctx = CallContext { task_name: self.task_name.clone(), record_id: record_id.to_string(), attempt };
        let handle = match store.data_mut().table.push(ctx) {
            Ok(h) => h,
            Err(e) => return (Err(CallError::Trap { plugin: self.name.to_string(), kind: TrapKind::Other, message: e.to_string(), stderr: String::new() }), stats),
        };
        let rep = handle.rep();
        let started = Instant::now();
        let outcome = f(store, &warm.instance, Resource::new_borrow(rep));
        let elapsed = started.elapsed();
        stats.elapsed_us = elapsed.as_micros() as u64;
        stats.elapsed_ns = elapsed.as_nanos() as u64;
        stats.fuel = self.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let _ = store.data_mut().table.delete(handle);
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

        match outcome {
            Ok(Ok(r)) => {
                self.consecutive_traps.store(0, Ordering::Relaxed);
                self.recycle(warm);
                (Ok(r), stats)
            }
            Ok(Err(e @ CallError::Trap { .. })) => {
                self.note_trap();
                (Err(e), stats)
            }
            Ok(Err(e)) => {
                self.consecutive_traps.store(0, Ordering::Relaxed);
                self.recycle(warm);
                (Err(e), stats)
            }
            Err(e) => {
                let (kind, message, stderr) = classify(&warm.store, mark, e, &self.limits, "timeout_ms");
                self.note_trap();
                (Err(CallError::Trap { plugin: self.name.to_string(), kind, message, stderr }), stats)
            }
        }
    }

    /// Returns an instance to the pool unless it has served its quota.
    fn recycle(&self, mut warm: Warm) {
        warm.calls += 1;
        if warm.calls < self.limits.max_calls_per_instance {
            self.pool.lock().unwrap().push(warm);
        }
    }

    fn note_trap(&self) {
        let n = self.consecutive_traps.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.limits.max_consecutive_traps {
            if !self.disabled.swap(true, Ordering::Relaxed) {
                tracing::error!(target: "modelcall::plugin", plugin = &*self.name, "plugin disabled after {n} consecutive traps");
            }
            self.pool.lock().unwrap().clear();
        }
    }

    fn disabled_error(&self) -> CallError {
        CallError::Disabled { plugin: self.name.to_string(), consecutive_traps: self.consecutive_traps.load(Ordering::Relaxed) }
    }
}

/// Trap kind, message and the stderr written during the call.
/// `timeout_key`/`timeout_ms` name the deadline in force (`timeout_ms` or `init_timeout_ms`).
fn classify(store: &Store<HostState>, mark: u64, e: wasmtime::Error, limits: &Limits, timeout_key: &str) -> (TrapKind, String, String) {
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    let kind = TrapKind::classify(trap, store.data().memory.denied);
    // The outermost context is wasmtime's wasm backtrace (function indices of a stripped
    // binary): noise for a dead-letter row. The trap itself or the root cause says more.
    let cause = match trap {
        Some(t) => t.to_string(),
        None => anyhow::Error::from(e).root_cause().to_string(),
    };
    let message = match kind {
        TrapKind::Deadline => format!("the call exceeded limits.{timeout_key} = {} ms (wall clock)", if timeout_key == "init_timeout_ms" { limits.init_timeout_ms } else { limits.timeout_ms }),
        TrapKind::Fuel => format!("the call exceeded limits.fuel = {}", limits.fuel),
        TrapKind::Memory => format!("the plugin tried to grow its memory past limits.memory_mib ({cause})"),
        _ => cause,
    };
    (kind, message, store.data().stderr.since(mark))
}
