//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;

/// Copies a folder tree (e.g. `configs/` into a scratch folder, so tasks run with relative
/// paths as they do for a user in the repository root).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The JSON lines of a file; empty when the file does not exist.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect())
        .unwrap_or_default()
}
