//! Metrics for dashboards: `--metrics-file` (the Prometheus text format, rewritten every
//! interval and once at the end) and `--metrics-listen` (the same at `/metrics`), both read
//! back with a Prometheus text-format parser.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{write_records, Scratch};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("not the Prometheus text format ({e}):\n{text}"))
}

/// The value of `name` (the sum over its label sets), for counters and gauges.
fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn the_metrics_file_holds_the_run_in_the_prometheus_format() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 200);
    let task = s.scoring_task("sim://?latency_ms=5", 8, "", "");
    let metrics = s.path("metrics/modelcall.prom");
    let o = Command::new(bin())
        .arg("run-task")
        .arg(&task)
        .arg("--no-progress")
        .arg("--metrics-file")
        .arg(&metrics)
        .env("MODELCALL_METRICS_INTERVAL_SECS", "0.1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scrape = parse(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(value(&scrape, "modelcall_requests_total"), 200.0);
    assert_eq!(value(&scrape, "modelcall_records_done_total"), 200.0);
    assert_eq!(value(&scrape, "modelcall_in_flight"), 0.0);
    assert!(value(&scrape, "modelcall_tokens_total") > 0.0);
    let histogram = scrape.samples.iter().find(|s| s.metric == "modelcall_request_latency_seconds").expect("the latency histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let all = buckets.iter().find(|b| b.less_than.is_infinite()).expect("a +Inf bucket");
            assert_eq!(all.count, 200.0);
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "cumulative buckets");
        }
        other => panic!("a histogram, not {other:?}"),
    }
    assert!(histogram.labels.get("task") == Some("e2e"), "{:?}", histogram.labels);
}

#[test]
fn metrics_are_served_while_the_run_goes() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 300);
    let task = s.scoring_task("sim://?latency_ms=100", 10, "", "");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(bin())
        .arg("run-task")
        .arg(&task)
        .arg("--no-progress")
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut response = String::new();
            let _ = conn.read_to_string(&mut response);
            if let Some((_, body)) = response.split_once("\r\n\r\n") {
                let scrape = parse(body);
                if value(&scrape, "modelcall_requests_total") > 0.0 {
                    seen = Some((value(&scrape, "modelcall_requests_total"), value(&scrape, "modelcall_in_flight")));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let (requests, in_flight) = seen.expect("metrics served during the run");
    assert!(requests < 300.0 && in_flight > 0.0, "read mid-run: {requests} requests, {in_flight} in flight");
}
