//! A valid score parser. Loading it as a preprocessor must fail at load, naming the plugin
//! and the export it lacks.

wit_bindgen::generate!({ path: "../../../wit", world: "score-parser-plugin" });

use exports::modelcall::plugin::score_parser::{Guest, ParseError, Score};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "wrong-role".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn parse(_ctx: &CallContext, _record: String, completion: String) -> Result<Score, ParseError> {
        match completion.trim().parse::<f64>() {
            Ok(value) => Ok(Score { value, label: None, rationale: None, extra: None }),
            Err(_) => Err(ParseError::Retry("answer with a number".into())),
        }
    }
}

export!(Fixture);
