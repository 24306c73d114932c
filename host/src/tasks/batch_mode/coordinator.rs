//! The batch coordinator of one run: collects the records' requests into batch files, uploads
//! them, creates the batches, polls them, downloads the answers and hands each record its own.
//!
//! # The batch journal
//!
//! `<output>/.modelcall/batches/<main|shard-i-of-n>/`:
//! - `journal.jsonl`: one line per step of every batch, appended and synced *before* and
//!   *after* each remote step: `planned` (its input file is written), `uploaded` (file id),
//!   `creating`, `created` (batch id), `status`, `downloaded`, `done`;
//! - `<batch>.input.jsonl`: the batch's requests (written before `planned`);
//! - `<batch>.output.jsonl`, `<batch>.errors.jsonl`: what the provider returned (written before
//!   `downloaded`).
//!
//! On start, the journal is read back before any record is sent: the answers of finished batches
//! are served from their output files (a kill between the download and the run's own journal
//! loses nothing); a batch not finished is taken up where it stopped (uploaded again if no file
//! id was recorded, looked up by its `metadata` when `creating` has no `created` after it, polled
//! when it has a batch id); its records wait for it instead of going into a new batch. A batch
//! of this task the journal does not know (the journal was lost) is found by the task's tag in
//! the metadata (`GET /v1/batches`) and taken up the same way.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelcall_model::batch::{self as wire, BatchClient, BatchError, BatchInfo};
use modelcall_model::{CallError, ChatRequest, ClientSettings, Completion, RetryCause, RetryCounts};
use serde_json::{json, Map, Value};
use tokio::sync::{oneshot, Notify};

use super::Mode;

mod ending;
use crate::cli::exit::Finish;
use crate::engine::{StopReason, StopSignal};

/// With `--detach`, `batch export` or `batch import`, the run ends once every record in flight
/// has waited this long for the coordinator with nothing else happening (the input is read).
const IDLE_END: Duration = Duration::from_secs(3);

/// How batches are cut and followed (`concurrency.batch_*`).
#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub max_requests: usize,
    pub max_bytes: u64,
    /// The first wait between polls; doubled up to 60 s (and never below it).
    pub poll: Duration,
    /// Batches a record may go into (the first and the re-submissions of unanswered records).
    pub max_rounds: u32,
    /// Names this task's batches in their metadata (`modelcall_task`).
    pub task_tag: String,
    /// Wait for the batches, leave them running (`--detach`), or a file instead of the API.
    pub mode: Mode,
    /// The task's output folder (its journals tell which records are done).
    pub output: PathBuf,
}

type Answer = Result<Completion, CallError>;

pub struct Coordinator {
    client: BatchClient,
    settings: ClientSettings,
    folder: PathBuf,
    config: BatchConfig,
    inner: Mutex<Inner>,
    wake: Notify,
    journal: Mutex<std::fs::File>,
    /// This run's prefix of batch names (unique across runs of the folder).
    run_id: String,
    /// The run's stop signal: on a stop (Ctrl-C, SIGTERM, a spent budget) the batches this run
    /// submitted that have no result yet are cancelled (not with `--detach`).
    stop: StopSignal,
    /// The run is stopping: no batch is created, no record re-queued.
    stopping: AtomicBool,
    /// Records inside the job (between the start of [`super::Routed`]'s run and its end).
    active: AtomicUsize,
    /// Why the coordinator itself ended the run (`--detach`, export, import), when it did.
    ended: Mutex<Option<String>>,
    /// The stop has been handled (batches cancelled, or nothing to cancel).
    stop_handled: AtomicBool,
    stop_handled_notify: Notify,
    /// Records still waiting end without a result (not journaled; a later run takes them up).
    released: AtomicBool,
    released_notify: Notify,
}

