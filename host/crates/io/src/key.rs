//! Stable record identity: the key under which a record's result is journaled.
//!
//! A key is the record's id field when it has one, else `h:<128-bit content hash>` of the
//! canonical JSON (keys sorted at every depth), with `#<n>` appended for the n-th exact
//! duplicate in the same file (the first occurrence has no suffix). Keys never involve
//! randomness, so every run and every shard computes the same key for the same record.
//!
//! Ids are unique too: the first record with an id keeps it as its key, later records with the
//! same id value (`7` and `"7"` are the same value) get `id#2`, `id#3`, … in input order, and
//! are flagged as duplicates (see [`KeyAssigner::assign`]). A generated `id#2` never takes the
//! key of another record: if the input also holds a literal id `id#2`, whichever comes second
//! moves on to the next free suffix.
//!
//! Keys the engine makes itself (bad lines, source errors) live in their own namespace, see
//! [`internal_key`]: they start with [`INTERNAL_KEY_PREFIX`], which no assigned key does.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::keyset::key_hash;

/// First character of every [`internal_key`]; no key made by [`KeyAssigner`] starts with it.
pub const INTERNAL_KEY_PREFIX: char = '\u{1}';
/// Prepended to an id that would otherwise look like an internal key, an escaped id or a
/// content-hash key, so that every id maps to its own key.
const ESCAPE_PREFIX: char = '\u{2}';

/// A key for something that is not a record of the input (a bad line, a source error):
/// `"\u{1}<kind>:<detail>"`, e.g. `internal_key("bad-line", "2")`. It can never equal a key
/// that [`KeyAssigner`] gives a record, whatever the record's id.
pub fn internal_key(kind: &str, detail: &str) -> String {
    let mut key = String::with_capacity(1 + kind.len() + 1 + detail.len());
    key.push(INTERNAL_KEY_PREFIX);
    key.push_str(kind);
    key.push(':');
    key.push_str(detail);
    key
}

/// Whether `key` was made by [`internal_key`].
pub fn is_internal_key(key: &str) -> bool {
    key.starts_with(INTERNAL_KEY_PREFIX)
}

/// The key of a record and whether an earlier record of the same input had the same id (or,
/// for records without an id, the same content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedKey {
    pub key: String,
    pub duplicate: bool,
}

/// How many records of a file without any id field make [`KeyAssigner::missing_id_fields`]
/// speak before the file ends.
pub const MISSING_ID_SAMPLE: u64 = 1000;

pub struct KeyAssigner {
    /// Id fields tried in order (e.g. `uid`, then `id` for distillation inputs).
    id_fields: Vec<String>,
    /// Occurrences seen so far per content hash, for duplicate ordinals. Only records without
    /// an id pay for this.
    seen: Counts,
    /// Per 128-bit hash of a key made from an id: how many records had that exact (escaped)
    /// id. Every key handed out for an id is in here (with 0 when it was only generated as
    /// `id#n`), so presence means "taken".
    ids: Counts,
    /// Records of the current file so far that had none of the id fields, and whether any had
    /// one: a file whose records all lack the field is keyed by content hash, which a user who
    /// named the field wants to know (once: see [`KeyAssigner::missing_id_fields`]).
    lacking_in_file: u64,
    id_in_file: bool,
    warned: bool,
}

/// Counts per 128-bit hash, held as the set of hashes seen (16 bytes and a control byte each)
/// and the counts other than 1 apart, since nearly every key occurs once: half the memory of a
/// map from hash to count, whose entries are padded to 32 bytes.
#[derive(Default)]
struct Counts {
    present: HashSet<u128>,
    /// Counts that are not 1 (repeated ids, and 0 for keys only generated).
    other: HashMap<u128, u32>,
}

impl Counts {
    fn get(&self, hash: u128) -> Option<u32> {
        self.present.contains(&hash).then(|| self.other.get(&hash).copied().unwrap_or(1))
    }

    fn set(&mut self, hash: u128, count: u32) {
        self.present.insert(hash);
        if count == 1 {
            self.other.remove(&hash);
        } else {
            self.other.insert(hash, count);
        }
    }
}

impl KeyAssigner {
    pub fn new(id_field: Option<String>) -> Self {
        KeyAssigner::with_field_names(id_field.into_iter().collect())
    }

