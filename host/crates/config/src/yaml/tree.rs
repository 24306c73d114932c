//! Building the JSON tree of a YAML file while watching for keys written twice: a custom
//! serde visitor over serde_yaml's deserializer that stops at the second occurrence and
//! remembers where the first was.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::value::{EnumAccessDeserializer, MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::locate::find_key_or_parent;

/// The JSON tree of `source` (the text of `path`); syntax errors and duplicate keys are errors
/// with a line and column.
pub(super) fn parse_tree(path: &Path, source: &str) -> Result<Value, ConfigError> {
    let pass = Pass::default();
    (Node { pass: &pass, path: Vec::new() }).deserialize(serde_yaml::Deserializer::from_str(source)).map_err(|e| match pass.duplicate.take() {
        Some(dup) => duplicate_error(path, source, dup, location(&e)),
        None => ConfigError::new(path, format!("not valid YAML: {e}")).at(location(&e)),
    })
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
            *self.pass.duplicate.borrow_mut() = Some(Duplicate { path: self.path.to_vec(), key: name, mapping: self.mapping, first_index });
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
