//! A fixed pool of worker threads for plugin calls.
//!
//! Plugin calls are synchronous wasmtime calls, and the runtime keeps one warm instance per
//! (plugin, thread). Running them on tokio's elastic blocking pool would create an instance on
//! every one of its hundreds of threads; a small fixed pool keeps instances (and their memory)
//! bounded by the number of cores while the model I/O stays async.

use std::sync::Arc;
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A plugin that failed to load, as the message a user fixes it from: a config the plugin's
/// schema rejects gives one line per violation at its key in `file` (`file:line:col: `key`:
/// expected integer, got string …`), a refusal of the plugin's own one line at the config block.
/// `prefix` is where the plugin's config block sits in `file` (`["plugins", "judge", "config"]`
/// in a task file, empty for a `--config` file). `None` (a config not written in `file`, e.g. a
/// built-in configured from the prompt file) or another error: `None`, the error's own words.
pub fn load_error_message(e: &modelcall_plugin_host::LoadError, file: &std::path::Path, prefix: Option<&[&str]>) -> Option<String> {
    use modelcall_plugin_host::LoadError;
    let prefix = prefix?;
    let (plugin, pairs): (&str, Vec<(Vec<String>, String)>) = match e {
        LoadError::ConfigSchema { plugin, violations, .. } => (plugin, violations.iter().map(|v| (v.path.clone(), v.message.clone())).collect()),
        // The plugin's own refusal (a rule its schema cannot say), at the config block; the
        // schema an SDK appends to it is left to `plugin check`.
        LoadError::InvalidConfig { plugin, message } => {
            let own = message.split(modelcall_plugin_host::config_check::SCHEMA_MARK).next().unwrap_or(message);
            let refusal = [(vec![], format!("plugin {plugin} rejected its config: {own}"))];
            let placed = modelcall_config::plugin_config::place_config_errors(file, prefix, &refusal);
            return Some(placed.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
        }
        _ => return None,
    };
    let mut placed = modelcall_config::plugin_config::place_config_errors(file, prefix, &pairs);
    placed.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    let lines: Vec<String> = placed.iter().map(ToString::to_string).collect();
    Some(format!(
        "plugin {plugin}: the config does not match the config schema the plugin publishes (`modelcall plugin check` prints it):\n{}",
        lines.join("\n")
    ))
}

/// Runs closures on `threads` dedicated OS threads and hands results back to async code.
#[derive(Clone)]
pub struct PluginPool {
    sender: crossbeam_channel::Sender<Job>,
    threads: usize,
    _guard: Arc<PoolGuard>,
}

struct PoolGuard {
    handles: std::sync::Mutex<Vec<thread::JoinHandle<()>>>,
}

impl PluginPool {
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        // A bounded queue: producers wait (asynchronously, via `run`) instead of piling up work.
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(threads * 64);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let receiver = receiver.clone();
            let handle = thread::Builder::new()
                .name(format!("modelcall-plugin-{index}"))
                .spawn(move || {
                    while let Ok(job) = receiver.recv() {
                        job();
                    }
                })
                .expect("spawning a plugin worker thread");
            handles.push(handle);
        }
        Self { sender, threads, _guard: Arc::new(PoolGuard { handles: std::sync::Mutex::new(handles) }) }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` on a pool thread and awaits its result. A panic inside `job` becomes an error
    /// instead of taking the run down.
    pub async fn run<R, F>(&self, job: F) -> anyhow::Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let boxed: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            let _ = tx.send(result);
        });
        let sender = self.sender.clone();
        // `send` blocks only when the queue is full; do that wait off the async threads.
        match sender.try_send(boxed) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(boxed)) => {
                tokio::task::spawn_blocking(move || sender.send(boxed)).await?.map_err(|_| anyhow::anyhow!("plugin worker pool has shut down"))?;
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                anyhow::bail!("plugin worker pool has shut down")
            }
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                anyhow::bail!("host panic while calling a plugin: {message}")
            }
            Err(_) => anyhow::bail!("plugin worker thread stopped"),
        }
    }
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        // Threads end when the last sender is dropped; joining here would deadlock if a
        // sender clone is still alive elsewhere, so the handles are simply detached.
        self.handles.lock().map(|mut h| h.clear()).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_are_placed_in_the_file_they_were_written_in() {
        use modelcall_plugin_host::{ConfigViolation, LoadError};
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("task.yaml");
        std::fs::write(&task, "task_name: t\nplugins:\n  judge:\n    role: score-parser\n    config:\n      mx: 3\n      max: five\n").unwrap();
        let e = LoadError::ConfigSchema {
            plugin: "j.wasm".into(),
            violations: vec![
                ConfigViolation { path: vec!["mx".into()], message: "unknown key".into() },
                ConfigViolation { path: vec!["max".into()], message: "expected integer, got string \"five\"".into() },
            ],
            schema: "{}".into(),
        };
        let block: &[&str] = &["plugins", "judge", "config"];
        let m = load_error_message(&e, &task, Some(block)).unwrap();
        let t = task.display();
        assert!(m.starts_with("plugin j.wasm: the config does not match the config schema the plugin publishes"), "{m}");
        assert!(
            m.ends_with(&format!(
                "\n{t}:6:7: `plugins.judge.config.mx`: unknown key\n{t}:7:7: `plugins.judge.config.max`: expected integer, got string \"five\""
            )),
            "{m}"
        );
        // The plugin's own refusal, at the block, without the schema an SDK appends.
        let e = LoadError::InvalidConfig { plugin: "j.wasm".into(), message: "`min` is over `max`\nconfig schema: {\"type\":\"object\"}".into() };
        assert_eq!(
            load_error_message(&e, &task, Some(block)).unwrap(),
            format!("{t}:5:5: `plugins.judge.config`: plugin j.wasm rejected its config: `min` is over `max`")
        );
        // Not written in that file, or not about the config: the caller's own words.
        assert!(load_error_message(&e, &task, None).is_none());
        assert!(load_error_message(&LoadError::Link { plugin: "j".into(), message: "m".into() }, &task, Some(block)).is_none());
    }

    #[tokio::test]
    async fn runs_jobs_on_named_pool_threads() {
        let pool = PluginPool::new(2);
        let name = pool.run(|| thread::current().name().unwrap().to_string()).await.unwrap();
        assert!(name.starts_with("modelcall-plugin-"), "{name}");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_survives() {
        let pool = PluginPool::new(1);
        let err = pool.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn many_concurrent_jobs_all_complete() {
        let pool = PluginPool::new(2);
        let mut handles = Vec::new();
        for i in 0..1000u64 {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move { pool.run(move || i * 2).await.unwrap() }));
        }
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        assert_eq!(sum, (0..1000u64).map(|i| i * 2).sum::<u64>());
    }
}
