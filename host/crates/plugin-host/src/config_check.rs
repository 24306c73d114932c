//! A plugin's `config` block checked against the JSON Schema the plugin publishes, so a wrong
//! type or an unknown key is reported by the host in the schema's words ("expected integer,
//! got string") at the key's path, whatever the plugin's own checks say (or fail to say).
//!
//! A plugin publishes its schema through `plugin-info.config-schema`, which `init` returns; a
//! plugin built with an SDK also appends it to an `invalid-config` refusal, after a line
//! `config schema: ` ([`SCHEMA_MARK`]), so the schema is known whichever way `init` ends.
//! The loader checks the config as soon as the first instance's `init` has answered and before
//! the plugin is handed out: a config the schema rejects is a [`crate::LoadError::ConfigSchema`]
//! even if the plugin's `init` accepted it.

use std::fmt;

use serde_json::Value;

/// What precedes the config schema in an SDK plugin's `invalid-config` message.
pub const SCHEMA_MARK: &str = "\nconfig schema: ";

/// One place where the config breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigViolation {
    /// Keys (and list indices, as decimal text) from the config's top to the offending value;
    /// empty for the config as a whole. An unknown key's path ends with that key.
    pub path: Vec<String>,
    /// What the schema expects, e.g. `expected integer, got string`.
    pub message: String,
}

impl ConfigViolation {
    /// The path as a dotted key (`checks.score.min`), `config` for the whole block.
    pub fn dotted(&self) -> String {
        if self.path.is_empty() {
            "config".into()
        } else {
            self.path.join(".")
        }
    }
}

impl fmt::Display for ConfigViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.dotted(), self.message)
    }
}

/// The schema an SDK plugin appended to its `invalid-config` message, if any (one line of JSON).
pub fn schema_in_message(message: &str) -> Option<&str> {
    let rest = &message[message.find(SCHEMA_MARK)? + SCHEMA_MARK.len()..];
    let line = rest.split('\n').next().unwrap_or(rest).trim();
    serde_json::from_str::<Value>(line).ok().filter(Value::is_object).map(|_| line)
}

/// Checks `config` against `schema` (JSON text). `Err` when the schema itself is not a usable
/// JSON Schema (a plugin bug the caller reports without blocking the run).
pub fn check(schema: &str, config: &Value) -> Result<Vec<ConfigViolation>, String> {
    let schema: Value = serde_json::from_str(schema).map_err(|e| format!("the published config schema is not JSON: {e}"))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("the published config schema is not a valid JSON Schema: {e}"))?;
    let mut out = Vec::new();
    for error in validator.iter_errors(config) {
        let path: Vec<String> = error
            .instance_path()
            .iter()
            .map(|s| match s {
                jsonschema::paths::LocationSegment::Property(p) => p.to_string(),
                jsonschema::paths::LocationSegment::Index(i) => i.to_string(),
            })
            .collect();
        match error.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                // The keys the schema knows at that level: `properties` beside the keyword.
                let keyword = error.schema_path().as_str().to_string();
                let parent = keyword.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                let known: Vec<String> =
                    schema.pointer(&format!("{parent}/properties")).and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
                for key in unexpected {
                    let mut p = path.clone();
                    p.push(key.clone());
                    let message = match closest(key, &known) {
                        Some(s) => format!("unknown key (did you mean `{s}`?); the schema allows: {}", known.join(", ")),
                        None if known.is_empty() => "unknown key; the schema allows no other keys here".to_string(),
                        None => format!("unknown key; the schema allows: {}", known.join(", ")),
                    };
                    out.push(ConfigViolation { path: p, message });
                }
            }
            jsonschema::error::ValidationErrorKind::Required { property } => {
                let name = property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string());
                out.push(ConfigViolation { path, message: format!("missing required key `{name}`") });
            }
            jsonschema::error::ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    jsonschema::error::TypeKind::Single(t) => t.to_string(),
                    jsonschema::error::TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or "),
                };
                out.push(ConfigViolation { path, message: format!("expected {expected}, got {}", shown(error.instance())) });
            }
            _ => out.push(ConfigViolation { path, message: error.to_string() }),
        }
    }
    Ok(out)
}

