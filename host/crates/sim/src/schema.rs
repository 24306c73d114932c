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

use serde_json::{Map, Number, Value};

use crate::reply::fnv1a;

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

/// Two plain schemas (no combinators at the top) as one: what both require.
fn merge(mut a: Map<String, Value>, b: Map<String, Value>) -> Map<String, Value> {
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

/// `tags` → `tag`, for naming the strings inside an array.
fn singular(name: &str) -> String {
    name.strip_suffix('s').filter(|s| !s.is_empty()).unwrap_or(name).to_string()
}

/// The bounds a number must lie within: (value, exclusive).
struct Bounds {
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
}

impl Bounds {
    fn of(s: &Map<String, Value>) -> Bounds {
        let num = |k: &str| s.get(k).and_then(Value::as_f64);
        let flag = |k: &str| s.get(k) == Some(&Value::Bool(true));
        // Draft 6+: numeric exclusive bounds; draft 4: booleans qualifying minimum/maximum.
        let tighter = |a: Option<(f64, bool)>, b: Option<(f64, bool)>, lower: bool| match (a, b) {
            (Some(x), Some(y)) => {
                let x_tighter = if lower { x.0 > y.0 || (x.0 == y.0 && x.1) } else { x.0 < y.0 || (x.0 == y.0 && x.1) };
                Some(if x_tighter { x } else { y })
            }
            (x, y) => x.or(y),
        };
        let lo = tighter(num("minimum").map(|v| (v, flag("exclusiveMinimum"))), num("exclusiveMinimum").map(|v| (v, true)), true);
        let hi = tighter(num("maximum").map(|v| (v, flag("exclusiveMaximum"))), num("exclusiveMaximum").map(|v| (v, true)), false);
        Bounds { lo, hi }
    }

    fn admits(&self, v: f64) -> bool {
        let above = self.lo.is_none_or(|(l, ex)| if ex { v > l } else { v >= l });
        let below = self.hi.is_none_or(|(u, ex)| if ex { v < u } else { v <= u });
        v.is_finite() && above && below
    }
}

fn number_value(v: f64, integer: bool) -> Value {
    if integer && v.fract() == 0.0 && v.abs() < 9.0e18 {
        return Value::Number(Number::from(v as i64));
    }
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// An integer or number within the schema's bounds, a multiple of `multipleOf`.
fn number(s: &Map<String, Value>, h: u64, integer: bool) -> Value {
    let b = Bounds::of(s);
    let multiple = s.get("multipleOf").and_then(Value::as_f64).filter(|m| *m > 0.0 && m.is_finite());
    let hn = mix(h, "num");
    // The range to draw from when a side is open: a 1..=5 score for integers, 0..1 otherwise.
    let width: f64 = if integer { 4.0 } else { 1.0 };
    let (lo, hi) = match (b.lo, b.hi) {
        (Some((l, _)), Some((u, _))) => (l, u),
        (Some((l, _)), None) => (l, l + width.max(multiple.unwrap_or(0.0) * 4.0)),
        (None, Some((u, _))) => (u - width.max(multiple.unwrap_or(0.0) * 4.0), u),
        (None, None) if integer => (1.0, 5.0),
        (None, None) => (0.0, 1.0),
    };
    let step = match (multiple, integer) {
        (Some(m), _) => Some(m),
        (None, true) => Some(1.0),
        (None, false) => None,
    };
    if let Some(m) = step {
        let kmin = (lo / m).ceil();
        let kmax = (hi / m).floor();
        let span = if kmax >= kmin { (kmax - kmin).min(1.0e15) as u64 + 1 } else { 1 };
        let start = hn % span;
        // Walk from a hashed start over the multiples in range until one is exactly k·m (the
        // validator divides exactly), within the bounds, and whole when an integer is wanted.
        let tries = span.min(4096);
        for i in 0..tries {
            let k = kmin + ((start + i) % span) as f64;
            let v = k * m;
            if k.mul_add(m, -v) == 0.0 && b.admits(v) && (!integer || v.fract() == 0.0) {
                return number_value(v, integer);
            }
        }
        if b.admits(0.0) {
            return number_value(0.0, integer);
        }
        return number_value(kmin * m, integer);
    }
    let f = 0.1 + 0.8 * ((hn % 1000) as f64 / 1000.0);
    let raw = lo + (hi - lo) * f;
    for v in [(raw * 100.0).round() / 100.0, (raw * 1.0e6).round() / 1.0e6, raw, (lo + hi) / 2.0, lo, hi] {
        if b.admits(v) {
            return number_value(v, false);
        }
    }
    number_value(raw, false)
}

/// A string within `minLength`/`maxLength`, matching a simple `pattern`, shaped by a few formats.
fn string(s: &Map<String, Value>, h: u64, name: &str) -> String {
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s.get("maxLength").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
    let hs = mix(h, "str");
    let fits = |t: &str| (min..=max).contains(&t.chars().count());
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        if let Some(t) = pattern::matching(pattern, hs, min, max) {
            return t;
        }
    }
    let formatted = match s.get("format").and_then(Value::as_str) {
        Some("date-time") => Some(format!("2024-01-{:02}T12:00:00Z", 1 + hs % 28)),
        Some("date") => Some(format!("2024-01-{:02}", 1 + hs % 28)),
        Some("time") => Some(format!("12:{:02}:00Z", hs % 60)),
        Some("email" | "idn-email") => Some(format!("sim{:04x}@example.com", hs & 0xffff)),
        Some("uri" | "url" | "iri") => Some(format!("https://example.com/sim/{:04x}", hs & 0xffff)),
        Some("uuid") => Some(format!("00000000-0000-4000-8000-{:012x}", hs & 0xffff_ffff_ffff)),
        _ => None,
    };
    if let Some(t) = formatted.filter(|t| fits(t)) {
        return t;
    }
    let label = name.replace(|c: char| !c.is_ascii_alphanumeric(), " ");
    let label = label.trim();
    let mut t = if label.is_empty() { format!("simulated {:04x}", hs & 0xffff) } else { format!("simulated {label} {:04x}", hs & 0xffff) };
    let filler = " lorem ipsum dolor sit amet";
    let mut i = 0;
    while t.chars().count() < min {
        t.push(filler.as_bytes()[i % filler.len()] as char);
        i += 1;
    }
    if t.chars().count() > max {
        t = t.chars().take(max).collect();
    }
    t
}

/// `%XX` in a `$ref` pointer segment.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(x), Some(y)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((x * 16 + y) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Strings matching simple regular expressions.
mod pattern {
    use super::mix;

    #[derive(Debug, Clone)]
    enum Node {
        /// Any one of these characters (a literal is a class of one).
        Chars(Vec<char>),
        /// One of the alternatives, each a sequence.
        Group(Vec<Vec<Node>>),
        Repeat(Box<Node>, usize, usize),
        /// `^`, `$`, `\b`: nothing to produce.
        Anchor,
    }

    /// A string matching `pattern` (checked with the `regex` crate) of `min..=max` characters,
    /// or `None` when the pattern is beyond this small generator.
    pub fn matching(pattern: &str, h: u64, min: usize, max: usize) -> Option<String> {
        let re = regex::Regex::new(pattern).ok()?;
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let seq = parse_alternatives(&chars, &mut pos)?;
        if pos != chars.len() {
            return None;
        }
        let anchored_end = pattern.ends_with('$') && !pattern.ends_with("\\$");
        // More repetitions until long enough, then padding when the end is free.
        for extra in 0..=min.min(64) {
            let mut out = String::new();
            emit_seq(&seq, h, extra, &mut out);
            let mut n = out.chars().count();
            if n < min && !anchored_end {
                while n < min {
                    out.push('x');
                    n += 1;
                }
            }
            if n >= min && n <= max && re.is_match(&out) {
                return Some(out);
            }
            if n > max {
                break;
            }
        }
        None
    }

    fn emit_seq(seq: &[Node], h: u64, extra: usize, out: &mut String) {
        for (i, node) in seq.iter().enumerate() {
            emit(node, mix(h, &i.to_string()), extra, out);
        }
    }

    fn emit(node: &Node, h: u64, extra: usize, out: &mut String) {
        match node {
            Node::Chars(set) => out.push(set[(h % set.len() as u64) as usize]),
            Node::Group(alts) => {
                let alt = &alts[(h % alts.len() as u64) as usize];
                emit_seq(alt, mix(h, "alt"), extra, out);
            }
            Node::Repeat(inner, lo, hi) => {
                let n = (lo.max(&1) + extra).min(*hi).max(*lo);
                for i in 0..n {
                    emit(inner, mix(h, &format!("r{i}")), extra, out);
                }
            }
            Node::Anchor => {}
        }
    }

    fn parse_alternatives(p: &[char], pos: &mut usize) -> Option<Vec<Node>> {
        let mut alts = vec![parse_seq(p, pos)?];
        while *pos < p.len() && p[*pos] == '|' {
            *pos += 1;
            alts.push(parse_seq(p, pos)?);
        }
        Some(if alts.len() == 1 { alts.pop()? } else { vec![Node::Group(alts)] })
    }

    fn parse_seq(p: &[char], pos: &mut usize) -> Option<Vec<Node>> {
        let mut seq = Vec::new();
        while *pos < p.len() && p[*pos] != '|' && p[*pos] != ')' {
            let atom = parse_atom(p, pos)?;
            let atom = parse_quantifier(p, pos, atom)?;
            seq.push(atom);
        }
        Some(seq)
    }

    fn parse_atom(p: &[char], pos: &mut usize) -> Option<Node> {
        let c = p[*pos];
        *pos += 1;
        Some(match c {
            '^' | '$' => Node::Anchor,
            '.' => Node::Chars(('a'..='z').collect()),
            '(' => {
                if p.get(*pos) == Some(&'?') {
                    // Only non-capturing and named groups; lookarounds are beyond us.
                    match (p.get(*pos + 1), p.get(*pos + 2)) {
                        (Some(':'), _) => *pos += 2,
                        (Some('P'), Some('<')) | (Some('<'), Some(_)) => {
                            if p.get(*pos + 2) == Some(&'=') || p.get(*pos + 2) == Some(&'!') {
                                return None;
                            }
                            while *pos < p.len() && p[*pos] != '>' {
                                *pos += 1;
                            }
                            *pos += 1;
                        }
                        _ => return None,
                    }
                }
                let inner = parse_alternatives(p, pos)?;
                if p.get(*pos) != Some(&')') {
                    return None;
                }
                *pos += 1;
                Node::Group(vec![inner])
            }
            '[' => parse_class(p, pos)?,
            '\\' => {
                let e = *p.get(*pos)?;
                *pos += 1;
                match e {
                    'b' | 'B' | 'A' | 'z' | 'Z' => Node::Anchor,
                    _ => Node::Chars(escape_set(e)?),
                }
            }
            '*' | '+' | '?' | '{' | ')' | ']' => {
                // `{` not starting a quantifier is a literal in both syntaxes; the rest is broken.
                if c == '{' || c == ']' {
                    Node::Chars(vec![c])
                } else {
                    return None;
                }
            }
            other => Node::Chars(vec![other]),
        })
    }

    fn escape_set(e: char) -> Option<Vec<char>> {
        Some(match e {
            'd' => ('0'..='9').collect(),
            'w' => ('a'..='z').chain('0'..='9').collect(),
            's' => vec![' '],
            'D' | 'W' | 'S' => vec![if e == 'W' { '-' } else { 'x' }],
            'n' => vec!['\n'],
            't' => vec!['\t'],
            'r' => vec!['\r'],
            c if c.is_ascii_alphanumeric() => return None,
            c => vec![c],
        })
    }

    fn parse_class(p: &[char], pos: &mut usize) -> Option<Node> {
        let negated = p.get(*pos) == Some(&'^');
        if negated {
            *pos += 1;
        }
        let mut set: Vec<char> = Vec::new();
        let mut first = true;
        loop {
            let c = *p.get(*pos)?;
            *pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let e = *p.get(*pos)?;
                *pos += 1;
                let s = escape_set(e)?;
                if s.len() > 1 {
                    set.extend(s);
                    continue;
                }
                s[0]
            } else if c == '[' {
                return None; // POSIX classes and nested sets
            } else {
                c
            };
            if p.get(*pos) == Some(&'-') && p.get(*pos + 1).is_some_and(|n| *n != ']') {
                let hi = p[*pos + 1];
                if hi == '\\' {
                    return None;
                }
                *pos += 2;
                if hi < lo {
                    return None;
                }
                set.extend((lo..=hi).take(256));
            } else {
                set.push(lo);
            }
        }
        if negated {
            let candidates = ('a'..='z').chain('A'..='Z').chain('0'..='9').chain(['_', '-', ' ', '.']);
            let allowed: Vec<char> = candidates.filter(|c| !set.contains(c)).collect();
            return (!allowed.is_empty()).then_some(Node::Chars(allowed));
        }
        (!set.is_empty()).then_some(Node::Chars(set))
    }

    fn parse_quantifier(p: &[char], pos: &mut usize, atom: Node) -> Option<Node> {
        let Some(&q) = p.get(*pos) else { return Some(atom) };
        let (lo, hi) = match q {
            '*' => (0, usize::MAX),
            '+' => (1, usize::MAX),
            '?' => (0, 1),
            '{' => {
                let close = p[*pos..].iter().position(|c| *c == '}')? + *pos;
                let body: String = p[*pos + 1..close].iter().collect();
                let (a, b) = match body.split_once(',') {
                    Some((a, "")) => (a.trim().parse().ok()?, usize::MAX),
                    Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                    None => {
                        let n = body.trim().parse().ok()?;
                        (n, n)
                    }
                };
                *pos = close;
                (a, b)
            }
            _ => return Some(atom),
        };
        *pos += 1;
        // Lazy and possessive suffixes change nothing about what matches.
        if matches!(p.get(*pos), Some('?') | Some('+')) {
            *pos += 1;
        }
        if matches!(atom, Node::Anchor) {
            return Some(atom);
        }
        Some(Node::Repeat(Box::new(atom), lo, hi))
    }
}

#[cfg(test)]
mod tests {
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
}
