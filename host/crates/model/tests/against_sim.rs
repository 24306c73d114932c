//! The client against the simulated endpoint: a real HTTP server on 127.0.0.1.

use std::time::{Duration, Instant};

use modelcall_model::{CallError, ChatMessage, ChatRequest, ClientSettings, ModelClient, RetryCause};
use modelcall_sim::{Fault, FaultKind, SimOptions};

fn settings(base_url: String) -> ClientSettings {
    let mut s = ClientSettings::new(base_url, "m");
    s.api_key = Some("sk-test".into());
    s.timeout = Duration::from_secs(2);
    s.max_retries = 10;
    s.backoff_base = Duration::from_millis(5);
    s.backoff_max = Duration::from_millis(200);
    s
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::new("user", text)], ..Default::default() }
}

#[tokio::test]
async fn every_request_gets_through_the_fault_mix_and_retries_are_counted() {
    let sim = modelcall_sim::start(SimOptions {
        faults: vec![
            Fault { kind: FaultKind::RateLimited, rate: 0.05 },
            Fault { kind: FaultKind::ServerError, rate: 0.05 },
            Fault { kind: FaultKind::Drop, rate: 0.05 },
            Fault { kind: FaultKind::Malformed, rate: 0.05 },
        ],
        retry_after_secs: 0,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    for stream in [false, true] {
        let mut s = settings(sim.base_url());
        s.stream = stream;
        let client = ModelClient::new(s).unwrap();
        let mut handles = Vec::new();
        for i in 0..400 {
            let client = client.clone();
            handles.push(tokio::spawn(async move { client.chat(&ask(&format!("q{i} {{\"score\": 1}}"))).await }));
        }
        let mut totals = std::collections::HashMap::new();
        for h in handles {
            let c = h.await.unwrap().expect("every call succeeds");
            assert!(c.content.contains("\"score\""), "{}", c.content);
            assert_eq!(c.finish_reason.as_deref(), Some("stop"));
            assert!(c.usage.is_some());
            for (cause, n) in c.retries.iter() {
                *totals.entry(cause).or_insert(0) += n;
            }
        }
        for cause in ["rate_limited", "server_error", "connection", "malformed_body"] {
            assert!(totals.get(cause).copied().unwrap_or(0) > 0, "stream={stream}: {totals:?}");
        }
    }
}

#[tokio::test]
async fn unauthorized_is_fatal_at_once_and_names_the_endpoint() {
    let sim = modelcall_sim::start(SimOptions { faults: vec![Fault { kind: FaultKind::Unauthorized, rate: 1.0 }], ..Default::default() }).await.unwrap();
    let client = ModelClient::new(settings(sim.base_url())).unwrap();
    let err = client.chat(&ask("hi")).await.unwrap_err();
    assert!(err.is_fatal());
    assert!(matches!(err, CallError::Auth { status: 401, .. }));
    assert!(err.to_string().contains(&sim.addr.to_string()), "{err}");
    assert_eq!(sim.stats().requests, 1, "no retry on 401");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = modelcall_sim::start(SimOptions {
        faults: vec![Fault { kind: FaultKind::RateLimited, rate: 0.5 }],
        retry_after_secs: 1,
        seed: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = settings(sim.base_url());
    s.backoff_max = Duration::from_secs(5);
    let client = ModelClient::new(s).unwrap();
    // Find a call that was rate limited and check it waited at least the Retry-After.
    for i in 0..20 {
        let started = Instant::now();
        let c = client.chat(&ask(&format!("q{i}"))).await.unwrap();
        let limited = c.retries.get(RetryCause::RateLimited);
        if limited > 0 {
            assert!(started.elapsed() >= Duration::from_secs(limited as u64), "{:?}", started.elapsed());
            return;
        }
    }
    panic!("no call was rate limited");
}

#[tokio::test]
async fn hangs_time_out_and_bad_requests_are_rejected() {
    let sim = modelcall_sim::start(SimOptions { faults: vec![Fault { kind: FaultKind::Hang, rate: 1.0 }], ..Default::default() }).await.unwrap();
    let mut s = settings(sim.base_url());
    s.timeout = Duration::from_millis(200);
    s.max_retries = 1;
    let err = ModelClient::new(s).unwrap().chat(&ask("hi")).await.unwrap_err();
    assert!(matches!(err, CallError::Exhausted { cause: RetryCause::Timeout, attempts: 2, .. }), "{err:?}");

    let ok_sim = modelcall_sim::start(SimOptions::default()).await.unwrap();
    let client = ModelClient::new(settings(ok_sim.base_url())).unwrap();
    let err = client.chat(&ChatRequest::default()).await.unwrap_err();
    assert!(matches!(err, CallError::Rejected { status: 400, .. }), "{err:?}");
    assert!(!err.is_fatal());
}

#[tokio::test]
async fn reasoning_is_kept_apart_from_the_answer() {
    let sim = modelcall_sim::start(SimOptions { reasoning: true, ..Default::default() }).await.unwrap();
    for stream in [false, true] {
        let mut s = settings(sim.base_url());
        s.stream = stream;
        let c = ModelClient::new(s).unwrap().chat(&ask("{\"score\": 1}")).await.unwrap();
        let r = c.reasoning.as_deref().unwrap();
        assert!(r.contains("Simulated reasoning"), "{r}");
        assert!(!c.content.contains("Simulated reasoning"));
        assert!(c.raw_text.starts_with("<think>\n"));
    }
}

/// Throughput of the client against the simulator at 0 ms latency (release):
/// `cargo test --release -p modelcall-model --test against_sim -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_requests_per_second() {
    let sim = modelcall_sim::start(SimOptions::default()).await.unwrap();
    let mut s = settings(sim.base_url());
    s.pool_size = 256;
    let client = ModelClient::new(s).unwrap();
    let n = 50_000usize;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let r = client.chat(&ask(&format!("q{i}"))).await;
            drop(permit);
            r.is_ok()
        }));
    }
    let mut ok = 0;
    for h in handles {
        ok += h.await.unwrap() as usize;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{ok}/{n} ok in {secs:.2}s: {:.0} req/s (client and simulator in one process, 2 worker threads)", n as f64 / secs);
}

