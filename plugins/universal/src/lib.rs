//! `builtin:universal`: the reference's default preprocessor (§6.4) for arbitrary corpora:
//! `field_mapping` (copy, `combine`, `constant`), `filters` (`min_text_length`,
//! `max_text_length`, `required_fields`, `blacklist_patterns`), `transformations`
//! (`text_cleaning.remove_extra_whitespace`, `text_cleaning.remove_characters`),
//! `computed_fields` (`text_length`, `token_count`), then `id`, `text`, `source` and the
//! truncation column. Differences from the reference: ids are the host's stable record keys
//! (never random), filtered rows are counted skips with a reason, lengths count characters
//! (not bytes) and a row the rules cannot handle is an error naming the rule, not a silent drop.

use modelcall_plugin_sdk::preprocessor::{Input, Outcome, Preprocessor, Truncation};
use modelcall_plugin_sdk::{count_tokens, json, Context, Error, Value};
use serde::Deserialize;
use serde_json::Map;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    pub min_text_length: Option<usize>,
    pub max_text_length: Option<usize>,
    #[serde(default)]
    pub required_fields: Vec<String>,
    #[serde(default)]
    pub blacklist_patterns: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextCleaning {
    #[serde(default)]
    pub remove_extra_whitespace: bool,
    #[serde(default)]
    pub remove_characters: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transformations {
    #[serde(default)]
    pub text_cleaning: TextCleaning,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Computed {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "text_field")]
    pub source_field: String,
}

fn text_field() -> String {
    "text".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub field_mapping: Map<String, Value>,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default)]
    pub transformations: Transformations,
    #[serde(default)]
    pub computed_fields: Map<String, Value>,
    #[serde(default = "unknown")]
    pub source_name: String,
    #[serde(default = "modelcall_plugin_sdk::preprocessor::default_max_tokens")]
    pub max_tokens: u32,
}

fn unknown() -> String {
    "unknown".into()
}

pub struct Universal {
    cfg: Config,
    computed: Vec<(String, Computed)>,
    truncation: Truncation,
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Bool(true)) => true,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Universal {
    pub fn convert(&self, record_id: &str, row: Map<String, Value>) -> Result<Outcome, Error> {
        // 1. Field mapping: targets take precedence over original keys.
        let mut out = row.clone();
        for (target, rule) in &self.cfg.field_mapping {
            match rule {
                Value::String(source) => {
                    if let Some(v) = row.get(source) {
                        out.insert(target.clone(), v.clone());
                    }
                }
                Value::Object(r) => match r.get("type").and_then(Value::as_str) {
                    Some("combine") => {
                        let sep = r.get("separator").and_then(Value::as_str).unwrap_or(" ");
                        let fields = r.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
                        let parts: Vec<String> =
                            fields.iter().filter_map(Value::as_str).filter_map(|f| row.get(f).filter(|v| truthy(Some(v))).map(as_text)).collect();
                        out.insert(target.clone(), json!(parts.join(sep)));
                    }
                    Some("constant") => {
                        out.insert(target.clone(), r.get("value").cloned().unwrap_or(Value::Null));
                    }
                    _ => unreachable!("validated at init"),
                },
                _ => unreachable!("validated at init"),
            }
        }
        // 4 (text first, so filters see it): text from the first truthy of the usual fields.
        if !truthy(out.get("text")) {
            let text =
                ["content", "body", "description", "message"].iter().find_map(|f| out.get(*f).filter(|v| truthy(Some(v))).map(as_text)).unwrap_or_default();
            out.insert("text".into(), json!(text));
        }
        let mut text = out.get("text").map(as_text).unwrap_or_default();
        // 2. Filters.
        let f = &self.cfg.filters;
        let chars = text.chars().count();
        if let Some(min) = f.min_text_length.filter(|m| chars < *m) {
            return Ok(Outcome::skip(format!("filtered: text shorter than {min} characters")));
        }
        if let Some(max) = f.max_text_length.filter(|m| chars > *m) {
            return Ok(Outcome::skip(format!("filtered: text longer than {max} characters")));
        }
        if let Some(missing) = f.required_fields.iter().find(|k| !truthy(out.get(*k))) {
            return Ok(Outcome::skip(format!("filtered: required field `{missing}` missing or empty")));
        }
        let lower = text.to_lowercase();
        if let Some(p) = f.blacklist_patterns.iter().find(|p| lower.contains(&p.to_lowercase())) {
            return Ok(Outcome::skip(format!("filtered: blacklisted pattern `{p}`")));
        }
        // 3. Transformations.
        let tc = &self.cfg.transformations.text_cleaning;
        for c in &tc.remove_characters {
            text = text.replace(c.as_str(), "");
        }
        if tc.remove_extra_whitespace {
            text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        out.insert("text".into(), json!(text));
        for (name, c) in &self.computed {
            let src = out.get(&c.source_field).map(as_text).unwrap_or_default();
            let v = if c.kind == "text_length" { src.chars().count() as u64 } else { count_tokens(&src) as u64 };
            out.insert(name.clone(), json!(v));
        }
        // 4. id and source; 5. truncation.
        if !truthy(out.get("id")) {
            out.insert("id".into(), json!(record_id));
        }
        out.entry("source".to_string()).or_insert_with(|| json!(self.cfg.source_name));
        if !text.is_empty() {
            self.truncation.add_column(&mut out, &text);
        }
        Ok(Outcome::keep(Value::Object(out)))
    }
}

impl Preprocessor for Universal {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        for (target, rule) in &cfg.field_mapping {
            match rule {
                Value::String(_) => {}
                Value::Object(r) => match r.get("type").and_then(Value::as_str) {
                    Some("combine") if r.get("fields").is_some_and(Value::is_array) => {}
                    Some("constant") if r.contains_key("value") => {}
                    _ => {
                        return Err(Error::invalid_config(format!(
                            "field_mapping.{target}: expected a source field name, {{type: combine, fields: [...]}} or {{type: constant, value: ...}}"
                        )))
                    }
                },
                _ => return Err(Error::invalid_config(format!("field_mapping.{target}: expected a field name or a rule"))),
            }
        }
        let mut computed = Vec::new();
        for (name, spec) in &cfg.computed_fields {
            let c: Computed = serde_json::from_value(spec.clone()).map_err(|e| Error::invalid_config(format!("computed_fields.{name}: {e}")))?;
            if c.kind != "text_length" && c.kind != "token_count" {
                return Err(Error::invalid_config(format!("computed_fields.{name}.type `{}` is not text_length or token_count", c.kind)));
            }
            computed.push((name.clone(), c));
        }
        let truncation = Truncation::new(cfg.max_tokens)?;
        Ok(Universal { cfg, computed, truncation })
    }

    fn process(&mut self, ctx: &Context, input: Input) -> Result<Outcome, Error> {
        let row = input.into_object("universal reads records (JSONL/Parquet rows), not raw files")?;
        self.convert(&ctx.record_id(), row)
    }
}

