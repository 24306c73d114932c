//! Tests of `model.rs`.

use super::*;

fn load_with(text: &str, env: &[(&str, &str)], defaults: ModelDefaults) -> Result<ModelConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.yaml");
    std::fs::write(&p, text).unwrap();
    let vars = Vars::fixed(env.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    ModelConfig::load(&p, &vars, &defaults)
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<ModelConfig, ConfigError> {
    load_with(text, env, ModelDefaults::scoring())
}

#[test]
fn reference_shape_with_passthrough_env_and_masking() {
    let m = load(
        "client_config:\n  base_url: \"${BASE:-http://h/v1}\"\n  api_key: \"${KEY}\"\n  timeout: 60\n  max_retries: 3\nchat_config:\n  model: gpt-oss-120b\n  temperature: 0.7\n  max_tokens: 8000\n  reasoning_effort: high\n  stream: true\n  timeout: 5\n",
        &[("KEY", "sk-abcdefgh12345678")],
    )
    .unwrap();
    assert_eq!(m.base_url, "http://h/v1");
    assert_eq!(m.model, "gpt-oss-120b");
    assert!(m.stream && !m.is_simulated());
    assert_eq!((m.temperature(), m.max_tokens(), m.reasoning_effort()), (Some(0.7), Some(8000), Some("high")));
    assert!(!m.chat_config.contains_key("model") && !m.chat_config.contains_key("timeout"));
    assert_eq!(m.timeout, Duration::from_secs(60));
    assert_eq!(m.ignored_keys[0].key, "chat_config.timeout");
    assert_eq!(m.ignored_keys[0].line, Some(12));
    for shown in [format!("{m:?}"), m.to_string()] {
        assert!(!shown.contains("abcdefgh"), "{shown}");
        assert!(shown.contains("***5678"), "{shown}");
    }
    assert_eq!(mask("short"), "***");
}

#[test]
fn timeout_and_retry_fallbacks_follow_the_reference() {
    let body = "client_config:\n  base_url: http://x\nchat_config:\n  model: m\n";
    let m = load(body, &[]).unwrap();
    assert_eq!((m.timeout, m.max_retries), (Duration::from_secs(120), 3));
    let m = load(body, &[("REQUEST_TIMEOUT", "45")]).unwrap();
    assert_eq!(m.timeout, Duration::from_secs(45));
    let m = load_with(body, &[("REQUEST_TIMEOUT", "45")], ModelDefaults { task_timeout: Some(1200.0), ..ModelDefaults::scoring() }).unwrap();
    assert_eq!(m.timeout, Duration::from_secs(1200));
    assert_eq!(load_with(body, &[], ModelDefaults::generation()).unwrap().timeout, Duration::from_secs(600));
}

#[test]
fn env_fallback_without_client_config() {
    let m = load("chat_config:\n  temperature: 0\n", &[("BASE_URL", "http://gw/v1"), ("API_KEY", "k-123456789"), ("MODEL_NAME", "qwen")]).unwrap();
    assert_eq!((m.base_url.as_str(), m.api_key.as_deref(), m.model.as_str()), ("http://gw/v1", Some("k-123456789"), "qwen"));
}

#[test]
fn errors_name_line_and_key() {
    let e = load("client_config:\n  base_url: http://x\n  max_retires: 3\nchat_config:\n  model: m\n", &[]).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(":3:") && s.contains("client_config.max_retires") && s.contains("did you mean `client_config.max_retries`"), "{s}");
    let e = load("client_config:\n  api_key: \"${NOPE}\"\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains("NOPE") && e.to_string().contains(":2:"), "{e}");
    let e = load("chat_config:\n  temperature: 1\n", &[]).unwrap_err();
    assert!(e.to_string().contains("chat_config.model"), "{e}");
    let e = load("client_config:\n  timeout: soon\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains(":2:") && e.to_string().contains("must be a number, found \"soon\""), "{e}");
    let e = load("client_config:\n  base_url: ftp://x\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains("client_config.base_url"), "{e}");
}

#[test]
fn sim_urls() {
    let m = load("client_config:\n  base_url: sim://?latency_ms=50&fault=429:0.05\nchat_config:\n  model: m\n", &[]).unwrap();
    assert!(m.is_simulated());
    let s = m.sim().unwrap();
    let o = s.options();
    assert_eq!((o.latency, o.faults.len(), o.faults[0].kind.as_str(), o.faults[0].rate), (Duration::from_millis(50), 1, "429", 0.05));
    assert!(m.to_string().contains("SIMULATED"));
    let e = load("client_config:\n  base_url: sim://?fault=teapot:1\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains(":2:") && e.to_string().contains("teapot"), "{e}");
    let e = load("client_config:\n  base_url: sim://?latency=5\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains("client_config.base_url") && e.to_string().contains("did you mean `latency_ms`"), "{e}");
}

#[test]
fn idle_timeout_is_optional_and_positive() {
    let m = load("client_config:\n  base_url: http://x\n  timeout: 30\nchat_config:\n  model: m\n", &[]).unwrap();
    assert_eq!((m.timeout, m.idle_timeout), (Duration::from_secs(30), None));
    let m = load("client_config:\n  base_url: http://x\n  idle_timeout: 2.5\nchat_config:\n  model: m\n", &[]).unwrap();
    assert_eq!(m.idle_timeout, Some(Duration::from_millis(2500)));
    let m = load("client_config:\n  base_url: http://x\n  idle_timeout: \"${IDLE:-4}\"\nchat_config:\n  model: m\n", &[]).unwrap();
    assert_eq!(m.idle_timeout, Some(Duration::from_secs(4)));
    let e = load("client_config:\n  base_url: http://x\n  idle_timeout: 0\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains(":3:") && e.to_string().contains("client_config.idle_timeout"), "{e}");
    let e = load("client_config:\n  base_url: http://x\n  idle_timout: 1\nchat_config:\n  model: m\n", &[]).unwrap_err();
    assert!(e.to_string().contains("did you mean `client_config.idle_timeout`"), "{e}");
}

#[test]
fn redactor_knows_the_key() {
    let m = load("client_config:\n  base_url: http://x\n  api_key: sk-abcdefgh12345678\nchat_config:\n  model: m\n", &[]).unwrap();
    assert_eq!(m.redactor().redact("bad key sk-abcdefgh12345678"), "bad key ***5678");
}

#[test]
fn openai_client_options_and_the_legacy_form_are_read() {
    let m = load(
        "client_config:\n  base_url: http://x/v1\n  organization: org-9\n  default_headers: {X-Api-Key: hk-12345678, X-Team: data}\n  default_query: {api-version: '2024-10-21'}\n  http2_prior_knowledge: true\nchat_config:\n  model: m\n",
        &[],
    )
    .unwrap();
    assert!(m.client.headers.contains(&("OpenAI-Organization".into(), "org-9".into())));
    assert!(m.client.headers.contains(&("X-Team".into(), "data".into())));
    assert_eq!(m.client.query, vec![("api-version".to_string(), "2024-10-21".to_string())]);
    assert!(m.client.h2c);
    assert_eq!(m.redactor().redact("echo hk-12345678"), "echo ***5678", "a credential header's value is redacted");
    let legacy = load("client_config:\n  base_url: http://x/v1\nmodel_name: old\ncompletions_params: {temperature: 0.3}\n", &[]).unwrap();
    assert_eq!(legacy.model, "old");
    assert_eq!(legacy.chat_config["temperature"], 0.3);
    assert!(legacy.ignored_keys.iter().any(|k| k.key == "completions_params" && k.why.contains("deprecated")));
}

#[test]
fn pool_endpoints_take_weights_and_their_own_in_flight_limits() {
    let m = load(
        "client_config:\n  endpoints:\n    - {url: \"http://a/v1\", weight: 2, max_in_flight: 8}\n    - {url: \"http://b/v1\"}\nchat_config:\n  model: m\n",
        &[],
    )
    .unwrap();
    assert_eq!(m.base_url, "http://a/v1");
    assert_eq!(
        m.client.pool,
        vec![
            PoolEndpoint { url: "http://a/v1".into(), weight: 2.0, max_in_flight: Some(8) },
            PoolEndpoint { url: "http://b/v1".into(), weight: 1.0, max_in_flight: None },
        ]
    );
    for (entry, wanted) in [
        ("{url: \"http://a/v1\", max_in_flight: 0}", "`max_in_flight` must be a whole number of at least 1"),
        ("{url: \"http://a/v1\", max_inflight: 4}", "unknown key `max_inflight`"),
        ("{url: \"http://a/v1\", weight: -1}", "`weight` must be a positive number"),
        ("{weight: 1}", "needs a `url`"),
    ] {
        let e = load(&format!("client_config:\n  endpoints:\n    - {entry}\nchat_config:\n  model: m\n"), &[]).unwrap_err().to_string();
        assert!(e.contains("client_config.endpoints") && e.contains("entry 0") && e.contains(wanted), "{entry}: {e}");
    }
}
