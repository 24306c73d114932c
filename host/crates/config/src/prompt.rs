//! The prompt config file (reference §4.1): kept whole as JSON for the prompt-builder and
//! score-parser plugins (which may read keys of their own, e.g. `output_config.checks`), with
//! typed views of the reference's keys, whose shapes are checked at load time.
//!
//! Prompt configs are not `${VAR}`-interpolated: their text is a template full of `{…}` and `$`.
//!
//! The keys the built-in plugins read are checked like a task file's (unknown keys are errors
//! naming the file, line and dotted key, with a suggestion), and so is the template's syntax;
//! a section read by a plugin of the task's own is left to that plugin.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{unknown_key, ConfigError};
use crate::fields::Fields;
use crate::locate::find_key;
use crate::yaml::{read_yaml, YamlFile};

/// Which parts of a prompt config the built-in plugins read, so whose keys (and template syntax)
/// [`PromptConfig::load_checked`] checks. A part read by a task's own plugin is free-form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptChecks {
    /// `builtin:template-prompt` builds the prompts from the whole file: the top-level keys, the
    /// keys of `prompt_template` and the syntax of `prompt_template.prompt_text` are checked.
    pub template_prompt: bool,
    /// `builtin:json-score` parses replies with `output_config`: its keys, and those of each
    /// `output_config.checks.<key>`, are checked.
    pub json_score: bool,
}

impl PromptChecks {
    /// Both built-ins (a task without its own prompt-builder or score-parser plugin).
    pub const BUILTIN: PromptChecks = PromptChecks { template_prompt: true, json_score: true };
}

/// Known keys of the prompt-config section at `path` (as the built-in plugins read them); `None`
/// for free-form sections (`json_default_values`, the key names under `checks`).
pub fn known_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        // input_key / prompt_format_key: read by template-prompt (the task's data.* override them).
        [] => &["prompt_template", "output_config", "input_key", "prompt_format_key"],
        ["prompt_template"] => &["system_text", "prompt_text"],
        ["output_config"] => &["require_json", "json_keys", "json_key_must_exists", "json_default_values", "score_key", "checks"],
        ["output_config", "checks", _] => &["type", "min", "max", "enum"],
        _ => return None,
    })
}

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
    /// Loads a prompt config read by both built-in plugins (see [`PromptChecks::BUILTIN`]).
    pub fn load(path: &Path) -> Result<PromptConfig, ConfigError> {
        Self::load_checked(path, PromptChecks::BUILTIN)
    }

    /// Loads a prompt config, checking the keys of the parts `checks` names.
    pub fn load_checked(path: &Path, checks: PromptChecks) -> Result<PromptConfig, ConfigError> {
        let yaml = read_yaml(path, "prompt config")?;
        let Some(root) = yaml.tree.as_object() else {
            return Err(ConfigError::new(path, "a prompt config must be a mapping with prompt_template (and output_config)"));
        };
        check_keys(&yaml, path, checks)?;
        let top = Fields::new(path, &yaml, &[], root);
        let template = top
            .mapping("prompt_template")?
            .ok_or_else(|| top.error("prompt_template", "missing: prompt_template with prompt_text (and optionally system_text)"))?;
        let t = Fields::new(path, &yaml, &["prompt_template"], template);
        let prompt_text = t.required_string("prompt_text", "the prompt template text")?;
        let system_text = t.string("system_text")?;
        if checks.template_prompt {
            if let Err(e) = scan_template(&prompt_text).1 {
                let before = &prompt_text[..e.byte];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                return Err(t.error(
                    "prompt_text",
                    format!("not a valid template: {} at line {line}, column {column} of the text; write {{{{ and }}}} for literal braces", e.message),
                ));
            }
        }
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

    /// The `{name}` placeholders of the user prompt (`prompt_template.prompt_text`), in order of
    /// first use, each once, as `builtin:template-prompt` reads them: `{{` and `}}` are literal
    /// braces, names are trimmed (`{ text }` is `text`). `system_text` is sent verbatim (not a
    /// template), and the plugin fills no names of its own: each placeholder comes from the record
    /// (see [`PromptConfig::placeholders_from_record`] for the one `input_key` fills). A template
    /// the plugin would reject (checked at load unless a custom prompt-builder reads the file)
    /// yields the placeholders before the fault.
    pub fn placeholders(&self) -> Vec<String> {
        scan_template(&self.prompt_text).0
    }

    /// [`PromptConfig::placeholders`] filled from a record field of the same name: all but the
    /// `prompt_format_key` placeholder, which `builtin:template-prompt` fills from
    /// `record[input_key]` when both are set (the record's `input_key` field is checked apart).
    /// `input_key` / `prompt_format_key` are the task's `data.*` values, which override the
    /// prompt file's own top-level keys as in the run plan.
    pub fn placeholders_from_record(&self, input_key: Option<&str>, prompt_format_key: Option<&str>) -> Vec<String> {
        let own = |k: &str| self.raw.get(k).and_then(Value::as_str).map(str::to_string);
        let input_key = input_key.map(str::to_string).or_else(|| own("input_key"));
        let format_key = prompt_format_key.map(str::to_string).or_else(|| own("prompt_format_key"));
        // As the plugin: with input_key alone, the placeholder of that name is filled from it.
        let format_key = format_key.or_else(|| input_key.clone());
        let from_input = input_key.and(format_key);
        self.placeholders().into_iter().filter(|p| Some(p) != from_input.as_ref()).collect()
    }
}

