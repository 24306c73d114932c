//! Reading a YAML config file into JSON, with positions for errors.
//!
//! Every config file goes through [`read_yaml`]: YAML syntax errors carry serde_yaml's line and
//! column; the tree is converted to `serde_json::Value` because the prompt config and plugin
//! configs travel to plugins as JSON anyway, and one value type keeps the checks simple.

use std::path::Path;

use serde_json::{Map, Value};

use crate::env::{interpolate, Vars};
use crate::error::ConfigError;
use crate::locate::find_key_or_parent;

/// A config file: its source text (for locating keys) and its parsed tree.
#[derive(Debug, Clone)]
pub struct YamlFile {
    pub source: String,
    pub tree: Value,
}

impl YamlFile {
    /// 1-based (line, column) of a dotted key, or of its deepest ancestor that can be found.
    pub fn locate(&self, keys: &[&str]) -> Option<(usize, usize)> {
        find_key_or_parent(&self.source, keys)
    }
}

/// Reads and parses `path`; `what` names the file's role in errors ("task file", "model config").
pub fn read_yaml(path: &Path, what: &str) -> Result<YamlFile, ConfigError> {
    let source =
        std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, format!("cannot read the {what}: {e}")))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&source).map_err(|e| {
        ConfigError::new(path, format!("not valid YAML: {e}")).at(e.location().map(|l| (l.line(), l.column())))
    })?;
    Ok(YamlFile { source, tree: yaml_to_json(yaml) })
}

pub(crate) fn yaml_to_json(v: serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Interpolates `${VAR}` in every string value of `v` (keys are left alone); a missing variable
/// is an error naming the file, the line and the dotted key that holds it.
pub(crate) fn interpolate_tree(v: &mut Value, file: &Path, yaml_source: &str, vars: &Vars) -> Result<(), ConfigError> {
    walk(v, &mut Vec::new(), file, yaml_source, vars)
}

fn walk(v: &mut Value, path: &mut Vec<String>, file: &Path, source: &str, vars: &Vars) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains('$') => {
            *s = interpolate(s, &|k| vars.get(k)).map_err(|var| {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                ConfigError::new(file, vars.missing_message(var.name())).key(keys.join(".")).at(find_key_or_parent(source, &keys))
            })?;
        }
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                path.push(k.clone());
                walk(child, path, file, source, vars)?;
                path.pop();
            }
        }
        Value::Array(a) => {
            for child in a.iter_mut() {
                walk(child, path, file, source, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A short rendering of a value for error messages (`"lots"`, `3`, `a list`, `a mapping`).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}
