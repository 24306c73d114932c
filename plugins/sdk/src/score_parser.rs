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
    /// The parser itself failed (not the reply): the record goes to the error output with the
    /// cause `plugin_<kind>`; nothing is re-asked.
    Failed(Error),
}

impl From<Error> for ParseError {
    fn from(e: Error) -> Self {
        ParseError::Failed(e)
    }
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
        $crate::__register_plugin!($t, score_parser::ScoreParser, __export_score_parser_plugin_impl, {
            fn parse(
                ctx: &$crate::glue::CallContext,
                record: ::std::string::String,
                completion: ::std::string::String,
            ) -> ::core::result::Result<$crate::score_parser::__glue::Score, $crate::score_parser::__glue::ParseError> {
                $crate::score_parser::__glue::parse::<$t>(ctx, record, completion)
            }
        });
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    kind_bindings!("score-parser-plugin", "modelcall_plugin_sdk::score_parser::bindings");
}

/// Conversions between the WIT types of the score-parser world and the SDK's. The glue's own
/// errors (a record that is not JSON, a call before `init`) are the parser's `failed`.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue {
    pub use super::bindings::exports::modelcall::plugin::score_parser::{Guest, ParseError, Score};
    use super::ScoreParser;
    use crate::glue::{self, CallContext};

    pub fn parse<T: ScoreParser>(ctx: &CallContext, record: String, completion: String) -> Result<Score, ParseError> {
        let failed = |e: crate::Error| ParseError::Failed(e.into());
        let record = glue::record(&record).map_err(failed)?;
        match glue::with_instance(ctx, "parse", |plugin: &mut T, ctx| plugin.parse(ctx, record, &completion)).map_err(failed)? {
            Ok(s) => Ok(Score { value: s.value, label: s.label, rationale: s.rationale, extra: s.extra.map(|v| v.to_string()) }),
            Err(super::ParseError::Retry(h)) => Err(ParseError::Retry(h)),
            Err(super::ParseError::Invalid(m)) => Err(ParseError::Invalid(m)),
            Err(super::ParseError::Failed(e)) => Err(ParseError::Failed(e.into())),
        }
    }
}
