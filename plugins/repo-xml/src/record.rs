//! The reference's record fields for one pack (reference §6.2), with its bugs fixed.

use modelcall_plugin_sdk::preprocessor::Truncation;
use serde_json::{json, Map, Value};

use crate::name::PackName;
use crate::pack::{PackedFile, Tool};

/// Facts computed from the files of a pack.
#[derive(Debug, Clone, PartialEq)]
pub struct PackFacts {
    /// Files whose content is not blank.
    pub files_with_content: u64,
    /// Sum over those files of (newline count + 1).
    pub total_lines: u64,
    pub has_readme: bool,
    pub has_license: bool,
    /// Some file is named `.gitignore`, at any depth.
    pub has_gitignore: bool,
    /// Extension (lower-cased, `""` when none) → count, in first-seen order.
    pub file_types: Vec<(String, u64)>,
}

pub fn facts(files: &[PackedFile<'_>]) -> PackFacts {
    let mut f = PackFacts { files_with_content: 0, total_lines: 0, has_readme: false, has_license: false, has_gitignore: false, file_types: Vec::new() };
    for file in files {
        let lower = file.path.to_lowercase();
        f.has_readme |= lower.contains("readme");
        f.has_license |= lower.contains("license");
        let base = file.path.rsplit(['/', '\\']).next().unwrap_or(file.path);
        f.has_gitignore |= base == ".gitignore";
        let ext = extension(base);
        match f.file_types.iter_mut().find(|(e, _)| *e == ext) {
            Some((_, n)) => *n += 1,
            None => f.file_types.push((ext, 1)),
        }
        if !file.content.trim().is_empty() {
            f.files_with_content += 1;
            f.total_lines += memchr::memchr_iter(b'\n', file.content.as_bytes()).count() as u64 + 1;
        }
    }
    f
}

/// Python's `os.path.splitext` on a base name, lower-cased: a leading dot is not an extension.
fn extension(base: &str) -> String {
    let trimmed = base.trim_start_matches('.');
    match trimmed.rfind('.') {
        Some(i) => trimmed[i..].to_lowercase(),
        None => String::new(),
    }
}

/// `file_types` as the reference wrote it: a JSON object in a string, keys in first-seen order.
fn file_types_json(types: &[(String, u64)]) -> String {
    let parts: Vec<String> = types.iter().map(|(e, n)| format!("{}: {n}", Value::String(e.clone()))).collect();
    format!("{{{}}}", parts.join(", "))
}

pub struct RecordInput<'a> {
    pub path: &'a str,
    pub text: &'a str,
    pub tool: Tool,
    pub name: &'a PackName,
    pub language: &'a str,
    pub facts: &'a PackFacts,
    pub truncation: &'a Truncation,
    pub include_text: bool,
}

pub fn build(r: RecordInput<'_>) -> Value {
    let chars = r.text.chars().count() as u64;
    let lines = memchr::memchr_iter(b'\n', r.text.as_bytes()).count() as u64 + 1;
    let f = r.facts;
    let mut m = Map::new();
    m.insert("id".into(), json!(r.name.stable_id(r.path)));
    if r.include_text {
        m.insert("text".into(), json!(r.text));
    }
    m.insert("source".into(), json!("repo_xml"));
    m.insert("repo_user".into(), json!(r.name.user));
    m.insert("repo_name".into(), json!(r.name.repo));
    m.insert("repo_full_name".into(), json!(r.name.full_name()));
    m.insert("commit_hash".into(), json!(r.name.commit));
    m.insert("language".into(), json!(r.language));
    m.insert("packaging_tool".into(), json!(r.tool.name()));
    m.insert("files_with_content".into(), json!(f.files_with_content));
    m.insert("total_lines".into(), json!(f.total_lines));
    let avg_lines = if f.files_with_content > 0 { f.total_lines as f64 / f.files_with_content as f64 } else { 0.0 };
    m.insert("avg_lines_per_file".into(), json!(avg_lines));
    m.insert("has_readme".into(), json!(f.has_readme));
    m.insert("has_license".into(), json!(f.has_license));
    m.insert("has_gitignore".into(), json!(f.has_gitignore));
    m.insert("content_length".into(), json!(chars));
    m.insert("content_lines".into(), json!(lines));
    m.insert("avg_line_length".into(), json!(chars as f64 / lines as f64));
    m.insert("file_types".into(), json!(file_types_json(&f.file_types)));
    m.insert("xml_file_path".into(), json!(r.path));
    m.insert("file_extension".into(), json!(if r.tool == Tool::Repomix { "xml" } else { "cxml" }));
    r.truncation.add_column(&mut m, r.text);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_like_python() {
        assert_eq!(extension(".gitignore"), "");
        assert_eq!(extension("Makefile"), "");
        assert_eq!(extension("a.TAR.GZ"), ".gz");
        assert_eq!(extension("lib.rs"), ".rs");
    }

    #[test]
    fn facts_count_only_non_blank_files_and_find_nested_gitignore() {
        let files = vec![
            PackedFile { path: "README.md", content: "# x\nhello\n" },
            PackedFile { path: "empty.txt", content: "  \n" },
            PackedFile { path: "sub/dir/.gitignore", content: "target\n" },
            PackedFile { path: "LICENSE-MIT", content: "MIT" },
        ];
        let f = facts(&files);
        assert_eq!(f.files_with_content, 3);
        assert_eq!(f.total_lines, 3 + 2 + 1);
        assert!(f.has_readme && f.has_license && f.has_gitignore);
        assert_eq!(file_types_json(&f.file_types), "{\".md\": 1, \".txt\": 1, \"\": 2}");
        let no = facts(&[PackedFile { path: "docs/gitignore-notes.md", content: "x" }]);
        assert!(!no.has_gitignore);
    }
}
