//! Typed reads of one mapping's keys, with errors that name the file, line and dotted key.
//!
//! Used for sections whose shape depends on another key (distillation steps) and for files we
//! keep as JSON (prompt configs), where a derive would not know which keys apply.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::yaml::{describe, YamlFile};

/// A mapping at `prefix` inside `yaml`.
pub struct Fields<'a> {
    pub file: &'a Path,
    pub yaml: &'a YamlFile,
    pub prefix: Vec<String>,
    pub map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(file: &'a Path, yaml: &'a YamlFile, prefix: &[&str], map: &'a Map<String, Value>) -> Self {
        Fields { file, yaml, prefix: prefix.iter().map(|s| s.to_string()).collect(), map }
    }

    /// The dotted key of `key` in this mapping.
    pub fn dotted(&self, key: &str) -> String {
        let mut p = self.prefix.clone();
        p.push(key.to_string());
        p.join(".")
    }

    /// An error about `key`, located at its line (or its section's).
    pub fn error(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let mut p: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        p.push(key);
        ConfigError::new(self.file, msg).key(p.join(".")).at(self.yaml.locate(&p))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, want: &str, found: &Value) -> ConfigError {
        self.error(key, format!("must be {want}, found {}", describe(found)))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Numbers and booleans are fine where text is wanted (`system_prompt: 42` is odd, not wrong).
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn required_string(&self, key: &str, what: &str) -> Result<String, ConfigError> {
        self.string(key)?.filter(|s| !s.is_empty()).ok_or_else(|| self.error(key, format!("missing: {what}")))
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(v) => Err(self.wrong(key, "true or false", v)),
        }
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            // `${CONCURRENCY:-20}` interpolates to a string; accept digits.
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(v) => Err(self.wrong(key, "a whole number (0 or more)", v)),
        }
    }

    pub fn positive(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.uint(key)? {
            None => Ok(default),
            Some(0) => Err(self.error(key, "must be at least 1, found 0")),
            Some(n) => Ok(n),
        }
    }

    pub fn number(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) if s.trim().parse::<f64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(v) => Err(self.wrong(key, "a number", v)),
        }
    }

    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong(key, "a list of strings", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.wrong(key, "a list of strings", v)),
        }
    }

    pub fn mapping(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.wrong(key, "a mapping", v)),
        }
    }

    /// A required path, resolved like every task path (see [`crate::paths::resolve`]).
    pub fn path(&self, key: &str, what: &str, base: &Path) -> Result<PathBuf, ConfigError> {
        Ok(crate::paths::resolve(&self.required_string(key, what)?, base))
    }
}
