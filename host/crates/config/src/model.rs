//! The model config file (`client_config` + `chat_config`, reference §3.1).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{closest, ConfigError};
use crate::locate::find_key_or_parent;
use crate::task::{interpolate_tree, yaml_to_json};

#[derive(Clone)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub base_url: String,
    pub api_key: Option<String>,
    /// Per HTTP attempt.
    pub timeout: Duration,
    pub max_retries: u32,
    pub model: String,
    pub stream: bool,
    /// Every other `chat_config` key, passed through to the request body.
    pub chat_config: Map<String, Value>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// The built-in simulated endpoint, as requested by `base_url: sim://?…`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpec {
    /// The whole `sim://…` URL; `modelcall-sim` parses its options.
    pub url: String,
}

const CLIENT_KEYS: &[&str] = &["base_url", "api_key", "timeout", "max_retries", "backoff_base_ms", "backoff_max_ms"];

impl ModelConfig {
    pub fn load(path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ModelConfig, ConfigError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, format!("cannot read the model config: {e}")))?;
        let yaml: serde_yaml::Value = serde_yaml::from_str(&source).map_err(|e| {
            ConfigError::new(path, format!("not valid YAML: {e}")).at(e.location().map(|l| (l.line(), l.column())))
        })?;
        let mut json = yaml_to_json(yaml);
        interpolate_tree(&mut json, &mut Vec::new(), &source, path, lookup)?;
        let err = |keys: &[&str], msg: String| {
            ConfigError::new(path, msg).key(keys.join(".")).at(find_key_or_parent(&source, keys))
        };
        let root = json.as_object().ok_or_else(|| ConfigError::new(path, "a model config must be a mapping with client_config and chat_config"))?;
        for k in root.keys() {
            if k != "client_config" && k != "chat_config" {
                return Err(err(&[k], "unknown key in a model config".into())
                    .suggest(closest(k, ["client_config", "chat_config"])));
            }
        }
        let client = root.get("client_config").and_then(Value::as_object).cloned().unwrap_or_default();
        for k in client.keys() {
            if !CLIENT_KEYS.contains(&k.as_str()) {
                return Err(err(&["client_config", k], "unknown key".into()).suggest(closest(k, CLIENT_KEYS.iter().copied())));
            }
        }
        let mut chat = root
            .get("chat_config")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| err(&["chat_config"], "missing: the model config needs chat_config with at least `model`".into()))?;
        let model = match chat.remove("model") {
            Some(Value::String(m)) if !m.is_empty() => m,
            _ => return Err(err(&["chat_config", "model"], "missing or empty: name the model to call".into())),
        };
        let stream = match chat.remove("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => return Err(err(&["chat_config", "stream"], format!("must be true or false, found {other}"))),
        };
        // The reference popped `timeout` from chat_config and discarded it; we do the same, silently.
        chat.remove("timeout");
        let num = |k: &str, default: f64| -> Result<f64, ConfigError> {
            match client.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(default)),
                Some(Value::String(s)) => s
                    .parse::<f64>()
                    .map_err(|_| err(&["client_config", k], format!("must be a number, found \"{s}\""))),
                Some(other) => Err(err(&["client_config", k], format!("must be a number, found {other}"))),
            }
        };
        let base_url = match client.get("base_url") {
            None | Some(Value::Null) => "https://api.openai.com/v1".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(err(&["client_config", "base_url"], format!("must be a URL string, found {other}"))),
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://") || base_url.starts_with("sim://")) {
            return Err(err(&["client_config", "base_url"], format!("`{base_url}` must start with http://, https:// or sim://")));
        }
        let api_key = match client.get("api_key") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(ModelConfig {
            path: path.to_path_buf(),
            base_url,
            api_key,
            timeout: Duration::from_secs_f64(num("timeout", 600.0)?.max(0.001)),
            max_retries: num("max_retries", 5.0)?.max(0.0) as u32,
            model,
            stream,
            chat_config: chat,
            backoff_base: Duration::from_millis(num("backoff_base_ms", 500.0)? as u64),
            backoff_max: Duration::from_millis(num("backoff_max_ms", 30_000.0)? as u64),
        })
    }

    pub fn sim(&self) -> Option<SimSpec> {
        self.base_url.starts_with("sim://").then(|| SimSpec { url: self.base_url.clone() })
    }

    pub fn masked_key(&self) -> Option<String> {
        self.api_key.as_deref().map(mask)
    }
}

/// `sk-…abcd` → `***abcd`; short secrets are fully masked.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return "***".into();
    }
    format!("***{}", chars[chars.len() - 4..].iter().collect::<String>())
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("path", &self.path)
            .field("base_url", &self.base_url)
            .field("api_key", &self.masked_key())
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("stream", &self.stream)
            .field("chat_config", &self.chat_config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<ModelConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.yaml");
        std::fs::write(&p, text).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        ModelConfig::load(&p, &move |k| env.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone()))
    }

    #[test]
    fn reference_shape_with_passthrough_and_env() {
        let m = load(
            "client_config:\n  base_url: \"${BASE:-http://h/v1}\"\n  api_key: \"${KEY}\"\n  timeout: 60\n  max_retries: 3\nchat_config:\n  model: gpt-oss-120b\n  temperature: 0.7\n  reasoning_effort: high\n  stream: true\n",
            &[("KEY", "sk-abcdefgh12345678")],
        )
        .unwrap();
        assert_eq!(m.base_url, "http://h/v1");
        assert_eq!(m.model, "gpt-oss-120b");
        assert!(m.stream);
        assert_eq!(m.chat_config["reasoning_effort"], "high");
        assert!(!m.chat_config.contains_key("model"));
        assert_eq!(m.timeout, Duration::from_secs(60));
        let shown = format!("{m:?}");
        assert!(!shown.contains("abcdefgh"), "{shown}");
        assert!(shown.contains("***5678"));
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = load("client_config:\n  base_url: http://x\n  max_retires: 3\nchat_config:\n  model: m\n", &[]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains(":3:") && s.contains("client_config.max_retires") && s.contains("max_retries"), "{s}");
        let e = load("client_config:\n  api_key: \"${NOPE}\"\nchat_config:\n  model: m\n", &[]).unwrap_err();
        assert!(e.to_string().contains("NOPE") && e.to_string().contains(":2:"), "{e}");
        let e = load("chat_config:\n  temperature: 1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("chat_config.model"), "{e}");
        assert!(load("client_config:\n  base_url: sim://?latency_ms=5\nchat_config:\n  model: m\n", &[]).unwrap().sim().is_some());
    }
}
