//! Finding a judge's JSON verdict in a reply: only in the final answer, the last fenced block that
//! holds an object, else the last balanced `{…}` object (strings and escapes respected, so
//! nested objects and braces inside strings work).

use serde_json::{Map, Value};

/// The reply without any reasoning: the text after the last `</think>`; an unterminated
/// `<think>` means there is no answer yet.
pub fn final_answer(reply: &str) -> &str {
    if let Some(pos) = reply.rfind("</think>") {
        return &reply[pos + "</think>".len()..];
    }
    if reply.trim_start().starts_with("<think>") {
        return "";
    }
    reply
}

/// Contents of fenced code blocks (```json, ```JSON, ``` …), in order.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        // Skip the info string (e.g. `json`) up to the end of the line.
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let body = &after[body_start..];
        match body.find("```") {
            Some(end) => {
                blocks.push(&body[..end]);
                rest = &body[end + 3..];
            }
            None => break,
        }
    }
    blocks
}

/// Every balanced top-level `{…}` span, in order.
fn balanced_objects(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let (mut depth, mut start, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' if depth > 0 => in_string = true,
            b'{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    spans.push(&text[start..=i]);
                }
            }
            _ => {}
        }
    }
    spans
}

fn as_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The verdict object of a reply, if there is one.
pub fn find_object(reply: &str) -> Option<Map<String, Value>> {
    let answer = final_answer(reply);
    if let Some(obj) = fenced_blocks(answer).into_iter().rev().find_map(|b| as_object(b).or_else(|| balanced_objects(b).into_iter().rev().find_map(as_object)))
    {
        return Some(obj);
    }
    balanced_objects(answer).into_iter().rev().find_map(as_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasoning_with_braces_is_ignored() {
        let r = "<think>maybe {\"score\": 1} or {score: 2}?</think>\nFinal: {\"score\": 5}";
        assert_eq!(find_object(r).unwrap()["score"], 5);
        assert!(find_object("<think>{\"score\": 1} still thinking").is_none());
    }

    #[test]
    fn the_last_fenced_block_wins() {
        let r = "First try:\n```json\n{\"score\": 2}\n```\nCorrected:\n```json\n{\"score\": 4}\n```\n";
        assert_eq!(find_object(r).unwrap()["score"], 4);
        let r = "```\n{\"score\": 3}\n```";
        assert_eq!(find_object(r).unwrap()["score"], 3);
    }

    #[test]
    fn nested_objects_and_braces_in_strings() {
        let r = "Result {\"score\": 4, \"details\": {\"a\": {\"b\": 1}}, \"note\": \"use } and { freely \\\" ok\"} done";
        let o = find_object(r).unwrap();
        assert_eq!(o["details"]["a"]["b"], 1);
        assert_eq!(o["note"], json!("use } and { freely \" ok"));
    }

    #[test]
    fn the_last_balanced_object_without_fences() {
        assert_eq!(find_object("{\"score\": 1} then {\"score\": 2}").unwrap()["score"], 2);
        assert_eq!(find_object("{\"score\": 1} then {broken").unwrap()["score"], 1);
        assert!(find_object("no json at all").is_none());
        assert!(find_object("[1, 2, 3]").is_none());
    }
}