#[derive(Default)]
struct Inner {
    /// Requests not yet in a batch: custom_id → its line.
    pending: Vec<(String, Vec<u8>)>,
    pending_bytes: u64,
    /// The custom_ids of `pending`.
    queued: HashSet<String>,
    /// Records waiting for their answer.
    waiters: HashMap<String, Vec<oneshot::Sender<Answer>>>,
    /// Answers nobody has asked for yet (batches that finished before a restart).
    answers: HashMap<String, Answer>,
    /// custom_ids in a batch not finished.
    in_batch: HashSet<String>,
    /// Batches each custom_id went into (this run and the journal's).
    rounds: HashMap<String, u32>,
    last_submit: Option<Instant>,
    next: u64,
    /// Batches by state, for the progress lines.
    live: HashMap<String, String>,
    /// Batches being cut, written, uploaded or created, or read once (`--detach`): while any
    /// is, the run is not idle.
    busy: usize,
    /// When a request last came or a batch step last ended.
    last_activity: Option<Instant>,
    /// Batches this run created that have no result yet: name → batch id.
    this_run: HashMap<String, String>,
    /// Batches this run asked to cancel (each asked once).
    cancelled: HashSet<String>,
    /// ... and those the provider accepted the cancel of (for the stop's message, whichever
    /// path cancelled them: the stop, or a create that ended after it).
    cancel_accepted: HashSet<String>,
    /// `--detach`: batches left running (batch id, name, status).
    left_running: Vec<(String, String, String)>,
    /// `batch export`: the request lines, in the order asked.
    exported: Vec<Vec<u8>>,
    exported_ids: HashSet<String>,
    /// `batch import`: the custom_ids of the files, and how many answers were handed out.
    import_ids: Vec<String>,
    import_lines: usize,
    import_served: u64,
    /// Re-asks refused in import mode (their first answer did not parse).
    import_reasks: u64,
}

/// One batch as the journal knows it.
#[derive(Debug, Default, Clone)]
struct Known {
    name: String,
    file_id: Option<String>,
    creating: bool,
    batch_id: Option<String>,
    downloaded: bool,
    done: bool,
}

