//! Returns many tiny records from one call: `{"attack": N}` keeps N records `{}` (a million
//! of them are 2 MB, far under the 16 MiB output cap, and cost little fuel to make).
//! Records without an `"attack"` key pass through unchanged.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "many-records".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        if let Some(rest) = json.split("\"attack\":").nth(1) {
            let n: usize = rest.trim_end_matches('}').trim().parse().map_err(|_| PluginError {
                kind: ErrorKind::InvalidInput,
                message: "attack must be a count".into(),
            })?;
            return Ok(Outcome::Keep(vec![Ok(String::from("{}")); n]));
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
