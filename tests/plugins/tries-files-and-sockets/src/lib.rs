//! Tries to read a file and to open a TCP connection. Using std::net makes the component import wasi:sockets, which the host does not offer, so the plugin is rejected at load (if a toolchain ever compiles it without that import, the connect fails at run time and is reported).
//! Records without an `"attack"` key pass through unchanged, so a test can show that the
//! next record after the attack succeeds on a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "tries-files-and-sockets".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        let json = match input {
            Input::Record(json) => json,
            Input::File(_) => return Err(PluginError { kind: ErrorKind::Unsupported, message: "records only".into() }),
        };
        if json.contains("\"attack\"") {
            let fs = std::fs::read_to_string("/etc/hostname").map(|_| "fs: escaped".to_string()).unwrap_or_else(|e| format!("fs: {e}"));
            let net = std::net::TcpStream::connect("127.0.0.1:9").map(|_| "net: escaped".to_string()).unwrap_or_else(|e| format!("net: {e}"));
            return Err(PluginError { kind: ErrorKind::InvalidInput, message: format!("{fs}; {net}") });
        }
        Ok(Outcome::Keep(vec![Ok(json)]))
    }
}

export!(Fixture);
