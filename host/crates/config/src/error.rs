//! Config errors a user can act on: file, line, dotted key, what is wrong, what would be right.

use std::path::{Path, PathBuf};

/// Shown as `file:line:column: `key`: message (did you mean `suggestion`?)`, each optional part
/// only when known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}: {}{message}{}", .file.display(), location(.line, .column), key_prefix(.key), did_you_mean(.suggestion))]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the key, e.g. `concurrency.max_concurrent_requests`.
    /// (`Box<str>`, as `suggestion`: the error stays under clippy's 128-byte `Result` line.)
    pub key: Option<Box<str>>,
    pub message: String,
    pub suggestion: Option<Box<str>>,
}

impl ConfigError {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError { file: file.into(), line: None, column: None, key: None, message: message.into(), suggestion: None }
    }
    pub fn at(mut self, line: Option<(usize, usize)>) -> Self {
        if let Some((l, c)) = line {
            self.line = Some(l);
            self.column = Some(c);
        }
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into().into_boxed_str());
        self
    }
    pub fn suggest(mut self, s: Option<String>) -> Self {
        self.suggestion = s.map(String::into_boxed_str);
        self
    }
}

/// An unknown key `key` in the section at `section` (its parent's dotted segments; empty for the
/// top level): lists the `known` keys and suggests the closest as a full dotted key. `at` is the
/// key's line (or its section's) when known.
pub fn unknown_key(file: &Path, section: &[&str], key: &str, known: &[&str], at: Option<(usize, usize)>) -> ConfigError {
    let where_ = if section.is_empty() { "at the top level".to_string() } else { format!("in `{}`", section.join(".")) };
    let dotted = |k: &str| section.iter().copied().chain([k]).collect::<Vec<_>>().join(".");
    ConfigError::new(file, format!("unknown key {where_}; known keys: {}", known.join(", ")))
        .key(dotted(key))
        .at(at)
        .suggest(closest(key, known.iter().copied()).map(|s| dotted(&s)))
}

/// `:line:column`, `:line` or nothing.
fn location(line: &Option<usize>, column: &Option<usize>) -> String {
    match (*line, *column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        (None, _) => String::new(),
    }
}

fn key_prefix(key: &Option<Box<str>>) -> String {
    key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default()
}

fn did_you_mean(suggestion: &Option<Box<str>>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
}

/// Rewrites a serde message into the config's own words: `invalid type: string "lots", expected
/// usize` becomes `must be a whole number (0 or more), found "lots"`.
pub fn humanize_serde(msg: &str) -> String {
    let parse = |rest: &str| -> Option<(String, String)> {
        let (found, expected) = rest.rsplit_once(", expected ")?;
        Some((found_words(found), expected_words(expected)))
    };
    if let Some((found, expected)) = msg.strip_prefix("invalid type: ").and_then(parse) {
        return format!("must be {expected}, found {found}");
    }
    if let Some((found, expected)) = msg.strip_prefix("invalid value: ").and_then(parse) {
        return format!("must be {expected}, found {found}");
    }
    if let Some(field) = msg.strip_prefix("missing field ") {
        return format!("missing: {field} is required");
    }
    msg.to_string()
}

fn found_words(found: &str) -> String {
    let tick = |s: &str| s.trim_matches('`').to_string();
    if let Some(s) = found.strip_prefix("string ") {
        return s.to_string();
    }
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(s) = found.strip_prefix(prefix) {
            return tick(s);
        }
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" | "null" => "nothing (null)".into(),
        other => other.to_string(),
    }
}

fn expected_words(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number (0 or more)".into(),
        "i64" | "i32" | "isize" => "an integer".into(),
        "a nonzero usize" | "a nonzero u64" | "a nonzero u32" => "a positive whole number (1 or more)".into(),
        "f64" | "f32" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        s if s.starts_with("struct ") => "a mapping".into(),
        other => other.to_string(),
    }
}

/// The closest known name to `unknown`, if it is close enough to be a typo.
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), k))
        .filter(|(score, _)| *score > 0.82)
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
        .map(|(_, k)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_config_words() {
        assert_eq!(humanize_serde("invalid type: string \"lots\", expected usize"), "must be a whole number (0 or more), found \"lots\"");
        assert_eq!(humanize_serde("invalid value: integer `-1`, expected u32"), "must be a whole number (0 or more), found -1");
        assert_eq!(humanize_serde("invalid type: sequence, expected a boolean"), "must be a boolean, found a list");
        assert_eq!(humanize_serde("missing field `task_name`"), "missing: `task_name` is required");
        assert_eq!(humanize_serde("something else"), "something else");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(closest("max_concurent_requests", ["max_concurrent_files", "max_concurrent_requests"]), Some("max_concurrent_requests".into()));
        assert_eq!(closest("retyr", ["retry", "data"]), Some("retry".into()));
        assert_eq!(closest("zzz", ["retry", "data"]), None);
    }

    #[test]
    fn unknown_keys_list_the_known_and_suggest_a_full_key() {
        let e = unknown_key(Path::new("p.yaml"), &["prompt_template"], "sytem_text", &["system_text", "prompt_text"], Some((3, 3)));
        assert_eq!(
            e.to_string(),
            "p.yaml:3:3: `prompt_template.sytem_text`: unknown key in `prompt_template`; known keys: system_text, prompt_text (did you mean `prompt_template.system_text`?)"
        );
        let e = unknown_key(Path::new("p.yaml"), &[], "zzz", &["prompt_template"], None);
        assert_eq!(e.to_string(), "p.yaml: `zzz`: unknown key at the top level; known keys: prompt_template");
    }

    #[test]
    fn display_names_file_line_key_and_suggestion() {
        let e = ConfigError::new("t.yaml", "unknown key").at(Some((3, 5))).key("a.b").suggest(Some("a.c".into()));
        assert_eq!(e.to_string(), "t.yaml:3:5: `a.b`: unknown key (did you mean `a.c`?)");
        assert_eq!(ConfigError::new("t.yaml", "bad").to_string(), "t.yaml: bad");
        let e = ConfigError { line: Some(7), ..ConfigError::new("t.yaml", "bad").key("k") };
        assert_eq!(e.to_string(), "t.yaml:7: `k`: bad");
    }
}