/// The `placeholders` no field of a record can fill (`record_fields`: the record's field names),
/// in their order: non-empty means the prompt cannot be built for that record.
pub fn missing_placeholders(placeholders: &[String], record_fields: &[&str]) -> Vec<String> {
    placeholders.iter().filter(|p| !record_fields.contains(&p.as_str())).cloned().collect()
}

/// A template fault, as `builtin:template-prompt` reports it at init.
#[derive(Debug, Clone, PartialEq)]
struct TemplateFault {
    /// Byte offset of the brace at fault.
    byte: usize,
    message: &'static str,
}

/// The placeholder names of a `{field}` template (in order of first use, each once) and whether
/// it parses; the same grammar as `plugins/template-prompt/src/template.rs`. On a fault, the
/// names before it.
fn scan_template(text: &str) -> (Vec<String>, Result<(), TemplateFault>) {
    let mut names: Vec<String> = Vec::new();
    let mut chars = text.char_indices().peekable();
    let fault = |byte, message| Err(TemplateFault { byte, message });
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some((_, '}')) => break,
                        Some((_, '{')) => return (names, fault(i, "a `{` inside a placeholder")),
                        Some((_, ch)) => name.push(ch),
                        None => return (names, fault(i, "an unclosed `{`")),
                    }
                }
                let name = name.trim().to_string();
                if name.is_empty() {
                    return (names, fault(i, "an empty placeholder `{}`"));
                }
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            '}' => return (names, fault(i, "a single `}`")),
            _ => {}
        }
    }
    (names, Ok(()))
}

