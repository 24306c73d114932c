//! `builtin:json-score`: the reference `output_config` (`require_json`, `json_keys`,
//! `json_key_must_exists`, `json_default_values`), parsed robustly, plus optional `score_key`
//! and per-key `checks` (type, min, max, enum). Anything unusable is a `retry` with a hint that
//! tells the model exactly what was wrong. The verdict object is found by `modelcall-verdict`,
//! which the run report uses too.

use std::collections::BTreeMap;

use modelcall_plugin_sdk::score_parser::{ParseError, Score, ScoreParser};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;
use serde_json::Map;

pub use modelcall_verdict::{final_answer, find_object};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(default = "yes")]
    pub require_json: bool,
    #[serde(default)]
    pub json_keys: Vec<String>,
    #[serde(default)]
    pub json_key_must_exists: Vec<String>,
    #[serde(default)]
    pub json_default_values: Map<String, Value>,
    #[serde(default)]
    pub score_key: Option<String>,
    #[serde(default)]
    pub checks: BTreeMap<String, Check>,
}

fn yes() -> bool {
    true
}

/// Either an `output_config` object or a whole prompt file holding one.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Config(pub Value);

pub struct JsonScore {
    cfg: OutputConfig,
    score_key: Option<String>,
}

const TYPES: [&str; 6] = ["integer", "number", "string", "boolean", "array", "object"];

impl ScoreParser for JsonScore {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let raw = match config.0 {
            Value::Object(mut m) if m.contains_key("output_config") => m.remove("output_config").unwrap_or(Value::Null),
            Value::Null => json!({}),
            other => other,
        };
        let cfg: OutputConfig = serde_json::from_value(raw).map_err(|e| Error::invalid_config(format!("output_config: {e}")))?;
        for (key, check) in &cfg.checks {
            if let Some(k) = &check.kind {
                if !TYPES.contains(&k.as_str()) {
                    return Err(Error::invalid_config(format!("checks.{key}.type `{k}` is not one of {}", TYPES.join(", "))));
                }
            }
        }
        let score_key = cfg.score_key.clone().or_else(|| {
            ["score", "overall_score"]
                .iter()
                .find(|k| cfg.json_keys.iter().any(|j| j == *k))
                .map(|k| k.to_string())
                .or_else(|| cfg.json_keys.iter().find(|k| cfg.json_default_values.get(*k).is_some_and(Value::is_number)).cloned())
        });
        Ok(JsonScore { cfg, score_key })
    }

    fn config_schema() -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "require_json": {"type": "boolean", "default": true},
                "json_keys": {"type": "array", "items": {"type": "string"}},
                "json_key_must_exists": {"type": "array", "items": {"type": "string"}},
                "json_default_values": {"type": "object"},
                "score_key": {"type": "string"},
                "checks": {"type": "object", "additionalProperties": {
                    "type": "object",
                    "properties": {"type": {"enum": TYPES}, "min": {"type": "number"}, "max": {"type": "number"}, "enum": {"type": "array"}}
                }}
            }
        }))
    }

    fn parse(&mut self, _ctx: &Context, _record: Value, completion: &str) -> Result<Score, ParseError> {
        if !self.cfg.require_json {
            return Ok(Score { value: 0.0, label: None, rationale: None, extra: Some(json!({})) });
        }
        let answer = final_answer(completion);
        if answer.trim().is_empty() {
            return Err(self.retry("the answer was empty"));
        }
        let Some(mut parsed) = find_object(answer) else {
            return Err(self.retry("it contained no JSON object"));
        };
        // Digit-only strings become integers where a number is expected (the reference did this for `score`).
        let numeric_keys: Vec<String> = self
            .cfg
            .checks
            .iter()
            .filter(|(_, c)| matches!(c.kind.as_deref(), Some("integer") | Some("number")))
            .map(|(k, _)| k.clone())
            .chain(self.score_key.clone())
            .collect();
        for key in numeric_keys {
            if let Some(Value::String(s)) = parsed.get(&key) {
                if let Ok(n) = s.trim().parse::<i64>() {
                    parsed.insert(key, json!(n));
                }
            }
        }
        let missing: Vec<&str> = self.cfg.json_key_must_exists.iter().filter(|k| !parsed.contains_key(*k)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(self.retry(&format!("it lacked the required key(s) {}", missing.join(", "))));
        }
        for (key, check) in &self.cfg.checks {
            if let Some(v) = parsed.get(key) {
                if let Some(problem) = check_value(v, check) {
                    return Err(self.retry(&format!("`{key}` {problem}")));
                }
            }
        }
        let extra: Map<String, Value> = if self.cfg.json_keys.is_empty() {
            parsed
        } else {
            self.cfg
                .json_keys
                .iter()
                .map(|k| (k.clone(), parsed.get(k).or_else(|| self.cfg.json_default_values.get(k)).cloned().unwrap_or(Value::Null)))
                .collect()
        };
        let value = match &self.score_key {
            Some(k) => extra.get(k).and_then(Value::as_f64),
            None => ["score", "overall_score"].iter().find_map(|k| extra.get(*k).and_then(Value::as_f64)),
        }
        .unwrap_or(0.0);
        Ok(Score { value, label: None, rationale: None, extra: Some(Value::Object(extra)) })
    }
}