impl Coordinator {
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// Opens the batch journal in `folder`, serves what finished batches answered and takes up
    /// the batches not finished (in the background).
    pub fn open(settings: ClientSettings, folder: PathBuf, config: BatchConfig, stop: StopSignal) -> anyhow::Result<Arc<Coordinator>> {
        std::fs::create_dir_all(&folder)?;
        let client = BatchClient::new(&settings)?;
        let journal_path = folder.join("journal.jsonl");
        // A file instead of the API: the batch journal is neither read nor written.
        let file_mode = matches!(config.mode, Mode::Export(_) | Mode::Import(_));
        let known = if file_mode { Vec::new() } else { read_journal(&journal_path) };
        let mut imported = Vec::new();
        let mut import_lines = 0;
        if let Mode::Import(files) = &config.mode {
            for file in files {
                let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
                    import_lines += 1;
                    match wire::parse_output_line(line) {
                        Some(r) => imported.push(r),
                        None => eprintln!("batch import: {}: a line is not a batch output line (no custom_id); skipped", file.display()),
                    }
                }
            }
        }
        let journal = std::fs::OpenOptions::new().create(true).append(true).open(&journal_path)?;
        let run_id = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()));
        let coordinator = Arc::new(Coordinator {
            client,
            settings,
            folder,
            config,
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            journal: Mutex::new(journal),
            run_id,
            stop,
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            ended: Mutex::new(None),
            stop_handled: AtomicBool::new(false),
            stop_handled_notify: Notify::new(),
            released: AtomicBool::new(false),
            released_notify: Notify::new(),
        });
        {
            let c = coordinator.clone();
            tokio::spawn(async move { c.on_stop().await });
        }
        if !matches!(coordinator.config.mode, Mode::Wait) {
            let c = coordinator.clone();
            tokio::spawn(async move { c.end_when_idle().await });
        }
        if file_mode {
            let mut inner = coordinator.inner.lock().unwrap();
            inner.import_lines = import_lines;
            for (custom_id, answer) in imported {
                inner.import_ids.push(custom_id.clone());
                inner.answers.insert(custom_id, answer);
            }
            drop(inner);
            return Ok(coordinator);
        }
        let mut unfinished = Vec::new();
        {
            let mut inner = coordinator.inner.lock().unwrap();
            for k in &known {
                let keys = coordinator.input_keys(&k.name);
                for key in &keys {
                    *inner.rounds.entry(key.clone()).or_insert(0) += 1;
                }
                if k.downloaded {
                    // Its answers (the failed lines were handed out or re-queued when it finished).
                    for (custom_id, answer) in coordinator.read_results(&k.name) {
                        if answer.is_ok() {
                            inner.answers.insert(custom_id, answer);
                        }
                    }
                }
                if !k.done {
                    if !k.downloaded {
                        inner.in_batch.extend(keys.iter().cloned());
                    }
                    unfinished.push((k.clone(), keys));
                }
            }
        }
        let known_names: HashSet<String> = known.iter().map(|k| k.name.clone()).collect();
        let known_ids: HashSet<String> = known.iter().filter_map(|k| k.batch_id.clone()).collect();
        for (k, keys) in unfinished {
            let c = coordinator.clone();
            c.inner.lock().unwrap().busy += 1;
            tokio::spawn(async move { c.take_up(k, keys).await });
        }
        // Batches the journal lost are found before any new batch is cut.
        let c = coordinator.clone();
        tokio::spawn(async move {
            c.clone().adopt_lost(known_names, known_ids).await;
            c.cut_batches().await
        });
        Ok(coordinator)
    }

    /// The answer to one request (see the module doc).
    pub async fn chat(&self, custom_id: String, request: &ChatRequest) -> Answer {
        let rx = {
            let mut inner = self.inner.lock().unwrap();
            inner.last_activity = Some(Instant::now());
            if let Some(answer) = inner.answers.remove(&custom_id) {
                if matches!(self.config.mode, Mode::Import(_)) {
                    inner.import_served += 1;
                }
                return answer;
            }
            if matches!(self.config.mode, Mode::Import(_)) && custom_id.contains('~') {
                // A re-ask (the imported answer did not parse): a new request, which an import
                // cannot make; the record fails (retryable) and the next export asks again.
                inner.import_reasks += 1;
                return Err(CallError::Exhausted {
                    cause: RetryCause::MalformedBody,
                    message: "the imported answer did not parse, and an import cannot ask again: export the task again to send it".into(),
                    attempts: 1,
                    retries: RetryCounts::default(),
                });
            }
            let (tx, rx) = oneshot::channel();
            inner.waiters.entry(custom_id.clone()).or_default().push(tx);
            if matches!(self.config.mode, Mode::Import(_)) {
                // Not in the imported files: it waits, and is left as it was when the run ends.
            } else if matches!(self.config.mode, Mode::Export(_)) {
                if inner.exported_ids.insert(custom_id.clone()) {
                    let mut line = serde_json::to_vec(&wire::request_line(&self.settings, &custom_id, request)).expect("serializes");
                    line.push(b'\n');
                    inner.exported.push(line);
                }
            } else if self.stopping.load(Ordering::SeqCst) {
                let senders = inner.waiters.remove(&custom_id).unwrap_or_default();
                drop(inner);
                for s in senders {
                    let _ = s.send(Err(not_sent()));
                }
                return Err(not_sent());
            } else if !inner.in_batch.contains(&custom_id) && !inner.queued.contains(&custom_id) {
                let mut line = serde_json::to_vec(&wire::request_line(&self.settings, &custom_id, request)).expect("serializes");
                line.push(b'\n');
                if line.len() as u64 > self.config.max_bytes {
                    let senders = inner.waiters.remove(&custom_id).unwrap_or_default();
                    drop(inner);
                    let message =
                        format!("the request is {} bytes, more than one batch may hold (concurrency.batch_max_bytes: {})", line.len(), self.config.max_bytes);
                    for s in senders {
                        let _ = s.send(Err(CallError::Rejected { status: 413, message: message.clone() }));
                    }
                    return Err(CallError::Rejected { status: 413, message });
                }
                inner.pending_bytes += line.len() as u64;
                inner.queued.insert(custom_id.clone());
                inner.pending.push((custom_id, line));
                inner.last_submit = Some(Instant::now());
                if inner.pending.len() >= self.config.max_requests || inner.pending_bytes >= self.config.max_bytes {
                    self.wake.notify_one();
                }
            }
            rx
        };
        rx.await.unwrap_or_else(|_| {
            Err(CallError::Exhausted {
                cause: RetryCause::Connection,
                message: "the batch coordinator stopped".into(),
                attempts: 0,
                retries: RetryCounts::default(),
            })
        })
    }

    /// Cuts full batches at once, and what is pending after a short quiet spell.
    async fn cut_batches(self: Arc<Self>) {
        // A partial batch is cut when no request came for this long (the input is read, or
        // the records in flight are all waiting for batches).
        const QUIET: Duration = Duration::from_secs(2);
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(100), self.wake.notified()).await;
            loop {
                let batch = {
                    let mut inner = self.inner.lock().unwrap();
                    let full = inner.pending.len() >= self.config.max_requests || inner.pending_bytes >= self.config.max_bytes;
                    let quiet = !inner.pending.is_empty() && inner.last_submit.is_some_and(|t| t.elapsed() >= QUIET);
                    if (!full && !quiet) || self.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let (mut n, mut bytes) = (0usize, 0u64);
                    for (_, line) in &inner.pending {
                        if n == self.config.max_requests || (n > 0 && bytes + line.len() as u64 > self.config.max_bytes) {
                            break;
                        }
                        n += 1;
                        bytes += line.len() as u64;
                    }
                    let lines: Vec<(String, Vec<u8>)> = inner.pending.drain(..n).collect();
                    inner.pending_bytes -= bytes;
                    for (c, _) in &lines {
                        inner.queued.remove(c);
                        inner.in_batch.insert(c.clone());
                        *inner.rounds.entry(c.clone()).or_insert(0) += 1;
                    }
                    inner.next += 1;
                    inner.busy += 1;
                    (format!("b{}-{:04}", self.run_id, inner.next), lines)
                };
                let c = self.clone();
                tokio::spawn(async move { c.submit(batch.0, batch.1).await });
            }
        }
    }

    fn log(&self, event: Value) {
        let mut f = self.journal.lock().unwrap();
        let mut line = event.to_string();
        line.push('\n');
        let _ = f.write_all(line.as_bytes());
        let _ = f.sync_data();
    }

    fn path(&self, name: &str, what: &str) -> PathBuf {
        self.folder.join(format!("{name}.{what}.jsonl"))
    }

    fn write_atomic(&self, path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = path.with_extension("part");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// A new batch: its input file, then the remote steps.
    async fn submit(self: Arc<Self>, name: String, lines: Vec<(String, Vec<u8>)>) {
        let keys: Vec<String> = lines.iter().map(|(c, _)| c.clone()).collect();
        let body: Vec<u8> = lines.into_iter().flat_map(|(_, l)| l).collect();
        if let Err(e) = self.write_atomic(&self.path(&name, "input"), &body) {
            drop(Busy(self.clone()));
            return self.fail_all(&keys, format!("cannot write the batch input file: {e}"));
        }
        self.log(json!({"batch": name, "step": "planned", "requests": keys.len()}));
        self.take_up(Known { name, ..Known::default() }, keys).await;
    }

    /// Runs a batch from the step the journal reached.
    async fn take_up(self: Arc<Self>, mut k: Known, keys: Vec<String>) {
        // Counted in `busy` by the caller; no longer once it waits (or returns).
        let busy = Busy(self.clone());
        let name = k.name.clone();
        let metadata = |name: &str| {
            let mut m = Map::new();
            m.insert("modelcall_batch".into(), json!(name));
            m.insert("modelcall_task".into(), json!(self.config.task_tag));
            m
        };
        if !k.downloaded {
            if k.batch_id.is_none() && k.creating {
                // Created, or not: the provider knows by its metadata.
                match self.with_patience(|| self.client.find_by_metadata("modelcall_batch", &name, 20)).await {
                    Ok(found) => k.batch_id = found.first().map(|b| b.id.clone()),
                    Err(e) => return self.fail_all(&keys, e.to_string()),
                }
                if let Some(id) = &k.batch_id {
                    self.log(json!({"batch": name, "step": "created", "batch_id": id, "found_by": "metadata"}));
                }
            }
            if k.batch_id.is_none() {
                let file_id = match &k.file_id {
                    Some(f) => f.clone(),
                    None => {
                        let input = match std::fs::read(self.path(&name, "input")) {
                            Ok(b) => b,
                            Err(e) => return self.fail_all(&keys, format!("cannot read the batch input file: {e}")),
                        };
                        let filename = format!("{name}.jsonl");
                        match self.with_patience(|| self.client.upload(&filename, &input)).await {
                            Ok(id) => {
                                self.log(json!({"batch": name, "step": "uploaded", "file_id": id}));
                                id
                            }
                            Err(e) => return self.fail_all(&keys, e.to_string()),
                        }
                    }
                };
                if self.stopping.load(Ordering::SeqCst) {
                    // Uploaded, not created: the next run creates it (the journal says where it stopped).
                    return self.fail_all(&keys, not_sent().to_string());
                }
                let endpoint = if self.settings.text_completion { "/v1/completions" } else { "/v1/chat/completions" };
                let mut tries = 0;
                loop {
                    tries += 1;
                    self.log(json!({"batch": name, "step": "creating", "file_id": file_id}));
                    match self.client.create(&file_id, endpoint, &metadata(&name)).await {
                        Ok(info) => {
                            self.log(json!({"batch": name, "step": "created", "batch_id": info.id}));
                            self.created_here(&name, &info.id).await;
                            k.batch_id = Some(info.id);
                            break;
                        }
                        Err(e) if e.is_transient() && tries < 5 => {
                            // The answer may be lost with the batch made: look before making another.
                            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                            if let Ok(found) = self.with_patience(|| self.client.find_by_metadata("modelcall_batch", &name, 20)).await {
                                if let Some(b) = found.first() {
                                    self.log(json!({"batch": name, "step": "created", "batch_id": b.id, "found_by": "metadata"}));
                                    self.created_here(&name, &b.id).await;
                                    k.batch_id = Some(b.id.clone());
                                    break;
                                }
                            }
                        }
                        Err(e) => return self.fail_all(&keys, e.to_string()),
                    }
                }
            }
            let id = k.batch_id.clone().expect("created or found");
            let info = if matches!(self.config.mode, Mode::Detach) {
                // Read once: collected when it is final, else left running for a later run.
                match self.with_patience(|| self.client.get(&id)).await {
                    Ok(info) if info.is_final() => info,
                    Ok(info) => {
                        self.log(json!({"batch": name, "step": "status", "status": info.status, "completed": info.completed, "failed": info.failed}));
                        self.inner.lock().unwrap().left_running.push((id, name, format!("{} ({} of {} done)", info.status, info.completed, info.total)));
                        return;
                    }
                    Err(e) => {
                        self.inner.lock().unwrap().left_running.push((id, name, format!("not read: {e}")));
                        return;
                    }
                }
            } else {
                drop(busy);
                match self.wait(&name, &id).await {
                    Ok(info) => info,
                    Err(e) => return self.fail_all(&keys, e.to_string()),
                }
            };
            for (file, what) in [(&info.output_file_id, "output"), (&info.error_file_id, "errors")] {
                let Some(file) = file else { continue };
                match self.with_patience(|| self.client.content(file)).await {
                    Ok(bytes) => {
                        if let Err(e) = self.write_atomic(&self.path(&name, what), &bytes) {
                            return self.fail_all(&keys, format!("cannot keep the batch {what} file: {e}"));
                        }
                    }
                    Err(e) => return self.fail_all(&keys, e.to_string()),
                }
            }
            self.log(json!({"batch": name, "step": "downloaded", "status": info.status}));
            self.inner.lock().unwrap().this_run.remove(&name);
        }
        self.hand_out(&name, &keys);
        self.log(json!({"batch": name, "step": "done"}));
    }

    /// Polls until the batch is final, with backoff; progress lines on each change of state.
    async fn wait(&self, name: &str, id: &str) -> Result<BatchInfo, BatchError> {
        let mut delay = self.config.poll;
        let mut last = String::new();
        loop {
            let info = self.with_patience(|| self.client.get(id)).await?;
            if info.status != last {
                last = info.status.clone();
                self.log(json!({"batch": name, "step": "status", "status": info.status, "completed": info.completed, "failed": info.failed}));
                let summary = {
                    let mut inner = self.inner.lock().unwrap();
                    inner.live.insert(name.to_string(), info.status.clone());
                    let mut by: HashMap<&str, usize> = HashMap::new();
                    for s in inner.live.values() {
                        *by.entry(s.as_str()).or_insert(0) += 1;
                    }
                    let mut v: Vec<String> = by.into_iter().map(|(s, n)| format!("{n} {s}")).collect();
                    v.sort();
                    v.join(", ")
                };
                eprintln!("batch {id} ({name}): {} ({} of {} requests done); batches: {summary}", info.status, info.completed, info.total);
            }
            if info.is_final() {
                return Ok(info);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60).max(self.config.poll));
        }
    }

    /// Retries a transient failure of a remote step for a while (a provider having a bad
    /// minute is not the records' failure).
    async fn with_patience<T, F, Fut>(&self, step: F) -> Result<T, BatchError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, BatchError>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match step().await {
                Err(e) if e.is_transient() && tries < 6 => tokio::time::sleep(Duration::from_millis(500) * tries).await,
                other => return other,
            }
        }
    }

    /// What a finished batch's files say, line by line.
    fn read_results(&self, name: &str) -> Vec<(String, Answer)> {
        let mut out = Vec::new();
        for what in ["output", "errors"] {
            let Ok(bytes) = std::fs::read(self.path(name, what)) else { continue };
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Some(r) = wire::parse_output_line(line) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The custom_ids of a batch's input file.
    fn input_keys(&self, name: &str) -> Vec<String> {
        let Ok(bytes) = std::fs::read(self.path(name, "input")) else { return Vec::new() };
        bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter_map(|v| v["custom_id"].as_str().map(str::to_string))
            .collect()
    }

    /// Gives every record of a finished batch its answer; records without one (an expired,
    /// failed or cancelled batch, a 5xx line) go into the next batch while rounds remain.
    fn hand_out(&self, name: &str, keys: &[String]) {
        let mut results: HashMap<String, Answer> = self.read_results(name).into_iter().collect();
        let input = std::fs::read(self.path(name, "input")).unwrap_or_default();
        let mut lines: HashMap<String, Vec<u8>> = HashMap::new();
        for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(c) = serde_json::from_slice::<Value>(line).ok().and_then(|v| v["custom_id"].as_str().map(str::to_string)) {
                let mut l = line.to_vec();
                l.push(b'\n');
                lines.insert(c, l);
            }
        }
        let mut again = 0;
        let mut inner = self.inner.lock().unwrap();
        inner.live.remove(name);
        for key in keys {
            inner.in_batch.remove(key);
            let answer = results.remove(key).unwrap_or_else(|| {
                Err(CallError::Exhausted {
                    cause: RetryCause::ServerError,
                    message: "the batch returned no line for this request".into(),
                    attempts: 1,
                    retries: RetryCounts::default(),
                })
            });
            let retry = matches!(answer, Err(CallError::Exhausted { .. }))
                && inner.rounds.get(key).copied().unwrap_or(0) < self.config.max_rounds
                && !self.stopping.load(Ordering::SeqCst);
            match (retry, lines.remove(key)) {
                (true, Some(line)) => {
                    again += 1;
                    inner.pending_bytes += line.len() as u64;
                    inner.queued.insert(key.clone());
                    inner.pending.push((key.clone(), line));
                    inner.last_submit = Some(Instant::now());
                }
                _ => match inner.waiters.remove(key) {
                    Some(senders) => {
                        for s in senders {
                            let _ = s.send(answer.clone());
                        }
                    }
                    None => {
                        inner.answers.insert(key.clone(), answer);
                    }
                },
            }
        }
        inner.last_activity = Some(Instant::now());
        if again > 0 {
            eprintln!("batch {name}: {again} request(s) without an answer go into a new batch");
            self.wake.notify_one();
        }
    }

    /// A batch that cannot go on: its records fail with the step's error (retried on a rerun).
    fn fail_all(&self, keys: &[String], message: String) {
        eprintln!("batch mode: {message}");
        let mut inner = self.inner.lock().unwrap();
        for key in keys {
            inner.in_batch.remove(key);
            for s in inner.waiters.remove(key).unwrap_or_default() {
                let _ = s.send(Err(CallError::Exhausted {
                    cause: RetryCause::ServerError,
                    message: message.clone(),
                    attempts: 1,
                    retries: RetryCounts::default(),
                }));
            }
        }
    }

    /// Batches of this task the journal does not know (it was lost): found by the task's tag
    /// in their metadata and taken up, so their records are not sent again.
    async fn adopt_lost(self: Arc<Self>, known_names: HashSet<String>, known_ids: HashSet<String>) {
        let Ok(found) = self.client.find_by_metadata("modelcall_task", &self.config.task_tag, 50).await else { return };
        for b in found {
            let name = b.metadata.get("modelcall_batch").and_then(Value::as_str).unwrap_or("").to_string();
            if name.is_empty() || known_names.contains(&name) || known_ids.contains(&b.id) || name.starts_with(&format!("b{}-", self.run_id)) {
                continue;
            }
            // Only batches that can still answer, or did: their input tells which records.
            if matches!(b.status.as_str(), "failed" | "cancelled") && b.output_file_id.is_none() {
                continue;
            }
            let Ok(input) = self.client.content(&b.input_file_id).await else { continue };
            if self.write_atomic(&self.path(&name, "input"), &input).is_err() {
                continue;
            }
            self.log(json!({"batch": name, "step": "planned", "adopted": true}));
            self.log(json!({"batch": name, "step": "created", "batch_id": b.id, "found_by": "metadata"}));
            let keys = self.input_keys(&name);
            {
                let mut inner = self.inner.lock().unwrap();
                for k in &keys {
                    inner.in_batch.insert(k.clone());
                    *inner.rounds.entry(k.clone()).or_insert(0) += 1;
                }
                // Requests queued meanwhile for these records wait for this batch instead.
                let keyset: HashSet<&String> = keys.iter().collect();
                let before = inner.pending.len();
                let kept: Vec<(String, Vec<u8>)> = std::mem::take(&mut inner.pending).into_iter().filter(|(c, _)| !keyset.contains(c)).collect();
                if kept.len() != before {
                    inner.pending_bytes = kept.iter().map(|(_, l)| l.len() as u64).sum();
                    inner.queued = kept.iter().map(|(c, _)| c.clone()).collect();
                }
                inner.pending = kept;
            }
            eprintln!("batch {} ({name}): found by its metadata (the batch journal did not know it); taken up", b.id);
            let c = self.clone();
            let k = Known { name, batch_id: Some(b.id.clone()), ..Known::default() };
            c.inner.lock().unwrap().busy += 1;
            tokio::spawn(async move { c.take_up(k, keys).await });
        }
    }
}

