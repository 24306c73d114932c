//! A score parser with a bug: it panics on a reply containing `PANIC` (after the model was
//! paid for it). Any other reply must be a number and is the score. With `fixed` in its
//! config it scores `PANIC` as 0 instead, as a fixed parser would.

wit_bindgen::generate!({ path: "../../../wit", world: "score-parser-plugin" });

use exports::modelcall::plugin::score_parser::{Guest, ParseError, Score};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{PluginError, PluginInfo};

struct Fixture;

static FIXED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Guest for Fixture {
    fn init(config: String) -> Result<PluginInfo, PluginError> {
        FIXED.store(config.contains("fixed"), std::sync::atomic::Ordering::Relaxed);
        Ok(PluginInfo { name: "parser-panic".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn parse(_ctx: &CallContext, _record: String, completion: String) -> Result<Score, ParseError> {
        if completion.contains("PANIC") {
            if FIXED.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(Score { value: 0.0, label: None, rationale: None, extra: None });
            }
            panic!("fixture parser bug on a reply it did not expect");
        }
        match completion.trim().parse::<f64>() {
            Ok(value) => Ok(Score { value, label: None, rationale: None, extra: None }),
            Err(_) => Err(ParseError::Retry("answer with a number".into())),
        }
    }
}

export!(Fixture);
