//! How a batch run ends, beside the coordinator's work of sending and collecting: the guard
//! that counts a record inside the job, cancelling this run's batches on a stop (Ctrl-C,
//! SIGTERM, a spent budget), `--detach`'s end once everything waits, and the report after the
//! run (what is still running and the command that collects it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

impl Coordinator {
    /// Counts a record inside the job until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::SeqCst);
        Active(self.clone())
    }

    /// A batch this run created: cancelled on a stop; at once if the stop came meanwhile.
    pub(super) async fn created_here(&self, name: &str, id: &str) {
        self.inner.lock().unwrap().this_run.insert(name.to_string(), id.to_string());
        if self.stopping.load(Ordering::SeqCst) {
            self.cancel(vec![(name.to_string(), id.to_string())]).await;
        }
    }

    /// Cancels these batches (each once); how many the provider accepted.
    pub(super) async fn cancel(&self, batches: Vec<(String, String)>) -> Vec<String> {
        let mut done = Vec::new();
        for (name, id) in batches {
            if !self.inner.lock().unwrap().cancelled.insert(id.clone()) {
                continue;
            }
            match self.client.cancel(&id).await {
                Ok(info) => {
                    self.log(json!({"batch": name, "step": "cancel", "batch_id": id, "status": info.status}));
                    self.inner.lock().unwrap().cancel_accepted.insert(id.clone());
                    done.push(id);
                }
                Err(e) => eprintln!("batch {id} ({name}): could not cancel it: {e}"),
            }
        }
        done
    }

    /// On the run's stop (Ctrl-C, SIGTERM, a spent budget; not `--detach`, nor the
    /// coordinator's own end): nothing more is sent, and the batches this run created that have
    /// no result yet are cancelled (`POST /v1/batches/{id}/cancel`). What they answered before
    /// the cancel is kept: this run collects it when it waits for them (a spent budget), else
    /// the next run does (the batch journal has their ids).
    pub(super) async fn on_stop(self: Arc<Self>) {
        self.stop.stopped().await;
        let mine = self.ended.lock().unwrap().is_some();
        if !mine && matches!(self.config.mode, Mode::Wait) {
            self.stopping.store(true, Ordering::SeqCst);
            let pending: Vec<String> = {
                let mut inner = self.inner.lock().unwrap();
                inner.queued.clear();
                inner.pending_bytes = 0;
                inner.pending.drain(..).map(|(c, _)| c).collect()
            };
            if !pending.is_empty() {
                let message = not_sent().to_string();
                let mut inner = self.inner.lock().unwrap();
                for key in &pending {
                    for s in inner.waiters.remove(key).unwrap_or_default() {
                        let _ = s.send(Err(not_sent()));
                    }
                }
                drop(inner);
                eprintln!("batch mode: {} request(s) not yet in a batch are not sent ({message})", pending.len());
            }
            // A create under way ends first (or is cancelled as soon as it does).
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.inner.lock().unwrap().busy > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let open: Vec<(String, String)> = {
                let inner = self.inner.lock().unwrap();
                let mut v: Vec<(String, String)> = inner.this_run.iter().map(|(n, i)| (n.clone(), i.clone())).collect();
                v.sort();
                v
            };
            if !open.is_empty() {
                let ids: Vec<String> = open.iter().map(|(_, id)| id.clone()).collect();
                self.cancel(open).await;
                // Also those a create that ended after the stop cancelled itself.
                let cancelled: Vec<String> = {
                    let inner = self.inner.lock().unwrap();
                    ids.into_iter().filter(|id| inner.cancel_accepted.contains(id)).collect()
                };
                if !cancelled.is_empty() {
                    eprintln!(
                        "batch mode: the run stopped: cancelled {} batch(es) this run submitted that had no result yet ({}); what they answered before the cancel is kept and collected, the rest is sent again by the next run",
                        cancelled.len(),
                        cancelled.join(", ")
                    );
                }
            }
        }
        // A spent budget waits for what is in flight (the cancelled batches' answers are paid
        // for); any other stop leaves the records waiting as they are.
        if !(matches!(self.config.mode, Mode::Wait) && self.stop.drains()) {
            self.release();
        }
        self.stop_handled.store(true, Ordering::SeqCst);
        self.stop_handled_notify.notify_waiters();
    }

    pub(super) fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.released_notify.notify_waiters();
    }

    /// Resolves once the records still waiting are to end without a result.
    pub async fn released(&self) {
        loop {
            let notified = self.released_notify.notified();
            if self.released.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// `--detach`, export, import: ends the run once every record in flight waits for the
    /// coordinator, nothing is being submitted and nothing happened for [`IDLE_END`].
    pub(super) async fn end_when_idle(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if self.stop.is_stopped() {
                return;
            }
            let idle = {
                let inner = self.inner.lock().unwrap();
                let waiting: usize = inner.waiters.values().map(Vec::len).sum();
                waiting > 0
                    && inner.pending.is_empty()
                    && inner.busy == 0
                    && self.active.load(Ordering::SeqCst) <= waiting
                    && inner.last_activity.is_some_and(|t| t.elapsed() >= IDLE_END)
            };
            if idle {
                let reason = match &self.config.mode {
                    Mode::Detach => "detached: the batches are submitted and left running; run the same command again to collect what finished".to_string(),
                    Mode::Export(path) => format!("exported the requests left to {}", path.display()),
                    Mode::Import(_) => "imported the answers of the files".to_string(),
                    Mode::Wait => return,
                };
                *self.ended.lock().unwrap() = Some(reason.clone());
                self.stop.fatal(reason);
                self.release();
                return;
            }
        }
    }

    /// After the run: waits for the stop to be handled (cancels sent), writes the export, says
    /// what was submitted, left running, imported; a run the coordinator itself ended
    /// (`--detach`, export, import) is done, not stopped.
    pub async fn after_run(&self, finish: Finish) -> anyhow::Result<Finish> {
        if self.stop.is_stopped() {
            loop {
                let notified = self.stop_handled_notify.notified();
                if self.stop_handled.load(Ordering::SeqCst) {
                    break;
                }
                notified.await;
            }
        }
        let ended = self.ended.lock().unwrap().clone();
        let interrupted = matches!(&finish, Finish::Stopped(StopReason::Interrupted));
        match &self.config.mode {
            Mode::Wait => {}
            Mode::Detach => {
                let inner = self.inner.lock().unwrap();
                if !inner.left_running.is_empty() {
                    let mut left = inner.left_running.clone();
                    left.sort();
                    eprintln!("batch mode (--detach): {} batch(es) left running, not waited for:", left.len());
                    for (id, name, status) in &left {
                        eprintln!("  {id} ({name}): {status}");
                    }
                }
                let task = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
                eprintln!("check:   modelcall status {}   (the batches this task has submitted and their last known state)", self.config.output.display());
                eprintln!("collect: modelcall {task}   (collects what finished, exactly once; submits nothing twice)");
            }
            Mode::Export(path) if !interrupted => {
                let inner = self.inner.lock().unwrap();
                let body: Vec<u8> = inner.exported.iter().flatten().copied().collect();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                modelcall_io::write_atomically(path, &body).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                eprintln!(
                    "batch export: {} request(s) left to do written to {} (the OpenAI batch input format; custom_id = the record's key)",
                    inner.exported.len(),
                    path.display()
                );
                if !inner.exported.is_empty() {
                    eprintln!(
                        "next:    vllm run-batch -i {} -o results.jsonl --model {}\n         modelcall batch import {} results.jsonl",
                        path.display(),
                        self.settings.model,
                        task_file_arg()
                    );
                }
            }
            Mode::Export(_) => {}
            Mode::Import(files) => {
                let inner = self.inner.lock().unwrap();
                let journaled = journal_keys(&self.config.output);
                let base = |c: &str| c.split('~').next().unwrap_or(c).to_string();
                let unknown: Vec<&String> = inner.import_ids.iter().filter(|c| !journaled.contains(&base(c))).collect();
                let known_before = inner.import_ids.len() as u64 - inner.import_served.min(inner.import_ids.len() as u64) - unknown.len() as u64;
                eprintln!(
                    "batch import: {} line(s) read from {} file(s): {} answer(s) imported into the journal, {} for records already done (nothing added), {} with an unknown custom_id (not a record of this task){}",
                    inner.import_lines,
                    files.len(),
                    inner.import_served,
                    known_before,
                    unknown.len(),
                    if unknown.is_empty() { String::new() } else { format!(", e.g. {}", unknown.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                );
                if inner.import_reasks > 0 {
                    eprintln!("batch import: {} answer(s) did not parse; their records are error rows, and the next export asks again", inner.import_reasks);
                }
            }
        }
        match (finish, ended) {
            (Finish::Stopped(StopReason::Fatal(r)), Some(mine)) if r == mine => Ok(Finish::Done),
            (f, _) => Ok(f),
        }
    }
}

/// The task file as the command line named it (for the next command).
fn task_file_arg() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().find(|a| a.ends_with(".yaml") || a.ends_with(".yml")).cloned().unwrap_or_else(|| "TASK.yaml".into())
}
