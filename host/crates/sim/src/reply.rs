//! Deterministic replies: the same conversation always gets the same answer.
//!
//! Which answer, first match wins:
//!
//! 1. a scripted reply from the `replies=FILE` rules ([`ReplyRules`]) whose regex is found in the
//!    last user message, else that file's `default`;
//! 2. for `response_format: {"type": "json_schema", …}`, a JSON document valid against the
//!    schema ([`crate::schema`]), unfenced, as a real endpoint in structured-output mode sends;
//! 3. when the prompt shows a JSON template (quoted `"key":` patterns, as every scoring prompt
//!    does) and asks for JSON (a ```` ```json ```` block, an object `{"key": …`, or the word
//!    JSON), a fenced JSON object with those keys: integers 1..=5 for scores, short strings for
//!    summaries and reasons, lists for tags and languages;
//! 4. otherwise (no template, or quoted keys in a prompt that asks for no JSON) a plain-text
//!    answer quoting the question, which is what distillation and a prompt builder without a
//!    schema need.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::options::SimUrlError;

pub use crate::prefix_cache::fnv1a;

/// Keys of a JSON template in `text`: `"name":` with an identifier-like name, in order, unique.
pub fn template_keys(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut keys: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > start && j < bytes.len() && bytes[j] == b'"' && !bytes[start].is_ascii_digit() {
                let mut k = j + 1;
                while k < bytes.len() && bytes[k] == b' ' {
                    k += 1;
                }
                if k < bytes.len() && bytes[k] == b':' {
                    let key = &text[start..j];
                    if !keys.iter().any(|x| x == key) && keys.len() < 64 {
                        keys.push(key.to_string());
                    }
                    i = k;
                    continue;
                }
            }
        }
        i += 1;
    }
    keys
}

fn value_for(key: &str, h: u64) -> Value {
    let k = key.to_ascii_lowercase();
    if ["tags", "languages", "issues", "labels"].iter().any(|w| k.contains(w)) {
        let pool = ["clear", "informative", "concise", "well-structured", "en"];
        return json!([pool[(h % pool.len() as u64) as usize]]);
    }
    if ["summary", "reason", "comment", "description", "rationale", "explanation"].iter().any(|w| k.contains(w)) {
        return json!(format!("Simulated judgement #{:04x}: consistent with the requested criteria.", h & 0xffff));
    }
    if k.contains("type") || k.contains("use_case") || k.contains("category") || k.contains("label") {
        let pool = ["general", "library", "educational", "reference"];
        return json!(pool[(h % pool.len() as u64) as usize]);
    }
    json!(1 + (h % 5) as i64)
}

/// Whether a prompt with quoted keys wants a JSON answer: it shows a ```` ```json ```` block or
/// an object opening with a quoted key, or names JSON. `"score": <n>` lines in a prompt that
/// does none of these ask for text.
fn asks_for_json(template: &str) -> bool {
    if template.to_ascii_lowercase().contains("json") {
        return true;
    }
    let b = template.as_bytes();
    b.iter().enumerate().filter(|(_, c)| **c == b'{').any(|(i, _)| {
        let rest = template[i + 1..].trim_start();
        rest.starts_with('"') && !template_keys(&rest[..rest.len().min(200)]).is_empty()
    })
}

/// The answer text for a conversation whose template text (system + first user turn) is `template`
/// and whose full text hashes to `h`.
pub fn answer(template: &str, last_user: &str, h: u64) -> String {
    let keys = template_keys(template);
    if keys.is_empty() || !asks_for_json(template) {
        let words: Vec<&str> = last_user.split_whitespace().take(8).collect();
        return format!(
            "Simulated answer {:08x}. You asked about: \"{}\". A real model would answer here; this endpoint is SIMULATED.",
            h as u32,
            words.join(" ")
        );
    }
    let mut obj = Map::new();
    for (i, key) in keys.iter().enumerate() {
        obj.insert(key.clone(), value_for(key, fnv1a(key.as_bytes(), h.rotate_left(i as u32))));
    }
    format!("```json\n{}\n```", Value::Object(obj))
}

