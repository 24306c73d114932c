//! The fixture folder helper shared by the config tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use modelcall_config::Vars;

/// A copy of a fixture folder (`tests/fixtures/<name>`) in a temp dir, so tests can edit the
/// task text and write outputs.
pub struct Fx {
    pub dir: tempfile::TempDir,
}

impl Fx {
    pub fn new(fixture: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
        Fx { dir }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn text(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }
    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }
    /// `OUT_DIR` (the fixtures' output root) plus `extra`.
    pub fn vars(&self, extra: &[(&str, &str)]) -> Vars {
        let mut v: Vec<(String, String)> = vec![("OUT_DIR".into(), self.dir.path().display().to_string())];
        v.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        Vars::fixed(v)
    }
}
