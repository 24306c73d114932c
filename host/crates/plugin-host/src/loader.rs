//! Load-time validation: read the component, cap its size, hash it, compile it (through the
//! cache), check its imports against the allowlist and its exports against the requested
//! role and the supported WIT track, link it, and run `init(config)` once.
//!
//! The checks are pure functions on import/export names so they are unit-tested here
//! without building any wasm.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine_state::RuntimeInner;
use crate::errors::LoadError;
use crate::runner::{InitFailure, Plugin};
use crate::types::{PluginDescription, PluginSource, PluginSpec, Role, CURRENT_TRACK, SUPPORTED_TRACKS};
use crate::wit::PluginPre;

/// Components larger than this are refused before compiling.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;

/// Our WIT package namespace and name.
const PACKAGE: &str = "modelcall:plugin";

/// WASI packages a plugin may import. Rust's `wasm32-wasip2` std imports `wasi:io`, `wasi:cli`
/// and often `wasi:clocks`/`wasi:random`/`wasi:filesystem` even for pure code, so these must
/// link; the sandbox grants nothing through them (no preopens, no env, no args).
/// `wasi:sockets` and `wasi:http` are absent: a plugin that imports them is refused at load
/// rather than failing on its first record (Rust's std imports `wasi:sockets` only when the
/// code uses `std::net`). The one exception is [`SOCKETS_RUNTIMES`].
const ALLOWED_WASI: &[&str] = &["wasi:io", "wasi:cli", "wasi:clocks", "wasi:random", "wasi:filesystem"];

/// The WASI package an interpreter runtime imports whatever the plugin's code does.
const RUNTIME_WASI: &str = "wasi:sockets";

/// Language runtimes whose components import `wasi:sockets` unconditionally: CPython as
/// packaged by componentize-py links its socket module into every component, so a Python
/// score parser that never touches the network still imports all of `wasi:sockets/*`.
/// For these components `wasi:sockets` links, and the WASI context denies every use at run
/// time (no TCP, no UDP, no name lookup, no address: see `imports::sandbox_wasi`), so
/// `socket.create_connection` raises `PermissionError` inside the plugin.
///
/// A runtime is recognised by the name of its glue core module in the component's
/// `component-name` section. This is a usability rule, not the security boundary (the run-time
/// denial is): a component that fakes the name gets sockets that refuse every use.
const SOCKETS_RUNTIMES: &[(&str, &[u8])] = &[("componentize-py", b"libcomponentize_py_runtime.so")];

/// Which imports a component may have beyond the fixed allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ImportPolicy {
    /// `wasi:sockets/*` links (denied at run time): the component is a [`SOCKETS_RUNTIMES`] build.
    pub runtime_sockets: bool,
}

impl ImportPolicy {
    pub(crate) fn for_component(bytes: &[u8]) -> ImportPolicy {
        ImportPolicy { runtime_sockets: language_runtime(bytes).is_some() }
    }
}

/// The [`SOCKETS_RUNTIMES`] entry that built this component, if any. Walks the component's
/// top-level sections (skipping their bodies) to its `component-name` custom section and looks
/// for the runtime's module name there; `None` for anything malformed.
pub(crate) fn language_runtime(bytes: &[u8]) -> Option<&'static str> {
    fn uleb(b: &[u8], pos: &mut usize) -> Option<usize> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(value).ok();
            }
        }
        None
    }
    // Preamble: `\0asm`, version 0x0d, layer 1 (a component, not a core module).
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" || bytes[6..8] != [1, 0] {
        return None;
    }
    let mut pos = 8;
    while pos < bytes.len() {
        let id = bytes[pos];
        pos += 1;
        let size = uleb(bytes, &mut pos)?;
        let body = bytes.get(pos..pos.checked_add(size)?)?;
        pos += size;
        if id != 0 {
            continue;
        }
        let mut at = 0;
        let name_len = uleb(body, &mut at)?;
        if body.get(at..at.checked_add(name_len)?)? != b"component-name" {
            continue;
        }
        let names = &body[at + name_len..];
        return SOCKETS_RUNTIMES.iter().find(|(_, module)| names.windows(module.len()).any(|w| w == *module)).map(|(runtime, _)| *runtime);
    }
    None
}

