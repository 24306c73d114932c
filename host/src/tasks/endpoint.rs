//! The model client of a run: a real endpoint, or the built-in SIMULATED one for `sim://`.

use modelcall_config::ModelConfig;
use std::sync::Arc;

use modelcall_model::{ClientSettings, EndpointShare, ModelClient};
use serde_json::{json, Map};

use crate::cli::exit::BadConfig;

/// Starts the in-process simulated endpoint for `sim://` and builds the client. The returned
/// server must live as long as the client is used.
pub async fn connect(model: &ModelConfig, concurrency: usize, plan: &modelcall_config::RunPlan) -> anyhow::Result<(ModelClient, Option<Arc<modelcall_sim::SimServer>>)> {
    let (base_url, sim) = match model.sim() {
        Some(spec) => {
            let opts = modelcall_sim::SimOptions::from_url(&spec.url).map_err(|e| BadConfig(format!("{}: client_config.base_url: {e}", model.path.display())))?;
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
    let share = |e: &modelcall_config::model::PoolEndpoint| EndpointShare { weight: e.weight, max_in_flight: e.max_in_flight };
    if let Some(first) = c.pool.first() {
        settings.base_share = share(first);
        settings.more_endpoints = c.pool[1..].iter().map(|e| (e.url.clone(), share(e))).collect();
    }
    let client = ModelClient::new(settings).map_err(|e| BadConfig(format!("{}: {e}", model.path.display())))?;
    raise_open_file_limit(concurrency as u64 * 2 + 256);
    Ok((client, sim))
}

/// What the run summary gets at the end: `endpoints` (requests, failures and ejections per
/// endpoint), `http_client` (`http1` or `reqwest`, see `modelcall_model::transport`) and, for `sim://`, `simulator` (what the simulated server counted, its prefix
/// cache included).
pub fn end_facts(client: ModelClient, sim: Option<Arc<modelcall_sim::SimServer>>) -> crate::engine::EndFacts {
    Box::new(move |_summary| {
        let mut facts = Map::new();
        facts.insert("endpoints".into(), json!(client.endpoint_stats()));
        facts.insert("http_client".into(), json!(client.transport_name()));
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
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && (lim.rlim_cur as u64) < wanted {
            lim.rlim_cur = (wanted as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
