//! A plugin written against API track 0.1 and kept as a binary: one component that exports
//! both a preprocessor and a score parser of `modelcall:plugin@0.1.0`.
//!
//! - preprocessor: keeps each record with `"v01_pre": "<task>/<record id>"` added, skips
//!   records with `"skip": true`, fails records with `"bad": true` (invalid-input), and
//!   splits a raw file into one record per non-empty line.
//! - score parser: reads the first integer in the reply as the score; a reply without one
//!   is a `retry` with a hint; `"label"` is `"v0.1"` so a test can see which parser ran.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1",
    inline: "
        package fixture:track-v01;
        world both {
            include modelcall:plugin/preprocessor-plugin@0.1.0;
            include modelcall:plugin/score-parser-plugin@0.1.0;
        }
    ",
    world: "fixture:track-v01/both",
    generate_all,
});

use exports::modelcall::plugin::preprocessor::{self as pp, Input, Outcome};
use exports::modelcall::plugin::score_parser::{self as sp, ParseError, Score};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::types::{ErrorKind, PluginError, PluginInfo};

struct Fixture;

fn info() -> PluginInfo {
    PluginInfo { name: "track-v0.1-fixture".into(), version: "0.1.0".into(), config_schema: None }
}

impl pp::Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(info())
    }

    fn process(ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        match input {
            Input::Record(json) => {
                let mut rec: serde_json::Value = serde_json::from_str(&json)
                    .map_err(|e| PluginError { kind: ErrorKind::InvalidInput, message: format!("not JSON: {e}") })?;
                if rec.get("bad").is_some() {
                    return Err(PluginError { kind: ErrorKind::InvalidInput, message: "record has `bad`".into() });
                }
                if rec.get("skip").is_some() {
                    return Ok(Outcome::Skip("asked to skip".into()));
                }
                rec["v01_pre"] = format!("{}/{}", ctx.task_name(), ctx.record_id()).into();
                Ok(Outcome::Keep(vec![rec.to_string()]))
            }
            Input::File(file) => {
                let text = String::from_utf8_lossy(&file.bytes);
                let lines = text.lines().filter(|l| !l.trim().is_empty());
                Ok(Outcome::Keep(lines.map(|l| serde_json::json!({"path": file.path, "line": l}).to_string()).collect()))
            }
        }
    }
}

impl sp::Guest for Fixture {
    fn init(_config: String) -> Result<PluginInfo, PluginError> {
        Ok(info())
    }

    fn parse(_ctx: &CallContext, _record: String, completion: String) -> Result<Score, ParseError> {
        let digits: String = completion.chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit()).collect();
        match digits.parse::<f64>() {
            Ok(value) => Ok(Score { value, label: Some("v0.1".into()), rationale: None, extra: Some(r#"{"parsed_by":"v0.1"}"#.into()) }),
            Err(_) => Err(ParseError::Retry("answer with a whole number".into())),
        }
    }
}

export!(Fixture);
