//! Per-call facts lent by the host.

/// What the host tells a plugin about the current call. A snapshot taken at the start of the
/// call, so it can be kept and passed around freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    task_name: String,
    record_id: String,
    attempt: u32,
}

impl Context {
    /// A context for unit tests (and for the native stand-ins).
    pub fn for_test(task_name: &str, record_id: &str, attempt: u32) -> Context {
        Context { task_name: task_name.to_string(), record_id: record_id.to_string(), attempt }
    }

    /// The task's name, from its YAML.
    pub fn task_name(&self) -> String {
        self.task_name.clone()
    }

    /// The stable key of the record being processed.
    pub fn record_id(&self) -> String {
        self.record_id.clone()
    }

    /// 1 on the first attempt; n on the n-th re-ask after a score parser's retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn from_host(ctx: &crate::base::modelcall::plugin::context::CallContext) -> Context {
        Context { task_name: ctx.task_name(), record_id: ctx.record_id(), attempt: ctx.attempt() }
    }
}