/// Unknown keys in the sections the built-in plugins read.
fn check_keys(yaml: &YamlFile, file: &Path, checks: PromptChecks) -> Result<(), ConfigError> {
    let mut sections: Vec<Vec<&str>> = Vec::new();
    if checks.template_prompt {
        sections.push(vec![]);
        sections.push(vec!["prompt_template"]);
    }
    if checks.json_score {
        sections.push(vec!["output_config"]);
        if let Some(Value::Object(c)) = yaml.tree.pointer("/output_config/checks") {
            sections.extend(c.keys().map(|k| vec!["output_config", "checks", k.as_str()]));
        }
    }
    for section in sections {
        let pointer: String = section.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect();
        let (Some(Value::Object(map)), Some(known)) = (yaml.tree.pointer(&pointer), known_keys(&section)) else { continue };
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                let full: Vec<&str> = section.iter().copied().chain([k.as_str()]).collect();
                return Err(unknown_key(file, &section, k, known, find_key(&yaml.source, &full).or_else(|| yaml.locate(&section))));
            }
        }
    }
    Ok(())
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

    #[test]
    fn placeholders_follow_the_template_prompt_grammar() {
        let p = load("prompt_template:\n  system_text: \"You judge {not_a_placeholder}\"\n  prompt_text: |\n    Repo {repo} ({ language }) {repo}\n    {{\"score\": 3}} }}{{ {{literal}}\n    {text}\n").unwrap();
        assert_eq!(p.placeholders(), vec!["repo", "language", "text"], "system_text is verbatim; {{/}} are literal; names trimmed, once each");
        assert!(load("prompt_template:\n  prompt_text: no placeholders {{at all}}\n").unwrap().placeholders().is_empty());
        // The plugin's own test case.
        assert_eq!(scan_template("a {x} {{literal}} {y}}}").0, vec!["x", "y"]);
        for bad in ["{unclosed", "stray } brace", "{}", "{a{b}", "{ }"] {
            assert!(scan_template(bad).1.is_err(), "{bad}");
        }
        assert_eq!(scan_template("{a} then {b").0, vec!["a"], "the names before the fault");
    }

    #[test]
    fn missing_placeholders_are_those_no_field_fills() {
        let ph: Vec<String> = ["title", "body", "lang"].map(String::from).to_vec();
        assert_eq!(missing_placeholders(&ph, &["title", "other", "lang"]), vec!["body"]);
        assert!(missing_placeholders(&ph, &["lang", "body", "title"]).is_empty());
        assert_eq!(missing_placeholders(&ph, &[]), ph);
        assert!(missing_placeholders(&[], &["x"]).is_empty());
    }

    #[test]
    fn the_format_key_placeholder_comes_from_input_key() {
        let p = load("prompt_template:\n  prompt_text: \"{repo}: {text}\"\n").unwrap();
        assert_eq!(p.placeholders_from_record(Some("content"), Some("text")), vec!["repo"]);
        assert_eq!(p.placeholders_from_record(None, Some("text")), vec!["repo", "text"], "without input_key it is an ordinary field");
        assert_eq!(p.placeholders_from_record(Some("text"), None), vec!["repo"], "input_key alone fills its own name");
        assert_eq!(p.placeholders_from_record(Some("repo"), None), vec!["text"]);
        assert_eq!(p.placeholders_from_record(None, None), vec!["repo", "text"]);
        // The prompt file's own keys count when the task sets none.
        let p = load("prompt_template:\n  prompt_text: \"{repo}: {text}\"\ninput_key: content\nprompt_format_key: text\n").unwrap();
        assert_eq!(p.placeholders_from_record(None, None), vec!["repo"]);
        assert_eq!(p.placeholders_from_record(None, Some("repo")), vec!["text"], "the task's data.prompt_format_key wins");
    }

    #[test]
    fn a_bad_template_is_a_load_error_at_its_key() {
        let e = load("output_config:\n  require_json: true\nprompt_template:\n  prompt_text: |\n    fine {x}\n    é score: 3}\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("prompt_template.prompt_text")), "{e}");
        assert!(e.message.contains("a single `}` at line 2, column 11 of the text") && e.message.contains("{{ and }}"), "{e}");
        // A JSON example with single braces parses as a placeholder named `"score": 3` (as in the
        // plugin), which no record fills: the run-start check names it.
        let p = load("prompt_template:\n  prompt_text: \"{text} {\\\"score\\\": 3}\"\n").unwrap();
        assert_eq!(missing_placeholders(&p.placeholders(), &["text"]), vec!["\"score\": 3"]);
        // A custom prompt-builder reads the file its own way.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "prompt_template:\n  prompt_text: \"{\\\"score\\\": 3}\"\n  style: terse\nmine: 1\n").unwrap();
        let custom = PromptChecks { template_prompt: false, json_score: true };
        assert!(PromptConfig::load_checked(&path, custom).is_ok());
        assert!(PromptConfig::load(&path).is_err());
    }

    #[test]
    fn unknown_keys_name_file_line_key_and_suggest() {
        let e = load("prompt_template:\n  sytem_text: s\n  prompt_text: x\n").unwrap_err();
        assert!(e.file.ends_with("p.yaml"));
        assert_eq!((e.line, e.column, e.key.as_deref()), (Some(2), Some(3), Some("prompt_template.sytem_text")), "{e}");
        assert_eq!(e.suggestion.as_deref(), Some("prompt_template.system_text"));
        assert!(e.to_string().contains(":2:3: `prompt_template.sytem_text`: unknown key in `prompt_template`"), "{e}");
        // A misspelt section is named as such, not reported as a missing prompt_template.
        let e = load("# a prompt\npromt_template:\n  prompt_text: x\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref(), e.suggestion.as_deref()), (Some(2), Some("promt_template"), Some("prompt_template")), "{e}");
        let e = load("prompt_template:\n  prompt_text: x\noutput_config:\n  json_keys: [score]\n  requre_json: false\n").unwrap_err();
        assert_eq!((e.line, e.suggestion.as_deref()), (Some(5), Some("output_config.require_json")), "{e}");
        let e = load("prompt_template:\n  prompt_text: x\noutput_config:\n  checks:\n    score: {type: integer, maximum: 5}\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(5), Some("output_config.checks.score.maximum")), "{e}");
        let e = load("prompt_template:\n  prompt_text: x\nunrelated: 1\n").unwrap_err();
        assert_eq!((e.key.as_deref(), e.suggestion.as_deref()), (Some("unrelated"), None), "{e}");
        // Free-form parts: default values' names, check names; input_key/prompt_format_key are read.
        load("prompt_template:\n  prompt_text: x\ninput_key: a\nprompt_format_key: b\noutput_config:\n  json_default_values: {anything: 1}\n  checks: {any_name: {type: string, enum: [a]}}\n  score_key: s\n").unwrap();
    }

    #[test]
    fn the_shipped_prompts_load_with_every_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../configs/prompts");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = PromptConfig::load(&e.unwrap().path()).unwrap_or_else(|e| panic!("{e}"));
            assert!(!p.placeholders().is_empty(), "{}", p.path.display());
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn a_duplicate_key_in_a_prompt_config_is_an_error() {
        let e = load("prompt_template:\n  prompt_text: a\n  system_text: s\n  prompt_text: b\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("prompt_template.prompt_text")), "{e}");
        assert!(e.message.contains("line 2"), "{e}");
    }
}