/// Why a request was not sent: the run stopped first.
fn not_sent() -> CallError {
    CallError::Exhausted {
        cause: RetryCause::Connection,
        message: "not sent: the run stopped before its batch was created (run the same command again to send it)".into(),
        attempts: 0,
        retries: RetryCounts::default(),
    }
}

/// A batch step under way (see `Inner::busy`); ends when dropped.
struct Busy(Arc<Coordinator>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut inner = self.0.inner.lock().unwrap();
        inner.busy = inner.busy.saturating_sub(1);
        inner.last_activity = Some(Instant::now());
    }
}

/// A record inside the job (see `Coordinator::active`); ends when dropped.
pub struct Active(Arc<Coordinator>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The record keys the run journals of `output` hold (done or failed).
fn journal_keys(output: &std::path::Path) -> HashSet<String> {
    let mut keys = HashSet::new();
    let Ok(entries) = std::fs::read_dir(output.join(".modelcall")) else { return keys };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().ends_with(".journal.jsonl") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        for line in text.lines() {
            if let Some(k) = serde_json::from_str::<Value>(line).ok().and_then(|v| v["key"].as_str().map(str::to_string)) {
                keys.insert(k);
            }
        }
    }
    keys
}

/// The batches of a journal, in the order they were planned, with the last step each reached.
fn read_journal(path: &std::path::Path) -> Vec<Known> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<String, Known> = HashMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let Some(name) = v["batch"].as_str() else { continue };
        let k = by.entry(name.to_string()).or_insert_with(|| {
            order.push(name.to_string());
            Known { name: name.to_string(), ..Known::default() }
        });
        match v["step"].as_str().unwrap_or("") {
            "uploaded" => k.file_id = v["file_id"].as_str().map(str::to_string),
            "creating" => {
                k.creating = true;
                if k.file_id.is_none() {
                    k.file_id = v["file_id"].as_str().map(str::to_string);
                }
            }
            "created" => k.batch_id = v["batch_id"].as_str().map(str::to_string),
            "downloaded" => k.downloaded = true,
            "done" => k.done = true,
            _ => {}
        }
    }
    order.into_iter().filter_map(|n| by.remove(&n)).collect()
}
