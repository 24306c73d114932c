//! Deterministic replies: the same conversation always gets the same answer.
//!
//! When the prompt shows a JSON template (quoted `"key":` patterns, as every scoring prompt
//! does), the reply is a fenced JSON object with those keys: integers 1..=5 for scores, short
//! strings for summaries and reasons, lists for tags and languages. Otherwise it is a plain-text
//! answer quoting the question, which is what distillation needs.

use serde_json::{json, Map, Value};

/// FNV-1a: stable, fast, good enough to spread replies.
pub fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Keys of a JSON template in `text`: `"name":` with an identifier-like name, in order, unique.
pub fn template_keys(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut keys: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > start && j < bytes.len() && bytes[j] == b'"' && !bytes[start].is_ascii_digit() {
                let mut k = j + 1;
                while k < bytes.len() && bytes[k] == b' ' {
                    k += 1;
                }
                if k < bytes.len() && bytes[k] == b':' {
                    let key = &text[start..j];
                    if !keys.iter().any(|x| x == key) && keys.len() < 64 {
                        keys.push(key.to_string());
                    }
                    i = k;
                    continue;
                }
            }
        }
        i += 1;
    }
    keys
}

fn value_for(key: &str, h: u64) -> Value {
    let k = key.to_ascii_lowercase();
    if ["tags", "languages", "issues", "labels"].iter().any(|w| k.contains(w)) {
        let pool = ["clear", "informative", "concise", "well-structured", "en"];
        return json!([pool[(h % pool.len() as u64) as usize]]);
    }
    if ["summary", "reason", "comment", "description", "rationale", "explanation"].iter().any(|w| k.contains(w)) {
        return json!(format!("Simulated judgement #{:04x}: consistent with the requested criteria.", h & 0xffff));
    }
    if k.contains("type") || k.contains("use_case") || k.contains("category") || k.contains("label") {
        let pool = ["general", "library", "educational", "reference"];
        return json!(pool[(h % pool.len() as u64) as usize]);
    }
    json!(1 + (h % 5) as i64)
}

/// The answer text for a conversation whose template text (system + first user turn) is `template`
/// and whose full text hashes to `h`.
pub fn answer(template: &str, last_user: &str, h: u64) -> String {
    let keys = template_keys(template);
    if keys.is_empty() {
        let words: Vec<&str> = last_user.split_whitespace().take(8).collect();
        return format!(
            "Simulated answer {:08x}. You asked about: \"{}\". A real model would answer here; this endpoint is SIMULATED.",
            h as u32,
            words.join(" ")
        );
    }
    let mut obj = Map::new();
    for (i, key) in keys.iter().enumerate() {
        obj.insert(key.clone(), value_for(key, fnv1a(key.as_bytes(), h.rotate_left(i as u32))));
    }
    format!("```json\n{}\n```", Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_a_template_with_doubled_braces_rendered() {
        let t = "Answer:\n```json\n{\"overall_score\": 4, \"summary\": \"...\", \"quality_tags\": []}\n```";
        assert_eq!(template_keys(t), vec!["overall_score", "summary", "quality_tags"]);
        assert!(template_keys("no template here: \"a\" b").is_empty());
    }

    #[test]
    fn answers_are_deterministic_and_valid() {
        let t = "{\"score\": 3, \"reason\": \"...\"}";
        let a = answer(t, "q", 42);
        assert_eq!(a, answer(t, "q", 42));
        let inner = a.trim_start_matches("```json\n").trim_end_matches("\n```");
        let v: Value = serde_json::from_str(inner).unwrap();
        let s = v["score"].as_i64().unwrap();
        assert!((1..=5).contains(&s));
        assert!(v["reason"].is_string());
        assert!(answer("plain question", "what is a river?", 1).contains("what is a river?"));
    }
}
