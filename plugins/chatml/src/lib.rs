//! `builtin:chatml`: converts one dataset row to `{"messages": [...], "format": "chatml"}`
//! according to its `format_style` (reference §7.1), so new styles can ship as plugins.
//!
//! Fixed against the reference: `sharegpt` keeps system turns, and a value that is not a
//! string (a number, a list) is rendered as text instead of killing the whole split.

use modelcall_plugin_sdk::preprocessor::{Input, Outcome, Preprocessor};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;
use serde_json::Map;

pub const STYLES: [&str; 6] = ["prompt_response", "instruction_input", "sharegpt", "messages", "input_output_messages", "prompt_text_only"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub format_style: String,
    #[serde(default)]
    pub column_mapping: Map<String, Value>,
    #[serde(default)]
    pub add_system_prompt: bool,
    #[serde(default = "default_system")]
    pub system_prompt: String,
    #[serde(default = "yes")]
    pub keep_raw_data: bool,
}

fn default_system() -> String {
    "You are a helpful assistant and an expert coder.".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug)]
pub struct Chatml {
    cfg: Config,
}

fn required_keys(style: &str) -> &'static [&'static str] {
    match style {
        "prompt_response" => &["prompt", "response"],
        "instruction_input" => &["prompt", "input", "response"],
        "sharegpt" => &["conversations"],
        "messages" => &["messages"],
        "input_output_messages" => &["input", "output"],
        _ => &["prompt_text"],
    }
}

/// A value as message text: strings verbatim, null/absent as empty, anything else as JSON.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn msg(role: &str, content: String) -> Value {
    json!({"role": role, "content": content})
}

impl Chatml {
    fn column<'a>(&'a self, key: &'a str) -> &'a str {
        self.cfg.column_mapping.get(key).and_then(Value::as_str).unwrap_or(key)
    }

