//! Preprocessors: a record or a raw file in, zero or more records out.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Context, Error};

/// What a preprocessor is given.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// One record (a JSON object) from a JSONL or Parquet source.
    Record(Value),
    /// One whole file read by the host (plugins have no file access of their own).
    File { path: String, bytes: Vec<u8> },
}

/// What a preprocessor decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Records to pass on: one (map), several (split) or none (silent filter).
    Keep(Vec<Value>),
    /// Drop the input, with a reason counted in the task report.
    Skip(String),
}

impl Outcome {
    pub fn keep(record: Value) -> Self {
        Outcome::Keep(vec![record])
    }
    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome::Skip(reason.into())
    }
}

/// A preprocessor plugin. One instance serves many calls; the host may rebuild it at any time,
/// so it must be a pure function of (config, input, context).
pub trait Preprocessor: Sized + 'static {
    /// The plugin's `config:` block, deserialized with serde.
    type Config: DeserializeOwned;
    fn new(config: Self::Config) -> Result<Self, Error>;
    /// JSON Schema of the config block, published through `plugin check`.
    fn config_schema() -> Option<Value> {
        None
    }
    fn process(&mut self, ctx: &Context, input: Input) -> Result<Outcome, Error>;
}

/// Registers `T` as the component's preprocessor export.
#[macro_export]
macro_rules! register_preprocessor {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ModelcallPreprocessor;
            impl $crate::preprocessor::__glue::Guest for __ModelcallPreprocessor {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::preprocessor::__glue::PluginInfo, $crate::preprocessor::__glue::PluginError> {
                    $crate::preprocessor::__glue::init::<$t>(config, env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                }
                fn process(
                    ctx: &$crate::preprocessor::__glue::CallContext,
                    input: $crate::preprocessor::__glue::Input,
                ) -> ::core::result::Result<$crate::preprocessor::__glue::Outcome, $crate::preprocessor::__glue::PluginError> {
                    $crate::preprocessor::__glue::process::<$t>(ctx, input)
                }
            }
            $crate::__export_preprocessor_plugin_impl!(__ModelcallPreprocessor with_types_in $crate::preprocessor::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn __assert_preprocessor<T: $crate::preprocessor::Preprocessor>() {}
            let _ = __assert_preprocessor::<$t>;
        };
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "preprocessor-plugin",
        with: {
            "modelcall:plugin/types@0.1.0": crate::base::modelcall::plugin::types,
            "modelcall:plugin/context@0.1.0": crate::base::modelcall::plugin::context,
            "modelcall:plugin/host@0.1.0": crate::base::modelcall::plugin::host,
        },
        pub_export_macro: true,
        default_bindings_module: "modelcall_plugin_sdk::preprocessor::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue {
    use std::cell::RefCell;

    pub use super::bindings::exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome, RawFile};
    pub use crate::base::modelcall::plugin::context::CallContext;
    pub use crate::base::modelcall::plugin::types::{PluginError, PluginInfo};

    use super::Preprocessor;
    use crate::Error;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    pub fn init<T: Preprocessor>(config: String, name: &str, version: &str) -> Result<PluginInfo, PluginError> {
        let cfg: T::Config = serde_json::from_str(&config)
            .map_err(|e| PluginError::from(Error::invalid_config(format!("config: {e}"))))?;
        let plugin = T::new(cfg).map_err(PluginError::from)?;
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
        Ok(PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            config_schema: T::config_schema().map(|s| s.to_string()),
        })
    }

    pub fn process<T: Preprocessor>(ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let input = match input {
            Input::Record(json) => super::Input::Record(
                serde_json::from_str(&json).map_err(|e| PluginError::from(Error::invalid_input(format!("record is not JSON: {e}"))))?,
            ),
            Input::File(RawFile { path, bytes }) => super::Input::File { path, bytes },
        };
        let ctx = crate::Context::from_host(ctx);
        INSTANCE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let plugin = slot
                .as_mut()
                .and_then(|b| b.downcast_mut::<T>())
                .ok_or_else(|| PluginError::from(Error::internal("process called before init")))?;
            match plugin.process(&ctx, input).map_err(PluginError::from)? {
                super::Outcome::Keep(records) => Ok(Outcome::Keep(records.into_iter().map(|r| r.to_string()).collect())),
                super::Outcome::Skip(reason) => Ok(Outcome::Skip(reason)),
            }
        })
    }
}