modelcall_plugin_sdk::register_preprocessor!(Universal);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(cfg: Value) -> Universal {
        Universal::new(serde_json::from_value(cfg).unwrap()).unwrap()
    }

    fn run(p: &Universal, row: Value) -> Outcome {
        p.convert("key-9", row.as_object().unwrap().clone()).unwrap()
    }

    fn kept(o: Outcome) -> Value {
        match o {
            Outcome::Keep(v) => v[0].clone(),
            Outcome::Skip(r) => panic!("{r}"),
            other => panic!("expected a keep: {other:?}"),
        }
    }

    #[test]
    fn mapping_combine_constant_and_precedence() {
        let p = plugin(json!({"field_mapping": {
            "text": {"type": "combine", "fields": ["title", "body", "missing"], "separator": "\n"},
            "lang": "language", "dataset": {"type": "constant", "value": "web"}
        }, "source_name": "crawl"}));
        let r = kept(run(&p, json!({"title": "T", "body": "B", "language": "en", "text": "old"})));
        assert_eq!(r["text"], "T\nB", "targets take precedence over original keys");
        assert_eq!((r["lang"].as_str(), r["dataset"].as_str(), r["source"].as_str()), (Some("en"), Some("web"), Some("crawl")));
        assert_eq!(r["id"], "key-9", "stable id from the host, not a uuid");
        assert_eq!(r["content_truncate_32k"], "T\nB");
    }

    #[test]
    fn filters_skip_with_reasons() {
        let p = plugin(json!({"filters": {"min_text_length": 5, "max_text_length": 20, "required_fields": ["url"], "blacklist_patterns": ["Lorem"]}}));
        let reason = |o: Outcome| match o {
            Outcome::Skip(r) => r,
            other => panic!("expected a skip: {other:?}"),
        };
        assert!(reason(run(&p, json!({"text": "abc", "url": "u"}))).contains("shorter"));
        assert!(reason(run(&p, json!({"text": "x".repeat(30), "url": "u"}))).contains("longer"));
        assert!(reason(run(&p, json!({"text": "hello world"}))).contains("`url`"));
        assert!(reason(run(&p, json!({"text": "lorem ipsum", "url": "u"}))).contains("Lorem"));
        assert!(matches!(run(&p, json!({"text": "héllo wörld", "url": "u"})), Outcome::Keep(_)), "lengths count characters");
    }

    #[test]
    fn cleaning_computed_fields_and_text_fallback() {
        let p = plugin(json!({
            "transformations": {"text_cleaning": {"remove_extra_whitespace": true, "remove_characters": ["#"]}},
            "computed_fields": {"n_chars": {"type": "text_length"}, "n_tokens": {"type": "token_count", "source_field": "text"}},
            "max_tokens": 2048
        }));
        let r = kept(run(&p, json!({"body": "  # Hello   big\n\n world  "})));
        assert_eq!(r["text"], "Hello big world");
        assert_eq!(r["n_chars"], 15);
        assert!(r["n_tokens"].as_u64().unwrap() >= 3);
        assert!(r.get("content_truncate_2k").is_some());
        assert!(Universal::new(serde_json::from_value(json!({"field_mapping": {"x": {"type": "merge"}}})).unwrap()).is_err());
        assert!(Universal::new(serde_json::from_value(json!({"computed_fields": {"x": {"type": "words"}}})).unwrap()).is_err());
    }
}
