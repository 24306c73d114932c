//! `builtin:github-raw-code`: raw GitHub code records (reference §6.1) made ready for scoring.
//!
//! `text` is kept when present; otherwise the first of `content`, `code`, `body`,
//! `description` is copied into it. `content_truncate_{max_tokens/1024}k` holds the text cut to
//! `max_tokens` o200k_base tokens (always applied; the reference skipped texts under 20,000
//! characters), `source` defaults to `github_raw_code`, and `id` defaults to the record's
//! stable key from the host (the reference used a random uuid4, so resumes never matched).
//! A record with none of the text fields is an `invalid-input` error naming them, instead of
//! failing the whole file; `languages` optionally keeps only some languages (exact,
//! case-insensitive match, so `C` never selects `C#` or `C++`).

use modelcall_plugin_sdk::preprocessor::{default_max_tokens, Input, Outcome, Preprocessor, Truncation};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;

pub const TEXT_FIELDS: [&str; 5] = ["text", "content", "code", "body", "description"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Keep only records whose `language` is one of these (case-insensitive).
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    #[serde(default = "default_source")]
    pub source: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_tokens: default_max_tokens(), languages: None, source: default_source() }
    }
}

fn default_source() -> String {
    "github_raw_code".into()
}

pub struct GithubRawCode {
    cfg: Config,
    truncation: Truncation,
}

impl GithubRawCode {
    pub fn convert(&self, record_id: &str, mut rec: serde_json::Map<String, Value>) -> Result<Outcome, Error> {
        if let Some(langs) = &self.cfg.languages {
            let lang = rec.get("language").and_then(Value::as_str).unwrap_or("");
            if !langs.iter().any(|l| l.eq_ignore_ascii_case(lang)) {
                return Ok(Outcome::skip(format!("filtered: language `{lang}` not in [{}]", langs.join(", "))));
            }
        }
        let text = TEXT_FIELDS
            .iter()
            .find_map(|f| rec.get(*f).and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| Error::invalid_input(format!("the record has none of the text fields {}", TEXT_FIELDS.join(", "))))?;
        self.truncation.add_column(&mut rec, &text);
        rec.insert("text".into(), json!(text));
        rec.entry("id".to_string()).or_insert_with(|| json!(record_id));
        rec.entry("source".to_string()).or_insert_with(|| json!(self.cfg.source));
        Ok(Outcome::keep(Value::Object(rec)))
    }
}

impl Preprocessor for GithubRawCode {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        let truncation = Truncation::new(cfg.max_tokens)?;
        Ok(GithubRawCode { cfg, truncation })
    }

    fn process(&mut self, ctx: &Context, input: Input) -> Result<Outcome, Error> {
        let rec = input.into_object("github-raw-code reads records (JSONL/Parquet rows), not raw files")?;
        self.convert(&ctx.record_id(), rec)
    }
}

modelcall_plugin_sdk::register_preprocessor!(GithubRawCode);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: Config, rec: Value) -> Result<Outcome, Error> {
        GithubRawCode::new(cfg).unwrap().process(&Context::for_test("t", "key-1", 1), Input::Record(rec))
    }

    fn kept(o: Outcome) -> Value {
        match o {
            Outcome::Keep(v) => v[0].clone(),
            Outcome::Skip(r) => panic!("{r}"),
            other => panic!("expected a keep: {other:?}"),
        }
    }

    #[test]
    fn reference_example_with_a_stable_id() {
        let r = kept(run(Config::default(), json!({"text": "def f(): pass", "repo": "x"})).unwrap());
        assert_eq!(r["content_truncate_32k"], "def f(): pass", "short texts are kept whole");
        assert_eq!(r["source"], "github_raw_code");
        assert_eq!(r["id"], "key-1", "the host's stable key, never a random uuid");
        assert_eq!(r["repo"], "x");
    }

    #[test]
    fn text_comes_from_the_first_present_field_and_is_truncated_by_tokens() {
        let body = "fn main() { println!(\"hello\"); }\n".repeat(200);
        let r = kept(run(Config { max_tokens: 1024, ..Config::default() }, json!({"code": body, "id": "given"})).unwrap());
        assert_eq!(r["text"], json!(body));
        let cut = r["content_truncate_1k"].as_str().unwrap();
        assert!(body.starts_with(cut) && cut.len() < body.len());
        assert_eq!(modelcall_plugin_sdk::count_tokens(cut), 1024);
        assert_eq!(r["id"], "given");
        let e = run(Config::default(), json!({"path": "a.rs"})).unwrap_err();
        assert_eq!(e.kind, modelcall_plugin_sdk::ErrorKind::InvalidInput);
        assert!(e.message.contains("content"));
    }

    #[test]
    fn language_selection_is_exact_not_a_prefix_glob() {
        let cfg = Config { languages: Some(vec!["C".into()]), ..Config::default() };
        assert!(matches!(run(cfg.clone(), json!({"text": "x", "language": "C#"})).unwrap(), Outcome::Skip(_)));
        assert!(matches!(run(cfg.clone(), json!({"text": "x", "language": "C_sharp"})).unwrap(), Outcome::Skip(_)));
        assert!(matches!(run(cfg, json!({"text": "x", "language": "c"})).unwrap(), Outcome::Keep(_)));
    }
}