/// Scripted replies, from the JSONL file of `sim://?replies=FILE` (`serve-sim --replies FILE`).
///
/// One JSON object a line (blank lines are skipped):
///
/// ```text
/// {"match": "(?i)capital of france", "reply": "Paris."}
/// {"match": "\\brec-0042\\b", "reply": {"winner": "B", "reason": "scripted"}}
/// {"default": "I cannot say."}
/// ```
///
/// The first rule whose `match` regex (the `regex` crate's syntax, searched anywhere: anchor
/// with `^…$` for a whole-message match, `(?i)` for case, `(?s)` for `.` across lines) is found
/// in the last user message gives the reply; none found gives the one optional `default` line's,
/// and without one the simulator answers as it would without the file. A string reply is the
/// content as is; any other JSON value (object, array, number…) is sent serialised. A record id
/// is matched like anything else, as a regex: `"\brec-0042\b"` (escape `.`, `+`, `(`… in ids).
#[derive(Debug, Clone, Default)]
pub struct ReplyRules {
    rules: Vec<(regex::Regex, String)>,
    default: Option<String>,
}

impl ReplyRules {
    /// Reads and checks the file; a relative `path` resolves against the current folder. Errors
    /// name the resolved file and, for a bad rule, its line (from 1).
    pub fn load(path: &Path) -> Result<ReplyRules, SimUrlError> {
        let resolved: PathBuf =
            if path.is_relative() { std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf()) } else { path.to_path_buf() };
        let file = resolved.display().to_string();
        let text = std::fs::read_to_string(&resolved).map_err(|e| SimUrlError::RepliesFile { file: file.clone(), error: e.to_string() })?;
        ReplyRules::parse(&file, &text)
    }

    /// The rules in `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<ReplyRules, SimUrlError> {
        let mut rules = ReplyRules::default();
        let mut default_line = 0;
        for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
            let n = i + 1;
            let bad = |message: String| SimUrlError::RepliesLine { file: file.to_string(), line: n, message };
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
            let Value::Object(o) = v else {
                return Err(bad("expected an object: {\"match\": REGEX, \"reply\": …} or {\"default\": …}".into()));
            };
            if let Some(unknown) = o.keys().find(|k| !["match", "reply", "default"].contains(&k.as_str())) {
                let hint = if unknown == "id" { " (to match a record id, use \"match\" with the id as a regex)" } else { "" };
                return Err(bad(format!("unknown key `{unknown}` (expected match and reply, or default){hint}")));
            }
            if let Some(d) = o.get("default") {
                if o.len() > 1 {
                    return Err(bad("a `default` line holds nothing else".into()));
                }
                if default_line > 0 {
                    return Err(bad(format!("a second `default` (the first is on line {default_line})")));
                }
                default_line = n;
                rules.default = Some(content_of(d));
                continue;
            }
            let pattern = match o.get("match") {
                Some(Value::String(p)) => p,
                Some(_) => return Err(bad("`match` must be a string (a regex)".into())),
                None => return Err(bad("missing `match` (a regex)".into())),
            };
            let reply = o.get("reply").ok_or_else(|| bad("missing `reply`".into()))?;
            let re = regex::Regex::new(pattern).map_err(|e| bad(format!("`match` is not a valid regex: {}", one_line(&e.to_string()))))?;
            rules.rules.push((re, content_of(reply)));
        }
        Ok(rules)
    }

    /// The scripted reply for a conversation whose last user message is `last_user`.
    pub fn reply_for(&self, last_user: &str) -> Option<&str> {
        self.rules.iter().find(|(re, _)| re.is_match(last_user)).map(|(_, r)| r.as_str()).or(self.default.as_deref())
    }

    /// Number of `match` rules (the default not counted).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.default.is_none()
    }
}

