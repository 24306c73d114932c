//! The model config file (`client_config` + `chat_config`, reference §3.1).
//!
//! Compatibility notes, checked against the reference:
//! - every `chat_config` key is passed through to the request body (we keep them in
//!   [`ModelConfig::chat_config`]); `model` and `stream` are lifted out because the host needs them;
//!   `chat_config.timeout` was popped and discarded, so it is reported as ignored;
//! - the HTTP timeout is `client_config.timeout`, else the task's `environment.timeout` (the
//!   reference passed it through env `REQUEST_TIMEOUT`), else `REQUEST_TIMEOUT` from the
//!   environment, else 120 s for scoring / 600 s for generation (the reference's defaults);
//! - `max_retries` defaults to 3;
//! - a file without `client_config` takes `BASE_URL` / `API_KEY` from the environment or env file,
//!   and a `chat_config` without `model` takes `MODEL_NAME` (the reference's env fallback, minus its
//!   silent `gpt-3.5-turbo` default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::env::Vars;
use crate::error::{closest, ConfigError};
use crate::schema::IgnoredKey;
use crate::sim::SimSpec;
use crate::yaml::{describe, interpolate_tree, read_yaml};

pub use crate::model_pool::PoolEndpoint;

#[derive(Clone)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub base_url: String,
    /// Never printed: Debug and Display show [`ModelConfig::masked_key`].
    pub api_key: Option<String>,
    /// Per HTTP attempt, headers and body included (a total deadline).
    pub timeout: Duration,
    /// `client_config.idle_timeout`: the longest wait between two pieces of a response body
    /// (between stream chunks). `None` (the default): only the total `timeout` applies.
    pub idle_timeout: Option<Duration>,
    pub max_retries: u32,
    pub model: String,
    pub stream: bool,
    /// Every other `chat_config` key, passed through to the request body (`extra_body` merged
    /// into its top level, as the OpenAI SDK does).
    pub chat_config: Map<String, Value>,
    /// `pricing: {prompt_per_million, completion_per_million, batch_discount}`: what a million
    /// tokens cost, for cost estimates and `budget.max_cost` (less `batch_discount` in batch mode).
    pub pricing: Option<Pricing>,
    /// The OpenAI SDK's client options and the endpoint pool.
    pub client: ClientOptions,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `Some` when `base_url` is `sim://…` (options already checked).
    pub sim_spec: Option<SimSpec>,
    /// Keys accepted but without effect (e.g. `chat_config.timeout`).
    pub ignored_keys: Vec<IgnoredKey>,
}

/// Values a model config falls back to, from the task that names it.
#[derive(Debug, Clone)]
pub struct ModelDefaults {
    /// `environment.timeout` of the task, in seconds.
    pub task_timeout: Option<f64>,
    /// Used when neither the file, the task nor `REQUEST_TIMEOUT` sets one.
    pub timeout_secs: f64,
    pub max_retries: u32,
}

/// `client_config` keys beyond the basics, as written; what they do is documented on
/// `modelcall_model::ClientSettings`, which the binary fills from them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientOptions {
    /// `default_headers`, with `organization`/`project` as the OpenAI headers.
    pub headers: Vec<(String, String)>,
    /// `default_query`.
    pub query: Vec<(String, String)>,
    /// `http2_prior_knowledge: true`.
    pub h2c: bool,
    /// `api: completions`.
    pub completions_api: bool,
    /// Every endpoint of a pool, `base_url` first (`base_url` as a list, or
    /// `endpoints: [{url, weight, max_in_flight}]`); empty for a single endpoint.
    pub pool: Vec<PoolEndpoint>,
    /// `ca_cert: PATH`: a PEM file of certificates to trust besides the built-in roots (a
    /// private CA, a self-signed server); relative to the model config's folder. Checked to
    /// exist and hold a PEM certificate.
    pub ca_cert: Option<PathBuf>,
    /// `max_response_bytes: N`: the most bytes of one reply's body; `None`: the client's
    /// default (16 MiB).
    pub max_response_bytes: Option<u64>,
}

