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

/// What stderr shows without `MODELCALL_LOG`, `-v`/`-q` or `logging.level`: warnings, the
/// plugins' own lines and the problem lines (a 429 storm: its first occurrence, then a count
/// every 10 s; see `modelcall_model::problems`).
const DEFAULT_STDERR: &str = "warn,modelcall::plugin=info,modelcall_model::problems=info";

/// Replaces a layer's filter.
type Reload = Box<dyn Fn(EnvFilter) + Send + Sync>;

struct Handles {
    stderr: Reload,
    file_filter: Reload,
    /// Set by [`configure`] when the task names a `log_dir`.
    file: Arc<Mutex<Option<std::fs::File>>>,
    /// `MODELCALL_LOG` as given.
    env: Option<String>,
    /// `-v` (1), `-vv` (2), `-q` (-1), neither (0).
    verbosity: i8,
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

/// The level `-v`/`-vv`/`-q` ask for (`None` without them).
fn verbosity_level(verbosity: i8) -> Option<&'static str> {
    match verbosity {
        i8::MIN..=-1 => Some("error"),
        0 => None,
        1 => Some("debug"),
        _ => Some("trace"),
    }
}

/// The level a bare directive names (`debug`, `WARN`, `off`).
fn bare_level(directive: &str) -> Option<&'static str> {
    match directive.trim().to_ascii_lowercase().as_str() {
        "off" => Some("off"),
        other => parse_level(other),
    }
}

/// A filter from a level meant for modelcall's own lines, the targeted directives of
/// `MODELCALL_LOG` (`wasmtime=debug`: the runtime's lines only when asked for by target) and
/// whether the plugins' and problem lines stay at info when the level is `warn` or `error`.
///
/// A bare level applies to modelcall's crates (`modelcall`, `modelcall_*`): every other
/// crate stays at `warn` (or quieter, with `error`/`off`).
fn directives(level: Option<&str>, targeted: &[&str], keep_info_lines: bool) -> String {
    let mut out = match level {
        None | Some("warn") => DEFAULT_STDERR.to_string(),
        Some("error") if keep_info_lines => "error,modelcall::plugin=info,modelcall_model::problems=info".to_string(),
        Some(l @ ("error" | "off")) => l.to_string(),
        Some(l) => format!("warn,modelcall={l}"),
    };
    for t in targeted {
        out.push(',');
        out.push_str(t);
    }
    out
}

/// `MODELCALL_LOG` split: its last bare level and its targeted directives.
fn split_env(env: Option<&str>) -> (Option<&'static str>, Vec<&str>) {
    let mut level = None;
    let mut targeted = Vec::new();
    for d in env.unwrap_or("").split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match bare_level(d) {
            Some(l) => level = Some(l),
            None => targeted.push(d),
        }
    }
    (level, targeted)
}

/// The stderr filter for `MODELCALL_LOG`, `-v`/`-q` (which win over the env's bare level) and
/// the task's `logging.level` (used when neither gives a level).
fn stderr_directives(env: Option<&str>, verbosity: i8, task_level: Option<&str>) -> String {
    let (env_level, targeted) = split_env(env);
    match (verbosity_level(verbosity), env_level, task_level) {
        (Some(l), _, _) => directives(Some(l), &targeted, false),
        (None, Some(l), _) => directives(Some(l), &targeted, false),
        (None, None, l) => directives(l, &targeted, true),
    }
}

/// The JSON log's filter: the task's level (default info) or `-v`'s, whichever shows more.
fn file_directives(env: Option<&str>, verbosity: i8, task_level: Option<&str>) -> String {
    let rank = |l: &str| ["off", "error", "warn", "info", "debug", "trace"].iter().position(|x| *x == l).unwrap_or(3);
    let task = task_level.unwrap_or("info");
    let level = match verbosity_level(verbosity) {
        Some(v) if verbosity > 0 && rank(v) > rank(task) => v,
        _ => task,
    };
    let (_, targeted) = split_env(env);
    // Plugins' and problem lines are info: kept at every level but `off`.
    directives(Some(level), &targeted, true)
}

fn filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|e| {
        eprintln!("warning: MODELCALL_LOG: {e}; using the default filter");
        EnvFilter::new(DEFAULT_STDERR)
    })
}