/// A string reply as is, any other JSON value serialised.
fn content_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_a_template_with_doubled_braces_rendered() {
        let t = "Answer:\n```json\n{\"overall_score\": 4, \"summary\": \"...\", \"quality_tags\": []}\n```";
        assert_eq!(template_keys(t), vec!["overall_score", "summary", "quality_tags"]);
        assert!(template_keys("no template here: \"a\" b").is_empty());
    }

    #[test]
    fn quoted_keys_without_json_get_text() {
        let t = "Rate the text. Reply with two lines:\n\"score\": a number from 1 to 5\n\"reason\": one sentence\n";
        let a = answer(t, "Rate this", 9);
        assert!(a.starts_with("Simulated answer") && !a.contains('{'), "{a}");
        assert!(answer("Reply as {\"score\": 1}", "x", 9).starts_with("```json"));
        assert!(answer("Reply in JSON with \"score\": n", "x", 9).starts_with("```json"));
    }

    #[test]
    fn answers_are_deterministic_and_valid() {
        let t = "{\"score\": 3, \"reason\": \"...\"}";
        let a = answer(t, "q", 42);
        assert_eq!(a, answer(t, "q", 42));
        let inner = a.trim_start_matches("```json\n").trim_end_matches("\n```");
        let v: Value = serde_json::from_str(inner).unwrap();
        let s = v["score"].as_i64().unwrap();
        assert!((1..=5).contains(&s));
        assert!(v["reason"].is_string());
        assert!(answer("plain question", "what is a river?", 1).contains("what is a river?"));
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn rules_match_in_order_then_default() {
        let text = "{\"match\": \"(?i)capital of france\", \"reply\": \"Paris.\"}\n\n{\"match\": \"\\\\brec-0042\\\\b\", \"reply\": {\"winner\": \"B\"}}\n{\"match\": \"France\", \"reply\": \"never: an earlier rule wins\"}\n{\"default\": 7}\n";
        let r = ReplyRules::parse("r.jsonl", text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.reply_for("What is the CAPITAL of France?"), Some("Paris."));
        assert_eq!(r.reply_for("judge rec-0042 please"), Some("{\"winner\":\"B\"}"));
        assert_eq!(r.reply_for("judge rec-00421 please"), Some("7"));
        let no_default = ReplyRules::parse("r.jsonl", "{\"match\": \"x\", \"reply\": \"y\"}").unwrap();
        assert_eq!(no_default.reply_for("abc"), None);
        assert!(ReplyRules::parse("r.jsonl", "").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = |text: &str| ReplyRules::parse("/x/r.jsonl", text).unwrap_err();
        let ok = "{\"match\": \"a\", \"reply\": \"b\"}\n";
        match e(&format!("{ok}\n{{\"match\": \"(\", \"reply\": 1}}")) {
            SimUrlError::RepliesLine { file, line, message } => {
                assert_eq!((file.as_str(), line), ("/x/r.jsonl", 3));
                assert!(message.starts_with("`match` is not a valid regex: "), "{message}");
                assert!(!message.contains('\n'), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let msg = |text: &str| e(text).to_string();
        assert!(msg(&format!("{ok}{{\"match\": \"(\", \"reply\": 1}}")).starts_with("sim:// replies file `/x/r.jsonl` line 2: `match` is not a valid regex"));
        assert!(msg("not json").starts_with("sim:// replies file `/x/r.jsonl` line 1: not JSON"), "{}", msg("not json"));
        assert!(msg("[1]").contains("line 1: expected an object"));
        assert!(msg("{\"match\": \"a\"}").contains("missing `reply`"));
        assert!(msg("{\"reply\": \"a\"}").contains("missing `match`"));
        assert!(msg("{\"id\": \"rec-1\", \"reply\": \"a\"}").contains("use \"match\" with the id as a regex"));
        assert!(msg("{\"default\": 1}\n{\"default\": 2}").contains("line 2: a second `default` (the first is on line 1)"));
        assert!(msg("{\"default\": 1, \"match\": \"x\"}").contains("holds nothing else"));
    }

    #[test]
    fn missing_file_is_named_resolved() {
        let e = ReplyRules::load(Path::new("no/such/replies.jsonl")).unwrap_err();
        let SimUrlError::RepliesFile { file, .. } = &e else { panic!("{e:?}") };
        assert!(Path::new(file).is_absolute() && file.ends_with("no/such/replies.jsonl"), "{file}");
        assert!(e.to_string().starts_with("sim:// replies file `"), "{e}");
    }
}
