//! Stable record identity: the key under which a record's result is journaled.
//!
//! A key is the record's id field when it has one, else `h:<128-bit content hash>` of the
//! canonical JSON (keys sorted at every depth), with `#<n>` appended for the n-th exact
//! duplicate in the same file (the first occurrence has no suffix). Keys never involve
//! randomness, so every run and every shard computes the same key for the same record.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub struct KeyAssigner {
    /// Id fields tried in order (e.g. `uid`, then `id` for distillation inputs).
    id_fields: Vec<String>,
    /// Occurrences seen so far per content hash, for duplicate ordinals. Only records without
    /// an id pay for this (about 40 bytes each).
    seen: HashMap<u128, u32>,
}

impl KeyAssigner {
    pub fn new(id_field: Option<String>) -> Self {
        KeyAssigner { id_fields: id_field.into_iter().collect(), seen: HashMap::new() }
    }

    /// Tries each of `fields` in order before falling back to the content hash.
    pub fn with_fields(fields: &[&str]) -> Self {
        KeyAssigner { id_fields: fields.iter().map(|f| f.to_string()).collect(), seen: HashMap::new() }
    }

    pub fn key_for(&mut self, record: &Map<String, Value>) -> String {
        for field in &self.id_fields {
            match record.get(field) {
                Some(Value::String(s)) if !s.is_empty() => return s.clone(),
                Some(Value::Number(n)) => return n.to_string(),
                _ => {}
            }
        }
        let hash = content_hash(record);
        let count = self.seen.entry(hash).or_insert(0);
        let key = if *count == 0 { format!("h:{hash:032x}") } else { format!("h:{hash:032x}#{count}") };
        *count += 1;
        key
    }
}

/// 128 bits of SHA-256 over the canonical JSON of `record`.
pub fn content_hash(record: &Map<String, Value>) -> u128 {
    let mut hasher = Sha256::new();
    write_canonical_map(record, &mut hasher);
    let digest = hasher.finalize();
    u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"))
}

fn write_canonical_map(map: &Map<String, Value>, h: &mut Sha256) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    h.update(b"{");
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        h.update(serde_json::to_string(k).expect("string").as_bytes());
        h.update(b":");
        write_canonical(&map[k], h);
    }
    h.update(b"}");
}

fn write_canonical(v: &Value, h: &mut Sha256) {
    match v {
        Value::Object(m) => write_canonical_map(m, h),
        Value::Array(a) => {
            h.update(b"[");
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                write_canonical(x, h);
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

/// The shard (0..n) a key belongs to: FNV-1a, stable across platforms and releases.
pub fn shard_of(key: &str, n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in key.as_bytes() {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    (hash % n as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn id_field_wins_and_numbers_are_text() {
        let mut k = KeyAssigner::new(Some("id".into()));
        assert_eq!(k.key_for(&obj(json!({"id": "abc", "t": 1}))), "abc");
        assert_eq!(k.key_for(&obj(json!({"id": 42}))), "42");
        assert!(k.key_for(&obj(json!({"id": null, "t": 1}))).starts_with("h:"));
    }

    #[test]
    fn fallback_fields_in_order() {
        let mut k = KeyAssigner::with_fields(&["uid", "id"]);
        assert_eq!(k.key_for(&obj(json!({"uid": "u", "id": "i"}))), "u");
        assert_eq!(k.key_for(&obj(json!({"id": "i"}))), "i");
        assert!(k.key_for(&obj(json!({"x": 1}))).starts_with("h:"));
    }

    #[test]
    fn content_keys_ignore_key_order_and_number_duplicates() {
        let mut k = KeyAssigner::new(None);
        let a = k.key_for(&obj(json!({"a": 1, "b": {"y": 2, "x": 1}})));
        let b = k.key_for(&obj(json!({"b": {"x": 1, "y": 2}, "a": 1})));
        let c = k.key_for(&obj(json!({"a": 1, "b": {"y": 2, "x": 1}})));
        let other = k.key_for(&obj(json!({"a": 2})));
        assert_eq!(b, format!("{a}#1"));
        assert_eq!(c, format!("{a}#2"));
        assert!(!other.contains('#'));
        // Deterministic across assigners (runs).
        let mut again = KeyAssigner::new(None);
        assert_eq!(again.key_for(&obj(json!({"b": {"x": 1, "y": 2}, "a": 1}))), a);
    }

    #[test]
    fn shards_are_stable_and_cover_everything() {
        assert_eq!(shard_of("abc", 1), 0);
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            let s = shard_of(&format!("r{i}"), 4);
            assert_eq!(s, shard_of(&format!("r{i}"), 4));
            counts[s as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