/// Installs the subscriber (call once, first thing in `main`): `verbosity` from `-v`/`-q`
/// (1 debug, 2 trace, -1 errors only), `ansi` whether stderr gets colour.
pub fn init(verbosity: i8, ansi: bool) {
    let env = std::env::var("MODELCALL_LOG").ok().filter(|v| !v.trim().is_empty());
    let stderr_filter = filter(&stderr_directives(env.as_deref(), verbosity, None));
    let (stderr_filter, stderr_handle) = reload::Layer::new(stderr_filter);
    // Nothing goes to the file layer until a task opens a log file (`off` until then).
    let (file_filter, file_handle) = reload::Layer::new(EnvFilter::new("off"));
    let file = Arc::new(Mutex::new(None));
    let writer = RunLog(file.clone());
    let stderr_layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
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
        env,
        verbosity,
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

/// Applies a task's `logging:` block: `level` for stderr (unless `MODELCALL_LOG` or `-v`/`-q`
/// give one) and the file, and a run log file under `log_dir`. Returns the file's path.
///
/// The file gets JSON lines with stable fields under `fields`: `event` (`attempt`, `retry`,
/// `failure`, `problem`, `problem_count`, `unit_done`, `run_done`), `key`, `endpoint`,
/// `status`, `latency_ms`, `cause`, `message` (see `modelcall_model::client`); attempts and
/// retries are debug lines (`logging.level: debug` or `-v`).
pub fn configure(task_name: &str, level: Option<&'static str>, log_dir: Option<&Path>) -> std::io::Result<Option<PathBuf>> {
    let Some(h) = HANDLES.get() else { return Ok(None) };
    if level.is_some() {
        (h.stderr)(filter(&stderr_directives(h.env.as_deref(), h.verbosity, level)));
    }
    let Some(dir) = log_dir else { return Ok(None) };
    let folder = dir.join(task_name);
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{task_name}_{}.jsonl", chrono::Local::now().format("%Y%m%d_%H%M%S")));
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    *h.file.lock().unwrap() = Some(file);
    (h.file_filter)(filter(&file_directives(h.env.as_deref(), h.verbosity, level)));
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

    use super::{file_directives, stderr_directives, DEFAULT_STDERR};

    #[test]
    fn a_bare_level_applies_to_modelcall_only() {
        assert_eq!(stderr_directives(Some("debug"), 0, None), "warn,modelcall=debug");
        assert_eq!(stderr_directives(Some("TRACE"), 0, None), "warn,modelcall=trace");
        assert_eq!(stderr_directives(Some("wasmtime=debug"), 0, None), format!("{DEFAULT_STDERR},wasmtime=debug"));
        assert_eq!(stderr_directives(Some("info,hyper=debug"), 0, None), "warn,modelcall=info,hyper=debug");
        assert_eq!(stderr_directives(None, 0, None), DEFAULT_STDERR);
    }

    #[test]
    fn flags_win_over_the_env_level_and_the_task_level() {
        assert_eq!(stderr_directives(Some("info,wasmtime=debug"), 1, None), "warn,modelcall=debug,wasmtime=debug");
        assert_eq!(stderr_directives(None, 2, Some("info")), "warn,modelcall=trace");
        assert_eq!(stderr_directives(Some("debug"), -1, None), "error");
        assert_eq!(stderr_directives(None, 0, Some("debug")), "warn,modelcall=debug");
        assert_eq!(stderr_directives(Some("debug"), 0, Some("error")), "warn,modelcall=debug");
    }

    #[test]
    fn the_file_gets_the_more_verbose_of_the_task_level_and_v() {
        assert_eq!(file_directives(None, 0, None), "warn,modelcall=info");
        assert_eq!(file_directives(None, 1, None), "warn,modelcall=debug");
        assert_eq!(file_directives(None, 1, Some("trace")), "warn,modelcall=trace");
        assert_eq!(file_directives(None, -1, Some("info")), "warn,modelcall=info");
    }

    #[test]
    fn every_filter_parses() {
        for env in [None, Some("debug"), Some("wasmtime=debug,info")] {
            for v in -1..=2 {
                for task in [None, Some("warn"), Some("error"), Some("trace")] {
                    tracing_subscriber::EnvFilter::try_new(stderr_directives(env, v, task)).unwrap();
                    tracing_subscriber::EnvFilter::try_new(file_directives(env, v, task)).unwrap();
                }
            }
        }
    }
}
