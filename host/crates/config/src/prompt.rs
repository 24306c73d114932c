//! The prompt config file (reference §4.1): kept whole as JSON for the prompt-builder and
//! score-parser plugins (which may read keys of their own, e.g. `output_config.checks`), with
//! typed views of the reference's keys, whose shapes are checked at load time.
//!
//! Prompt configs are not `${VAR}`-interpolated: their text is a template full of `{…}` and `$`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::fields::Fields;
use crate::yaml::read_yaml;

#[derive(Debug, Clone)]
pub struct PromptConfig {
    pub path: PathBuf,
    /// The whole file as JSON.
    pub raw: Value,
    pub system_text: Option<String>,
    /// A `str.format_map`-style template: `{field}` placeholders, `{{`/`}}` literal braces.
    pub prompt_text: String,
    pub output: OutputConfig,
}

/// `output_config` (reference §4.1, §4.4).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    pub require_json: bool,
    /// Keys kept in the result, in this order.
    pub json_keys: Vec<String>,
    /// Keys that must be present or parsing fails.
    pub json_key_must_exists: Vec<String>,
    /// Values for keys the reply lacks.
    pub json_default_values: Map<String, Value>,
}

impl PromptConfig {
    pub fn load(path: &Path) -> Result<PromptConfig, ConfigError> {
        let yaml = read_yaml(path, "prompt config")?;
        let Some(root) = yaml.tree.as_object() else {
            return Err(ConfigError::new(path, "a prompt config must be a mapping with prompt_template (and output_config)"));
        };
        let top = Fields::new(path, &yaml, &[], root);
        let template = top
            .mapping("prompt_template")?
            .ok_or_else(|| top.error("prompt_template", "missing: prompt_template with prompt_text (and optionally system_text)"))?;
        let t = Fields::new(path, &yaml, &["prompt_template"], template);
        let prompt_text = t.required_string("prompt_text", "the prompt template text")?;
        let system_text = t.string("system_text")?;
        let empty = Map::new();
        let oc = top.mapping("output_config")?.unwrap_or(&empty);
        let o = Fields::new(path, &yaml, &["output_config"], oc);
        let output = OutputConfig {
            require_json: o.bool("require_json", true)?,
            json_keys: o.string_list("json_keys")?.unwrap_or_default(),
            json_key_must_exists: o.string_list("json_key_must_exists")?.unwrap_or_default(),
            json_default_values: o.mapping("json_default_values")?.cloned().unwrap_or_default(),
        };
        let raw = yaml.tree.clone();
        Ok(PromptConfig { path: path.to_path_buf(), raw, system_text, prompt_text, output })
    }

    /// `output_config` as JSON (an empty object when absent), for the score parser.
    pub fn output_config(&self) -> Value {
        self.raw.get("output_config").cloned().unwrap_or_else(|| serde_json::json!({}))
    }

    /// `output_config.require_json`, default true.
    pub fn require_json(&self) -> bool {
        self.output.require_json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<PromptConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, text).unwrap();
        PromptConfig::load(&p)
    }

    #[test]
    fn typed_views_and_raw_extras() {
        let p = load("prompt_template:\n  system_text: sys\n  prompt_text: |\n    Rate {text} $5\n    {{\"score\": 3}}\noutput_config:\n  require_json: true\n  json_keys: [score, tags]\n  json_key_must_exists: [score]\n  json_default_values: {score: 3, tags: []}\n  checks: {score: {type: integer}}\n").unwrap();
        assert_eq!(p.system_text.as_deref(), Some("sys"));
        assert!(p.prompt_text.contains("{text}") && p.prompt_text.contains("{{\"score\": 3}}"));
        assert_eq!(p.output.json_keys, vec!["score", "tags"]);
        assert_eq!(p.output.json_default_values["score"], 3);
        assert_eq!(p.output_config()["checks"]["score"]["type"], "integer");
        let bare = load("prompt_template:\n  prompt_text: hi\n").unwrap();
        assert!(bare.require_json() && bare.output.json_keys.is_empty() && bare.system_text.is_none());
    }

    #[test]
    fn shape_errors_name_line_and_key() {
        let e = load("prompt_template:\n  system_text: s\n").unwrap_err();
        assert!(e.to_string().contains("prompt_template.prompt_text"), "{e}");
        let e = load("prompt_template:\n  prompt_text: x\noutput_config:\n  require_json: yes please\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.to_string().contains("output_config.require_json"), "{e}");
        let e = load("prompt_template:\n  prompt_text: x\noutput_config:\n  json_keys: score\n").unwrap_err();
        assert!(e.to_string().contains(":4:") && e.to_string().contains("a list of strings"), "{e}");
        let e = load("prompt_template:\n  prompt_text: x\noutput_config:\n  json_default_values: [1]\n").unwrap_err();
        assert!(e.to_string().contains("must be a mapping"), "{e}");
        assert!(load("prompt_template: [a]\n").unwrap_err().to_string().contains("prompt_template"));
    }
}
