//! `builtin:template-prompt`: builds `[system?, user]` messages from the reference prompt config
//! (`prompt_template.system_text`, `prompt_template.prompt_text` with `{field}` placeholders and
//! `{{`/`}}` escapes).
//!
//! Unlike the reference, the placeholder named by `prompt_format_key` is always filled from
//! `record[input_key]`: a record field of the same name never silently replaces it.

mod template;

use modelcall_plugin_sdk::prompt_builder::{ChatMessage, Prompt, PromptBuilder};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;

pub use template::{Segment, Template};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplateConfig {
    #[serde(default)]
    pub system_text: Option<String>,
    pub prompt_text: String,
}

/// The prompt config file as JSON. Other top-level keys (e.g. `output_config`, read by the
/// score parser) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct Config {
    pub prompt_template: PromptTemplateConfig,
    /// Field of the record that fills the `prompt_format_key` placeholder.
    #[serde(default)]
    pub input_key: Option<String>,
    /// Placeholder filled from `record[input_key]`.
    #[serde(default)]
    pub prompt_format_key: Option<String>,
}

pub struct TemplatePrompt {
    system: Option<String>,
    template: Template,
    input_key: Option<String>,
    format_key: Option<String>,
}

impl PromptBuilder for TemplatePrompt {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let template = Template::parse(&config.prompt_template.prompt_text).map_err(|e| Error::invalid_config(format!("prompt_template.prompt_text: {e}")))?;
        let format_key = match (&config.input_key, config.prompt_format_key) {
            (Some(_), None) => config.input_key.clone(),
            (_, k) => k,
        };
        Ok(TemplatePrompt { system: config.prompt_template.system_text.filter(|s| !s.is_empty()), template, input_key: config.input_key, format_key })
    }

    fn config_schema() -> Option<Value> {
        Some(json!({
            "type": "object",
            "required": ["prompt_template"],
            "properties": {
                "prompt_template": {
                    "type": "object",
                    "required": ["prompt_text"],
                    "additionalProperties": false,
                    "properties": {
                        "system_text": {"type": "string", "description": "sent verbatim as the system message when non-empty"},
                        "prompt_text": {"type": "string", "description": "user message; {field} placeholders, {{ and }} for literal braces"}
                    }
                },
                "input_key": {"type": "string"},
                "prompt_format_key": {"type": "string"}
            }
        }))
    }

    fn build(&mut self, _ctx: &Context, record: Value) -> Result<Prompt, Error> {
        let Value::Object(fields) = &record else {
            return Err(Error::invalid_input("the record is not a JSON object"));
        };
        let text = self.template.render(|name| {
            if let (Some(fk), Some(ik)) = (&self.format_key, &self.input_key) {
                if name == fk {
                    return fields.get(ik).map(render_value);
                }
            }
            fields.get(name).map(render_value)
        });
        let text = text.map_err(|missing| {
            let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
            names.truncate(30);
            let source = match (&self.format_key, &self.input_key) {
                (Some(fk), Some(ik)) if *fk == missing => format!("`{ik}` (data.input_key, for placeholder {{{missing}}})"),
                _ => format!("`{missing}`"),
            };
            Error::invalid_input(format!("the record has no field {source} needed by the prompt template; its fields are: {}", names.join(", ")))
        })?;
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(text));
        Ok(Prompt { messages, ..Prompt::default() })
    }
}

/// How a field's value reads inside a prompt: strings verbatim, null as nothing, everything
/// else as compact JSON (so numbers and booleans read as `4` and `true`).
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

modelcall_plugin_sdk::register_prompt_builder!(TemplatePrompt);

#[cfg(test)]
mod tests {
    use super::*;

    fn config_from_yaml(yaml: &str) -> Config {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap()
    }

    fn build(cfg: Config, record: Value) -> Result<Prompt, Error> {
        TemplatePrompt::new(cfg)?.build(&Context::for_test("t", "r1", 1), record)
    }

