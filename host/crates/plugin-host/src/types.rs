//! The plain data types of the public API: what a plugin is asked to do and what it returns.
//! They mirror the WIT types but are independent of any bindings track, so the host code
//! that uses them does not change when a new WIT track is added.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::errors::ErrorKind;
use crate::limits::Limits;

/// The WIT tracks this host loads (`modelcall:plugin@0.1.x` and `@0.2.x`), oldest first. A
/// task may mix plugins of different tracks.
pub const SUPPORTED_TRACKS: &[&str] = &["0.1", "0.2"];

/// The track of `wit/plugin.wit`, which the SDKs and `modelcall plugin new` build against.
pub const CURRENT_TRACK: &str = "0.2";

/// What a plugin is loaded as. The YAML spells it `preprocessor`, `prompt-builder`, `score-parser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Preprocessor,
    PromptBuilder,
    ScoreParser,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Preprocessor, Role::PromptBuilder, Role::ScoreParser];

    /// The WIT interface name the component must export for this role.
    pub fn interface(self) -> &'static str {
        match self {
            Role::Preprocessor => "preprocessor",
            Role::PromptBuilder => "prompt-builder",
            Role::ScoreParser => "score-parser",
        }
    }

    pub fn from_interface(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.interface() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::from_interface(s).ok_or_else(|| format!("unknown plugin role `{s}`; expected one of: preprocessor, prompt-builder, score-parser"))
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.interface())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// `builtin:<name>`: a component embedded in this binary (see [`crate::builtins`]).
    Builtin(String),
    /// A `.wasm` component on disk.
    Path(PathBuf),
}

impl PluginSource {
    /// `builtin:<name>` or a path.
    pub fn parse(s: &str) -> PluginSource {
        match s.strip_prefix("builtin:") {
            Some(name) => PluginSource::Builtin(name.to_string()),
            None => PluginSource::Path(PathBuf::from(s)),
        }
    }

    /// A short name for messages: the built-in's name or the file name.
    pub fn display_name(&self) -> String {
        match self {
            PluginSource::Builtin(n) => format!("builtin:{n}"),
            PluginSource::Path(p) => p.display().to_string(),
        }
    }
}

impl FromStr for PluginSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(PluginSource::parse(s))
    }
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// Everything needed to load one plugin for one task.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub source: PluginSource,
    pub role: Role,
    /// The plugin's `config` block; passed to `init` as JSON text.
    pub config: serde_json::Value,
    pub limits: Limits,
    /// Lent to the plugin through `call-context.task-name`.
    pub task_name: String,
}

impl PluginSpec {
    pub fn new(source: PluginSource, role: Role) -> Self {
        PluginSpec { source, role, config: serde_json::Value::Object(Default::default()), limits: Limits::default(), task_name: String::new() }
    }
}

/// Provenance and shape of a loaded plugin (what `modelcall plugin check` prints).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginDescription {
    /// Where it came from (`builtin:json-score` or the path).
    pub source: String,
    pub role: String,
    /// From `plugin-info` returned by `init`.
    pub name: String,
    pub version: String,
    /// The WIT package version the component exports, e.g. `0.1.0`.
    pub wit_version: String,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    pub size_bytes: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// JSON Schema of the config block, if the plugin publishes one.
    pub config_schema: Option<String>,
}

/// What a preprocessor is given.
#[derive(Debug, Clone)]
pub enum PreprocessInput {
    /// One record, as JSON object text.
    Record(String),
    /// One whole raw file read by the host.
    File { path: String, bytes: Vec<u8> },
}

/// What a preprocessor decided.
#[derive(Debug, Clone, PartialEq)]
pub enum PreprocessOutcome {
    /// Items to pass on: one, several or none; each a record (JSON object text) or, from
    /// track 0.2 on, the error that stands in for one item (one bad row of a file).
    Keep(Vec<Result<String, ItemError>>),
    /// Drop the input with a reason.
    Skip(String),
}

