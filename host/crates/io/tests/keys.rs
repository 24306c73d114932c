//! Record keys: duplicate ids get ordinals, internal keys live in their own namespace, and no
//! two records of an input ever share a key.

use std::collections::HashSet;

use modelcall_io::{internal_key, is_internal_key, AssignedKey, KeyAssigner};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn assign_all(k: &mut KeyAssigner, records: &[Value]) -> Vec<(String, bool)> {
    records
        .iter()
        .map(|r| {
            let AssignedKey { key, duplicate } = k.assign(&obj(r.clone()));
            (key, duplicate)
        })
        .collect()
}

#[test]
fn duplicate_ids_get_ordinals_in_input_order() {
    let mut k = KeyAssigner::new(Some("id".into()));
    let got = assign_all(&mut k, &[json!({"id": 7}), json!({"id": "7"}), json!({"id": "x"}), json!({"id": 7, "t": 2}), json!({"id": "x"})]);
    let want = [("7", false), ("7#2", true), ("x", false), ("7#3", true), ("x#2", true)];
    assert_eq!(got, want.iter().map(|(k, d)| (k.to_string(), *d)).collect::<Vec<_>>());
    // Deterministic: a new assigner (a resumed run) gives the same keys.
    let mut again = KeyAssigner::new(Some("id".into()));
    assert_eq!(again.key_for(&obj(json!({"id": 7}))), "7");
    assert_eq!(again.key_for(&obj(json!({"id": "7"}))), "7#2");
}

#[test]
fn key_for_is_assign_key() {
    let mut a = KeyAssigner::with_fields(&["uid", "id"]);
    let mut b = KeyAssigner::with_fields(&["uid", "id"]);
    for r in [json!({"uid": "u"}), json!({"id": "u"}), json!({"x": 1}), json!({"x": 1}), json!({"uid": "u"})] {
        assert_eq!(a.key_for(&obj(r.clone())), b.assign(&obj(r)).key);
    }
}

#[test]
fn generated_suffixes_never_take_a_literal_id() {
    // The literal id "a#2" after two "a"s.
    let mut k = KeyAssigner::new(Some("id".into()));
    let got = assign_all(&mut k, &[json!({"id": "a"}), json!({"id": "a"}), json!({"id": "a#2"})]);
    assert_eq!(got[1], ("a#2".to_string(), true));
    assert_ne!(got[2].0, "a#2");
    assert!(!got[2].1, "a literal a#2 is the first of its id");
    // The literal first.
    let mut k = KeyAssigner::new(Some("id".into()));
    let got = assign_all(&mut k, &[json!({"id": "a#2"}), json!({"id": "a"}), json!({"id": "a"})]);
    assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["a#2", "a", "a#3"]);
}

#[test]
fn content_duplicates_are_flagged() {
    let mut k = KeyAssigner::new(None);
    let got = assign_all(&mut k, &[json!({"a": 1}), json!({"a": 1})]);
    assert!(!got[0].1 && got[1].1);
    assert_eq!(got[1].0, format!("{}#1", got[0].0));
}

#[test]
fn internal_keys_never_equal_record_keys() {
    let bad = internal_key("bad-line", "2");
    assert!(is_internal_key(&bad));
    let mut k = KeyAssigner::new(Some("id".into()));
    for id in ["bad-line:2", "\u{1}bad-line:2", "\u{2}\u{1}bad-line:2", "\u{2}bad-line:2"] {
        let key = k.key_for(&obj(json!({ "id": id })));
        assert_ne!(key, bad, "{id:?}");
        assert!(!is_internal_key(&key), "{id:?} -> {key:?}");
    }
    assert_ne!(internal_key("source-error", "a.jsonl"), k.key_for(&obj(json!({"id": "source-error:a.jsonl"}))));
}

#[test]
fn an_id_shaped_like_a_content_key_does_not_collide_with_one() {
    let record = obj(json!({"t": "hello"}));
    let content_key = KeyAssigner::new(Some("id".into())).key_for(&record);
    assert!(content_key.starts_with("h:"));
    let mut k = KeyAssigner::new(Some("id".into()));
    let a = k.key_for(&record);
    let b = k.key_for(&obj(json!({ "id": content_key.clone() })));
    let c = k.key_for(&record);
    let d = k.key_for(&obj(json!({ "id": format!("{content_key}#1") })));
    let all: HashSet<&String> = [&a, &b, &c, &d].into_iter().collect();
    assert_eq!(all.len(), 4, "{a:?} {b:?} {c:?} {d:?}");
    // Ordinary ids starting with "h:" keep their key.
    assert_eq!(k.key_for(&obj(json!({"id": "h:hello"}))), "h:hello");
}

fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![(0u8..4).prop_map(Value::from), "[a7#\u{1}\u{2}:]{0,4}".prop_map(Value::from), Just(Value::Null), Just(json!("a#2")), Just(json!("7#2#2")),]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the ids, every record of an input gets its own key, none internal, and only
    /// repeated ids are flagged as duplicates.
    #[test]
    fn keys_are_unique(ids in prop::collection::vec((id_value(), 0u8..3), 0..40)) {
        let mut k = KeyAssigner::new(Some("id".into()));
        let mut keys = HashSet::new();
        let mut seen_ids = HashSet::new();
        for (id, t) in ids {
            let record = obj(json!({"id": id.clone(), "t": t}));
            let AssignedKey { key, duplicate } = k.assign(&record);
            prop_assert!(!is_internal_key(&key), "{key:?}");
            prop_assert!(keys.insert(key.clone()), "duplicate key {key:?}");
            let text = match &id {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            if let Some(text) = text {
                let first = seen_ids.insert(text.clone());
                prop_assert_eq!(duplicate, !first);
            }
        }
    }
}