#[tokio::test]
async fn requests_per_minute_spaces_out_requests() {
    let sim = modelcall_sim::start(SimOptions::default()).await.unwrap();
    let mut s = settings(sim.base_url());
    s.requests_per_minute = Some(600); // 10 per second, bursts of 10
    let client = ModelClient::new(s).unwrap();
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..25 {
        let client = client.clone();
        handles.push(tokio::spawn(async move { client.chat(&ask(&format!("q{i}"))).await.is_ok() }));
    }
    for h in handles {
        assert!(h.await.unwrap());
    }
    // 10 at once, then 15 more at 10/s: at least 1.4 s.
    assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
}

#[tokio::test]
async fn tokens_per_minute_spaces_out_requests_by_their_estimated_tokens() {
    let sim = modelcall_sim::start(SimOptions::default()).await.unwrap();
    let mut s = settings(sim.base_url());
    // 60,000 a minute = 1,000 a second, the first minute's worth at once; each request is
    // estimated at 1,000 tokens (a counter that says 0 for the prompt, plus max_tokens).
    s.tokens_per_minute = Some(60_000);
    s.token_counter = Some(std::sync::Arc::new(|_: &str| 0));
    let client = ModelClient::new(s).unwrap();
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..62 {
        let client = client.clone();
        let req = ChatRequest { max_tokens: Some(1000), ..ask(&format!("q{i}")) };
        handles.push(tokio::spawn(async move { client.chat(&req).await.is_ok() }));
    }
    for h in handles {
        assert!(h.await.unwrap());
    }
    // 60 at once, then one a second: the last two wait about 2 s between them.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(10), "{elapsed:?}");
}

/// `http2_prior_knowledge: true` speaks HTTP/2 without TLS (through reqwest): every request
/// reaches the simulator over HTTP/2, streamed or not. Without it, HTTP/1.1 through the lean
/// transport.
#[tokio::test]
async fn h2c_is_spoken_when_asked_for_and_http1_otherwise() {
    let sim = modelcall_sim::start(SimOptions::default()).await.unwrap();
    let mut sent = 0;
    for (h2c, stream) in [(true, false), (true, true), (false, false)] {
        let mut s = settings(sim.base_url());
        s.http2_prior_knowledge = h2c;
        s.stream = stream;
        let client = ModelClient::new(s).unwrap();
        assert_eq!(client.transport_name(), if h2c { "reqwest" } else { "http1" });
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.chat(&ask(&format!("q{i}"))).await })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().expect("the call succeeds").finish_reason.as_deref(), Some("stop"));
        }
        sent += 20;
        let stats = sim.stats();
        assert_eq!(stats.requests, sent);
        assert_eq!(stats.http2_requests, 40.min(sent), "h2c={h2c} stream={stream}");
    }
}
