//! How a model config is shown: never its key (masked) nor a password in its URLs.

use std::fmt;

use crate::model::ModelConfig;

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("path", &self.path)
            .field("base_url", &self.redactor().redact_string(&self.base_url))
            .field("api_key", &self.masked_key())
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_retries", &self.max_retries)
            .field("stream", &self.stream)
            .field("chat_config", &self.chat_config)
            .finish()
    }
}

impl fmt::Display for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base_url = self.redactor().redact_string(&self.base_url);
        let endpoint = if self.is_simulated() { format!("{base_url} (SIMULATED)") } else { base_url };
        write!(
            f,
            "{} at {endpoint}, key {}, timeout {}s, {} retries{}",
            self.model,
            self.masked_key().unwrap_or_else(|| "none".into()),
            self.timeout.as_secs_f64(),
            self.max_retries,
            if self.stream { ", streaming" } else { "" }
        )
    }
}
