//! Prompt builders: a record in, chat messages (and per-request overrides) out.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Context, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, content: content.into() }
    }
}

/// What to send. `None` fields keep the task's model settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
    /// JSON Schema for structured output, when the provider supports it.
    pub response_schema: Option<Value>,
}

/// A prompt-builder plugin; must be a pure function of (config, record, context).
pub trait PromptBuilder: Sized + 'static {
    type Config: DeserializeOwned;
    fn new(config: Self::Config) -> Result<Self, Error>;
    fn config_schema() -> Option<Value> {
        None
    }
    fn build(&mut self, ctx: &Context, record: Value) -> Result<Prompt, Error>;
}

/// Registers `T` as the component's prompt-builder export.
#[macro_export]
macro_rules! register_prompt_builder {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ModelcallPromptBuilder;
            impl $crate::prompt_builder::__glue::Guest for __ModelcallPromptBuilder {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::prompt_builder::__glue::PluginInfo, $crate::prompt_builder::__glue::PluginError> {
                    $crate::prompt_builder::__glue::init::<$t>(config, env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                }
                fn build(
                    ctx: &$crate::prompt_builder::__glue::CallContext,
                    record: ::std::string::String,
                ) -> ::core::result::Result<$crate::prompt_builder::__glue::Prompt, $crate::prompt_builder::__glue::PluginError> {
                    $crate::prompt_builder::__glue::build::<$t>(ctx, record)
                }
            }
            $crate::__export_prompt_builder_plugin_impl!(__ModelcallPromptBuilder with_types_in $crate::prompt_builder::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn __assert_prompt_builder<T: $crate::prompt_builder::PromptBuilder>() {}
            let _ = __assert_prompt_builder::<$t>;
        };
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "prompt-builder-plugin",
        with: {
            "modelcall:plugin/types@0.1.0": crate::base::modelcall::plugin::types,
            "modelcall:plugin/context@0.1.0": crate::base::modelcall::plugin::context,
            "modelcall:plugin/host@0.1.0": crate::base::modelcall::plugin::host,
        },
        pub_export_macro: true,
        default_bindings_module: "modelcall_plugin_sdk::prompt_builder::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue {
    use std::cell::RefCell;

    pub use super::bindings::exports::modelcall::plugin::prompt_builder::{Guest, Prompt};
    pub use crate::base::modelcall::plugin::context::CallContext;
    pub use crate::base::modelcall::plugin::types::{ChatMessage, PluginError, PluginInfo, Role};

    use super::PromptBuilder;
    use crate::Error;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    pub fn init<T: PromptBuilder>(config: String, name: &str, version: &str) -> Result<PluginInfo, PluginError> {
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

    pub fn build<T: PromptBuilder>(ctx: &CallContext, record: String) -> Result<Prompt, PluginError> {
        let record: serde_json::Value = serde_json::from_str(&record)
            .map_err(|e| PluginError::from(Error::invalid_input(format!("record is not JSON: {e}"))))?;
        let ctx = crate::Context::from_host(ctx);
        INSTANCE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let plugin = slot
                .as_mut()
                .and_then(|b| b.downcast_mut::<T>())
                .ok_or_else(|| PluginError::from(Error::internal("build called before init")))?;
            let p = plugin.build(&ctx, record).map_err(PluginError::from)?;
            Ok(Prompt {
                messages: p
                    .messages
                    .into_iter()
                    .map(|m| ChatMessage {
                        role: match m.role {
                            super::Role::System => Role::System,
                            super::Role::User => Role::User,
                            super::Role::Assistant => Role::Assistant,
                        },
                        content: m.content,
                    })
                    .collect(),
                max_tokens: p.max_tokens,
                temperature: p.temperature,
                stop: p.stop,
                response_schema: p.response_schema.map(|s| s.to_string()),
            })
        })
    }
}
