//! A preprocessor built against `modelcall:plugin@0.2.0` (see ./wit): a different
//! compatibility track. The 0.1 host must refuse it at load with "built for API 0.2".

wit_bindgen::generate!({ path: "wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{PluginError, PluginInfo};

struct Fixture;

impl Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(PluginInfo { name: "wrong-track".into(), version: "0.1.0".into(), config_schema: None })
    }

    fn process(_ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        Ok(match input {
            Input::Record(json) => Outcome::Keep(vec![json]),
            Input::File(f) => Outcome::Skip(f.path),
        })
    }
}

export!(Fixture);
