//! Path templating and resolution.

use std::path::{Path, PathBuf};

/// `YYYYmmdd_HHMMSS`, the reference's timestamp format.
pub fn timestamp_now() -> String {
    chrono::Local::now().format("%Y%m%d_%H%M%S").to_string()
}

/// Replaces `{timestamp}` and `{task_name}`.
pub fn template(path: &str, timestamp: &str, task_name: &str) -> String {
    path.replace("{timestamp}", timestamp).replace("{task_name}", task_name)
}

fn is_timestamp_dir(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 15 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'_' && b[9..15].iter().all(u8::is_ascii_digit)
}

/// The timestamp to use for an output folder containing `{timestamp}` when resuming: the newest
/// existing timestamped folder that holds any run state (a journal or an output file), else a
/// fresh one. (The reference only looked at the newest folder and only for Parquet files, so a
/// run that crashed before its first save started over in a new folder.)
pub fn resume_timestamp(output_template: &str, task_name: &str) -> Option<String> {
    let idx = output_template.find("{timestamp}")?;
    let base = template(&output_template[..idx], "", task_name);
    let base = if base.is_empty() { ".".to_string() } else { base };
    let mut candidates: Vec<String> = std::fs::read_dir(&base)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| is_timestamp_dir(n))
        .collect();
    candidates.sort();
    candidates.reverse();
    let suffix = template(&output_template[idx + "{timestamp}".len()..], "", task_name);
    candidates.into_iter().find(|ts| {
        let dir = Path::new(&base).join(format!("{ts}{suffix}"));
        has_run_state(&dir)
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
                n.ends_with(".parquet") || n.ends_with(".jsonl")
            })
        })
        .unwrap_or(false)
}

/// Resolves a path from a task file: absolute as is; relative against the current directory
/// when that exists (the reference's behaviour), else against the task file's folder.
pub fn resolve(path: &str, task_dir: &Path) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() || p.exists() {
        return p;
    }
    let beside = task_dir.join(&p);
    if beside.exists() {
        beside
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templating() {
        assert_eq!(template("out/{task_name}/{timestamp}", "20260101_000000", "t"), "out/t/20260101_000000");
    }

    #[test]
    fn resume_takes_the_newest_folder_with_state_even_without_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("out");
        std::fs::create_dir_all(base.join("20260101_000000")).unwrap();
        std::fs::write(base.join("20260101_000000/a.parquet"), "x").unwrap();
        std::fs::create_dir_all(base.join("20260102_000000/.modelcall")).unwrap();
        std::fs::create_dir_all(base.join("20260103_000000")).unwrap(); // empty: skipped
        let t = format!("{}/{{timestamp}}", base.display());
        assert_eq!(resume_timestamp(&t, "x").as_deref(), Some("20260102_000000"));
        assert_eq!(resume_timestamp("no-template", "x"), None);
    }

    #[test]
    fn resolution_prefers_cwd_then_task_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), "").unwrap();
        assert_eq!(resolve("m.yaml", dir.path()), dir.path().join("m.yaml"));
        assert_eq!(resolve("/abs/x", dir.path()), PathBuf::from("/abs/x"));
    }
}