impl JsonScore {
    fn retry(&self, problem: &str) -> ParseError {
        let keys = if self.cfg.json_keys.is_empty() { "the requested keys".to_string() } else { self.cfg.json_keys.join(", ") };
        let required =
            if self.cfg.json_key_must_exists.is_empty() { String::new() } else { format!(" (required: {})", self.cfg.json_key_must_exists.join(", ")) };
        let checks: Vec<String> = self
            .cfg
            .checks
            .iter()
            .filter_map(|(k, c)| {
                let mut parts = Vec::new();
                if let Some(t) = &c.kind {
                    parts.push(t.clone());
                }
                match (c.min, c.max) {
                    (Some(lo), Some(hi)) => parts.push(format!("from {lo} to {hi}")),
                    (Some(lo), None) => parts.push(format!("at least {lo}")),
                    (None, Some(hi)) => parts.push(format!("at most {hi}")),
                    _ => {}
                }
                (!parts.is_empty()).then(|| format!("{k}: {}", parts.join(" ")))
            })
            .collect();
        let checks = if checks.is_empty() { String::new() } else { format!(" Constraints: {}.", checks.join("; ")) };
        ParseError::Retry(format!(
            "Your previous answer could not be used: {problem}. Answer again with only one JSON object in a ```json fenced block, with the keys {keys}{required}.{checks}"
        ))
    }
}