    /// The messages for one row; empty means the row is dropped.
    pub fn messages(&self, row: &Map<String, Value>) -> Vec<Value> {
        let get = |k: &str| row.get(self.column(k));
        match self.cfg.format_style.as_str() {
            "prompt_response" => {
                let (p, r) = (text(get("prompt")), text(get("response")));
                if p.is_empty() || r.is_empty() {
                    return vec![];
                }
                vec![msg("user", p), msg("assistant", r)]
            }
            "instruction_input" => {
                let (i, inp, r) = (text(get("prompt")), text(get("input")), text(get("response")));
                let user = if inp.is_empty() { i } else { format!("{i}\n\n{inp}").trim().to_string() };
                if user.is_empty() || r.is_empty() {
                    return vec![];
                }
                vec![msg("user", user), msg("assistant", r)]
            }
            "sharegpt" => get("conversations")
                .and_then(Value::as_array)
                .map(|turns| {
                    turns
                        .iter()
                        .filter_map(|t| {
                            let role = match t.get("from").or_else(|| t.get("role")).and_then(Value::as_str)? {
                                "human" | "user" => "user",
                                "gpt" | "assistant" | "model" => "assistant",
                                "system" => "system",
                                _ => return None,
                            };
                            let content = text(t.get("value").or_else(|| t.get("content")));
                            (!content.is_empty()).then(|| msg(role, content))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            "messages" => get("messages").and_then(Value::as_array).cloned().unwrap_or_default(),
            "input_output_messages" => {
                let Some(input) = get("input").and_then(Value::as_array).filter(|a| !a.is_empty()) else { return vec![] };
                let out = text(get("output"));
                if out.is_empty() {
                    return vec![];
                }
                let mut m = input.clone();
                m.push(msg("assistant", out));
                m
            }
            _ => {
                let p = text(get("prompt_text"));
                if p.is_empty() {
                    vec![]
                } else {
                    vec![msg("user", p)]
                }
            }
        }
    }
}

impl Preprocessor for Chatml {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        if !STYLES.contains(&cfg.format_style.as_str()) {
            return Err(Error::invalid_config(format!("format_style `{}` is not one of {}", cfg.format_style, STYLES.join(", "))));
        }
        for (k, v) in &cfg.column_mapping {
            if !required_keys(&cfg.format_style).contains(&k.as_str()) {
                return Err(Error::invalid_config(format!(
                    "column_mapping.{k} is not used by format_style {} (it uses {})",
                    cfg.format_style,
                    required_keys(&cfg.format_style).join(", ")
                )));
            }
            if !v.is_string() {
                return Err(Error::invalid_config(format!("column_mapping.{k} must be a column name")));
            }
        }
        Ok(Chatml { cfg })
    }

    fn process(&mut self, _ctx: &Context, input: Input) -> Result<Outcome, Error> {
        let Input::Record(Value::Object(row)) = input else {
            return Err(Error::unsupported("chatml converts records (rows of a dataset), not files"));
        };
        let mut messages = self.messages(&row);
        if messages.is_empty() {
            return Ok(Outcome::skip(format!("no conversation in this row for format_style {}", self.cfg.format_style)));
        }
        if self.cfg.add_system_prompt && !messages.iter().any(|m| m.get("role").and_then(Value::as_str) == Some("system")) {
            messages.insert(0, msg("system", self.cfg.system_prompt.clone()));
        }
        let mut out = json!({"messages": messages, "format": "chatml"});
        if self.cfg.keep_raw_data {
            out["raw_data"] = Value::Object(row);
        }
        Ok(Outcome::keep(out))
    }
}

modelcall_plugin_sdk::register_preprocessor!(Chatml);

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(style: &str, mapping: Value, row: Value, system: bool) -> Outcome {
        let cfg = Config {
            format_style: style.into(),
            column_mapping: mapping.as_object().cloned().unwrap_or_default(),
            add_system_prompt: system,
            system_prompt: "SYS".into(),
            keep_raw_data: false,
        };
        Chatml::new(cfg).unwrap().process(&Context::for_test("t", "r", 1), Input::Record(row)).unwrap()
    }

    fn messages(o: Outcome) -> Value {
        match o {
            Outcome::Keep(v) => v[0]["messages"].clone(),
            Outcome::Skip(r) => panic!("skipped: {r}"),
            other => panic!("expected a keep: {other:?}"),
        }
    }

    #[test]
    fn golden_per_style() {
        assert_eq!(
            messages(convert("prompt_response", json!({"prompt": "instruction", "response": "output"}), json!({"instruction": "Q", "output": "A"}), false)),
            json!([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])
        );
        assert_eq!(
            messages(convert("instruction_input", json!({}), json!({"prompt": "Do", "input": "this", "response": "ok"}), false)),
            json!([{"role": "user", "content": "Do\n\nthis"}, {"role": "assistant", "content": "ok"}])
        );
        assert_eq!(
            messages(convert(
                "sharegpt",
                json!({}),
                json!({"conversations": [
                    {"from": "system", "value": "be brief"}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}, {"from": "tool", "value": "x"}
                ]}),
                false
            )),
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]),
            "sharegpt keeps system turns (a reference bug dropped them)"
        );
        assert_eq!(
            messages(convert("messages", json!({"messages": "conv"}), json!({"conv": [{"role": "user", "content": "x"}]}), true)),
            json!([{"role": "system", "content": "SYS"}, {"role": "user", "content": "x"}])
        );
        assert_eq!(
            messages(convert("input_output_messages", json!({}), json!({"input": [{"role": "user", "content": "q"}], "output": "a"}), false)),
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        );
        assert_eq!(messages(convert("prompt_text_only", json!({}), json!({"prompt_text": 42}), false)), json!([{"role": "user", "content": "42"}]));
    }

    #[test]
    fn empty_rows_are_skipped_and_bad_configs_refused() {
        assert!(matches!(convert("prompt_response", json!({}), json!({"prompt": "", "response": "A"}), false), Outcome::Skip(_)));
        let bad =
            Config { format_style: "alpaca".into(), column_mapping: Map::new(), add_system_prompt: false, system_prompt: String::new(), keep_raw_data: true };
        assert!(Chatml::new(bad).is_err());
        let bad = Config {
            format_style: "sharegpt".into(),
            column_mapping: json!({"prompt": "x"}).as_object().cloned().unwrap(),
            add_system_prompt: false,
            system_prompt: String::new(),
            keep_raw_data: true,
        };
        assert!(Chatml::new(bad).unwrap_err().message.contains("column_mapping.prompt"));
    }
}
