//! Errors of loading a plugin ([`LoadError`]) and of calling one ([`CallError`]), and the
//! mapping from wasmtime traps to the trap kinds users see in dead-letter rows.
//!
//! Every message names the plugin, because a task may load several and the user has to
//! know which YAML entry to fix.

use std::fmt;

/// The `error-kind` a plugin returned (WIT `types.error-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    InvalidInput,
    InvalidConfig,
    Unsupported,
    Internal,
}

impl ErrorKind {
    /// The typed cause of an error row for a plugin error of this kind.
    pub fn cause(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "plugin_invalid_input",
            ErrorKind::InvalidConfig => "plugin_invalid_config",
            ErrorKind::Unsupported => "plugin_unsupported",
            ErrorKind::Internal => "plugin_internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::InvalidConfig => "invalid-config",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        })
    }
}

/// Why a call was cut short by the host rather than answered by the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    /// The wall-clock budget (`timeout_ms`) ran out.
    Deadline,
    /// The fuel budget (`fuel`) ran out.
    Fuel,
    /// The plugin tried to grow its memory past `memory_mib`.
    Memory,
    /// The plugin panicked or aborted (`unreachable`); the panic message is in the stderr.
    Panic,
    /// The call returned more than `max_output_bytes`.
    OutputTooLarge,
    /// The call returned something malformed (e.g. a kept record that is not a JSON object).
    BadOutput,
    /// Any other trap (stack overflow, out-of-bounds access, a host-side cap...).
    Other,
}

impl TrapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrapKind::Deadline => "deadline",
            TrapKind::Fuel => "fuel",
            TrapKind::Memory => "memory",
            TrapKind::Panic => "panic",
            TrapKind::OutputTooLarge => "output_too_large",
            TrapKind::BadOutput => "bad_output",
            TrapKind::Other => "other",
        }
    }

    /// Maps a wasmtime trap code (if the error carried one) to a kind. `memory_denied` is
    /// set by the host's resource limiter when it refused a memory grow during the call:
    /// a Rust guest then aborts with `unreachable`, which would otherwise look like a panic.
    pub fn classify(trap: Option<wasmtime::Trap>, memory_denied: bool) -> TrapKind {
        use wasmtime::Trap;
        match trap {
            Some(Trap::Interrupt) => TrapKind::Deadline,
            Some(Trap::OutOfFuel) => TrapKind::Fuel,
            _ if memory_denied => TrapKind::Memory,
            Some(Trap::UnreachableCodeReached) => TrapKind::Panic,
            _ => TrapKind::Other,
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call that produced no usable result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned `plugin-error`: the record goes to the error output, the run goes on.
    #[error("plugin {plugin} returned {kind}: {message}")]
    Plugin { plugin: String, kind: ErrorKind, message: String },
    /// The host stopped the call. The instance was discarded; the next call gets a fresh one.
    #[error("plugin {plugin} trapped ({kind}): {message}{}", stderr_suffix(stderr))]
    Trap { plugin: String, kind: TrapKind, message: String, stderr: String },
    /// Too many traps in a row: the plugin refuses every further call. Stop the task.
    #[error("plugin {plugin} is disabled after {consecutive_traps} consecutive traps; fix the plugin or raise limits (see the dead-lettered records for the trap kinds and stderr)")]
    Disabled { plugin: String, consecutive_traps: u32 },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; plugin stderr: {}", stderr.trim_end())
    }
}

impl CallError {
    /// True when the task must stop: the plugin is disabled, or re-initialising it on a
    /// fresh instance reported `invalid-config` (which cannot get better by retrying).
    pub fn is_fatal(&self) -> bool {
        matches!(self, CallError::Disabled { .. } | CallError::Plugin { kind: ErrorKind::InvalidConfig, .. })
    }

    /// A stable machine-readable cause for reports and dead-letter rows.
    pub fn cause(&self) -> &'static str {
        match self {
            CallError::Plugin { kind, .. } => kind.cause(),
            CallError::Trap { kind, .. } => match kind {
                TrapKind::Deadline => "plugin_trap_deadline",
                TrapKind::Fuel => "plugin_trap_fuel",
                TrapKind::Memory => "plugin_trap_memory",
                TrapKind::Panic => "plugin_trap_panic",
                TrapKind::OutputTooLarge => "plugin_trap_output_too_large",
                TrapKind::BadOutput => "plugin_trap_bad_output",
                TrapKind::Other => "plugin_trap_other",
            },
            CallError::Disabled { .. } => "plugin_disabled",
        }
    }

    /// Whether this error counts as a trap (instance discarded, counts towards the limit).
    pub fn is_trap(&self) -> bool {
        matches!(self, CallError::Trap { .. })
    }
}