impl PreprocessOutcome {
    /// A `keep` of records only (what a 0.1 plugin can return).
    pub fn keep_records(records: Vec<String>) -> Self {
        PreprocessOutcome::Keep(records.into_iter().map(Ok).collect())
    }
}

/// One item of a preprocessor's `keep` that failed on its own; the other items are kept.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemError {
    pub kind: ErrorKind,
    pub message: String,
    /// Where in the input, as the plugin put it (e.g. `line 12`).
    pub location: Option<String>,
}

impl ItemError {
    /// The source line the location names, if it names one (see [`location_line`]).
    pub fn line(&self) -> Option<u64> {
        self.location.as_deref().and_then(location_line)
    }
}

/// The line number an item error's location names: `line 12` (anywhere in it, any case, e.g.
/// `data.csv line 12` or `line 12, column 3`) or `path:12` / `path:12:3` at its end. The SDKs'
/// `ItemError::at_line` / `.at_line(n)` write `line N`. `None` for any other location.
pub fn location_line(location: &str) -> Option<u64> {
    let lower = location.to_ascii_lowercase();
    for (i, _) in lower.match_indices("line") {
        let word_start = lower[..i].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        let after = &lower[i + 4..];
        if !word_start || !after.starts_with([' ', ':', '#']) {
            continue;
        }
        let digits: String = after.trim_start_matches([' ', ':', '#']).chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
    }
    // `path:12` or `path:12:3` at the end.
    let mut parts = location.trim().rsplitn(3, ':');
    let last = parts.next()?;
    let prev = parts.next();
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (prev, parts.next()) {
        (Some(line), Some(path)) if is_num(line) && is_num(last) && !path.is_empty() => line.parse().ok(),
        (Some(path), _) if is_num(last) && !path.is_empty() && !path.ends_with(char::is_whitespace) => last.parse().ok(),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

/// A prompt built by a prompt builder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prompt {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
    /// JSON Schema text for structured output.
    pub response_schema: Option<String>,
}

/// A score parsed out of a completion.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Score {
    pub value: f64,
    pub label: Option<String>,
    pub rationale: Option<String>,
    /// A JSON object (text) whose keys the host merges into the output row.
    pub extra: Option<String>,
}

/// A score parser's verdict that the completion is unusable.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "lowercase")]
pub enum ParseFailure {
    /// Ask the model again, appending this hint as a user turn.
    Retry(String),
    /// Give up on this record.
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_parses_yaml_spellings() {
        assert_eq!("prompt-builder".parse::<Role>().unwrap(), Role::PromptBuilder);
        assert_eq!("score-parser".parse::<Role>().unwrap(), Role::ScoreParser);
        let err = "scorer".parse::<Role>().unwrap_err();
        assert!(err.contains("score-parser"), "{err}");
    }

    #[test]
    fn locations_name_their_line() {
        for (loc, line) in [
            ("line 12", Some(12)),
            ("Line 3", Some(3)),
            ("data.csv line 7", Some(7)),
            ("line 4, column 2", Some(4)),
            ("rows.csv:9", Some(9)),
            ("rows.csv:9:3", Some(9)),
            ("line: 5", Some(5)),
            ("split[1]", None),
            ("files[3] src/main.rs", None),
            ("pipeline 4", None),
            ("outline 4", None),
            ("line", None),
            ("12", None),
            ("a :12", None),
        ] {
            assert_eq!(location_line(loc), line, "{loc}");
        }
        let e = ItemError { kind: ErrorKind::InvalidInput, message: "m".into(), location: Some("x.csv line 3".into()) };
        assert_eq!(e.line(), Some(3));
    }

    #[test]
    fn source_parses_builtin_or_path() {
        assert_eq!(PluginSource::parse("builtin:json-score"), PluginSource::Builtin("json-score".into()));
        assert_eq!(PluginSource::parse("a/b.wasm"), PluginSource::Path("a/b.wasm".into()));
    }
}