    /// Tries each of `fields` in order before falling back to the content hash.
    pub fn with_fields(fields: &[&str]) -> Self {
        KeyAssigner::with_field_names(fields.iter().map(|f| f.to_string()).collect())
    }

    fn with_field_names(id_fields: Vec<String>) -> Self {
        KeyAssigner { id_fields, seen: Counts::default(), ids: Counts::default(), lacking_in_file: 0, id_in_file: false, warned: false }
    }

    /// Starts the count of records lacking every id field over for the next file.
    pub fn begin_file(&mut self) {
        self.lacking_in_file = 0;
        self.id_in_file = false;
    }

    /// The id fields, once per assigner, when none of the records of the current file read so
    /// far had any of them: at `end_of_file`, or early after [`MISSING_ID_SAMPLE`] records.
    /// `None` when the assigner has no id fields (content keys are what was asked for).
    pub fn missing_id_fields(&mut self, end_of_file: bool) -> Option<&[String]> {
        let due = self.lacking_in_file >= MISSING_ID_SAMPLE || (end_of_file && self.lacking_in_file > 0);
        if self.warned || self.id_fields.is_empty() || self.id_in_file || !due {
            return None;
        }
        self.warned = true;
        Some(&self.id_fields)
    }

    /// The key of `record`; same as `assign(record).key`.
    pub fn key_for(&mut self, record: &Map<String, Value>) -> String {
        self.assign(record).key
    }

    /// The key of the next record of the input, in input order.
    ///
    /// With an id (the first of the id fields holding a non-empty string or a number): the
    /// first record with that id gets the id itself, later ones `id#2`, `id#3`, … with
    /// `duplicate: true`. Without: `h:<content hash>`, exact duplicates `h:<hash>#1`, `#2`, ….
    pub fn assign(&mut self, record: &Map<String, Value>) -> AssignedKey {
        for field in &self.id_fields {
            let id = match record.get(field) {
                Some(Value::String(s)) if !s.is_empty() => escape_id(s),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            self.id_in_file = true;
            return self.assign_id(id);
        }
        self.lacking_in_file += 1;
        let hash = content_hash(record);
        let count = self.seen.get(hash).unwrap_or(0);
        let key = if count == 0 { format!("h:{hash:032x}") } else { format!("h:{hash:032x}#{count}") };
        self.seen.set(hash, count + 1);
        AssignedKey { key, duplicate: count > 0 }
    }

    fn assign_id(&mut self, id: String) -> AssignedKey {
        let hash = key_hash(&id);
        let (occurrences, taken) = match self.ids.get(hash) {
            Some(n) => (n + 1, true),
            None => (1, false),
        };
        self.ids.set(hash, occurrences);
        if !taken {
            return AssignedKey { key: id, duplicate: false };
        }
        // The n-th record with this id tries `id#n` first; a literal id elsewhere in the input
        // may already hold it, then the next free suffix.
        let mut n = occurrences.max(2);
        loop {
            let candidate = format!("{id}#{n}");
            let h = key_hash(&candidate);
            if self.ids.get(h).is_none() {
                self.ids.set(h, 0);
                return AssignedKey { key: candidate, duplicate: occurrences > 1 };
            }
            n += 1;
        }
    }
}

/// The key an id string stands for: itself, unless it starts with a reserved character or has
/// the shape of a content-hash key (`h:` + 32 hex digits, optionally `#n`); those get
/// [`ESCAPE_PREFIX`] in front. Injective, and never starts with [`INTERNAL_KEY_PREFIX`].
fn escape_id(id: &str) -> String {
    if id.starts_with(INTERNAL_KEY_PREFIX) || id.starts_with(ESCAPE_PREFIX) || looks_like_content_key(id) {
        let mut s = String::with_capacity(id.len() + 1);
        s.push(ESCAPE_PREFIX);
        s.push_str(id);
        s
    } else {
        id.to_string()
    }
}

fn looks_like_content_key(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("h:") else { return false };
    let (hex, suffix) = match rest.split_once('#') {
        Some((h, s)) => (h, Some(s)),
        None => (rest, None),
    };
    hex.len() == 32
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && suffix.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
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
}