/// A plugin that cannot be used for the task. The task stops before any request.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {plugin}: cannot read {path}: {message}")]
    Read { plugin: String, path: String, message: String },
    #[error("plugin {plugin}: there is no built-in plugin `{name}`; built-ins are: {available}")]
    UnknownBuiltin { plugin: String, name: String, available: String },
    #[error("plugin {plugin} is {size} bytes, over the {max}-byte limit for components")]
    TooLarge { plugin: String, size: usize, max: usize },
    #[error("plugin {plugin} is not a valid WebAssembly component (build it with `cargo build --target wasm32-wasip2`): {message}")]
    InvalidComponent { plugin: String, message: String },
    #[error("plugin {plugin} imports `{import}`, which this modelcall does not provide; plugins may import only {allowed}")]
    ForbiddenImport { plugin: String, import: String, allowed: String },
    #[error("plugin {plugin} was built for modelcall plugin API {found}; this modelcall supports {supported} (rebuild it against a modelcall-plugin-sdk of one of those tracks)")]
    UnsupportedTrack { plugin: String, found: String, supported: String },
    #[error("plugin {plugin} does not export `modelcall:plugin/{role}`, so it cannot be used as role `{role}`; it exports: {exports}")]
    MissingExport { plugin: String, role: String, exports: String },
    #[error("plugin {plugin}: {message}")]
    InvalidLimits { plugin: String, message: String },
    #[error("plugin {plugin} rejected its config: {message}")]
    InvalidConfig { plugin: String, message: String },
    /// The config breaks the JSON Schema the plugin publishes (checked by the host).
    #[error("plugin {plugin}: the config does not match the schema the plugin publishes: {}", violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ConfigSchema { plugin: String, violations: Vec<crate::config_check::ConfigViolation>, schema: String },
    #[error("plugin {plugin} failed to initialise: {message}")]
    Init { plugin: String, message: String },
    #[error("plugin {plugin} cannot be linked: {message}")]
    Link { plugin: String, message: String },
}

impl LoadError {
    /// The plugin this error is about (source as written in the YAML).
    pub fn plugin(&self) -> &str {
        match self {
            LoadError::Read { plugin, .. }
            | LoadError::UnknownBuiltin { plugin, .. }
            | LoadError::TooLarge { plugin, .. }
            | LoadError::InvalidComponent { plugin, .. }
            | LoadError::ForbiddenImport { plugin, .. }
            | LoadError::UnsupportedTrack { plugin, .. }
            | LoadError::MissingExport { plugin, .. }
            | LoadError::InvalidLimits { plugin, .. }
            | LoadError::InvalidConfig { plugin, .. }
            | LoadError::ConfigSchema { plugin, .. }
            | LoadError::Init { plugin, .. }
            | LoadError::Link { plugin, .. } => plugin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Trap;

    #[test]
    fn trap_codes_map_to_kinds() {
        assert_eq!(TrapKind::classify(Some(Trap::Interrupt), false), TrapKind::Deadline);
        assert_eq!(TrapKind::classify(Some(Trap::OutOfFuel), false), TrapKind::Fuel);
        assert_eq!(TrapKind::classify(Some(Trap::UnreachableCodeReached), false), TrapKind::Panic);
        // A refused memory grow makes a Rust guest abort: that is a memory failure, not a panic.
        assert_eq!(TrapKind::classify(Some(Trap::UnreachableCodeReached), true), TrapKind::Memory);
        assert_eq!(TrapKind::classify(Some(Trap::StackOverflow), false), TrapKind::Other);
        assert_eq!(TrapKind::classify(None, false), TrapKind::Other);
        // The deadline wins even if memory was refused earlier in the same call.
        assert_eq!(TrapKind::classify(Some(Trap::Interrupt), true), TrapKind::Deadline);
    }

    #[test]
    fn causes_and_fatality() {
        let p = |kind| CallError::Plugin { plugin: "p".into(), kind, message: "m".into() };
        assert_eq!(p(ErrorKind::InvalidInput).cause(), "plugin_invalid_input");
        assert!(!p(ErrorKind::InvalidInput).is_fatal());
        assert!(p(ErrorKind::InvalidConfig).is_fatal());
        let t = CallError::Trap { plugin: "p".into(), kind: TrapKind::Deadline, message: "m".into(), stderr: "boom\n".into() };
        assert_eq!(t.cause(), "plugin_trap_deadline");
        assert!(!t.is_fatal());
        assert!(t.to_string().contains("plugin stderr: boom"), "{t}");
        let d = CallError::Disabled { plugin: "p".into(), consecutive_traps: 5 };
        assert!(d.is_fatal());
        assert_eq!(d.cause(), "plugin_disabled");
    }
}
