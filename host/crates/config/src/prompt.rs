//! The prompt config file (reference §4.1): kept as JSON for the prompt-builder and
//! score-parser plugins, with typed views of what the host needs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ConfigError;
use crate::locate::find_key_or_parent;
use crate::task::yaml_to_json;

#[derive(Debug, Clone)]
pub struct PromptConfig {
    pub path: PathBuf,
    /// The whole file as JSON.
    pub raw: Value,
}

impl PromptConfig {
    pub fn load(path: &Path) -> Result<PromptConfig, ConfigError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, format!("cannot read the prompt config: {e}")))?;
        let yaml: serde_yaml::Value = serde_yaml::from_str(&source).map_err(|e| {
            ConfigError::new(path, format!("not valid YAML: {e}")).at(e.location().map(|l| (l.line(), l.column())))
        })?;
        let raw = yaml_to_json(yaml);
        let err = |keys: &[&str], msg: &str| ConfigError::new(path, msg).key(keys.join(".")).at(find_key_or_parent(&source, keys));
        if !raw.is_object() {
            return Err(ConfigError::new(path, "a prompt config must be a mapping with prompt_template (and output_config)"));
        }
        match raw.pointer("/prompt_template/prompt_text") {
            Some(Value::String(_)) => {}
            Some(_) => return Err(err(&["prompt_template", "prompt_text"], "must be a string")),
            None => return Err(err(&["prompt_template", "prompt_text"], "missing: the prompt template text")),
        }
        if let Some(oc) = raw.get("output_config") {
            if !oc.is_object() {
                return Err(err(&["output_config"], "must be a mapping"));
            }
            for key in ["json_keys", "json_key_must_exists"] {
                if let Some(v) = oc.get(key) {
                    if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                        return Err(err(&["output_config", key], "must be a list of key names"));
                    }
                }
            }
        }
        Ok(PromptConfig { path: path.to_path_buf(), raw })
    }

    /// `output_config` (an empty object when absent).
    pub fn output_config(&self) -> Value {
        self.raw.get("output_config").cloned().unwrap_or_else(|| serde_json::json!({}))
    }

    /// `output_config.require_json`, default true.
    pub fn require_json(&self) -> bool {
        self.raw.pointer("/output_config/require_json").and_then(Value::as_bool).unwrap_or(true)
    }
}
