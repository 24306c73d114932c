//! Metrics for dashboards: the run's counters in the Prometheus text format, written to a file
//! every 10 s (`--metrics-file`, for a node exporter's textfile collector or a Slurm job's
//! monitoring) and served at `/metrics` (`--metrics-listen 127.0.0.1:PORT`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::progress::Progress;
use crate::summary::RunStats;

/// Latency histogram bounds, in milliseconds.
const BUCKETS_MS: &[u64] = &[10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000];

/// Where the metrics go.
#[derive(Debug, Clone, Default)]
pub struct MetricsTarget {
    pub file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl MetricsTarget {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.listen.is_none()
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics now, in the Prometheus text exposition format.
pub fn render(task: &str, stats: &RunStats, progress: &Progress) -> String {
    let (done, failed, in_flight, resumed, limit) = progress.snapshot();
    let t = escape(task);
    let mut s = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, samples: &[(String, f64)]| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{{task=\"{t}\"{labels}}} {v}");
        }
    };
    counter("modelcall_records_done_total", "Records finished in this run (failed ones included).", "counter", &[(String::new(), done as f64)]);
    counter("modelcall_records_failed_total", "Records that ended in the error output in this run.", "counter", &[(String::new(), failed as f64)]);
    counter("modelcall_records_resumed_total", "Records done by an earlier run, not sent again.", "counter", &[(String::new(), resumed as f64)]);
    counter("modelcall_requests_total", "HTTP attempts to the model endpoint.", "counter", &[(String::new(), stats.requests as f64)]);
    counter("modelcall_in_flight", "Records being processed now.", "gauge", &[(String::new(), in_flight as f64)]);
    if limit > 0 {
        counter("modelcall_concurrency_limit", "The adaptive bound on requests in flight.", "gauge", &[(String::new(), limit as f64)]);
    }
    let failures: Vec<(String, f64)> = stats.failures_by_cause.iter().map(|(c, n)| (format!(",cause=\"{}\"", escape(c)), *n as f64)).collect();
    counter("modelcall_failures_total", "Failed records by typed cause.", "counter", &failures);
    let retries: Vec<(String, f64)> = stats.retries_by_cause.iter().map(|(c, n)| (format!(",cause=\"{}\"", escape(c)), *n as f64)).collect();
    counter("modelcall_retries_total", "Retried attempts by cause.", "counter", &retries);
    counter(
        "modelcall_tokens_total",
        "Tokens as the endpoint reported them in usage.",
        "counter",
        &[(",kind=\"prompt\"".into(), stats.prompt_tokens as f64), (",kind=\"completion\"".into(), stats.completion_tokens as f64)],
    );
    let (cumulative, count, sum_ms) = stats.latency_buckets(BUCKETS_MS);
    let _ =
        writeln!(s, "# HELP modelcall_request_latency_seconds Latency of the last request of each record.\n# TYPE modelcall_request_latency_seconds histogram");
    for (bound, n) in BUCKETS_MS.iter().zip(&cumulative) {
        let _ = writeln!(s, "modelcall_request_latency_seconds_bucket{{task=\"{t}\",le=\"{}\"}} {n}", *bound as f64 / 1000.0);
    }
    let _ = writeln!(s, "modelcall_request_latency_seconds_bucket{{task=\"{t}\",le=\"+Inf\"}} {count}");
    let _ = writeln!(s, "modelcall_request_latency_seconds_sum{{task=\"{t}\"}} {}", sum_ms / 1000.0);
    let _ = writeln!(s, "modelcall_request_latency_seconds_count{{task=\"{t}\"}} {count}");
    s
}

/// Writes and serves the metrics until dropped; [`Exporter::finish`] writes the last state.
pub struct Exporter {
    target: MetricsTarget,
    task: String,
    stats: Arc<Mutex<RunStats>>,
    progress: Progress,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Exporter {
    pub fn start(target: MetricsTarget, task: String, stats: Arc<Mutex<RunStats>>, progress: Progress) -> anyhow::Result<Exporter> {
        let mut handles = Vec::new();
        let every = std::env::var("MODELCALL_METRICS_INTERVAL_SECS").ok().and_then(|v| v.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(10.0);
        if let Some(path) = target.file.clone() {
            let (task, stats, progress) = (task.clone(), stats.clone(), progress.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    let text = render(&task, &stats.lock().unwrap(), &progress);
                    if let Err(e) = modelcall_io::write_atomically(&path, text.as_bytes()) {
                        tracing::warn!("cannot write the metrics file {}: {e}", path.display());
                    }
                    tokio::time::sleep(Duration::from_secs_f64(every)).await;
                }
            }));
        }
        if let Some(addr) = target.listen {
            let std_listener = std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
            std_listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            eprintln!("metrics at http://{}/metrics", listener.local_addr()?);
            let (task, stats, progress) = (task.clone(), stats.clone(), progress.clone());
            handles.push(tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    let text = render(&task, &stats.lock().unwrap(), &progress);
                    tokio::spawn(async move {
                        let mut request = [0u8; 2048];
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut request)).await;
                        let ok = request.starts_with(b"GET /metrics");
                        let (status, body) = if ok { ("200 OK", text) } else { ("404 Not Found", "only /metrics\n".to_string()) };
                        let head = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = conn.write_all(head.as_bytes()).await;
                        let _ = conn.write_all(body.as_bytes()).await;
                    });
                }
            }));
        }
        Ok(Exporter { target, task, stats, progress, handles })
    }

    /// Stops writing and serving, after a last write of the file with the final counters.
    pub fn finish(self) {
        for h in &self.handles {
            h.abort();
        }
        if let Some(path) = &self.target.file {
            let text = render(&self.task, &self.stats.lock().unwrap(), &self.progress);
            let _ = modelcall_io::write_atomically(path, text.as_bytes());
        }
    }
}
