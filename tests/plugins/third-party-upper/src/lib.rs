//! Upper-cases one string field of each record (default `text`); skips records without it.
//! Written against the SDK only, as a third-party author would.

use modelcall_plugin_sdk::preprocessor::{Input, Outcome, Preprocessor};
use modelcall_plugin_sdk::{Context, Error};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_field")]
    field: String,
}

fn default_field() -> String {
    "text".into()
}

pub struct Upper {
    field: String,
}

impl Preprocessor for Upper {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        if cfg.field.is_empty() {
            return Err(Error::invalid_config("`field` must not be empty"));
        }
        Ok(Upper { field: cfg.field })
    }

    fn process(&mut self, _ctx: &Context, input: Input) -> Result<Outcome, Error> {
        let Input::Record(mut rec) = input else {
            return Err(Error::unsupported("third-party-upper handles records, not files"));
        };
        let Some(text) = rec.get(&self.field).and_then(Value::as_str) else {
            return Ok(Outcome::skip(format!("no string field `{}`", self.field)));
        };
        let upper = text.to_uppercase();
        rec[self.field.as_str()] = Value::String(upper);
        Ok(Outcome::keep(rec))
    }
}

modelcall_plugin_sdk::register_preprocessor!(Upper);
