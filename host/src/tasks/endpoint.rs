//! The model client of a run: a real endpoint, or the built-in SIMULATED one for `sim://`.

use modelcall_config::ModelConfig;
use std::sync::Arc;

use modelcall_model::{CallError, ClientSettings, EndpointShare, ModelClient};
use serde_json::{json, Map};
use std::time::Duration;

use crate::cli::exit::BadConfig;

/// Starts the in-process simulated endpoint for `sim://` and builds the client. The returned
/// server must live as long as the client is used.
pub async fn connect(
    model: &ModelConfig,
    concurrency: usize,
    plan: &modelcall_config::RunPlan,
) -> anyhow::Result<(ModelClient, Option<Arc<modelcall_sim::SimServer>>)> {
    let (base_url, sim) = match model.sim() {
        Some(spec) => {
            let opts =
                modelcall_sim::SimOptions::from_url(&spec.url).map_err(|e| BadConfig(format!("{}: client_config.base_url: {e}", model.path.display())))?;
            let sim = modelcall_sim::start(opts).await.map_err(|e| match e {
                // A replies file that is missing or malformed is the task's configuration.
                modelcall_sim::SimError::Url(e) => anyhow::Error::from(BadConfig(format!("{}: client_config.base_url: {e}", model.path.display()))),
                other => anyhow::Error::from(other),
            })?;
            eprintln!("using the SIMULATED endpoint at {} (replies are synthetic, not a model's)", sim.base_url());
            (sim.base_url(), Some(Arc::new(sim)))
        }
        None => (model.base_url.clone(), None),
    };
    let mut settings = ClientSettings::new(base_url, model.model.clone());
    settings.api_key = model.api_key.clone();
    settings.timeout = model.timeout;
    settings.idle_timeout = model.idle_timeout;
    settings.max_retries = model.max_retries;
    settings.pool_size = concurrency;
    settings.stream = model.stream;
    settings.chat_config = model.chat_config.clone();
    settings.backoff_base = model.backoff_base;
    settings.backoff_max = model.backoff_max;
    settings.requests_per_minute = plan.requests_per_minute;
    settings.tokens_per_minute = plan.tokens_per_minute;
    // The encoding the reference's truncation used, for estimating a prompt's tokens.
    settings.token_counter = Some(std::sync::Arc::new(modelcall_plugin_host::tokenizer::count_tokens));
    let c = &model.client;
    settings.headers = c.headers.clone();
    settings.query = c.query.clone();
    settings.http2_prior_knowledge = c.h2c;
    settings.text_completion = c.completions_api;
    settings.ca_cert = c.ca_cert.clone();
    if let Some(max) = c.max_response_bytes {
        settings.max_response_bytes = max;
    }
    let share = |e: &modelcall_config::model::PoolEndpoint| EndpointShare { weight: e.weight, max_in_flight: e.max_in_flight };
    if let Some(first) = c.pool.first() {
        settings.base_share = share(first);
        settings.more_endpoints = c.pool[1..].iter().map(|e| (e.url.clone(), share(e))).collect();
    }
    let client = ModelClient::new(settings).map_err(|e| BadConfig(format!("{}: {e}", model.path.display())))?;
    if sim.is_none() {
        preflight(&client, model).await?;
    }
    raise_open_file_limit(concurrency as u64 * 2 + 256);
    Ok((client, sim))
}

/// How long the pre-flight `GET /models` may take before the run goes on without it.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

/// Before the first paid request: `GET {base_url}/models` (free). A model the endpoint does not
/// list is a warning naming what it serves; a certificate the client does not trust stops the
/// run (exit 2). Anything else (no `/models`, an error, no answer in time) says nothing.
async fn preflight(client: &ModelClient, model: &ModelConfig) -> anyhow::Result<()> {
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, client.list_models()).await {
        Ok(Err(e @ CallError::Certificate { .. })) => Err(BadConfig(format!("{}: {e}", model.path.display())).into()),
        Ok(Ok(served)) => {
            if let Some(warning) = unlisted_model_warning(&model.model, &served) {
                eprintln!(
                    "warning: {}",
                    crate::shown::shown(&format!("{} (GET {}/models): {warning}", model.path.display(), model.base_url.trim_end_matches('/')))
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What to say when `model` is not among the `served` models (the first few named); `None`
/// when it is, when nothing is listed, or when the server is modelcall's simulator (which
/// answers for any model name).
fn unlisted_model_warning(model: &str, served: &[String]) -> Option<String> {
    const SHOWN: usize = 8;
    if served.is_empty() || served.iter().any(|m| m == model) || served.iter().all(|m| m == modelcall_sim::SIM_MODEL_ID) {
        return None;
    }
    let mut names = served.iter().take(SHOWN).map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
    if served.len() > SHOWN {
        names.push_str(&format!(" and {} more", served.len() - SHOWN));
    }
    Some(format!("the endpoint does not list the model `{model}` (chat_config.model); it serves {names}"))
}

/// What the run summary gets at the end: `endpoints` (requests, failures and ejections per
/// endpoint), `http_client` (`http1` or `reqwest`, see `modelcall_model::transport`),
/// `stale_connection_resends` and, for `sim://`, `simulator` (what the simulated server counted, its prefix
/// cache included).
pub fn end_facts(client: ModelClient, sim: Option<Arc<modelcall_sim::SimServer>>) -> crate::engine::EndFacts {
    Box::new(move |_summary| {
        let mut facts = Map::new();
        facts.insert("endpoints".into(), json!(client.endpoint_stats()));
        facts.insert("http_client".into(), json!(client.transport_name()));
        // Requests re-sent once on a fresh connection after the server closed a reused one
        // before answering (not retries).
        facts.insert("stale_connection_resends".into(), json!(client.stale_connection_resends()));
        if let Some(sim) = &sim {
            let s = sim.stats();
            let mut doc = json!({"requests": s.requests, "rate_limited": s.rate_limited});
            if s.http2_requests > 0 {
                doc["http2_requests"] = json!(s.http2_requests);
            }
            if s.prefix_lookups > 0 {
                doc["prefix_cache"] = json!({"lookups": s.prefix_lookups, "hits": s.prefix_hits,
                    "hit_rate": (s.prefix_hits as f64 / s.prefix_lookups as f64 * 1000.0).round() / 1000.0});
            }
            facts.insert("simulator".into(), doc);
        }
        facts
    })
}

/// Thousands of connections in flight need thousands of file descriptors; raise the soft limit
/// towards the hard one instead of failing with "too many open files" mid-run.
fn raise_open_file_limit(wanted: u64) {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < wanted {
            lim.rlim_cur = (wanted as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unlisted_model_warning;

    #[test]
    fn an_unlisted_model_is_named_with_what_the_endpoint_serves() {
        let served: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        let w = unlisted_model_warning("qwen", &served).unwrap();
        assert!(w.contains("`qwen`") && w.contains("`m0`") && w.contains("`m7`") && !w.contains("`m8`") && w.contains("2 more"), "{w}");
        assert_eq!(unlisted_model_warning("m3", &served), None);
        assert_eq!(unlisted_model_warning("qwen", &[]), None);
        assert_eq!(unlisted_model_warning("qwen", &[modelcall_sim::SIM_MODEL_ID.to_string()]), None);
    }
}
