//! `allOf` members (and a picked `anyOf`/`oneOf` branch) merged into one schema: properties and
//! `required` united, bounds tightened, `type`s and `enum`s intersected.

use serde_json::{Map, Value};

use super::*;

/// Two plain schemas (no combinators at the top) as one: what both require.
pub(super) fn merge(mut a: Map<String, Value>, b: Map<String, Value>) -> Map<String, Value> {
    for (k, vb) in b {
        let Some(va) = a.remove(&k) else {
            a.insert(k, vb);
            continue;
        };
        let merged = match (k.as_str(), va, vb) {
            ("properties" | "$defs" | "definitions" | "patternProperties", Value::Object(mut pa), Value::Object(pb)) => {
                for (name, sb) in pb {
                    let combined = match pa.remove(&name) {
                        Some(sa) => Value::Object(Map::from_iter([("allOf".to_string(), Value::Array(vec![sa, sb]))])),
                        None => sb,
                    };
                    pa.insert(name, combined);
                }
                Value::Object(pa)
            }
            ("required", Value::Array(mut ra), Value::Array(rb)) => {
                for r in rb {
                    if !ra.contains(&r) {
                        ra.push(r);
                    }
                }
                Value::Array(ra)
            }
            ("minimum" | "minLength" | "minItems" | "minProperties", va, vb) => max_num(va, vb, true),
            ("maximum" | "maxLength" | "maxItems" | "maxProperties", va, vb) => max_num(va, vb, false),
            ("exclusiveMinimum", va @ Value::Number(_), vb @ Value::Number(_)) => max_num(va, vb, true),
            ("exclusiveMaximum", va @ Value::Number(_), vb @ Value::Number(_)) => max_num(va, vb, false),
            ("type", ta, tb) => {
                let la = type_list(&Map::from_iter([("type".to_string(), ta)]));
                let lb = type_list(&Map::from_iter([("type".to_string(), tb.clone())]));
                let mut both: Vec<Value> = Vec::new();
                for t in &la {
                    for u in &lb {
                        let meet = match (t.as_str(), u.as_str()) {
                            (x, y) if x == y => Some(x),
                            ("number", "integer") | ("integer", "number") => Some("integer"),
                            _ => None,
                        };
                        if let Some(m) = meet {
                            if !both.iter().any(|v| *v == m) {
                                both.push(Value::String(m.to_string()));
                            }
                        }
                    }
                }
                if both.is_empty() {
                    tb
                } else {
                    Value::Array(both)
                }
            }
            ("enum", Value::Array(ea), Value::Array(eb)) => {
                let both: Vec<Value> = ea.iter().filter(|v| eb.contains(v)).cloned().collect();
                Value::Array(if both.is_empty() { eb } else { both })
            }
            ("uniqueItems", va, vb) => Value::Bool(va == Value::Bool(true) || vb == Value::Bool(true)),
            ("items" | "additionalProperties" | "contains", va @ Value::Object(_), vb @ Value::Object(_)) => {
                Value::Object(Map::from_iter([("allOf".to_string(), Value::Array(vec![va, vb]))]))
            }
            (_, _, vb) => vb,
        };
        a.insert(k, merged);
    }
    a
}

fn max_num(a: Value, b: Value, larger: bool) -> Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => {
            if (x > y) == larger {
                a
            } else {
                b
            }
        }
        _ => b,
    }
}
