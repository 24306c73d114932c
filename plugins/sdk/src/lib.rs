//! Write modelcall plugins — preprocessors, prompt builders and score parsers — as
//! WebAssembly components, without touching wit-bindgen.
//!
//! One trait per plugin kind ([`preprocessor::Preprocessor`], [`prompt_builder::PromptBuilder`],
//! [`score_parser::ScoreParser`]), each behind a Cargo feature of the same name, and one
//! `register_*!` macro that exports your type as the component's implementation. Configs are
//! deserialized with serde; records arrive as [`serde_json::Value`]. On native targets the
//! host functions ([`log`], [`count_tokens`], [`truncate_tokens`]) have stand-ins, so a plugin
//! unit-tests with plain `cargo test`; build the component with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! use modelcall_plugin_sdk::preprocessor::{Input, Outcome, Preprocessor};
//! use modelcall_plugin_sdk::{Context, Error};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { min_chars: usize }
//! struct MinLength { cfg: Config }
//!
//! impl Preprocessor for MinLength {
//!     type Config = Config;
//!     fn new(cfg: Config) -> Result<Self, Error> { Ok(Self { cfg }) }
//!     fn process(&mut self, _ctx: &Context, input: Input) -> Result<Outcome, Error> {
//!         let Input::Record(rec) = input else { return Err(Error::unsupported("records only")) };
//!         let text = rec["text"].as_str().ok_or_else(|| Error::invalid_input("missing `text`"))?;
//!         if text.len() < self.cfg.min_chars { return Ok(Outcome::skip("too short")); }
//!         Ok(Outcome::keep(rec))
//!     }
//! }
//! modelcall_plugin_sdk::register_preprocessor!(MinLength);
//! ```

pub use serde;
pub use serde_json::{self, json, Value};

mod context;
mod error;
mod host;
mod register;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod base;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[macro_use]
pub mod glue;

#[cfg(feature = "preprocessor")]
pub mod preprocessor;
#[cfg(feature = "prompt-builder")]
pub mod prompt_builder;
#[cfg(feature = "score-parser")]
pub mod score_parser;

pub use context::Context;
pub use error::{Error, ErrorKind};
pub use host::{count_tokens, log, truncate_tokens, LogLevel};

/// The WIT package this SDK implements.
pub const WIT_PACKAGE: &str = "modelcall:plugin@0.2.0";

#[cfg(test)]
mod tests {
    #[test]
    fn wit_package_names_the_contract_the_bindings_read() {
        let contract = include_str!("../wit/plugin.wit");
        assert!(contract.contains(&format!("package {};", super::WIT_PACKAGE)));
    }

    #[test]
    fn the_sdk_version_is_on_the_wit_track() {
        // `0.2.x` of the SDK binds `modelcall:plugin@0.2.*`: authors pick the SDK by track.
        let track = super::WIT_PACKAGE.rsplit('@').next().unwrap().rsplit_once('.').unwrap().0;
        assert!(env!("CARGO_PKG_VERSION").starts_with(&format!("{track}.")), "{}", env!("CARGO_PKG_VERSION"));
    }
}
