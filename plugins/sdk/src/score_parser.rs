//! Score parsers: a model's reply in, a verdict out (or a hint to ask again).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Context, Error};

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The headline score.
    pub value: f64,
    pub label: Option<String>,
    pub rationale: Option<String>,
    /// Every verdict field as one JSON object; the host merges its keys into the output row.
    pub extra: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Ask the model again with this hint appended as a user turn.
    Retry(String),
    /// Give up on this record.
    Invalid(String),
}

/// A score-parser plugin; must be a pure function of (config, record, reply, context).
pub trait ScoreParser: Sized + 'static {
    type Config: DeserializeOwned;
    fn new(config: Self::Config) -> Result<Self, Error>;
    fn config_schema() -> Option<Value> {
        None
    }
    /// `completion` is the final answer only; the host has split off any reasoning.
    fn parse(&mut self, ctx: &Context, record: Value, completion: &str) -> Result<Score, ParseError>;
}

/// Registers `T` as the component's score-parser export.
#[macro_export]
macro_rules! register_score_parser {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ModelcallScoreParser;
            impl $crate::score_parser::__glue::Guest for __ModelcallScoreParser {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::score_parser::__glue::PluginInfo, $crate::score_parser::__glue::PluginError> {
                    $crate::score_parser::__glue::init::<$t>(config, env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                }
                fn parse(
                    ctx: &$crate::score_parser::__glue::CallContext,
                    record: ::std::string::String,
                    completion: ::std::string::String,
                ) -> ::core::result::Result<$crate::score_parser::__glue::Score, $crate::score_parser::__glue::ParseError> {
                    $crate::score_parser::__glue::parse::<$t>(ctx, record, completion)
                }
            }
            $crate::__export_score_parser_plugin_impl!(__ModelcallScoreParser with_types_in $crate::score_parser::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn __assert_score_parser<T: $crate::score_parser::ScoreParser>() {}
            let _ = __assert_score_parser::<$t>;
        };
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "score-parser-plugin",
        with: {
            "modelcall:plugin/types@0.1.0": crate::base::modelcall::plugin::types,
            "modelcall:plugin/context@0.1.0": crate::base::modelcall::plugin::context,
            "modelcall:plugin/host@0.1.0": crate::base::modelcall::plugin::host,
        },
        pub_export_macro: true,
        default_bindings_module: "modelcall_plugin_sdk::score_parser::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue {
    use std::cell::RefCell;

    pub use super::bindings::exports::modelcall::plugin::score_parser::{Guest, ParseError, Score};
    pub use crate::base::modelcall::plugin::context::CallContext;
    pub use crate::base::modelcall::plugin::types::{PluginError, PluginInfo};

    use super::ScoreParser;
    use crate::Error;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    pub fn init<T: ScoreParser>(config: String, name: &str, version: &str) -> Result<PluginInfo, PluginError> {
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

    pub fn parse<T: ScoreParser>(ctx: &CallContext, record: String, completion: String) -> Result<Score, ParseError> {
        let record: serde_json::Value =
            serde_json::from_str(&record).map_err(|e| ParseError::Invalid(format!("record is not JSON: {e}")))?;
        let ctx = crate::Context::from_host(ctx);
        INSTANCE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let Some(plugin) = slot.as_mut().and_then(|b| b.downcast_mut::<T>()) else {
                return Err(ParseError::Invalid("parse called before init".into()));
            };
            match plugin.parse(&ctx, record, &completion) {
                Ok(s) => Ok(Score { value: s.value, label: s.label, rationale: s.rationale, extra: s.extra.map(|v| v.to_string()) }),
                Err(super::ParseError::Retry(h)) => Err(ParseError::Retry(h)),
                Err(super::ParseError::Invalid(m)) => Err(ParseError::Invalid(m)),
            }
        })
    }
}
