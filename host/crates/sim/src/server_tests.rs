//! Tests of `server.rs` (and the fault draw of `chat.rs`).

use serde_json::Value;

use super::*;
use crate::chat::draw;
use crate::options::Fault;

#[test]
fn draws_are_uniform_enough() {
    let n = 20_000;
    let below = (0..n).filter(|i| draw(0, *i) < 0.05).count();
    assert!((800..1200).contains(&below), "{below}");
}

#[tokio::test]
async fn fault_mix_matches_the_configured_rates() {
    let opts = SimOptions {
        faults: vec![Fault { kind: FaultKind::RateLimited, rate: 0.1 }, Fault { kind: FaultKind::ServerError, rate: 0.05 }],
        ..SimOptions::default()
    };
    let server = start(opts).await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let mut statuses = std::collections::HashMap::new();
    for _ in 0..2000 {
        let r = client.post(format!("{}/chat/completions", server.base_url())).json(&body).send().await.unwrap();
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    let s429 = statuses.get(&429).copied().unwrap_or(0);
    let s500 = statuses.get(&500).copied().unwrap_or(0);
    assert!((140..260).contains(&s429), "{statuses:?}");
    assert!((60..140).contains(&s500), "{statuses:?}");
    let stats = server.stats();
    assert_eq!(stats.requests, 2000);
    assert_eq!(stats.rate_limited as usize, s429);
}

#[tokio::test]
async fn wire_format_json_and_sse_and_models() {
    let server = start(SimOptions { reasoning: true, ..SimOptions::default() }).await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "Rate it: {\"score\": 3}"}]});
    let v: Value = client.post(&url).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("\"score\""), "{content}");
    assert!(v["choices"][0]["message"]["reasoning_content"].is_string());
    assert!(v["model"].as_str().unwrap().contains("SIMULATED"));
    // Deterministic.
    let again: Value = client.post(&url).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], v["choices"][0]["message"]["content"]);

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    stream_body["stream_options"] = json!({"include_usage": true});
    let r = client.post(&url).json(&stream_body).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("\"usage\""));

    let models: Value = client.get(format!("{}/models", server.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], crate::SIM_MODEL_ID);
    let missing = client.get(format!("http://{}/nope", server.addr)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
