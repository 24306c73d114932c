//! Preprocessors: a record or a raw file in, zero or more records out.

mod truncation;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Context, Error};

pub use truncation::{default_max_tokens, Truncation};

/// What a preprocessor is given.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// One record (a JSON object) from a JSONL or Parquet source.
    Record(Value),
    /// One whole file read by the host (plugins have no file access of their own).
    File { path: String, bytes: Vec<u8> },
}

impl Input {
    /// The record as a JSON object, for the many preprocessors that read records only: a raw
    /// file is refused as unsupported with `file_refusal` (which should say what the plugin
    /// reads instead), and a record that is not an object is invalid input.
    pub fn into_object(self, file_refusal: &str) -> Result<Map<String, Value>, Error> {
        match self {
            Input::Record(Value::Object(record)) => Ok(record),
            Input::Record(_) => Err(Error::invalid_input("the record is not a JSON object")),
            Input::File { .. } => Err(Error::unsupported(file_refusal)),
        }
    }
}

/// What a preprocessor decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Records to pass on: one (map), several (split) or none (silent filter).
    Keep(Vec<Value>),
    /// Items of a split where some failed on their own: each failed item becomes one error
    /// row (with its [`ItemError::location`]) and the records are kept. One bad row of a file
    /// no longer fails the whole file.
    Items(Vec<Result<Value, ItemError>>),
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

/// One item of a split that could not be made into a record. The host writes it to the
/// error output with the cause `plugin_<kind>` (e.g. `plugin_invalid_input`) and `location`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    pub error: Error,
    /// Where in the input the item came from, e.g. `line 12`.
    pub location: Option<String>,
}

impl ItemError {
    /// `error` at `location` (any text that helps a user find the item).
    pub fn at(error: Error, location: impl Into<String>) -> Self {
        ItemError { error, location: Some(location.into()) }
    }

    /// `error` at line `line` (1-based) of the input file: the location `line N`, which the
    /// host also puts in the error row's `line` (a location such as `data.csv line 12` or
    /// `data.csv:12` does too).
    pub fn at_line(error: Error, line: usize) -> Self {
        ItemError::at(error, format!("line {line}"))
    }
}

impl From<Error> for ItemError {
    fn from(error: Error) -> Self {
        ItemError { error, location: None }
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
        $crate::__register_plugin!($t, preprocessor::Preprocessor, __export_preprocessor_plugin_impl, {
            fn process(
                ctx: &$crate::glue::CallContext,
                input: $crate::preprocessor::__glue::Input,
            ) -> ::core::result::Result<$crate::preprocessor::__glue::Outcome, $crate::glue::PluginError> {
                $crate::preprocessor::__glue::process::<$t>(ctx, input)
            }
        });
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    kind_bindings!("preprocessor-plugin", "modelcall_plugin_sdk::preprocessor::bindings");
}

/// Conversions between the WIT types of the preprocessor world and the SDK's.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue {
    pub use super::bindings::exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
    use super::bindings::exports::modelcall::plugin::preprocessor::{ItemError, RawFile};
    use super::Preprocessor;
    use crate::glue::{self, CallContext, PluginError};

    pub fn process<T: Preprocessor>(ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let input = match input {
            Input::Record(json) => super::Input::Record(glue::record(&json)?),
            Input::File(RawFile { path, bytes }) => super::Input::File { path, bytes },
        };
        Ok(match glue::with_instance(ctx, "process", |plugin: &mut T, ctx| plugin.process(ctx, input))?? {
            super::Outcome::Keep(records) => Outcome::Keep(records.into_iter().map(|r| Ok(r.to_string())).collect()),
            super::Outcome::Items(items) => Outcome::Keep(
                items
                    .into_iter()
                    .map(|item| match item {
                        Ok(r) => Ok(r.to_string()),
                        Err(e) => {
                            let PluginError { kind, message } = e.error.into();
                            Err(ItemError { kind, message, location: e.location })
                        }
                    })
                    .collect(),
            ),
            super::Outcome::Skip(reason) => Outcome::Skip(reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{json, ErrorKind};

    #[test]
    fn records_only_takes_objects_and_refuses_files() {
        let object = Input::Record(json!({"text": "x"})).into_object("reads rows").unwrap();
        assert_eq!(object["text"], "x");
        let e = Input::Record(json!([1])).into_object("reads rows").unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidInput, "the record is not a JSON object"));
        let e = Input::File { path: "a.xml".into(), bytes: vec![] }.into_object("reads rows").unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Unsupported, "reads rows"));
    }
}
