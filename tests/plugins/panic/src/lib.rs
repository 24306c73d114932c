//! Panics with a known message, which must show up in the captured stderr.
//! Records without an `"attack"` key pass through unchanged, so a test can show that the
//! next record after the attack succeeds on a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(config: String) -> Result<PluginInfo, PluginError> {
        if config.contains("panic_in_init") {
            panic!("fixture panic during init");
        }
        Ok(PluginInfo { name: "panic".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        if json.contains("\"attack\"") {
            panic!("fixture panic: the answer is 42");
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
