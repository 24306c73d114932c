//! Makes one host call on 10 MB of one repeated character, which costs seconds and
//! hundreds of MB if the host tokenizes it in one piece: `{"attack": "count"}` calls
//! `count-tokens`, `{"attack": "truncate"}` calls `truncate-tokens` with no real cap (so
//! the host cannot stop early). Both must end at the call's deadline.
//! Records without an `"attack"` key pass through unchanged.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::host;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "tokenizer-bomb".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        let text = || "a".repeat(10 * 1024 * 1024);
        if json.contains("\"attack\":\"count\"") {
            let n = host::count_tokens(&text());
            return Ok(Outcome::Keep(vec![Ok(format!("{{\"tokens\":{n}}}"))]));
        }
        if json.contains("\"attack\":\"truncate\"") {
            let cut = host::truncate_tokens(&text(), u32::MAX);
            return Ok(Outcome::Keep(vec![Ok(format!("{{\"kept\":{}}}", cut.len()))]));
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
