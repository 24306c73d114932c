//! Tries to read a host file through std::fs. The sandbox has no preopened directories, so the open fails at run time; the plugin reports the error it got as invalid-input (or, if it ever escaped, keeps a record saying so).
//! Records without an `"attack"` key pass through unchanged, so a test can show that the
//! next record after the attack succeeds on a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "tries-files".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        if json.contains("\"attack\"") {
            return match std::fs::read_to_string("/etc/hostname").or_else(|_| std::fs::read_to_string("Cargo.toml")) {
                Ok(text) => Ok(Outcome::Keep(vec![Ok(format!("{{\"escaped\":true,\"len\":{}}}", text.len()))])),
                Err(e) => Err(PluginError { kind: ErrorKind::InvalidInput, message: format!("file access denied: {e}") }),
            };
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
