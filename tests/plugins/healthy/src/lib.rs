//! A well-behaved preprocessor that exercises every host import: it annotates each
//! record with what the call context and the tokenizer told it, logs one line, skips
//! records with `"skip": true`, rejects records with `"bad": true` (invalid-input), splits
//! a record with `"split": [...]` into one record `{"id": "<record id>-<i>", "text": element}`
//! per element (a `null` element is an item error at `split[i]`, API track 0.2), and rejects the config `{"fail_init": true}`
//! (invalid-config).

wit_bindgen::generate!({ path: "../../../wit", world: "preprocessor-plugin" });

use exports::modelcall::plugin::preprocessor::{Guest, Input, ItemError, Outcome};
use modelcall::plugin::context::CallContext;
use modelcall::plugin::host;
use modelcall::plugin::types::{ErrorKind, LogLevel, PluginError, PluginInfo};

struct Healthy;

fn err(kind: ErrorKind, message: impl Into<String>) -> PluginError {
    PluginError { kind, message: message.into() }
}

impl Guest for Healthy {
    fn init(config: String) -> Result<PluginInfo, PluginError> {
        let cfg: serde_json::Value = serde_json::from_str(&config).map_err(|e| err(ErrorKind::InvalidConfig, e.to_string()))?;
        if cfg.get("fail_init").and_then(|v| v.as_bool()) == Some(true) {
            return Err(err(ErrorKind::InvalidConfig, "key `fail_init`: this fixture refuses to start when it is true"));
        }
        Ok(PluginInfo {
            name: "healthy".into(),
            version: "1.2.3".into(),
            config_schema: Some(r#"{"type":"object","properties":{"fail_init":{"type":"boolean"}}}"#.into()),
        })
    }

    fn process(ctx: &CallContext, input: Input) -> Result<Outcome, PluginError> {
        match input {
            Input::Record(json) => {
                let mut rec: serde_json::Value =
                    serde_json::from_str(&json).map_err(|e| err(ErrorKind::InvalidInput, format!("not JSON: {e}")))?;
                if rec.get("bad").is_some() {
                    return Err(err(ErrorKind::InvalidInput, "record has `bad`"));
                }
                if rec.get("skip").is_some() {
                    return Ok(Outcome::Skip("asked to skip".into()));
                }
                if let Some(parts) = rec.get("split").and_then(|s| s.as_array()) {
                    let items = parts.iter().enumerate().map(|(i, part)| match part {
                        serde_json::Value::Null => Err(ItemError {
                            kind: ErrorKind::InvalidInput,
                            message: "a null part".into(),
                            location: Some(format!("split[{i}]")),
                        }),
                        part => Ok(serde_json::json!({"id": format!("{}-{i}", ctx.record_id()), "text": part}).to_string()),
                    });
                    return Ok(Outcome::Keep(items.collect()));
                }
                let text = rec.get("text").and_then(|t| t.as_str()).unwrap_or("").to_string();
                host::log(LogLevel::Info, &format!("processing {}", ctx.record_id()));
                rec["record_id"] = ctx.record_id().into();
                rec["attempt"] = ctx.attempt().into();
                rec["task"] = ctx.task_name().into();
                rec["tokens"] = host::count_tokens(&text).into();
                rec["first_two_tokens"] = host::truncate_tokens(&text, 2).into();
                Ok(Outcome::Keep(vec![Ok(rec.to_string())]))
            }
            Input::File(file) => Ok(Outcome::Keep(vec![Ok(serde_json::json!({
                "path": file.path,
                "len": file.bytes.len(),
            })
            .to_string())])),
        }
    }
}

export!(Healthy);
