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
    /// JSON Schema for structured output, when the provider supports it. The host sends it as
    /// `response_format: {"type": "json_schema", "json_schema": {"name": "verdict", "schema": …}}`;
    /// to set `strict` (or the name), give the whole `json_schema` object instead, as
    /// [`Prompt::strict_schema`] builds it.
    pub response_schema: Option<Value>,
}

impl Prompt {
    /// The `json_schema` object `{"name", "strict", "schema"}` for [`Prompt::response_schema`]:
    /// with `strict: true` a provider that supports it (OpenAI) holds the reply to `schema`
    /// exactly (which then needs `"additionalProperties": false` and every property required).
    /// The task's model config can still override `strict` with
    /// `chat_config.response_format.json_schema.strict`.
    pub fn strict_schema(name: &str, schema: Value, strict: bool) -> Value {
        serde_json::json!({"name": name, "strict": strict, "schema": schema})
    }
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
        $crate::__register_plugin!($t, prompt_builder::PromptBuilder, __export_prompt_builder_plugin_impl, {
            fn build(
                ctx: &$crate::glue::CallContext,
                record: ::std::string::String,
            ) -> ::core::result::Result<$crate::prompt_builder::__glue::Prompt, $crate::glue::PluginError> {
                $crate::prompt_builder::__glue::build::<$t>(ctx, record)
            }
        });
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    kind_bindings!("prompt-builder-plugin", "modelcall_plugin_sdk::prompt_builder::bindings");
}

/// Conversions between the WIT types of the prompt-builder world and the SDK's.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue {
    pub use super::bindings::exports::modelcall::plugin::prompt_builder::{Guest, Prompt};
    use super::PromptBuilder;
    use crate::base::modelcall::plugin::types::{ChatMessage, Role};
    use crate::glue::{self, CallContext, PluginError};

    pub fn build<T: PromptBuilder>(ctx: &CallContext, record: String) -> Result<Prompt, PluginError> {
        let record = glue::record(&record)?;
        let p = glue::with_instance(ctx, "build", |plugin: &mut T, ctx| plugin.build(ctx, record))??;
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
    }
}
