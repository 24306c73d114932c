//! `builtin:repo-xml`: one record per Repomix (`.xml`) or RenderGit (`.cxml`) repository pack,
//! with the reference's fields (reference §6.2) and its bugs fixed: owner/repo names with `_`
//! or `-` parse, `.gitignore` is found at any depth, an empty or malformed pack is an error
//! record naming the file instead of a crash, and the truncation column is always applied
//! when the text exceeds `max_tokens` tokens.
//!
//! The host hands each pack over as `{path, bytes}`; the plugin never touches the file system.

pub mod name;
pub mod pack;
pub mod record;

use modelcall_plugin_sdk::preprocessor::{default_max_tokens, Input, Outcome, Preprocessor, Truncation};
use modelcall_plugin_sdk::{json, Context, Error, Value};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Token budget of the truncation column `content_truncate_{max_tokens/1024}k`.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Language of every pack, instead of the pack's parent folder name.
    #[serde(default)]
    pub language: Option<String>,
    /// Keep the whole pack in `text` (large); the truncation column is always written.
    #[serde(default = "yes")]
    pub include_text: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_tokens: default_max_tokens(), language: None, include_text: true }
    }
}

fn yes() -> bool {
    true
}

pub struct RepoXml {
    cfg: Config,
    truncation: Truncation,
}

impl RepoXml {
    /// The record for one pack; errors name the file.
    pub fn record_for(&self, path: &str, bytes: &[u8]) -> Result<Value, Error> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::invalid_input(format!("{path}: not UTF-8 text (invalid byte at {})", e.valid_up_to())))?;
        let (tool, files) = pack::parse(text).map_err(|e| Error::invalid_input(format!("{path}: {e}")))?;
        let facts = record::facts(&files);
        let parsed = name::parse(path).unwrap_or(name::PackName { user: String::new(), repo: String::new(), commit: String::new() });
        let language = self.cfg.language.clone().or_else(|| name::language_folder(path).map(str::to_string)).unwrap_or_default();
        Ok(record::build(record::RecordInput {
            path,
            text,
            tool,
            name: &parsed,
            language: &language,
            facts: &facts,
            truncation: &self.truncation,
            include_text: self.cfg.include_text,
        }))
    }
}

impl Preprocessor for RepoXml {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, Error> {
        let truncation = Truncation::new(cfg.max_tokens)?;
        Ok(RepoXml { cfg, truncation })
    }

    fn config_schema() -> Option<Value> {
        Some(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "max_tokens": {"type": "integer", "minimum": 1, "default": default_max_tokens()},
                "language": {"type": "string"},
                "include_text": {"type": "boolean", "default": true}
            }
        }))
    }

    fn process(&mut self, _ctx: &Context, input: Input) -> Result<Outcome, Error> {
        match input {
            Input::File { path, bytes } => Ok(Outcome::keep(self.record_for(&path, &bytes)?)),
            Input::Record(_) => Err(Error::unsupported("repo-xml reads pack files (--files / a folder of .xml/.cxml), not records")),
        }
    }
}

