//! Reading a YAML config file into JSON, with positions for errors.
//!
//! Every config file goes through [`read_yaml`]: YAML syntax errors carry serde_yaml's line and
//! column; the tree is built as `serde_json::Value` because the prompt config and plugin configs
//! travel to plugins as JSON anyway, and one value type keeps the checks simple.
//!
//! A key written twice in one mapping is an error at the second occurrence, naming the dotted key
//! and the line of the first. serde_yaml alone reports such a key at the start of the enclosing
//! mapping (not at the key), and keys that differ in YAML but not as JSON text (`1:` and `'1':`)
//! would silently keep the last; here both are caught while the tree is built.

use std::path::Path;

use serde_json::Value;

use crate::env::{interpolate, Vars};
use crate::error::ConfigError;
use crate::locate::find_key_or_parent;

mod tree;
#[cfg(test)]
pub(crate) use tree::yaml_to_json;

/// A config file: its source text (for locating keys) and its parsed tree.
#[derive(Debug, Clone)]
pub struct YamlFile {
    pub source: String,
    pub tree: Value,
}

impl YamlFile {
    /// 1-based (line, column) of a dotted key, or of its deepest ancestor that can be found.
    pub fn locate(&self, keys: &[&str]) -> Option<(usize, usize)> {
        find_key_or_parent(&self.source, keys)
    }
}

/// Reads and parses `path`; `what` names the file's role in errors ("task file", "model config").
pub fn read_yaml(path: &Path, what: &str) -> Result<YamlFile, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, format!("cannot read the {what}: {e}")))?;
    parse_yaml(path, source)
}

/// Parses `source` (the text of `path`, which only names the file in errors): syntax errors and
/// duplicate keys are errors with a line and column.
pub fn parse_yaml(path: &Path, source: String) -> Result<YamlFile, ConfigError> {
    let tree = tree::parse_tree(path, &source)?;
    Ok(YamlFile { source, tree })
}

/// Interpolates `${VAR}` in every string value of `v` (keys are left alone); a missing variable
/// is an error naming the file, the line and the dotted key that holds it.
pub(crate) fn interpolate_tree(v: &mut Value, file: &Path, yaml_source: &str, vars: &Vars) -> Result<(), ConfigError> {
    walk(v, &mut Vec::new(), file, yaml_source, vars)
}

fn walk(v: &mut Value, path: &mut Vec<String>, file: &Path, source: &str, vars: &Vars) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains('$') => {
            *s = interpolate(s, &|k| vars.get(k)).map_err(|var| {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                ConfigError::new(file, vars.missing_message(var.name())).key(keys.join(".")).at(find_key_or_parent(source, &keys))
            })?;
        }
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                path.push(k.clone());
                walk(child, path, file, source, vars)?;
                path.pop();
            }
        }
        Value::Array(a) => {
            for child in a.iter_mut() {
                walk(child, path, file, source, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A short rendering of a value for error messages (`"lots"`, `3`, `a list`, `a mapping`).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, ConfigError> {
        parse_yaml(Path::new("t.yaml"), text.to_string()).map(|y| y.tree)
    }

    #[test]
    fn the_tree_is_serde_yaml_s_without_duplicates() {
        for text in [
            "",
            "~",
            "a: 1\nb: [1, -2, 3.5, .nan, .inf, 18446744073709551615, 0x1F, true, no, null, ~, 'x']\n",
            "a:\n  b:\n  - c: 1\n    d: {e: [f, g]}\n  - h\n",
            "base: &b {x: 1, y: [2]}\nuse: *b\nlist: [*b, *b]\n",
            "1: a\ntrue: b\nnull: c\n? [k, l]\n: d\n? {m: 1}\n: e\n1.5: f\n",
            "t: !custom {a: 1}\nu: !!str 12\nv: !x [1]\nw: !y 3\n",
            "s: |\n  block: not a key\n  a: b\nf: >-\n  folded\n  text\n",
            "- a: 1\n- a: 1\n- [a, a]\n",
            "<<: {a: 1}\nb: 2\n",
        ] {
            let want = yaml_to_json(serde_yaml::from_str(text).unwrap());
            assert_eq!(parse(text).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn syntax_errors_keep_serde_yaml_s_position() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.message.starts_with("not valid YAML:"), "{e}");
        assert!(e.line.is_some(), "{e}");
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.starts_with("not valid YAML:"));
    }

    #[test]
    fn a_duplicate_key_is_reported_at_its_second_line_with_the_first() {
        let e = parse(
            "task_name: x\nconcurrency:\n  max_concurrent_requests: 4\nretry:\n  max_retries: 2\n  enable_format_validation_retry: true\n  max_retries: 5\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (Some(7), Some(3)), "{e}");
        assert_eq!(e.key.as_deref(), Some("retry.max_retries"));
        assert!(e.message.contains("already set at line 5"), "{e}");
        assert_eq!(e.to_string(), "t.yaml:7:3: `retry.max_retries`: duplicate key: already set at line 5; a mapping holds each key once, keep one");

        let e = parse("concurrency:\n  chunk_size: 1\ntask_name: x\nconcurrency: 3\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("concurrency")), "{e}");
        assert!(e.message.contains("line 1"), "{e}");
    }

    #[test]
    fn duplicates_in_flow_maps_lists_and_by_json_text() {
        let e = parse("logging: {level: INFO, batch_size: 2, level: DEBUG}\n").unwrap_err();
        assert_eq!((e.line, e.column, e.key.as_deref()), (Some(1), Some(39), Some("logging.level")), "{e}");
        assert!(e.message.contains("line 1"), "{e}");
        // The second list item holds the duplicate: the first is its own, not the first item's.
        let e = parse("groups:\n- name: a\n  out: x\n- name: b\n  out: y\n  out: z\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(6), Some("groups[1].out")), "{e}");
        assert!(e.message.contains("line 5"), "{e}");
        // `1` and `'1'` are different YAML keys but the same JSON key: not silently the last.
        let e = parse("m:\n  1: a\n  '1': b\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("m.1")), "{e}");
        assert!(e.message.contains("line 2"), "{e}");
        // Through an alias the position is the anchored mapping's.
        let e = parse("a: &x {k: 1, k: 2}\nb: *x\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("a.k")), "{e}");
        // Same key text in different mappings is fine.
        assert!(parse("a:\n  k: 1\nb:\n  k: 1\nc: [{k: 1}, {k: 2}]\n").is_ok());
    }
}
