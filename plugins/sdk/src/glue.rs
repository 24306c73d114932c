//! The export glue every plugin kind shares: building the instance in `init`, finding it again
//! on each call and reading the record's JSON. Only the WIT types differ between kinds, so each
//! kind's `__glue` keeps its conversions and leaves the rest to this module.

use std::any::Any;
use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::base::modelcall::plugin::context::CallContext;
pub use crate::base::modelcall::plugin::types::{PluginError, PluginInfo};
use crate::{Context, Error};

/// The bindings of one kind's world. The imports every kind shares come from [`crate::base`],
/// so authors see one set of types whatever kinds they build.
macro_rules! kind_bindings {
    ($world:tt, $module:tt) => {
        wit_bindgen::generate!({
            path: "wit",
            world: $world,
            with: {
                "modelcall:plugin/types@0.2.0": crate::base::modelcall::plugin::types,
                "modelcall:plugin/context@0.2.0": crate::base::modelcall::plugin::context,
                "modelcall:plugin/host@0.2.0": crate::base::modelcall::plugin::host,
            },
            pub_export_macro: true,
            default_bindings_module: $module,
        });
    };
}

thread_local! {
    /// What `init` built on this thread, one instance per plugin type, so a component that
    /// registers two kinds keeps both.
    static INSTANCES: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// `init` of every kind: deserializes the config, builds the plugin with `new` and keeps it
/// for the calls that follow (replacing an earlier instance of the same type).
/// What precedes the plugin's config schema in the message of an invalid-config error.
pub const SCHEMA_MARK: &str = "config schema: ";

pub fn init<T: 'static, C: DeserializeOwned>(
    config: &str,
    new: fn(C) -> Result<T, Error>,
    config_schema: fn() -> Option<Value>,
    name: &str,
    version: &str,
) -> Result<PluginInfo, PluginError> {
    // A config the plugin refuses comes back with its schema (after a line `config schema: `),
    // since the schema is otherwise published only by a successful init (`plugin check` shows it).
    let with_schema = |e: Error| -> Error {
        match config_schema() {
            Some(schema) if matches!(e.kind, crate::error::ErrorKind::InvalidConfig) => Error::invalid_config(format!("{}\n{SCHEMA_MARK}{schema}", e.message)),
            _ => e,
        }
    };
    let cfg: C = serde_json::from_str(config).map_err(|e| with_schema(Error::invalid_config(format!("config: {e}"))))?;
    let plugin = new(cfg).map_err(with_schema)?;
    INSTANCES.with(|all| {
        let mut all = all.borrow_mut();
        all.retain(|p| !p.is::<T>());
        all.push(Box::new(plugin));
    });
    Ok(PluginInfo { name: name.to_string(), version: version.to_string(), config_schema: config_schema().map(|s| s.to_string()) })
}

/// Runs `f` on this thread's instance of `T` with the call's [`Context`]; `call` names the
/// export in the error returned when the host calls it before `init`.
pub fn with_instance<T: 'static, R>(ctx: &CallContext, call: &str, f: impl FnOnce(&mut T, &Context) -> R) -> Result<R, Error> {
    let ctx = Context::from_host(ctx);
    INSTANCES.with(|all| {
        let mut all = all.borrow_mut();
        let plugin = all.iter_mut().find_map(|p| p.downcast_mut::<T>()).ok_or_else(|| Error::internal(format!("{call} called before init")))?;
        Ok(f(plugin, &ctx))
    })
}

/// A record the host handed over as JSON text.
pub fn record(json: &str) -> Result<Value, Error> {
    serde_json::from_str(json).map_err(|e| Error::invalid_input(format!("record is not JSON: {e}")))
}