/// What a million tokens cost (prompt and completion).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
    /// `pricing.batch_discount`: the share of the price taken off in batch mode (`concurrency.mode:
    /// batch`); default 0.5, the OpenAI Batch API's discount.
    pub batch_discount: f64,
    /// The run is in batch mode: [`Pricing::cost`] is at the discounted price.
    pub batch: bool,
}

impl Pricing {
    /// The share of the price taken off in batch mode when `pricing.batch_discount` is not set.
    pub const DEFAULT_BATCH_DISCOUNT: f64 = 0.5;

    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        let factor = if self.batch { 1.0 - self.batch_discount } else { 1.0 };
        (prompt_tokens as f64 * self.prompt_per_million + completion_tokens as f64 * self.completion_per_million) / 1e6 * factor
    }

    /// The same prices with the batch discount applied (a run in batch mode).
    pub fn for_batch(self) -> Pricing {
        Pricing { batch: true, ..self }
    }

    /// The discount applied, when it is (batch mode).
    pub fn applied_discount(&self) -> Option<f64> {
        self.batch.then_some(self.batch_discount)
    }
}

impl ModelDefaults {
    /// The scoring path's defaults (timeout 120 s, 3 retries).
    pub fn scoring() -> Self {
        ModelDefaults { task_timeout: None, timeout_secs: 120.0, max_retries: 3 }
    }
    /// The response generator's defaults (timeout 600 s, 3 retries).
    pub fn generation() -> Self {
        ModelDefaults { task_timeout: None, timeout_secs: 600.0, max_retries: 3 }
    }
}

const CLIENT_KEYS: &[&str] = &[
    "base_url",
    "api_key",
    "api_key_file",
    "timeout",
    "idle_timeout",
    "max_retries",
    "backoff_base_ms",
    "backoff_max_ms",
    // The OpenAI SDK's client options.
    "default_headers",
    "default_query",
    "organization",
    "project",
    "http2_prior_knowledge",
    // `chat` (default) or `completions` (text completion, for base models).
    "api",
    // A pool: `[{url, weight, max_in_flight}]` (or `base_url` as a list).
    "endpoints",
    // A PEM file of certificates to trust (a private CA).
    "ca_cert",
    // The most bytes of one reply (default 16 MiB).
    "max_response_bytes",
];

