//! Fuzzing `load_task` with YAML-ish text: mutated copies of real task files and free-form
//! fragment soup, valid UTF-8 or not. Errors are expected; a panic (in loading, or in
//! formatting the error) is a failure.

use std::path::{Path, PathBuf};

use modelcall_config::{load_task, Overrides};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Task files to mutate, relative to tests/fixtures (their model/prompt/env files sit beside).
const BASES: &[&str] =
    &["scoring/repomix_quality_rating.yaml", "distillation/generate_response.yaml", "distillation/datasets_chatml.yaml", "distillation/chatml_conversion.yaml"];

const FRAGMENTS: &[&str] = &[
    "task_name",
    "task_type",
    "data_scoring",
    "generate_response",
    "data",
    "input_folder",
    "output_folder",
    "input_path",
    "output_path",
    "model",
    "prompt",
    "config_path",
    "environment",
    "preprocess",
    "enabled",
    "script_type",
    "distillation",
    "step",
    "concurrency",
    "retry",
    "options",
    "debug",
    "logging",
    "plugins",
    ":",
    ": ",
    "- ",
    "-",
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    " ",
    "#",
    "'",
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    "?",
    "|",
    ">-",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "!tag ",
    "---",
    "...",
    "%YAML 1.2",
    "~",
    "null",
    "true",
    "no",
    "on",
    "1e400",
    "-1",
    "0x1F",
    ".nan",
    ".inf",
    "18446744073709551616",
    "${OUT_DIR}",
    "${",
    "${MISSING}",
    "$${X}",
    "{task_name}",
    "{timestamp}",
    "/",
    "..",
    "model.yaml",
    "prompt.yaml",
    "keys.env",
    "\u{feff}",
    "\u{0}",
    "é",
    "\u{10ffff}",
    "\r\n",
    "\r",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(prop::sample::Index, String),
    Delete(prop::sample::Index, usize),
    Byte(prop::sample::Index, u8),
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), prop::collection::vec(fragment(), 1..4)).prop_map(|(i, f)| Edit::Insert(i, f.concat())),
        2 => (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
    ]
}

#[derive(Debug, Clone)]
enum Case {
    /// A fixture task file with edits applied (byte positions: may break UTF-8).
    Mutated(usize, Vec<Edit>),
    /// Text made of fragments only.
    Soup(Vec<String>),
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        3 => (0..BASES.len(), prop::collection::vec(edit(), 0..8)).prop_map(|(b, e)| Case::Mutated(b, e)),
        1 => prop::collection::vec(fragment(), 0..60).prop_map(Case::Soup),
    ]
}

fn copy_fixtures(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for sub in ["scoring", "distillation"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            // load_task reads ${VAR} from the process environment: point OUT_DIR at the copy.
            let text = text.replace("${OUT_DIR}", &to.join("out").display().to_string());
            std::fs::write(to.join(sub).join(e.file_name()), text).unwrap();
        }
    }
}

fn task_text(root: &Path, case: &Case) -> (PathBuf, Vec<u8>) {
    match case {
        Case::Mutated(base, edits) => {
            let base = root.join(BASES[*base]);
            let mut bytes = std::fs::read(&base).unwrap();
            for e in edits {
                match e {
                    Edit::Insert(at, s) => {
                        let at = at.index(bytes.len() + 1);
                        bytes.splice(at..at, s.bytes());
                    }
                    Edit::Delete(at, n) if !bytes.is_empty() => {
                        let at = at.index(bytes.len());
                        let end = (at + n).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    Edit::Byte(at, b) if !bytes.is_empty() => {
                        let at = at.index(bytes.len());
                        bytes[at] = *b;
                    }
                    _ => {}
                }
            }
            (base.with_file_name("fuzz_task.yaml"), bytes)
        }
        Case::Soup(parts) => (root.join("scoring/fuzz_task.yaml"), parts.concat().into_bytes()),
    }
}

#[test]
fn load_task_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixtures(dir.path());
    // The unmutated fixtures load: the fuzz starts from files that get deep into the checks.
    let (path, text) = task_text(dir.path(), &Case::Mutated(0, vec![]));
    std::fs::write(&path, text).unwrap();
    load_task(&path, &Overrides::default()).expect("the scoring fixture loads");

    let config = Config { cases: 256, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let (loaded, failed) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let result = runner.run(&case(), |case| {
        let (path, text) = task_text(dir.path(), &case);
        std::fs::write(&path, &text).unwrap();
        match load_task(&path, &Overrides::default()) {
            Ok(task) => {
                loaded.set(loaded.get() + 1);
                let _ = format!("{task:?}");
            }
            Err(e) => {
                failed.set(failed.get() + 1);
                let message = e.to_string();
                prop_assert!(!message.is_empty());
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("yaml fuzz: {} loaded, {} rejected", loaded.get(), failed.get());
}
