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

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::value::{EnumAccessDeserializer, MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::env::{interpolate, Vars};
use crate::error::ConfigError;
use crate::locate::find_key_or_parent;

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
    let source =
        std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, format!("cannot read the {what}: {e}")))?;
    parse_yaml(path, source)
}

/// Parses `source` (the text of `path`, which only names the file in errors): syntax errors and
/// duplicate keys are errors with a line and column.
pub fn parse_yaml(path: &Path, source: String) -> Result<YamlFile, ConfigError> {
    let pass = Pass::default();
    match (Node { pass: &pass, path: Vec::new() }).deserialize(serde_yaml::Deserializer::from_str(&source)) {
        Ok(tree) => Ok(YamlFile { source, tree }),
        Err(e) => Err(match pass.duplicate.take() {
            Some(dup) => duplicate_error(path, &source, dup, location(&e)),
            None => ConfigError::new(path, format!("not valid YAML: {e}")).at(location(&e)),
        }),
    }
}

fn location(e: &serde_yaml::Error) -> Option<(usize, usize)> {
    e.location().map(|l| (l.line(), l.column()))
}

fn duplicate_error(path: &Path, source: &str, dup: Duplicate, second: Option<(usize, usize)>) -> ConfigError {
    // A second pass stops at the first occurrence, so its position comes from the parser too
    // (exact in flow mappings and list items, where scanning the text could not tell).
    let again = Pass { target: Some((dup.mapping, dup.first_index)), ..Pass::default() };
    let first = match (Node { pass: &again, path: Vec::new() }).deserialize(serde_yaml::Deserializer::from_str(source)) {
        Err(e) if again.stopped.get() => location(&e),
        _ => None,
    };
    let mut keys = dup.path;
    keys.push(dup.key);
    let dotted = dotted(&keys);
    let message = match first {
        Some((line, _)) => format!("duplicate key: already set at line {line}; a mapping holds each key once, keep one"),
        None => "duplicate key: already set earlier in the same mapping; keep one".to_string(),
    };
    let plain: Vec<&str> = keys.iter().filter(|k| !k.starts_with('[')).map(String::as_str).collect();
    ConfigError::new(path, message).key(dotted).at(second.or_else(|| find_key_or_parent(source, &plain)))
}

/// `retry.max_retries`, `merge_groups[1].name`.
fn dotted(keys: &[String]) -> String {
    let mut out = String::new();
    for k in keys {
        if !out.is_empty() && !k.starts_with('[') {
            out.push('.');
        }
        out.push_str(k);
    }
    out
}

/// The message of the error that stops a parse at a key; what it is about is kept in [`Pass`].
const STOP: &str = "duplicate key";

/// State shared by one parse.
#[derive(Default)]
struct Pass {
    /// Mappings started so far, in document order: numbers a mapping the same way in every pass.
    mappings: Cell<usize>,
    duplicate: RefCell<Option<Duplicate>>,
    /// Stop at key number `.1` of mapping number `.0` (to learn its position).
    target: Option<(usize, usize)>,
    stopped: Cell<bool>,
}

struct Duplicate {
    /// Keys (and `[i]` list indexes) down to the mapping.
    path: Vec<String>,
    key: String,
    mapping: usize,
    first_index: usize,
}

/// Deserializes any YAML value into JSON, checking mappings for duplicate keys.
struct Node<'p> {
    pass: &'p Pass,
    path: Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::from(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::from(u))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        // `.nan` and `.inf` have no JSON form: null, as before.
        Ok(Value::from(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Node { pass: self.pass, path: child(&self.path, format!("[{}]", out.len())) })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mapping = self.pass.mappings.get();
        self.pass.mappings.set(mapping + 1);
        let mut out = Map::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut index = 0;
        while let Some(key) = map.next_key_seed(Key { pass: self.pass, path: &self.path, seen: &seen, mapping, index })? {
            let value = map.next_value_seed(Node { pass: self.pass, path: child(&self.path, key.clone()) })?;
            seen.insert(key.clone(), index);
            out.insert(key, value);
            index += 1;
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A tagged value (`!tag value`): the tag is dropped, as serde_yaml's own tags are.
        let (_tag, contents): (String, _) = data.variant()?;
        contents.newtype_variant_seed(self)
    }
}

fn child(path: &[String], seg: String) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(seg);
    p
}

/// A mapping key as JSON text, failing (at the key's position) when the mapping already has it.
struct Key<'a> {
    pass: &'a Pass,
    path: &'a [String],
    seen: &'a HashMap<String, usize>,
    mapping: usize,
    index: usize,
}

impl Key<'_> {
    fn check<E: de::Error>(self, key: serde_yaml::Value) -> Result<String, E> {
        let name = key_text(key);
        if self.pass.target == Some((self.mapping, self.index)) {
            self.pass.stopped.set(true);
            return Err(E::custom(STOP));
        }
        if let Some(&first_index) = self.seen.get(&name) {
            *self.pass.duplicate.borrow_mut() =
                Some(Duplicate { path: self.path.to_vec(), key: name, mapping: self.mapping, first_index });
            return Err(E::custom(STOP));
        }
        Ok(name)
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        // Checking inside the visitor puts the key's own position on the error.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<String, E> {
        self.check(serde_yaml::Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<String, E> {
        self.check(serde_yaml::Value::Number(i.into()))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<String, E> {
        self.check(serde_yaml::Value::Number(u.into()))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<String, E> {
        self.check(serde_yaml::Value::Number(f.into()))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        self.check(serde_yaml::Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<String, E> {
        self.check(serde_yaml::Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.check(serde_yaml::Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        self.check(serde_yaml::Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        self.check(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<String, A::Error> {
        let v = serde_yaml::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        self.check(v)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
        let v = serde_yaml::Value::deserialize(MapAccessDeserializer::new(map))?;
        self.check(v)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<String, A::Error> {
        let v = serde_yaml::Value::deserialize(EnumAccessDeserializer::new(data))?;
        self.check(v)
    }
}

/// A mapping key as text: strings as they are, anything else as its (trimmed) YAML rendering.
fn key_text(k: serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s,
        other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
    }
}

/// serde_yaml's own tree as JSON, as [`parse_yaml`] builds it (without the duplicate check).
#[cfg(test)]
pub(crate) fn yaml_to_json(v: serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key_text(k), yaml_to_json(v));
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
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
        let e = parse("task_name: x\nconcurrency:\n  max_concurrent_requests: 4\nretry:\n  max_retries: 2\n  enable_format_validation_retry: true\n  max_retries: 5\n").unwrap_err();
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
