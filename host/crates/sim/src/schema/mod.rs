//! Replies to `response_format: {"type": "json_schema", "json_schema": {"schema": …}}`: a JSON
//! document valid against the schema by construction, chosen deterministically from a hash.
//!
//! [`generate`] walks the schema once. Combinators are resolved first: `$ref` (to `#`,
//! `#/$defs/…`, `#/definitions/…` or any other JSON pointer into the same document) is inlined,
//! `allOf` members are merged into one schema (properties and `required` united, bounds
//! tightened, `type`s and `enum`s intersected), and one branch of `anyOf`/`oneOf` is picked by the
//! hash and merged with its parent. Then the value is built from the keywords:
//!
//! - `const` as is; `enum`: one value, picked by the hash (only values of the schema's `type`);
//! - `type` as a string or a list; a list picks one non-`null` type by the hash (`null` only when
//!   it is the only one), so nullable fields get real values; without `type` it is inferred from
//!   the keywords (`properties` → object, `items` → array, `minimum` → number, else string);
//! - objects: every property of `properties` and every `required` key (a required key without a
//!   property schema follows `additionalProperties`, or is a string), fewer when `maxProperties`
//!   says so (required keys first); extra `extra_N` keys up to `minProperties` when allowed;
//! - arrays: `prefixItems` (or draft-7 tuple `items`) then `items`, between `minItems` and
//!   `maxItems` (1 to 3 items when unbounded); `uniqueItems` and `contains` honoured;
//! - strings: short text naming the property, padded or cut to `minLength`/`maxLength`; a
//!   `pattern` made of literals, classes (`[a-z]`, `\d`, `\w`, `.`), groups, alternatives and
//!   quantifiers is expanded into a matching string (checked with the `regex` crate; anything
//!   fancier falls back to plain text); a few common `format`s (`date-time`, `date`, `time`,
//!   `email`, `uri`, `uuid`) get a value of that shape, the others are ignored;
//! - integers and numbers: within `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`
//!   (numeric, or draft-4 booleans), and a multiple of `multipleOf`; 1..=5 for an unbounded
//!   integer (a score), 0..1 for an unbounded number;
//! - booleans and `null`.
//!
//! Not honoured: `not`, `if`/`then`/`else`, `dependentRequired`/`dependentSchemas`,
//! `patternProperties` and `propertyNames` on generated keys, `unevaluated*`; `oneOf` branches
//! that overlap (the value may then match more than one). Recursive schemas are cut off by depth:
//! past [`MAX_DEPTH`] objects carry only their required keys, arrays only `minItems` items, and
//! `anyOf`/`oneOf` prefer a branch without nesting.

use serde_json::{Map, Value};

use crate::reply::fnv1a;

mod combine;
mod scalars;
use combine::merge;
#[cfg(test)]
mod tests;
use scalars::*;

/// Nesting depth after which generation only does what the schema requires.
pub const MAX_DEPTH: usize = 6;

/// Hard stop for pathological schemas (`$ref` cycles without any nesting).
const HARD_DEPTH: usize = 64;

/// A JSON document valid against `schema` (a JSON Schema, as sent in `response_format`), the
/// same for the same `schema` and `h`.
pub fn generate(schema: &Value, h: u64) -> Value {
    Gen { root: schema }.value(schema, h, "", 0)
}

/// The schema of an OpenAI-style `response_format`, when it asks for one: `{"type":
/// "json_schema", "json_schema": {"schema": …}}`. `json_object` and anything else give `None`.
pub fn requested_schema(request: &Value) -> Option<&Value> {
    let rf = &request["response_format"];
    if rf["type"] != "json_schema" {
        return None;
    }
    // The OpenAI shape nests it under `json_schema`; accept a bare `schema` as some servers do.
    let schema = rf["json_schema"].get("schema").or_else(|| rf.get("schema"))?;
    (schema.is_object() || schema.is_boolean()).then_some(schema)
}

/// Spreads a hash and a salt (a property name, an index) into a new hash.
fn mix(h: u64, salt: &str) -> u64 {
    let mut z = fnv1a(salt.as_bytes(), h);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

fn pick<T>(items: &[T], h: u64) -> &T {
    &items[(h % items.len() as u64) as usize]
}

struct Gen<'a> {
    root: &'a Value,
}

