//! Listing the files under a folder: one walker for every kind of input (record files, raw
//! packs, dataset folders), sorted so every run and every shard sees the same order, and
//! skipping hidden entries (`.modelcall/`, temp files, editor droppings).

use std::path::{Path, PathBuf};

/// Files under `root` (recursively when `recursive`), sorted by path, for which `keep` holds.
/// `root` itself when it is a file.
pub fn list_files(root: &Path, recursive: bool, keep: &dyn Fn(&Path) -> bool) -> std::io::Result<Vec<PathBuf>> {
    if std::fs::metadata(root)?.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                if recursive {
                    stack.push(path);
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The input files of a task: `path` itself when it is a file, else the supported files
/// directly inside the folder (optionally filtered by a `*`/`?` glob on the file name), sorted
/// by name so every shard and every run sees the same order.
pub fn list_input_files(path: &Path, pattern: Option<&str>) -> Result<Vec<PathBuf>, crate::SourceError> {
    use crate::source::{glob_match, is_supported_input};
    let io = |source| crate::SourceError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        if !p.is_file() || !is_supported_input(&p) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if let Some(glob) = pattern {
            if !glob_match(glob, &name) {
                continue;
            }
        }
        files.push(p);
    }
    files.sort();
    let nested =
        files_in_subfolders(path, &|p| is_supported_input(p) && pattern.is_none_or(|g| p.file_name().is_some_and(|n| glob_match(g, &n.to_string_lossy()))));
    warn_skipped_subfolder_files(path, nested);
    Ok(files)
}

/// The record files of an input folder (or the input file) with its sub-folders, at any depth
/// (`data.recursive: true`), sorted; `pattern` matches file names. The folder is marked so each
/// file's output name keeps its relative path (see [`crate::naming::read_recursively`]).
pub fn list_input_files_recursive(root: &Path, pattern: Option<&str>) -> Result<Vec<PathBuf>, crate::SourceError> {
    use crate::source::{glob_match, is_supported_input};
    let files =
        list_files(root, true, &|p| is_supported_input(p) && pattern.is_none_or(|g| p.file_name().is_some_and(|n| glob_match(g, &n.to_string_lossy()))))
            .map_err(|source| crate::SourceError::Io { path: root.to_path_buf(), source })?;
    if root.is_dir() {
        crate::naming::read_recursively(root);
    }
    Ok(files)
}

/// How many files inside the sub-folders of the folder `root` (at any depth, hidden entries
/// skipped) `keep` accepts: what a one-level listing of `root` leaves out.
pub fn files_in_subfolders(root: &Path, keep: &dyn Fn(&Path) -> bool) -> usize {
    let Ok(all) = list_files(root, true, keep) else { return 0 };
    all.iter().filter(|p| p.parent() != Some(root)).count()
}

/// Warns once per folder (per process) that `skipped` files in its sub-folders are not read.
pub fn warn_skipped_subfolder_files(root: &Path, skipped: usize) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    if skipped == 0 {
        return;
    }
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.iter().any(|p| p == root) {
        return;
    }
    warned.push(root.to_path_buf());
    tracing::warn!(
        folder = %root.display(),
        "{skipped} input file(s) in sub-folders of {} are not read: only the folder's own files are (set `data.recursive: true` to read them, or move them up)",
        root.display()
    );
}

/// `path` relative to `root`, with `/` separators (stable across platforms, used in keys).
pub fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_recursive_and_hidden_entries_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["b/x.xml", "a/y.xml", "a/.hidden.xml", ".modelcall/j.jsonl", "top.txt"] {
            let f = dir.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, "").unwrap();
        }
        let all = list_files(dir.path(), true, &|_| true).unwrap();
        let names: Vec<String> = all.iter().map(|p| relative_name(dir.path(), p)).collect();
        assert_eq!(names, vec!["a/y.xml", "b/x.xml", "top.txt"]);
        let flat = list_files(dir.path(), false, &|_| true).unwrap();
        assert_eq!(flat.len(), 1);
        assert_eq!(files_in_subfolders(dir.path(), &|_| true), 2);
        assert_eq!(files_in_subfolders(dir.path(), &|p| p.extension().is_some_and(|x| x == "txt")), 0);
    }
}
