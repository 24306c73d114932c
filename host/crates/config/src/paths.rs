//! Path templating and resolution.
//!
//! - `{timestamp}` (`YYYYmmdd_HHMMSS`, local time) is replaced in `data.output_folder` and
//!   `data.stat_folder`, as in the reference; `{task_name}` there and in the input and
//!   preprocessing folders; `{run_index}` per run when `distributed.num_runs > 1`.
//! - Resume across timestamps: see [`resume_timestamp`].
//! - Relative paths: see [`resolve`].

use std::path::{Path, PathBuf};

/// `YYYYmmdd_HHMMSS`, the reference's timestamp format.
pub fn timestamp_now() -> String {
    chrono::Local::now().format("%Y%m%d_%H%M%S").to_string()
}

/// Replaces `{timestamp}` and `{task_name}` (everything else, e.g. `{run_index}`, is kept).
pub fn template(path: &str, timestamp: &str, task_name: &str) -> String {
    path.replace("{timestamp}", timestamp).replace("{task_name}", task_name)
}

/// Replaces `{run_index}` (1-based, as in the reference).
pub fn with_run_index(path: &Path, run_index: u32) -> PathBuf {
    PathBuf::from(path.to_string_lossy().replace("{run_index}", &run_index.to_string()))
}

/// `^\d{8}_\d{6}`, the reference's test for a timestamp folder.
fn timestamp_prefix(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let ok = b.len() >= 15 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'_' && b[9..15].iter().all(u8::is_ascii_digit);
    ok.then(|| &name[..15])
}

/// When resuming, the timestamp of the newest earlier run to continue, for an output folder
/// template containing `{timestamp}`; `None` means "start a fresh folder".
///
/// The reference (§2.1 "Cross-timestamp resume") took the parent of `/{timestamp}`, listed its
/// `^\d{8}_\d{6}` folders, and resumed into the newest one **only if it held a `*.parquet`**; it did
/// not look further, so a run that crashed before its first save made every later run start over
/// in yet another folder, and it left `{task_name}` unreplaced in `stat_folder`. Here:
/// - `{timestamp}` may sit anywhere in one path component (`out/run_{timestamp}`,
///   `out/{timestamp}/{task_name}`);
/// - candidates are tried newest first and the first that holds run state is taken: a
///   `.modelcall/` journal folder, or an output file (`*.parquet`, `*.jsonl`, `*.jsonl.gz`), so a
///   crashed run is found by its journal even before any output was written; empty folders are
///   skipped;
/// - the caller replaces both `{timestamp}` and `{task_name}` in both folders.
pub fn resume_timestamp(output_template: &str, task_name: &str) -> Option<String> {
    let filled = output_template.replace("{task_name}", task_name);
    let idx = filled.find("{timestamp}")?;
    let (before, after) = (&filled[..idx], &filled[idx + "{timestamp}".len()..]);
    // The component holding {timestamp}: `prefix{timestamp}suffix`, under `parent`, then `rest`.
    let (parent, prefix) = match before.rfind('/') {
        Some(i) => (&before[..i + 1], &before[i + 1..]),
        None => ("", before),
    };
    let (suffix, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let parent_dir = if parent.is_empty() { Path::new(".") } else { Path::new(parent) };
    let mut candidates: Vec<String> = std::fs::read_dir(parent_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            (middle.len() == 15 && timestamp_prefix(middle).is_some()).then(|| middle.to_string())
        })
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    candidates.into_iter().find(|ts| {
        let dir = format!("{parent}{prefix}{ts}{suffix}{rest}");
        has_run_state(Path::new(if dir.is_empty() { "." } else { &dir }))
    })
}

fn has_run_state(dir: &Path) -> bool {
    if dir.join(".modelcall").is_dir() {
        return true;
    }
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.ends_with(".parquet") || n.ends_with(".jsonl") || n.ends_with(".jsonl.gz")
            })
        })
        .unwrap_or(false)
}

/// Resolves a path from a config file:
/// 1. absolute paths as they are;
/// 2. a relative path that exists under the current directory (the reference's only rule: its
///    scripts `cd` to the project root first);
/// 3. else the first folder that holds it among the config file's folder and that folder's
///    ancestors, nearest first; so `configs/models/x.yaml` written in
///    `<root>/configs/tasks/t.yaml` is found from any current directory, and so is a file beside
///    the task;
/// 4. else as written, relative to the current directory (where outputs that do not exist yet
///    are created).
pub fn resolve(path: &str, base_dir: &Path) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() || p.exists() {
        return p;
    }
    let base = base_dir.canonicalize().unwrap_or_else(|_| base_dir.to_path_buf());
    base.ancestors().map(|dir| dir.join(&p)).find(|candidate| candidate.exists()).unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templating() {
        assert_eq!(template("out/{task_name}/{timestamp}", "20260101_000000", "t"), "out/t/20260101_000000");
        assert_eq!(with_run_index(Path::new("out/run{run_index}"), 2), PathBuf::from("out/run2"));
    }

    fn mk(dir: &Path, rel: &str) {
        std::fs::create_dir_all(dir.join(rel)).unwrap();
    }

    #[test]
    fn resume_takes_the_newest_folder_with_state() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("out");
        mk(&base, "20260101_000000");
        std::fs::write(base.join("20260101_000000/a.parquet"), "x").unwrap();
        mk(&base, "20260102_000000/.modelcall"); // crashed before any output: found by its journal
        mk(&base, "20260103_000000"); // empty: skipped, unlike the reference
        mk(&base, "not_a_timestamp");
        let t = format!("{}/{{timestamp}}", base.display());
        assert_eq!(resume_timestamp(&t, "x").as_deref(), Some("20260102_000000"));
        assert_eq!(resume_timestamp("no-template", "x"), None);
        let none = format!("{}/missing/{{timestamp}}", base.display());
        assert_eq!(resume_timestamp(&none, "x"), None);
    }

    #[test]
    fn resume_with_timestamp_inside_a_component_and_task_name_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        mk(base, "run_20260101_000000/score");
        std::fs::write(base.join("run_20260101_000000/score/a.jsonl"), "{}").unwrap();
        mk(base, "run_20260105_000000/other"); // state for another task name: not ours
        std::fs::write(base.join("run_20260105_000000/other/a.jsonl"), "{}").unwrap();
        let t = format!("{}/run_{{timestamp}}/{{task_name}}", base.display());
        assert_eq!(resume_timestamp(&t, "score").as_deref(), Some("20260101_000000"));
        assert_eq!(resume_timestamp(&t, "other").as_deref(), Some("20260105_000000"));
    }

    #[test]
    fn resolution_prefers_cwd_then_the_files_folder_then_its_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("configs/tasks/q")).unwrap();
        std::fs::create_dir_all(root.join("configs/models")).unwrap();
        std::fs::write(root.join("configs/tasks/q/m.yaml"), "").unwrap();
        std::fs::write(root.join("configs/models/sim.yaml"), "").unwrap();
        let task_dir = root.join("configs/tasks/q");
        assert_eq!(resolve("m.yaml", &task_dir), task_dir.join("m.yaml"));
        assert_eq!(resolve("configs/models/sim.yaml", &task_dir), root.join("configs/models/sim.yaml"));
        assert_eq!(resolve("/abs/x", dir.path()), PathBuf::from("/abs/x"));
        assert_eq!(resolve("nowhere/x", dir.path()), PathBuf::from("nowhere/x"));
        // Cargo runs tests in the crate folder, where Cargo.toml exists: the current directory wins.
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(resolve("Cargo.toml", dir.path()), PathBuf::from("Cargo.toml"));
    }
}
