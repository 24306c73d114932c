//! Noticing that an input changed since the run that journaled its results, so stale results
//! are redone instead of silently kept.
//!
//! Each unit keeps `<journal>.inputs.json`: per input file its size, modification time and a
//! hash of its first 64 KiB. On the next run:
//! - a raw file (one work item per file) whose fingerprint changed is processed again;
//! - a record file that only grew (same first 64 KiB, larger or equal size) resumes as usual:
//!   its new records have new keys;
//! - a record file changed any other way starts its unit over, with a warning, because its old
//!   results can no longer be matched to its records.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    pub mtime_ns: u128,
    /// xxh3 of the first `min(size, 64 KiB)` bytes.
    pub head_hash: u64,
}

const HEAD_BYTES: usize = 64 * 1024;

impl Fingerprint {
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        Ok(Fingerprint { size: meta.len(), mtime_ns, head_hash: head_hash(path, HEAD_BYTES as u64)? })
    }
}

fn head_hash(path: &Path, bytes: u64) -> std::io::Result<u64> {
    let mut head = Vec::with_capacity(bytes.min(HEAD_BYTES as u64) as usize);
    std::fs::File::open(path)?.take(bytes).read_to_end(&mut head)?;
    Ok(xxhash_rust::xxh3::xxh3_64(&head))
}

/// `path` (now `now`) only had bytes added at its end since `before`, as far as its size and
/// the bytes `before` hashed tell.
fn only_grew(path: &Path, before: &Fingerprint, now: &Fingerprint) -> bool {
    if now == before {
        return true;
    }
    now.size >= before.size && head_hash(path, before.size.min(HEAD_BYTES as u64)).is_ok_and(|h| h == before.head_hash)
}

/// The fingerprints of a unit's inputs, by path.
pub type Manifest = BTreeMap<PathBuf, Fingerprint>;

pub fn manifest_path(journal: &Path) -> PathBuf {
    let name = journal.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    journal.with_file_name(format!("{}.inputs.json", name.trim_end_matches(".jsonl")))
}

pub fn read(journal: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(manifest_path(journal)).ok()?;
    let entries: Vec<(PathBuf, Fingerprint)> = serde_json::from_str(&text).ok()?;
    Some(entries.into_iter().collect())
}

pub fn write(journal: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let entries: Vec<(&PathBuf, &Fingerprint)> = manifest.iter().collect();
    modelcall_io::write_atomically(&manifest_path(journal), serde_json::to_string(&entries)?.as_bytes())?;
    Ok(())
}

pub fn current(files: &[PathBuf]) -> Manifest {
    files.iter().filter_map(|f| Fingerprint::of(f).ok().map(|fp| (f.clone(), fp))).collect()
}

/// Raw files whose content changed since `before` (new files are simply not done yet).
pub fn changed_files(before: &Manifest, now: &Manifest) -> Vec<PathBuf> {
    now.iter().filter(|(p, fp)| before.get(*p).is_some_and(|b| b != *fp)).map(|(p, _)| p.clone()).collect()
}

/// A record file that changed other than by growing at its end.
pub fn rewritten_file(before: &Manifest, now: &Manifest) -> Option<PathBuf> {
    now.iter().find(|(p, fp)| before.get(*p).is_some_and(|b| !only_grew(p, b, fp))).map(|(p, _)| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_resumes_and_rewrites_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.jsonl");
        std::fs::write(&f, "{\"id\":1}\n").unwrap();
        let before = current(std::slice::from_ref(&f));
        std::fs::write(&f, "{\"id\":1}\n{\"id\":2}\n").unwrap();
        let grown = current(std::slice::from_ref(&f));
        assert_eq!(rewritten_file(&before, &grown), None, "an appended line resumes");
        assert_eq!(changed_files(&before, &grown), vec![f.clone()], "a raw file that changed is redone");
        std::fs::write(&f, "{\"id\":9}\n{\"id\":2}\n").unwrap();
        assert_eq!(rewritten_file(&grown, &current(std::slice::from_ref(&f))), Some(f.clone()), "an edited line starts over");
        assert_eq!(rewritten_file(&grown, &grown), None);
        let big = "x".repeat(HEAD_BYTES + 10) + "\n";
        std::fs::write(&f, &big).unwrap();
        let b1 = current(std::slice::from_ref(&f));
        std::fs::write(&f, big.clone() + "{\"id\":3}\n").unwrap();
        let b2 = current(std::slice::from_ref(&f));
        assert_eq!(rewritten_file(&b1, &b2), None, "appending to a large file resumes");
        std::fs::write(&f, "y".repeat(10)).unwrap();
        assert_eq!(rewritten_file(&b2, &current(std::slice::from_ref(&f))), Some(f));
    }
}