/// What a component is, before it is instantiated (`modelcall plugin check` prints this).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentSummary {
    pub source: String,
    pub sha256: String,
    pub size_bytes: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Roles the component exports on the supported track.
    pub roles: Vec<Role>,
    /// The modelcall WIT version of its exports (e.g. `0.1.0`), if it exports any.
    pub wit_version: Option<String>,
}

/// An interface name split into `ns:pkg`, interface and version.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IfaceName<'a> {
    pub package: &'a str,
    pub interface: &'a str,
    pub version: Option<&'a str>,
}

pub(crate) fn parse_iface(name: &str) -> Option<IfaceName<'_>> {
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    package.contains(':').then_some(IfaceName { package, interface, version })
}

/// The compatibility track of a semver version as wasmtime matches it: `0.1.3` → `0.1`,
/// `2.4.0` → `2`. Versions on one track are interchangeable for additive changes.
pub(crate) fn track_of(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    if major == "0" {
        format!("0.{}", parts.next().unwrap_or("0"))
    } else {
        major.to_string()
    }
}

fn allowed_list() -> String {
    let mut v: Vec<String> = SUPPORTED_TRACKS.iter().map(|t| format!("{PACKAGE}/*@{t}.x")).collect();
    v.extend(ALLOWED_WASI.iter().map(|w| format!("{w}/*")));
    let runtimes: Vec<&str> = SOCKETS_RUNTIMES.iter().map(|(r, _)| *r).collect();
    format!("{} (and {RUNTIME_WASI}/*, denied at run time, for {} components only)", v.join(", "), runtimes.join(", "))
}

/// The supported tracks, for messages: `0.1, 0.2`.
fn supported_list() -> String {
    SUPPORTED_TRACKS.join(", ")
}

/// Checks one import name. `Err(Some(version))` means "our package, wrong track": a track
/// this host does not support, or not `track` (the one the component's exports are on).
pub(crate) fn check_import(name: &str, policy: ImportPolicy, track: Option<&str>) -> Result<(), Option<String>> {
    let Some(iface) = parse_iface(name) else { return Err(None) };
    if iface.package == PACKAGE {
        return match iface.version {
            Some(v) if track.map_or(SUPPORTED_TRACKS.contains(&track_of(v).as_str()), |t| track_of(v) == t) => Ok(()),
            Some(v) => Err(Some(v.to_string())),
            None => Err(None),
        };
    }
    if ALLOWED_WASI.contains(&iface.package) || (policy.runtime_sockets && iface.package == RUNTIME_WASI) {
        Ok(())
    } else {
        Err(None)
    }
}

/// Our package's exports: `(interface, version)`.
pub(crate) fn plugin_exports(exports: &[String]) -> Vec<(&str, &str)> {
    exports.iter().filter_map(|e| parse_iface(e)).filter(|i| i.package == PACKAGE).map(|i| (i.interface, i.version.unwrap_or(""))).collect()
}

/// Decides the track and the roles from the export names, or says why not.
pub(crate) fn select_track(plugin: &str, exports: &[String]) -> Result<(Option<String>, Vec<Role>), LoadError> {
    let ours = plugin_exports(exports);
    let Some(&(_, version)) = ours.first() else { return Ok((None, Vec::new())) };
    let track = track_of(version);
    if !SUPPORTED_TRACKS.contains(&track.as_str()) {
        return Err(LoadError::UnsupportedTrack { plugin: plugin.to_string(), found: track, supported: supported_list() });
    }
    // One component, one track: exports of two tracks would need two sets of bindings at once.
    if let Some((iface, other)) = ours.iter().find(|(_, v)| track_of(v) != track) {
        return Err(LoadError::UnsupportedTrack {
            plugin: plugin.to_string(),
            found: format!("{track} and {} (`{iface}`), mixed in one component", track_of(other)),
            supported: supported_list(),
        });
    }
    let roles = ours.iter().filter_map(|(i, _)| Role::from_interface(i)).collect();
    Ok((Some(version.to_string()), roles))
}