modelcall_plugin_sdk::register_preprocessor!(RepoXml);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn data() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
    }

    #[test]
    fn every_shared_pack_matches_its_facts_exactly() {
        let plugin = RepoXml::new(Config::default()).unwrap();
        let facts = std::fs::read_to_string(data().join("facts.jsonl")).unwrap();
        let mut n = 0;
        for line in facts.lines().filter(|l| !l.trim().is_empty()) {
            let fact: Value = serde_json::from_str(line).unwrap();
            let rel = fact["file"].as_str().unwrap();
            let bytes = std::fs::read(data().join(rel)).unwrap();
            let rec = plugin.record_for(rel, &bytes).unwrap();
            let tool = fact["tool"].as_str().unwrap();
            assert_eq!(rec["packaging_tool"], tool, "{rel}");
            assert_eq!(rec["language"], fact["language"], "{rel}");
            assert_eq!(rec["repo_full_name"], fact["repo_full_name"], "{rel}");
            assert_eq!(rec["commit_hash"], fact["commit"], "{rel}");
            for key in ["files_with_content", "total_lines", "has_readme", "has_license", "has_gitignore"] {
                assert_eq!(rec[key], fact[key], "{rel}: {key}");
            }
            n += 1;
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn truncation_column_is_named_and_applied_by_tokens() {
        let plugin = RepoXml::new(Config { max_tokens: 2048, ..Config::default() }).unwrap();
        let rel = "Rust/rust-lang_either_c9a546e3ff81.xml";
        let rec = plugin.record_for(rel, &std::fs::read(data().join(rel)).unwrap()).unwrap();
        let cut = rec["content_truncate_2k"].as_str().unwrap();
        let text = rec["text"].as_str().unwrap();
        assert!(text.starts_with(cut) && cut.len() < text.len());
        assert_eq!(modelcall_plugin_sdk::count_tokens(cut), 2048);
        // A small pack under the budget (but, unlike the reference, never skipped for being under
        // 20,000 characters) is kept whole.
        let small = "<files>\n<file path=\"a.rs\">\nfn main() {}\n</file>\n</files>\n";
        let rec = plugin.record_for("Rust/a_b_abcdef1.xml", small.as_bytes()).unwrap();
        assert_eq!(rec["content_truncate_2k"], small);
        let tiny = RepoXml::new(Config { max_tokens: 5, ..Config::default() }).unwrap();
        let rec = tiny.record_for("Rust/a_b_abcdef1.xml", small.as_bytes()).unwrap();
        assert_eq!(modelcall_plugin_sdk::count_tokens(rec["content_truncate_0k"].as_str().unwrap()), 5);
    }

    #[test]
    fn bad_packs_are_invalid_input_naming_the_file() {
        let plugin = RepoXml::new(Config::default()).unwrap();
        for (bytes, want) in [
            (&b"<files>\n</files>\n"[..], "no files"),
            (&b"hello world"[..], "neither a Repomix"),
            (&b"<files>\n<file path=\"x.rs\">\nunterminated"[..], "not terminated"),
            (&b"<files>\xff</files>"[..], "not UTF-8"),
        ] {
            let e = plugin.record_for("Go/u_r_abcdef0.xml", bytes).unwrap_err();
            assert_eq!(e.kind, modelcall_plugin_sdk::ErrorKind::InvalidInput);
            assert!(e.message.contains("Go/u_r_abcdef0.xml") && e.message.contains(want), "{}", e.message);
        }
        assert!(matches!(
            RepoXml::new(Config::default()).unwrap().process(&Context::for_test("t", "r", 1), Input::Record(json!({}))),
            Err(e) if e.kind == modelcall_plugin_sdk::ErrorKind::Unsupported
        ));
    }

    #[test]
    fn names_with_underscores_and_nested_gitignore() {
        let pack = "<files>\n<file path=\"cfg/.gitignore\">\ntarget\n</file>\n<file path=\"src/lib.rs\">\nfn f() {}\n</file>\n</files>\n";
        let rec = RepoXml::new(Config::default()).unwrap().record_for("Rust/my-org_my_repo-name_0123abcd.xml", pack.as_bytes()).unwrap();
        assert_eq!(rec["repo_full_name"], "my-org/my_repo-name");
        assert_eq!(rec["has_gitignore"], true);
        assert_eq!(rec["id"], "my-org/my_repo-name@0123abcd");
        assert_eq!(rec["file_types"], "{\"\": 1, \".rs\": 1}");
    }

    /// `cargo test --release -p repo-xml -- --ignored --nocapture throughput`
    #[test]
    #[ignore]
    fn throughput() {
        let plugin = RepoXml::new(Config::default()).unwrap();
        let mut packs = Vec::new();
        for lang in ["Rust", "JavaScript"] {
            for e in std::fs::read_dir(data().join(lang)).unwrap() {
                let p = e.unwrap().path();
                packs.push((format!("{lang}/{}", p.file_name().unwrap().to_string_lossy()), std::fs::read(&p).unwrap()));
            }
        }
        let bytes: usize = packs.iter().map(|(_, b)| b.len()).sum();
        let _ = plugin.record_for(&packs[0].0, &packs[0].1); // warm the tokenizer tables
        let rounds = 20;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            for (p, b) in &packs {
                std::hint::black_box(plugin.record_for(p, b).unwrap());
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "repo-xml native: {:.1} MB/s on one core ({} packs, {} bytes, {} rounds, tokenization included)",
            (bytes * rounds) as f64 / secs / 1e6,
            packs.len(),
            bytes,
            rounds
        );
    }
}
