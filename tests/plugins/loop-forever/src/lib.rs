//! Spins forever: must be stopped by the deadline (or by fuel, whichever limit is lower).
//! Records without an `"attack"` key pass through unchanged, so a test can show that the
//! next record after the attack succeeds on a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "loop-forever".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        if json.contains("\"attack\"") {
            let mut x = 0u64;
            loop {
                x = core::hint::black_box(x.wrapping_add(1));
            }
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
