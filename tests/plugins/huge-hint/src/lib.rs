//! A score parser whose failures carry 10 MB of text: the completion `retry` yields
//! `retry(<10 MB>)`, `invalid` yields `invalid(<10 MB>)`; both texts are made of the
//! two-byte `é` after one ASCII byte, so a cut at 4 KiB falls inside a character.
//! Any other completion must be a number and is the score.

wit_bindgen::generate!({ path: "../../../wit", world: "score-parser-plugin" });

use exports::modelcall::plugin::score_parser::{Guest, ParseError, Score};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{PluginError, PluginInfo};

struct Fixture;

fn huge() -> String {
    let mut s = String::from("x");
    s.push_str(&"é".repeat(5 * 1024 * 1024));
    s
}

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "huge-hint".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn parse(_ctx: &CallContext, _record: String, completion: String) -> Result<Score, ParseError> {
        match completion.trim() {
            "retry" => Err(ParseError::Retry(huge())),
            "invalid" => Err(ParseError::Invalid(huge())),
            other => match other.parse::<f64>() {
                Ok(value) => Ok(Score { value, label: None, rationale: None, extra: None }),
                Err(_) => Err(ParseError::Retry("answer with a number".into())),
            },
        }
    }
}

export!(Fixture);
