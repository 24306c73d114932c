//! `builtin:triplet-filter`: issue→commit "pt_data_filtered" records (reference §6.3).
//!
//! Adds `content_truncate_{max_tokens/1024}k` and the placeholders that let the
//! repository-packaging prompt format (`repo_full_name`, `files_with_content`, `total_lines`,
//! `has_readme`, `has_license`, `has_gitignore`) without overwriting fields the record already
//! has — in particular a real `language` is kept (the reference replaced it with `lg`). A record
//! with an empty `text` is an `invalid-input` error (the reference passed it on to fail later in
//! prompt formatting). The host groups the output by the language in the file name
//! (`pt_data_<Lang>_partNN.jsonl`), parsed per file, so `C` never collects `C_sharp` parts.

use modelcall_plugin_sdk::preprocessor::{Input, Outcome, Preprocessor, Truncation};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "modelcall_plugin_sdk::preprocessor::default_max_tokens")]
    pub max_tokens: u32,
}

pub struct TripletFilter {
    truncation: Truncation,
}

impl TripletFilter {
    pub fn convert(&self, record_id: &str, mut rec: serde_json::Map<String, Value>) -> Result<Outcome, Error> {
        let text = rec.get("text").and_then(Value::as_str).unwrap_or("").to_string();
        if text.trim().is_empty() {
            return Err(Error::invalid_input("the record's `text` is empty or missing; a triplet needs its text to be rated"));
        }
        self.truncation.add_column(&mut rec, &text);
        if rec.get("language").and_then(Value::as_str).is_none_or(|s| s.is_empty()) {
            let lg = rec.get("lg").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("Unknown").to_string();
            rec.insert("language".into(), json!(lg));
        }
        for (k, v) in [
            ("repo_full_name", "Code Repository"),
            ("files_with_content", "Multiple"),
            ("total_lines", "Large"),
            ("has_readme", "Unknown"),
            ("has_license", "Unknown"),
            ("has_gitignore", "Unknown"),
        ] {
            rec.entry(k.to_string()).or_insert_with(|| json!(v));
        }
        rec.entry("id".to_string()).or_insert_with(|| json!(record_id));
        Ok(Outcome::keep(Value::Object(rec)))
    }
}

impl Preprocessor for TripletFilter {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        Ok(TripletFilter { truncation: Truncation::new(cfg.max_tokens)? })
    }

    fn process(&mut self, ctx: &Context, input: Input) -> Result<Outcome, Error> {
        let rec = input.into_object("triplet-filter reads records (pt_data_*.jsonl rows), not raw files")?;
        self.convert(&ctx.record_id(), rec)
    }
}

modelcall_plugin_sdk::register_preprocessor!(TripletFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rec: Value) -> Result<Outcome, Error> {
        TripletFilter::new(Config { max_tokens: 32768 }).unwrap().process(&Context::for_test("t", "k1", 1), Input::Record(rec))
    }

    fn kept(o: Outcome) -> Value {
        match o {
            Outcome::Keep(v) => v[0].clone(),
            Outcome::Skip(r) => panic!("{r}"),
            other => panic!("expected a keep: {other:?}"),
        }
    }

    #[test]
    fn placeholders_are_added_without_overwriting_real_fields() {
        let r = kept(run(json!({"text": "issue + commit", "lg": "Go"})).unwrap());
        assert_eq!(r["language"], "Go");
        assert_eq!(r["repo_full_name"], "Code Repository");
        assert_eq!(r["content_truncate_32k"], "issue + commit");
        assert_eq!(r["id"], "k1");
        let r = kept(run(json!({"text": "t", "lg": "Go", "language": "Rust", "repo_full_name": "a/b"})).unwrap());
        assert_eq!(r["language"], "Rust", "a real language is kept (the reference overwrote it with lg)");
        assert_eq!(r["repo_full_name"], "a/b");
        assert_eq!(kept(run(json!({"text": "t"})).unwrap())["language"], "Unknown");
    }

    #[test]
    fn empty_text_is_an_error_naming_the_field() {
        let e = run(json!({"text": "  "})).unwrap_err();
        assert_eq!(e.kind, modelcall_plugin_sdk::ErrorKind::InvalidInput);
        assert!(e.message.contains("`text`"));
    }
}
