//! A model server written for the tests, independent of the product's simulator: OpenAI-style
//! chat completions over HTTP/1.1 (kept alive, a thread per connection), a service time drawn
//! uniformly from a range, and a capacity K: past K requests in service it either queues them
//! (first come, first served: a GPU server's scheduler) or refuses them at once with 429.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Over {
    Queue,
    Refuse,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Requests served at once (`u64::MAX`: no limit).
    pub capacity: u64,
    pub over: Over,
    /// Service time, uniform in [min, max] milliseconds.
    pub latency_ms: (u64, u64),
}

#[derive(Default)]
pub struct Stats {
    pub answered: AtomicU64,
    pub refused: AtomicU64,
    /// Requests in service now, and the most at once.
    pub serving: AtomicU64,
    pub peak: AtomicU64,
    /// Requests received and not yet answered (in service or queued).
    pub in_flight: AtomicU64,
    /// The capacity now (starts at the spec's; [`Server::set_capacity`] changes it mid-run, as
    /// a replica lost behind a load balancer does).
    pub capacity: AtomicU64,
    /// Every 100 ms: (seconds since start, requests in flight, refused so far, answered so far).
    pub timeline: Mutex<Vec<Sample>>,
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at_s: f64,
    pub in_flight: u64,
    pub refused: u64,
    pub answered: u64,
}

impl Server {
    /// Changes the capacity now; returns the time of the change on the timeline's clock.
    pub fn set_capacity(&self, capacity: u64) -> f64 {
        self.stats.capacity.store(capacity, Ordering::SeqCst);
        self.started.elapsed().as_secs_f64()
    }

    pub fn timeline(&self) -> Vec<Sample> {
        self.stats.timeline.lock().unwrap().clone()
    }
}

pub struct Server {
    pub url: String,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    port: u16,
    started: std::time::Instant,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Slots {
    busy: Mutex<u64>,
    freed: Condvar,
}

pub fn start(spec: Spec) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stats = Arc::new(Stats { capacity: AtomicU64::new(spec.capacity), ..Stats::default() });
    let stop = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    {
        // The sampler ends with the server (bounded: it checks `stop` every 100 ms).
        let (stats, stop) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let sample = Sample {
                    at_s: started.elapsed().as_secs_f64(),
                    in_flight: stats.in_flight.load(Ordering::Relaxed),
                    refused: stats.refused.load(Ordering::Relaxed),
                    answered: stats.answered.load(Ordering::Relaxed),
                };
                stats.timeline.lock().unwrap().push(sample);
            }
        });
    }
    let slots = Arc::new(Slots { busy: Mutex::new(0), freed: Condvar::new() });
    let seq = Arc::new(AtomicU64::new(1));
    {
        let (stats, stop) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (stats, slots, seq, stop) = (stats.clone(), slots.clone(), seq.clone(), stop.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, spec, &stats, &slots, &seq, &stop);
                });
            }
        });
    }
    Server { url: format!("http://127.0.0.1:{port}/v1"), stats, stop, port, started }
}

fn draw(n: u64) -> f64 {
    let mut z = n.wrapping_mul(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

const REPLY: &str =
    "```json\n{\"score\": 4, \"corpus_type\": \"general\", \"main_languages\": [\"en\"], \"quality_tags\": [], \"recommended_use_case\": \"pretraining\"}\n```";

fn serve(stream: TcpStream, spec: Spec, stats: &Stats, slots: &Slots, seq: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            head.push_str(&line);
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, reply) = if head.starts_with("GET") {
            (200, "{\"object\":\"list\",\"data\":[{\"id\":\"m\",\"object\":\"model\"}]}".to_string())
        } else {
            stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let answer = answer(spec, stats, slots, seq);
            stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            answer
        };
        let reason = if status == 200 { "OK" } else { "Too Many Requests" };
        let extra = if status == 429 { "retry-after: 0\r\n" } else { "" };
        write!(out, "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{reply}", reply.len())?;
        out.flush()?;
    }
}

fn answer(spec: Spec, stats: &Stats, slots: &Slots, seq: &AtomicU64) -> (u16, String) {
    {
        let mut busy = slots.busy.lock().unwrap();
        if *busy >= stats.capacity.load(Ordering::SeqCst) {
            match spec.over {
                Over::Refuse => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    return (429, "{\"error\":{\"message\":\"over capacity\",\"type\":\"rate_limit\"}}".into());
                }
                Over::Queue => {
                    while *busy >= stats.capacity.load(Ordering::SeqCst) {
                        busy = slots.freed.wait(busy).unwrap();
                    }
                }
            }
        }
        *busy += 1;
    }
    let now = stats.serving.fetch_add(1, Ordering::Relaxed) + 1;
    stats.peak.fetch_max(now, Ordering::Relaxed);
    let (lo, hi) = spec.latency_ms;
    let ms = lo as f64 + (hi - lo) as f64 * draw(seq.fetch_add(1, Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs_f64(ms / 1000.0));
    stats.serving.fetch_sub(1, Ordering::Relaxed);
    {
        let mut busy = slots.busy.lock().unwrap();
        *busy -= 1;
        slots.freed.notify_one();
    }
    stats.answered.fetch_add(1, Ordering::Relaxed);
    let content = serde_json::to_string(REPLY).unwrap();
    (
        200,
        format!(
            "{{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{content}}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":10,\"total_tokens\":20}}}}"
        ),
    )
}
