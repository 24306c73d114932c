//! Where log lines go: stderr (filtered by `MODELCALL_LOG`, else `logging.level` of the task,
//! else warnings and plugin log lines), and, with `logging.log_dir`, one JSON-lines file per
//! run at `<log_dir>/<task_name>/<task_name>_<YYYYmmdd_HHMMSS>.jsonl` (the reference's place
//! for its log, in a form tools can read), which gets every line at `logging.level` (default
//! info) whatever stderr shows.
//!
//! The subscriber is installed once at start, before any task is read; a task's `logging:`
//! block then adjusts it through reload handles.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};


/// What stderr shows without `MODELCALL_LOG` or `logging.level`.
const DEFAULT_STDERR: &str = "warn,modelcall::plugin=info";

/// Replaces a layer's filter.
type Reload = Box<dyn Fn(EnvFilter) + Send + Sync>;

struct Handles {
    stderr: Reload,
    file_filter: Reload,
    /// Set by [`configure`] when the task names a `log_dir`.
    file: Arc<Mutex<Option<std::fs::File>>>,
    env_set: bool,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The run log file, shared by the writers the JSON layer makes.
#[derive(Clone)]
struct RunLog(Arc<Mutex<Option<std::fs::File>>>);

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().unwrap().as_mut() {
            Some(f) => f.write_all(buf).map(|_| buf.len()),
            None => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().unwrap().as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Installs the subscriber (call once, first thing in `main`).
pub fn init() {
    let env = std::env::var("MODELCALL_LOG").ok().filter(|v| !v.trim().is_empty());
    let stderr_filter = EnvFilter::try_new(env.as_deref().unwrap_or(DEFAULT_STDERR)).unwrap_or_else(|_| EnvFilter::new(DEFAULT_STDERR));
    let (stderr_filter, stderr_handle) = reload::Layer::new(stderr_filter);
    // Nothing goes to the file layer until a task opens a log file (`off` until then).
    let (file_filter, file_handle) = reload::Layer::new(EnvFilter::new("off"));
    let file = Arc::new(Mutex::new(None));
    let writer = RunLog(file.clone());
    let stderr_layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(crate::progress::colour_on_stderr());
    let file_layer = tracing_subscriber::fmt::layer().json().with_writer(move || writer.clone());
    Registry::default().with(stderr_layer.with_filter(stderr_filter)).with(file_layer.with_filter(file_filter)).init();
    let _ = HANDLES.set(Handles {
        stderr: Box::new(move |f| {
            let _ = stderr_handle.reload(f);
        }),
        file_filter: Box::new(move |f| {
            let _ = file_handle.reload(f);
        }),
        file,
        env_set: env.is_some(),
    });
}

/// A `logging.level` the reference accepted (`DEBUG`, `info`, …) as a tracing directive.
pub fn parse_level(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" | "fatal" => "error",
        _ => return None,
    })
}

/// Applies a task's `logging:` block: `level` for stderr (unless `MODELCALL_LOG` is set) and
/// the file, and a run log file under `log_dir`. Returns the file's path.
pub fn configure(task_name: &str, level: Option<&'static str>, log_dir: Option<&Path>) -> std::io::Result<Option<PathBuf>> {
    let Some(h) = HANDLES.get() else { return Ok(None) };
    if let (Some(level), false) = (level, h.env_set) {
        // The plugins' own lines stay visible at info, as without a level.
        let directive = if matches!(level, "warn" | "error") { format!("{level},modelcall::plugin=info") } else { level.to_string() };
        (h.stderr)(EnvFilter::new(directive));
    }
    let Some(dir) = log_dir else { return Ok(None) };
    let folder = dir.join(task_name);
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{task_name}_{}.jsonl", chrono::Local::now().format("%Y%m%d_%H%M%S")));
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    *h.file.lock().unwrap() = Some(file);
    (h.file_filter)(EnvFilter::new(level.unwrap_or("info")));
    tracing::info!(task = task_name, log = %path.display(), "run started");
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_level_names_are_accepted_in_any_case() {
        assert_eq!(super::parse_level("INFO"), Some("info"));
        assert_eq!(super::parse_level("Warning"), Some("warn"));
        assert_eq!(super::parse_level("CRITICAL"), Some("error"));
        assert_eq!(super::parse_level("loud"), None);
    }
}