pub(crate) struct Prepared {
    pub summary: ComponentSummary,
    pub component: Component,
}

fn read_source(source: &PluginSource) -> Result<Vec<u8>, LoadError> {
    let plugin = source.display_name();
    match source {
        PluginSource::Builtin(name) => crate::builtins::get(name).map(|b| b.to_vec()).ok_or_else(|| LoadError::UnknownBuiltin {
            plugin,
            name: name.clone(),
            available: crate::builtins::names().collect::<Vec<_>>().join(", "),
        }),
        PluginSource::Path(path) => {
            let meta =
                std::fs::metadata(path).map_err(|e| LoadError::Read { plugin: plugin.clone(), path: path.display().to_string(), message: e.to_string() })?;
            if meta.len() > MAX_COMPONENT_BYTES as u64 {
                return Err(LoadError::TooLarge { plugin, size: meta.len() as usize, max: MAX_COMPONENT_BYTES });
            }
            std::fs::read(path).map_err(|e| LoadError::Read { plugin, path: path.display().to_string(), message: e.to_string() })
        }
    }
}

pub(crate) fn prepare(rt: &RuntimeInner, source: &PluginSource) -> Result<Prepared, LoadError> {
    let plugin = source.display_name();
    let bytes = read_source(source)?;
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(LoadError::TooLarge { plugin, size: bytes.len(), max: MAX_COMPONENT_BYTES });
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let started = std::time::Instant::now();
    let (component, how) = rt.compile(&sha256, &bytes).map_err(|e| LoadError::InvalidComponent { plugin: plugin.clone(), message: format!("{e:#}") })?;
    // What a first load costs (a 19 MB Python component: ~10 s to compile on two cores, ~0.1 s
    // from the cache), and whether the cache served it: `MODELCALL_LOG=modelcall_plugin_host=debug`.
    tracing::debug!(plugin = plugin.as_str(), size_bytes = bytes.len(), ms = started.elapsed().as_millis() as u64, "component ready: {}", how.as_str());
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&rt.engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&rt.engine).map(|(n, _)| n.to_string()).collect();

    // The track first: a plugin for another API version imports our package at that
    // version too, and "built for API 0.2" is the message that tells the user what to do.
    let (wit_version, roles) = select_track(&plugin, &exports)?;
    let policy = ImportPolicy::for_component(&bytes);
    let track = wit_version.as_deref().map(track_of);
    for import in &imports {
        match check_import(import, policy, track.as_deref()) {
            Ok(()) => {}
            Err(Some(version)) => {
                let found = match &track {
                    Some(t) if SUPPORTED_TRACKS.contains(&track_of(&version).as_str()) => {
                        format!("{t} (exports) and {} (import `{import}`), mixed in one component", track_of(&version))
                    }
                    _ => track_of(&version),
                };
                return Err(LoadError::UnsupportedTrack { plugin, found, supported: supported_list() });
            }
            Err(None) => return Err(LoadError::ForbiddenImport { plugin, import: import.clone(), allowed: allowed_list() }),
        }
    }
    Ok(Prepared { summary: ComponentSummary { source: plugin, sha256, size_bytes: bytes.len(), imports, exports, roles, wit_version }, component })
}

pub(crate) fn inspect(rt: &RuntimeInner, source: &PluginSource) -> Result<ComponentSummary, LoadError> {
    prepare(rt, source).map(|p| p.summary)
}