impl Gen<'_> {
    fn value(&self, schema: &Value, h: u64, name: &str, depth: usize) -> Value {
        if depth > HARD_DEPTH {
            return Value::Null;
        }
        let flat = self.flatten(schema, h, depth);
        self.build(&flat, h, name, depth)
    }

    /// A `$ref` target: `#`, or a JSON pointer into the document (`#/$defs/x`, `#/definitions/x`).
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        // JSON pointer segments: `%XX` (URI fragment) then `~1` → `/` and `~0` → `~`.
        let mut node = self.root;
        for part in pointer.split('/').skip(1) {
            let part = percent_decode(part).replace("~1", "/").replace("~0", "~");
            node = match node {
                Value::Object(o) => o.get(&part)?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The schema with `$ref`, `allOf`, `anyOf` and `oneOf` resolved into one plain schema.
    fn flatten(&self, schema: &Value, h: u64, depth: usize) -> Map<String, Value> {
        let mut base = match schema {
            Value::Object(o) => o.clone(),
            // `true` allows anything; `false` allows nothing (nothing can be done: any value).
            _ => return Map::new(),
        };
        if depth > HARD_DEPTH {
            return Map::new();
        }
        let mut parts: Vec<Map<String, Value>> = Vec::new();
        if let Some(Value::String(r)) = base.remove("$ref") {
            if let Some(target) = self.resolve(&r) {
                parts.push(self.flatten(target, h, depth + 1));
            }
        }
        if let Some(Value::Array(all)) = base.remove("allOf") {
            for (i, s) in all.iter().enumerate() {
                parts.push(self.flatten(s, mix(h, &format!("allOf{i}")), depth + 1));
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = base.remove(key) {
                if branches.is_empty() {
                    continue;
                }
                let hb = mix(h, key);
                let shallow: Vec<&Value> = branches.iter().filter(|b| !self.nests(b)).collect();
                let branch = if depth >= MAX_DEPTH && !shallow.is_empty() { *pick(&shallow, hb) } else { pick(&branches, hb) };
                parts.push(self.flatten(branch, hb, depth + 1));
            }
        }
        // Keywords of the schema itself win over what it includes, as they are written beside.
        let mut flat = Map::new();
        for p in parts {
            flat = merge(flat, p);
        }
        merge(flat, base)
    }

    /// Whether a branch leads to more nesting (for cutting recursion off).
    fn nests(&self, schema: &Value) -> bool {
        let Value::Object(o) = schema else { return false };
        if o.contains_key("$ref") || o.contains_key("properties") || o.contains_key("items") || o.contains_key("prefixItems") {
            return true;
        }
        let types = type_list(o);
        types.iter().any(|t| t == "object" || t == "array") && !types.iter().any(|t| t == "null")
    }

    fn build(&self, s: &Map<String, Value>, h: u64, name: &str, depth: usize) -> Value {
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        let types = type_list(s);
        if let Some(Value::Array(values)) = s.get("enum") {
            let fitting: Vec<&Value> = values.iter().filter(|v| types.is_empty() || types.iter().any(|t| is_of_type(v, t))).collect();
            if !fitting.is_empty() {
                return (*pick(&fitting, mix(h, "enum"))).clone();
            }
            if !values.is_empty() {
                return pick(values, mix(h, "enum")).clone();
            }
        }
        let ty = if types.is_empty() {
            infer_type(s).to_string()
        } else {
            let real: Vec<&String> = types.iter().filter(|t| *t != "null").collect();
            if real.is_empty() {
                "null".to_string()
            } else {
                (*pick(&real, mix(h, "type"))).clone()
            }
        };
        match ty.as_str() {
            "object" => self.object(s, h, depth),
            "array" => self.array(s, h, name, depth),
            "integer" => number(s, h, true),
            "number" => number(s, h, false),
            "boolean" => Value::Bool(mix(h, "bool") & 1 == 1),
            "null" => Value::Null,
            _ => Value::String(string(s, h, name)),
        }
    }

    fn object(&self, s: &Map<String, Value>, h: u64, depth: usize) -> Value {
        let empty = Map::new();
        let props = s.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required: Vec<&str> = s.get("required").and_then(Value::as_array).map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        let additional = s.get("additionalProperties");
        let extra_schema = match additional {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => Value::Bool(true),
        };
        // Required keys first (they survive `maxProperties`), then the other properties in order.
        let mut keys: Vec<&str> = required.clone();
        if depth < MAX_DEPTH {
            keys.extend(props.keys().map(String::as_str).filter(|k| !required.contains(k)));
        }
        let mut dedup: Vec<&str> = Vec::new();
        for k in keys {
            if !dedup.contains(&k) {
                dedup.push(k);
            }
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
            dedup.truncate((max as usize).max(required.len()));
        }
        let mut out = Map::new();
        for k in &dedup {
            let schema = props.get(*k).unwrap_or(&extra_schema);
            out.insert(k.to_string(), self.value(schema, mix(h, k), k, depth + 1));
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
            let mut i = 0;
            while out.len() < min as usize && additional != Some(&Value::Bool(false)) && i < 1000 {
                let k = format!("extra_{i}");
                if !out.contains_key(&k) && !props.contains_key(&k) {
                    let v = self.value(&extra_schema, mix(h, &k), &k, depth + 1);
                    out.insert(k, v);
                }
                i += 1;
            }
        }
        Value::Object(out)
    }

    fn array(&self, s: &Map<String, Value>, h: u64, name: &str, depth: usize) -> Value {
        // 2020-12 `prefixItems` + `items`, or draft-7 tuple `items: [...]` + `additionalItems`.
        let (prefix, rest): (Vec<Value>, Option<Value>) = match (s.get("prefixItems"), s.get("items")) {
            (Some(Value::Array(p)), items) => (p.clone(), items.cloned()),
            (_, Some(Value::Array(p))) => (p.clone(), s.get("additionalItems").cloned()),
            (_, items) => (Vec::new(), items.cloned()),
        };
        let rest_allowed = rest.as_ref() != Some(&Value::Bool(false));
        let rest = rest.unwrap_or(Value::Bool(true));
        let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let mut max = s.get("maxItems").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
        if !rest_allowed {
            max = max.min(prefix.len());
        }
        let n = if depth >= MAX_DEPTH { min } else { min.max(prefix.len().clamp(1, 3)) + (mix(h, "len") % 3) as usize };
        let n = n.min(max).max(min);
        let unique = s.get("uniqueItems") == Some(&Value::Bool(true));
        let contains = s.get("contains").filter(|_| s.get("minContains").and_then(Value::as_u64) != Some(0));
        let item_name = singular(name);
        let mut out: Vec<Value> = Vec::new();
        for i in 0..n {
            let schema = match (i, contains) {
                (0, Some(c)) => {
                    let mut both = Map::new();
                    both.insert("allOf".into(), Value::Array(vec![prefix.first().cloned().unwrap_or_else(|| rest.clone()), c.clone()]));
                    Value::Object(both)
                }
                _ => prefix.get(i).cloned().unwrap_or_else(|| rest.clone()),
            };
            let mut v = self.value(&schema, mix(h, &i.to_string()), &item_name, depth + 1);
            if unique {
                let mut attempt = 0;
                while out.contains(&v) && attempt < 32 {
                    attempt += 1;
                    v = self.value(&schema, mix(h, &format!("{i}/{attempt}")), &item_name, depth + 1);
                }
                // No new value to be had: stop short when the array is long enough already.
                if out.contains(&v) && out.len() >= min {
                    break;
                }
            }
            out.push(v);
        }
        Value::Array(out)
    }
}

/// The `type` keyword as a list (empty when absent).
fn type_list(s: &Map<String, Value>) -> Vec<String> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn is_of_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn infer_type(s: &Map<String, Value>) -> &'static str {
    let has = |keys: &[&str]| keys.iter().any(|k| s.contains_key(*k));
    if has(&["properties", "required", "additionalProperties", "minProperties", "maxProperties", "patternProperties"]) {
        "object"
    } else if has(&["items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems"]) {
        "array"
    } else if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]) {
        "number"
    } else {
        "string"
    }
}

/// `tags` → `tag`, for naming the strings inside an array.
fn singular(name: &str) -> String {
    name.strip_suffix('s').filter(|s| !s.is_empty()).unwrap_or(name).to_string()
}
