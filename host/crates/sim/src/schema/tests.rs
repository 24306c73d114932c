//! The schema generator against the jsonschema crate's validation.
use super::scalars::*;
use super::*;
use serde_json::json;

#[test]
fn simple_patterns() {
    for (p, min, max) in [
        ("^[a-z]{3}-\\d{2,4}$", 0, 100),
        ("^(yes|no|maybe)$", 0, 100),
        ("^[A-Z][a-z]+$", 6, 8),
        ("\\d+", 10, 12),
        ("^[^0-9]*$", 3, 3),
        ("^https?://[a-z.]+/(?:x|y)$", 0, 100),
    ] {
        let t = pattern::matching(p, 7, min, max).unwrap_or_else(|| panic!("no string for {p}"));
        assert!(regex::Regex::new(p).unwrap().is_match(&t), "{p}: {t}");
        assert!((min..=max).contains(&t.chars().count()), "{p}: {t}");
    }
    assert!(pattern::matching("^(?=x)x$", 1, 0, 10).is_none());
}

#[test]
fn numbers_respect_bounds_and_multiples() {
    let s = |v: Value| v.as_object().unwrap().clone();
    for h in 0..200 {
        let v = number(&s(json!({"minimum": 0, "exclusiveMaximum": 1})), h, false).as_f64().unwrap();
        assert!((0.0..1.0).contains(&v));
        let v = number(&s(json!({"minimum": 3, "maximum": 30, "multipleOf": 7})), h, true).as_i64().unwrap();
        assert!([7, 14, 21, 28].contains(&v), "{v}");
        let v = number(&s(json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.1})), h, false).as_f64().unwrap();
        assert!(v > 0.0 && v < 1.0, "{v}");
        let v = number(&s(json!({"minimum": 5, "maximum": 5})), h, true);
        assert_eq!(v, json!(5));
    }
}
