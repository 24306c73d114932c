//! A model config's pool of endpoints: `client_config.base_url` as a list, or
//! `client_config.endpoints: [{url, weight, max_in_flight}]`, each entry checked with its index.

use serde_json::Value;

use crate::error::{closest, ConfigError};

/// One endpoint of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolEndpoint {
    pub url: String,
    /// Share of the requests, relative to the others (default 1).
    pub weight: f64,
    /// At most this many requests in flight on this endpoint (a replica's own capacity);
    /// `None`: only the run's concurrency bounds it.
    pub max_in_flight: Option<u32>,
}

/// The pool written in `base_url` (a list) and `endpoints`, `base_url`'s first; empty for a
/// single endpoint. `err(keys, message)` makes the error naming the file, key and line.
pub(crate) fn parse(
    base_url: Option<&Value>,
    endpoints: Option<&Value>,
    err: &dyn Fn(&[&str], String) -> ConfigError,
) -> Result<Vec<PoolEndpoint>, ConfigError> {
    let describe = crate::yaml::describe;
    let mut pool: Vec<PoolEndpoint> = Vec::new();
    if let Some(Value::Array(urls)) = base_url {
        for (i, u) in urls.iter().enumerate() {
            match u.as_str().filter(|u| !u.is_empty()) {
                Some(u) => pool.push(PoolEndpoint { url: u.to_string(), weight: 1.0, max_in_flight: None }),
                None => return Err(err(&["client_config", "base_url"], format!("entry {i} of the list must be a URL, found {}", describe(u)))),
            }
        }
    }
    match endpoints {
        None => {}
        Some(Value::Array(entries)) => {
            for (i, e) in entries.iter().enumerate() {
                let entry_err = |msg: String| err(&["client_config", "endpoints"], format!("entry {i}: {msg}"));
                if let Some(m) = e.as_object() {
                    if let Some(k) = m.keys().find(|k| !["url", "weight", "max_in_flight"].contains(&k.as_str())) {
                        return Err(entry_err(format!("unknown key `{k}` (an endpoint has url, weight, max_in_flight)"))
                            .suggest(closest(k, ["url", "weight", "max_in_flight"])));
                    }
                }
                let url = e.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()).ok_or_else(|| entry_err("needs a `url`".into()))?;
                let weight = match e.get("weight") {
                    None => 1.0,
                    Some(w) => w.as_f64().filter(|w| *w > 0.0 && w.is_finite()).ok_or_else(|| entry_err("`weight` must be a positive number".into()))?,
                };
                let max_in_flight = match e.get("max_in_flight") {
                    None | Some(Value::Null) => None,
                    Some(n) => Some(
                        n.as_u64()
                            .filter(|n| (1..=u32::MAX as u64).contains(n))
                            .ok_or_else(|| entry_err(format!("`max_in_flight` must be a whole number of at least 1, found {}", describe(n))))?
                            as u32,
                    ),
                };
                pool.push(PoolEndpoint { url: url.to_string(), weight, max_in_flight });
            }
        }
        Some(v) => return Err(err(&["client_config", "endpoints"], format!("must be a list of {{url, weight, max_in_flight}}, found {}", describe(v)))),
    }
    Ok(pool)
}