impl ModelConfig {
    /// Loads a model config; `${VAR}` in its values is interpolated from `vars`.
    pub fn load(path: &Path, vars: &Vars, defaults: &ModelDefaults) -> Result<ModelConfig, ConfigError> {
        let mut yaml = read_yaml(path, "model config")?;
        interpolate_tree(&mut yaml.tree, path, &yaml.source, vars)?;
        let err = |keys: &[&str], msg: String| ConfigError::new(path, msg).key(keys.join(".")).at(yaml.locate(keys));
        let Some(root) = yaml.tree.as_object() else {
            return Err(ConfigError::new(path, "a model config must be a mapping with client_config and chat_config"));
        };
        for k in root.keys() {
            if !["client_config", "chat_config", "model_name", "completions_params", "pricing"].contains(&k.as_str()) {
                return Err(err(&[k], "unknown key in a model config (it holds client_config and chat_config)".into())
                    .suggest(closest(k, ["client_config", "chat_config"])));
            }
        }
        let mut ignored = Vec::new();
        // The reference's legacy form: a top-level `model_name` with `completions_params` as the
        // request keys. Read as `chat_config`, with a note to move over.
        let legacy = root.contains_key("model_name") || root.contains_key("completions_params");
        if legacy && root.contains_key("chat_config") {
            return Err(err(&["completions_params"], "give either chat_config or the legacy model_name/completions_params, not both".into()));
        }
        if legacy {
            ignored.push(IgnoredKey {
                path: path.to_path_buf(),
                key: "completions_params".into(),
                line: yaml.locate(&["completions_params"]).or_else(|| yaml.locate(&["model_name"])).map(|l| l.0),
                why: "read as chat_config (with model_name as chat_config.model); this legacy form is deprecated, move it to chat_config".into(),
            });
        }
        let client = match root.get("client_config") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(v) => return Err(err(&["client_config"], format!("must be a mapping, found {}", describe(v)))),
        };
        if let Some(client) = &client {
            for k in client.keys() {
                if !CLIENT_KEYS.contains(&k.as_str()) {
                    return Err(err(&["client_config", k], format!("unknown key; known keys: {}", CLIENT_KEYS.join(", ")))
                        .suggest(closest(k, CLIENT_KEYS.iter().copied()).map(|s| format!("client_config.{s}"))));
                }
            }
        }
        let chat_key = if legacy { "completions_params" } else { "chat_config" };
        let mut chat = match root.get(chat_key) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(v) => return Err(err(&[chat_key], format!("must be a mapping, found {}", describe(v)))),
        };
        if let Some(name) = root.get("model_name").filter(|_| legacy) {
            chat.entry("model").or_insert_with(|| name.clone());
        }
        let model = match chat.remove("model") {
            Some(Value::String(m)) if !m.is_empty() => m,
            None | Some(Value::Null) => vars
                .get("MODEL_NAME")
                .filter(|m| !m.is_empty())
                .ok_or_else(|| err(&["chat_config", "model"], "missing: name the model to call (chat_config.model)".into()))?,
            Some(v) => return Err(err(&["chat_config", "model"], format!("must be a model name, found {}", describe(&v)))),
        };
        let stream = match chat.remove("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(v) => return Err(err(&["chat_config", "stream"], format!("must be true or false, found {}", describe(&v)))),
        };
        if chat.remove("timeout").is_some() {
            ignored.push(IgnoredKey {
                path: path.to_path_buf(),
                key: "chat_config.timeout".into(),
                line: yaml.locate(&["chat_config", "timeout"]).map(|l| l.0),
                why: "the reference discarded it too; the HTTP timeout is client_config.timeout".into(),
            });
        }

        let client_value = |k: &str| client.as_ref().and_then(|c| c.get(k)).filter(|v| !v.is_null());
        let num = |k: &str| -> Result<Option<f64>, ConfigError> {
            match client_value(k) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(Value::String(s)) => s.trim().parse::<f64>().map(Some).map_err(|_| err(&["client_config", k], format!("must be a number, found \"{s}\""))),
                Some(v) => Err(err(&["client_config", k], format!("must be a number, found {}", describe(v)))),
            }
        };
        let text = |k: &str, env: &str| -> Result<Option<String>, ConfigError> {
            match client_value(k) {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(err(&["client_config", k], format!("must be a string, found {}", describe(v)))),
                None if client.is_none() => Ok(vars.get(env)),
                None => Ok(None),
            }
        };
        let pool = crate::model_pool::parse(client_value("base_url"), client_value("endpoints"), &err)?;
        if !pool.is_empty() && pool.iter().any(|e| e.url.starts_with("sim://")) {
            return Err(err(&["client_config", "base_url"], "a pool of endpoints takes http(s) URLs; run `modelcall serve-sim` for simulated ones".into()));
        }
        let base_url = match pool.first() {
            Some(e) => e.url.clone(),
            None => text("base_url", "BASE_URL")?.filter(|s| !s.is_empty()).unwrap_or_else(|| "https://api.openai.com/v1".into()),
        };
        for PoolEndpoint { url: u, .. } in pool.iter().skip(1) {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(err(&["client_config", "base_url"], format!("`{u}` must start with http:// or https://")));
            }
        }
        let sim_spec = match SimSpec::parse(&base_url) {
            Some(Ok(spec)) => Some(spec),
            Some(Err(e)) => return Err(err(&["client_config", "base_url"], e.to_string()).suggest(crate::sim::suggestion(&e))),
            None if base_url.starts_with("http://") || base_url.starts_with("https://") => None,
            None => return Err(err(&["client_config", "base_url"], format!("`{base_url}` must start with http://, https:// or sim://"))),
        };
        let api_key = text("api_key", "API_KEY")?.filter(|s| !s.is_empty());
        let api_key = match client_value("api_key_file") {
            None => api_key,
            Some(_) if api_key.is_some() => return Err(err(&["client_config", "api_key_file"], "give either api_key or api_key_file, not both".into())),
            Some(Value::String(p)) if !p.trim().is_empty() => {
                let written = Path::new(p.trim());
                let full = if written.is_absolute() { written.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).join(written) };
                modelcall_secrets::read_key_file(&full, vars.secrets_optional()).map_err(|e| err(&["client_config", "api_key_file"], e))?
            }
            Some(v) => return Err(err(&["client_config", "api_key_file"], format!("must be the path of a file holding the key, found {}", describe(v)))),
        };
        let timeout = match num("timeout")? {
            Some(t) => t,
            None => defaults.task_timeout.or_else(|| vars.get("REQUEST_TIMEOUT").and_then(|v| v.trim().parse().ok())).unwrap_or(defaults.timeout_secs),
        };
        if timeout.is_nan() || timeout <= 0.0 {
            return Err(err(&["client_config", "timeout"], format!("must be a positive number of seconds, found {timeout}")));
        }
        let idle_timeout = match num("idle_timeout")? {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => return Err(err(&["client_config", "idle_timeout"], format!("must be a positive number of seconds, found {t}"))),
        };
        let whole = |k: &str, default: f64| -> Result<f64, ConfigError> {
            let v = num(k)?.unwrap_or(default);
            if v < 0.0 || v.fract() != 0.0 {
                return Err(err(&["client_config", k], format!("must be a whole number (0 or more), found {v}")));
            }
            Ok(v)
        };
        let pairs = |k: &str| -> Result<Vec<(String, String)>, ConfigError> {
            match client_value(k) {
                None => Ok(Vec::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(name, v)| match v {
                        Value::String(s) => Ok((name.clone(), s.clone())),
                        Value::Number(_) | Value::Bool(_) => Ok((name.clone(), v.to_string())),
                        other => Err(err(&["client_config", k, name], format!("must be text, found {}", describe(other)))),
                    })
                    .collect(),
                Some(v) => Err(err(&["client_config", k], format!("must be a mapping of names to values, found {}", describe(v)))),
            }
        };
        let mut headers = pairs("default_headers")?;
        for (key, header) in [("organization", "OpenAI-Organization"), ("project", "OpenAI-Project")] {
            if let Some(v) = text(key, "")?.filter(|v| !v.is_empty()) {
                headers.push((header.to_string(), v));
            }
        }
        let http2_prior_knowledge = match client_value("http2_prior_knowledge") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(err(&["client_config", "http2_prior_knowledge"], format!("must be true or false, found {}", describe(v)))),
        };
        let pricing = match root.get("pricing") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => {
                let price = |k: &str| -> Result<f64, ConfigError> {
                    match p.get(k) {
                        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v >= 0.0) => Ok(n.as_f64().unwrap_or(0.0)),
                        None => Err(err(&["pricing", k], "missing: the price of a million tokens".into())),
                        Some(v) => Err(err(&["pricing", k], format!("must be a number, 0 or more, found {}", describe(v)))),
                    }
                };
                if let Some(k) = p.keys().find(|k| !["prompt_per_million", "completion_per_million", "batch_discount"].contains(&k.as_str())) {
                    return Err(err(&["pricing", k], "unknown key; known keys: prompt_per_million, completion_per_million, batch_discount".into()));
                }
                let batch_discount = match p.get("batch_discount") {
                    None | Some(Value::Null) => Pricing::DEFAULT_BATCH_DISCOUNT,
                    Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)) => n.as_f64().unwrap_or(0.0),
                    Some(v) => {
                        return Err(err(
                            &["pricing", "batch_discount"],
                            format!("must be a number from 0 to 1 (the share taken off in batch mode; 0.5 is half price), found {}", describe(v)),
                        ))
                    }
                };
                Some(Pricing {
                    prompt_per_million: price("prompt_per_million")?,
                    completion_per_million: price("completion_per_million")?,
                    batch_discount,
                    batch: false,
                })
            }
            Some(v) => return Err(err(&["pricing"], format!("must be a mapping, found {}", describe(v)))),
        };
        let text_completion = match client_value("api") {
            None => false,
            Some(Value::String(a)) if a == "chat" => false,
            Some(Value::String(a)) if a == "completions" => true,
            Some(v) => return Err(err(&["client_config", "api"], format!("must be `chat` or `completions`, found {}", describe(v)))),
        };
        let ca_cert = match client_value("ca_cert") {
            None => None,
            Some(Value::String(p)) if !p.trim().is_empty() => {
                let written = Path::new(p.trim());
                let full = match written.is_absolute() {
                    true => written.to_path_buf(),
                    false => path.parent().unwrap_or(Path::new(".")).join(written),
                };
                let pem = std::fs::read(&full)
                    .map_err(|e| err(&["client_config", "ca_cert"], format!("cannot read the certificate file {}: {e}", full.display())))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(err(
                        &["client_config", "ca_cert"],
                        format!("{} holds no PEM certificate (a -----BEGIN CERTIFICATE----- block): give the CA's certificate in PEM form", full.display()),
                    ));
                }
                Some(full)
            }
            Some(v) => return Err(err(&["client_config", "ca_cert"], format!("must be the path of a PEM certificate file, found {}", describe(v)))),
        };
        let max_response_bytes = match num("max_response_bytes")? {
            None => None,
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Some(n as u64),
            Some(n) => return Err(err(&["client_config", "max_response_bytes"], format!("must be a whole number of bytes, 1 or more, found {n}"))),
        };
        let client = ClientOptions {
            headers,
            query: pairs("default_query")?,
            h2c: http2_prior_knowledge,
            completions_api: text_completion,
            pool,
            ca_cert,
            max_response_bytes,
        };
        Ok(ModelConfig {
            path: path.to_path_buf(),
            client,
            pricing,
            base_url,
            api_key,
            timeout: Duration::from_secs_f64(timeout),
            idle_timeout,
            max_retries: whole("max_retries", defaults.max_retries as f64)? as u32,
            model,
            stream,
            chat_config: chat,
            backoff_base: Duration::from_millis(whole("backoff_base_ms", 500.0)? as u64),
            backoff_max: Duration::from_millis(whole("backoff_max_ms", 30_000.0)? as u64),
            sim_spec,
            ignored_keys: ignored,
        })
    }

    /// True when `base_url` is `sim://…`: the built-in simulated endpoint, no network.
    pub fn is_simulated(&self) -> bool {
        self.sim_spec.is_some()
    }

    /// The `sim://` options, when simulated.
    pub fn sim(&self) -> Option<SimSpec> {
        self.sim_spec.clone()
    }

    /// The API key as it may be shown: `***` plus its last four characters
    /// ([`modelcall_secrets::mask`]).
    pub fn masked_key(&self) -> Option<String> {
        self.api_key.as_deref().map(mask)
    }

    /// Removes this config's key (and credential headers, URL userinfo) from text before it is
    /// shown: server bodies, transport errors.
    pub fn redactor(&self) -> modelcall_secrets::Redactor {
        let credential_headers = self.client.headers.iter().filter(|(n, _)| modelcall_secrets::is_credential_header(n)).map(|(_, v)| v.clone());
        modelcall_secrets::Redactor::new(self.api_key.clone().into_iter().chain(credential_headers))
            .with_url_credentials(std::iter::once(self.base_url.as_str()).chain(self.client.pool.iter().map(|e| e.url.as_str())))
    }

    pub fn temperature(&self) -> Option<f64> {
        self.chat_config.get("temperature").and_then(Value::as_f64)
    }

    pub fn max_tokens(&self) -> Option<u64> {
        self.chat_config.get("max_tokens").and_then(Value::as_u64)
    }

    pub fn reasoning_effort(&self) -> Option<&str> {
        self.chat_config.get("reasoning_effort").and_then(Value::as_str)
    }
}

/// `sk-…abcd` → `***abcd` (the one masking, from `modelcall-secrets`).
pub use modelcall_secrets::mask;

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