    #[test]
    fn the_shipped_repo_packaging_prompt_renders_with_escapes() {
        let cfg = config_from_yaml(include_str!("../../../configs/prompts/repo_packaging_quality_v1.yaml"));
        let record = json!({
            "repo_full_name": "tokio-rs/bytes", "language": "Rust", "files_with_content": 40, "total_lines": 14439,
            "has_readme": true, "has_license": true, "has_gitignore": false, "content_truncate_32k": "<file path=\"src/lib.rs\">…</file>"
        });
        let p = build(cfg, record).unwrap();
        assert_eq!(p.messages.len(), 2);
        assert!(p.messages[0].content.starts_with("You are a senior software engineer"));
        let user = &p.messages[1].content;
        assert!(user.contains("Repository: tokio-rs/bytes"), "{user}");
        assert!(user.contains("total lines: 14439"));
        assert!(user.contains("README present: true"));
        assert!(user.contains("{\"overall_score\": 4,"), "doubled braces become single: {user}");
        assert!(user.contains("<file path=\"src/lib.rs\">…</file>"));
    }

    #[test]
    fn the_shipped_english_prompt_fills_text() {
        let cfg = config_from_yaml(include_str!("../../../configs/prompts/en_corpus_quality_v1.yaml"));
        let p = build(cfg, json!({"text": "A river carries sediment."})).unwrap();
        assert!(p.messages[1].content.contains("A river carries sediment."));
        assert!(p.messages[1].content.contains("{\"score\": 3,"));
    }

    #[test]
    fn a_missing_field_is_invalid_input_naming_it() {
        let cfg = config_from_yaml("prompt_template:\n  prompt_text: \"{title}: {body}\"\n");
        let e = build(cfg, json!({"title": "x", "other": 1})).unwrap_err();
        assert_eq!(e.kind, modelcall_plugin_sdk::ErrorKind::InvalidInput);
        assert!(e.message.contains("`body`") && e.message.contains("title, other") || e.message.contains("other, title"), "{}", e.message);
    }

    #[test]
    fn the_format_key_is_never_overwritten_by_a_same_named_field() {
        let cfg = config_from_yaml("prompt_template:\n  prompt_text: \"Judge: {text}\"\ninput_key: content_truncate_32k\nprompt_format_key: text\n");
        let p = build(cfg, json!({"text": "THE FULL UNTRUNCATED TEXT", "content_truncate_32k": "truncated"})).unwrap();
        assert_eq!(p.messages[0].content, "Judge: truncated");
        // With only input_key, the placeholder of the same name is filled from it.
        let cfg = config_from_yaml("prompt_template:\n  prompt_text: \"{text}\"\ninput_key: text\n");
        assert_eq!(build(cfg, json!({"text": "t"})).unwrap().messages[0].content, "t");
    }

    #[test]
    fn bad_templates_are_invalid_config() {
        for bad in ["{unclosed", "stray } brace", "{}", "{a{b}"] {
            let cfg = config_from_yaml(&format!("prompt_template:\n  prompt_text: {:?}\n", bad));
            let e = TemplatePrompt::new(cfg).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.kind, modelcall_plugin_sdk::ErrorKind::InvalidConfig, "{bad}");
        }
        let v = json!({"prompt_template": {"prompt_text": "x", "sytem_text": "typo"}});
        assert!(serde_json::from_value::<Config>(v).is_err(), "unknown keys inside prompt_template are rejected");
    }

    #[test]
    fn values_render_naturally_and_empty_system_is_dropped() {
        let cfg = config_from_yaml("prompt_template:\n  system_text: \"\"\n  prompt_text: \"{s}|{n}|{b}|{z}|{a}|{o}\"\n");
        let p = build(cfg, json!({"s": "x", "n": 2.5, "b": false, "z": null, "a": [1, "y"], "o": {"k": 1}})).unwrap();
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0].content, "x|2.5|false||[1,\"y\"]|{\"k\":1}");
    }
}