/// A value's type and, for a scalar, the value itself (cut past 60 characters): `string "ten"`.
fn shown(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) | Value::Null => json_type(v).to_string(),
        _ => {
            let text = v.to_string();
            let cut: String = text.chars().take(60).collect();
            format!("{} {cut}{}", json_type(v), if cut.len() < text.len() { "…" } else { "" })
        }
    }
}

/// The JSON Schema type name of a value.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A known key close enough to `unknown` to be a typo of it.
fn closest<'a>(unknown: &str, known: &'a [String]) -> Option<&'a str> {
    // Levenshtein distance at most a third of the key's length (at least 1).
    let limit = (unknown.chars().count() / 3).max(1);
    known.iter().map(|k| (edit_distance(unknown, k), k)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["key"],
        "properties":{"key":{"type":"string"},"max":{"type":"integer","minimum":1},
        "checks":{"type":"object","additionalProperties":{"type":"object","properties":{"min":{"type":"number"}}}},
        "tags":{"type":"array","items":{"type":"string"}}}}"#;

    fn violations(config: Value) -> Vec<String> {
        check(SCHEMA, &config).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_wrong_type_names_the_key_and_both_types() {
        assert_eq!(violations(json!({"key": "k", "max": "five"})), ["`max`: expected integer, got string \"five\""]);
        assert_eq!(violations(json!({"key": "k", "max": 2.5})), ["`max`: expected integer, got number 2.5"]);
        assert_eq!(violations(json!({"key": "k", "checks": {"score": {"min": "x"}}})), ["`checks.score.min`: expected number, got string \"x\""]);
        assert_eq!(violations(json!({"key": "k", "tags": ["a", 3]})), ["`tags.1`: expected string, got integer 3"]);
        assert_eq!(violations(json!({"key": "k", "tags": {"a": 1}})), ["`tags`: expected array, got object"]);
        let long = "x".repeat(100);
        assert_eq!(violations(json!({"key": "k", "max": long})), [format!("`max`: expected integer, got string \"{}…", "x".repeat(59))]);
        assert_eq!(violations(json!("text")), ["`config`: expected object, got string \"text\""]);
    }

    #[test]
    fn unknown_and_missing_keys() {
        assert_eq!(violations(json!({"key": "k", "mx": 3})), ["`mx`: unknown key (did you mean `max`?); the schema allows: checks, key, max, tags"]);
        assert_eq!(violations(json!({"key": "k", "zzzzzz": 3})), ["`zzzzzz`: unknown key; the schema allows: checks, key, max, tags"]);
        assert_eq!(violations(json!({})), ["`config`: missing required key `key`"]);
        assert!(violations(json!({"key": "k", "max": 3, "tags": []})).is_empty());
        // Other keywords keep the validator's own words.
        let v = violations(json!({"key": "k", "max": 0}));
        assert_eq!(v.len(), 1);
        assert!(v[0].starts_with("`max`: ") && v[0].contains("minimum"), "{v:?}");
    }

    #[test]
    fn the_schema_is_found_in_an_sdk_refusal() {
        let m = "config: invalid type: string \"x\", expected u32 at line 1 column 9\nconfig schema: {\"type\":\"object\"}";
        assert_eq!(schema_in_message(m), Some("{\"type\":\"object\"}"));
        assert_eq!(schema_in_message("config schema: {\"type\":\"object\"}"), None, "only after a line break");
        assert_eq!(schema_in_message("x\nconfig schema: {cut"), None);
    }

    #[test]
    fn an_unusable_schema_is_an_error_not_a_verdict() {
        assert!(check("{not json", &json!({})).is_err());
        assert!(check(r#"{"type": 12}"#, &json!({})).is_err());
    }
}