pub(crate) fn load(rt: &RuntimeInner, spec: PluginSpec) -> Result<Plugin, LoadError> {
    let plugin = spec.source.display_name();
    spec.limits.validate().map_err(|e| LoadError::InvalidLimits { plugin: plugin.clone(), message: e.to_string() })?;
    let Prepared { summary, component } = prepare(rt, &spec.source)?;
    if !summary.roles.contains(&spec.role) {
        let ours: Vec<String> = plugin_exports(&summary.exports).iter().map(|(i, v)| format!("{PACKAGE}/{i}@{v}")).collect();
        let exports = if ours.is_empty() { "no modelcall plugin interface".to_string() } else { ours.join(", ") };
        return Err(LoadError::MissingExport { plugin, role: spec.role.to_string(), exports });
    }
    let pre = rt.linker.instantiate_pre(&component).map_err(|e| LoadError::Link { plugin: plugin.clone(), message: format!("{e:#}") })?;
    let track = track_of(summary.wit_version.as_deref().unwrap_or(CURRENT_TRACK));
    let pre = PluginPre::new(&track, spec.role, pre).map_err(|e| LoadError::Link { plugin: plugin.clone(), message: format!("{e:#}") })?;
    let config_json = serde_json::to_string(&spec.config).expect("a JSON value serializes");
    // The o200k_base tables take ~100 ms to build. Build them now, outside any call, so the
    // first record's `count-tokens` does not spend its deadline on it.
    if summary.imports.iter().any(|i| i.starts_with("modelcall:plugin/host@")) {
        crate::tokenizer::count_tokens("");
    }

    let started = Plugin::start(rt.engine.clone(), Arc::from(plugin.as_str()), pre, config_json, spec.limits, Arc::from(spec.task_name.as_str()), |info| {
        PluginDescription {
            source: summary.source.clone(),
            role: spec.role.to_string(),
            name: info.name.clone(),
            version: info.version.clone(),
            wit_version: summary.wit_version.clone().unwrap_or_default(),
            sha256: summary.sha256.clone(),
            size_bytes: summary.size_bytes,
            imports: summary.imports.clone(),
            exports: summary.exports.clone(),
            config_schema: info.config_schema.clone(),
        }
    });
    // The config against the schema the plugin publishes, from `init`'s answer either way: a
    // config the schema rejects is reported in the schema's words, at the key's path, even when
    // the plugin's own check missed it or said it in other words.
    let schema = match &started {
        Ok(p) => p.info().config_schema.clone(),
        Err(InitFailure::Plugin { message, .. }) => crate::config_check::schema_in_message(message).map(str::to_string),
        Err(_) => None,
    };
    if let Some(schema) = schema {
        match crate::config_check::check(&schema, &spec.config) {
            Ok(violations) if !violations.is_empty() => return Err(LoadError::ConfigSchema { plugin, violations, schema }),
            Ok(_) => {}
            Err(why) => tracing::warn!(target: "modelcall::plugin", plugin = plugin.as_str(), "config not checked: {why}"),
        }
    }
    let plugin_handle = started.map_err(|f| match f {
        InitFailure::Plugin { kind: crate::errors::ErrorKind::InvalidConfig, message } => LoadError::InvalidConfig { plugin: plugin.clone(), message },
        InitFailure::Plugin { kind, message } => LoadError::Init { plugin: plugin.clone(), message: format!("init returned {kind}: {message}") },
        InitFailure::Trap { kind, message, stderr } => LoadError::Init {
            plugin: plugin.clone(),
            message: format!(
                "init trapped ({kind}): {message}{}",
                if stderr.trim().is_empty() { String::new() } else { format!("; plugin stderr: {}", stderr.trim_end()) }
            ),
        },
        InitFailure::Link(message) => LoadError::Link { plugin: plugin.clone(), message },
    })?;
    Ok(plugin_handle)
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