/// `None` when `v` satisfies `check`, else what is wrong.
fn check_value(v: &Value, check: &Check) -> Option<String> {
    if let Some(kind) = &check.kind {
        let ok = match kind.as_str() {
            "integer" => v.as_i64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        };
        if !ok {
            return Some(format!("must be {} {kind}, found {v}", if kind == "integer" || kind == "array" || kind == "object" { "an" } else { "a" }));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(lo) = check.min.filter(|lo| n < *lo) {
            return Some(format!("must be at least {lo}, found {n}"));
        }
        if let Some(hi) = check.max.filter(|hi| n > *hi) {
            return Some(format!("must be at most {hi}, found {n}"));
        }
    }
    if let Some(allowed) = &check.allowed {
        if !allowed.contains(v) {
            return Some(format!("must be one of {}, found {v}", Value::Array(allowed.clone())));
        }
    }
    None
}

modelcall_plugin_sdk::register_score_parser!(JsonScore);

#[cfg(test)]
mod tests {
    use super::*;

    fn parser_from_prompt_file(yaml: &str) -> JsonScore {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        JsonScore::new(Config(serde_json::to_value(v).unwrap())).unwrap()
    }

    fn parse(p: &mut JsonScore, reply: &str) -> Result<Score, ParseError> {
        p.parse(&Context::for_test("t", "r", 1), json!({}), reply)
    }

    fn repo() -> JsonScore {
        parser_from_prompt_file(include_str!("../../../configs/prompts/repo_packaging_quality_v1.yaml"))
    }

    const GOOD: &str = "{\"overall_score\": 4, \"code_quality_score\": 4, \"structure_score\": 3, \"documentation_score\": 5, \"testing_score\": 2, \"maintainability_score\": 4, \"educational_value_score\": 4, \"overall_quality_summary\": \"Solid {crate}.\"}";

    #[test]
    fn the_reference_output_config_with_reasoning_and_fences() {
        let mut p = repo();
        let reply = format!("<think>I think {{\"overall_score\": 1}} is too harsh</think>\n```json\n{GOOD}\n```");
        let s = parse(&mut p, &reply).unwrap();
        assert_eq!(s.value, 4.0);
        let extra = s.extra.unwrap();
        assert_eq!(extra["testing_score"], 2);
        assert_eq!(extra["overall_quality_summary"], "Solid {crate}.");
        assert_eq!(extra.as_object().unwrap().len(), 8, "only json_keys are kept");
    }

    #[test]
    fn missing_required_keys_ask_again_naming_them() {
        let mut p = repo();
        let Err(ParseError::Retry(hint)) = parse(&mut p, "```json\n{\"overall_score\": 4}\n```") else { panic!() };
        assert!(hint.contains("code_quality_score") && hint.contains("required"), "{hint}");
        let Err(ParseError::Retry(hint)) = parse(&mut p, "I cannot rate this.") else { panic!() };
        assert!(hint.contains("no JSON object"), "{hint}");
        let Err(ParseError::Retry(hint)) = parse(&mut p, "") else { panic!() };
        assert!(hint.contains("empty"), "{hint}");
    }

    #[test]
    fn range_checks_ask_again() {
        let mut p = repo();
        let bad = GOOD.replace("\"overall_score\": 4", "\"overall_score\": 9");
        let Err(ParseError::Retry(hint)) = parse(&mut p, &bad) else { panic!() };
        assert!(hint.contains("`overall_score` must be at most 5"), "{hint}");
        let bad = GOOD.replace("\"testing_score\": 2", "\"testing_score\": 2.5");
        assert!(matches!(parse(&mut p, &bad), Err(ParseError::Retry(h)) if h.contains("integer")));
    }

    #[test]
    fn defaults_fill_optional_keys_and_digit_strings_coerce() {
        let mut p = parser_from_prompt_file(include_str!("../../../configs/prompts/en_corpus_quality_v1.yaml"));
        let s = parse(&mut p, "Here: {\"score\": \"5\", \"corpus_type\": \"news\"}").unwrap();
        assert_eq!(s.value, 5.0);
        let e = s.extra.unwrap();
        assert_eq!(e["score"], 5);
        assert_eq!(e["main_languages"], json!(["en"]));
        assert_eq!(e["quality_tags"], json!([]));
        assert_eq!(e["corpus_type"], "news");
    }

    #[test]
    fn several_blocks_and_nested_objects() {
        let mut p = JsonScore::new(Config(json!({"json_keys": [], "json_key_must_exists": ["score"]}))).unwrap();
        let reply = "draft ```json\n{\"score\": 1}\n``` final ```json\n{\"score\": 3, \"detail\": {\"why\": {\"short\": true}}}\n```";
        let s = parse(&mut p, reply).unwrap();
        assert_eq!(s.value, 3.0);
        assert_eq!(s.extra.unwrap()["detail"]["why"]["short"], true);
    }

    #[test]
    fn config_errors_and_non_json_mode() {
        assert!(JsonScore::new(Config(json!({"json_keys": ["a"], "jsonkeys": []}))).is_err());
        assert!(JsonScore::new(Config(json!({"checks": {"a": {"type": "int"}}}))).is_err());
        let mut p = JsonScore::new(Config(json!({"require_json": false}))).unwrap();
        assert_eq!(parse(&mut p, "free text").unwrap().value, 0.0);
    }
}
