//! Returns a 20 MiB record: must be refused by the output cap (16 MiB by default).
//! Records without an `"attack"` key pass through unchanged, so a test can show that the
//! next record after the attack succeeds on a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "huge-output".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        if json.contains("\"attack\"") {
            let big = "a".repeat(20 * 1024 * 1024);
            return Ok(Outcome::Keep(vec![Ok(format!("{{\"x\":\"{big}\"}}"))]));
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
