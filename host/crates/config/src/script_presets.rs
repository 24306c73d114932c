//! The reference's `preprocess.script_type` values as data: each names a built-in
//! preprocessor and the `preprocess:` keys it receives, so the run plan translates the block
//! with one loop instead of code per built-in.

use serde_json::{Map, Value};

use crate::task::ScriptType;

/// How one `preprocess.script_type` maps to a built-in preprocessor.
pub struct ScriptPreset {
    pub script_type: ScriptType,
    pub builtin: &'static str,
    /// `(from, to)` JSON pointers: a `preprocess:` value copied into the plugin config (moved,
    /// when `from` lies inside a value copied later), only where the config lacks `to`.
    pub forwards: &'static [(&'static str, &'static str)],
    /// Input file names the preset reads by default.
    pub file_pattern: Option<&'static str>,
}

pub const SCRIPT_PRESETS: &[ScriptPreset] = &[
    ScriptPreset { script_type: ScriptType::RepoXml, builtin: "repo-xml", forwards: &[("/max_tokens", "/max_tokens")], file_pattern: None },
    ScriptPreset {
        script_type: ScriptType::GithubRawCode,
        builtin: "github-raw-code",
        forwards: &[("/max_tokens", "/max_tokens"), ("/languages", "/languages")],
        file_pattern: None,
    },
    ScriptPreset {
        script_type: ScriptType::Universal,
        builtin: "universal",
        forwards: &[
            ("/max_tokens", "/max_tokens"),
            ("/field_mapping", "/field_mapping"),
            ("/filters", "/filters"),
            ("/transformations/computed_fields", "/computed_fields"),
            ("/transformations", "/transformations"),
            ("/source_name", "/source_name"),
        ],
        file_pattern: None,
    },
    ScriptPreset {
        script_type: ScriptType::TripletFilter,
        builtin: "triplet-filter",
        forwards: &[("/max_tokens", "/max_tokens")],
        file_pattern: Some("pt_data_*.jsonl"),
    },
];

/// Copies (or, for values nested in a later source, moves) `section` values into `config`.
pub(crate) fn forward(section: &mut Value, config: &mut Value, forwards: &[(&str, &str)]) {
    for (i, (from, to)) in forwards.iter().enumerate() {
        let nested_in_later = forwards[i + 1..].iter().any(|(later, _)| from.starts_with(&format!("{later}/")));
        let value = if nested_in_later { take_pointer(section, from) } else { section.pointer(from).cloned() };
        let Some(value) = value.filter(|v| !v.is_null()) else { continue };
        if config.pointer(to).is_some() {
            continue;
        }
        if let Some(obj) = config.as_object_mut() {
            // Forward targets are top-level keys.
            obj.insert(to.trim_start_matches('/').to_string(), value);
        }
    }
}

fn take_pointer(v: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, key) = pointer.rsplit_once('/')?;
    let parent = if parent.is_empty() { Some(v) } else { v.pointer_mut(parent) };
    parent.and_then(Value::as_object_mut).and_then(|m: &mut Map<String, Value>| m.remove(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn universal_keys_become_its_config_with_computed_fields_lifted() {
        let mut section = json!({
            "max_tokens": 1024, "field_mapping": {"text": "body"}, "source_name": "web",
            "transformations": {"text_cleaning": {"strip": true}, "computed_fields": {"n": {"type": "text_length"}}},
        });
        let mut config = json!({"max_tokens": 7});
        let preset = SCRIPT_PRESETS.iter().find(|p| p.builtin == "universal").unwrap();
        forward(&mut section, &mut config, preset.forwards);
        assert_eq!(config["max_tokens"], 7, "a key the plugin config sets wins");
        assert_eq!(config["field_mapping"]["text"], "body");
        assert_eq!(config["computed_fields"]["n"]["type"], "text_length");
        assert!(config["transformations"].get("computed_fields").is_none());
        assert_eq!(config["source_name"], "web");
    }

    #[test]
    fn every_script_type_has_a_preset() {
        for name in ScriptType::NAMES {
            let st: ScriptType = serde_json::from_value(json!(name)).unwrap();
            assert!(SCRIPT_PRESETS.iter().any(|p| p.script_type == st), "{name}");
        }
    }
}
