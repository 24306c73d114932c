//! Finding where a dotted key sits in YAML source text, so errors can name the line.
//!
//! serde_yaml reports positions for syntax errors only; for a key that parses but is unknown or
//! mistyped we scan the text. Block-style YAML (what config files use) is handled exactly: a key
//! is looked for only among its parent's direct children (the lines at the first indentation
//! inside the parent's block), so a same-named key in another section, deeper in the same
//! section, or text inside a `|` block scalar is never taken for it. Keys inside flow-style maps
//! (`logging: { level: INFO }`) fall back to the line of the map's own key.

/// 1-based (line, column) of the key at `path` (segments of a dotted path).
pub fn find_key(source: &str, path: &[&str]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    // The block to search: [start, end) lines, whose direct children sit at `child_indent`.
    let (mut start, mut end) = (0usize, lines.len());
    let mut found = None;
    for seg in path {
        let mut child_indent = None;
        let mut hit = None;
        for (i, raw) in lines.iter().enumerate().take(end).skip(start) {
            let Some((indent, key)) = key_of(raw) else { continue };
            let want = *child_indent.get_or_insert(indent);
            if indent < want {
                break;
            }
            if indent == want && key == *seg {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = hit?;
        found = Some((i + 1, indent + 1));
        start = i + 1;
        end = (i + 1..lines.len())
            .find(|&j| {
                let l = strip_comment(lines[j]);
                !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent && !is_list_continuation(l, indent)
            })
            .unwrap_or(lines.len());
    }
    found
}

/// A `- ` item at the same indentation as its parent key is still inside it (`key:\n- a`).
fn is_list_continuation(line: &str, parent_indent: usize) -> bool {
    let indent = line.len() - line.trim_start().len();
    indent == parent_indent && line.trim_start().starts_with("- ")
}

/// (indentation, key) of a `key:` line; `- key:` counts as the key at the indentation after `- `.
fn key_of(raw: &str) -> Option<(usize, String)> {
    let line = strip_comment(raw);
    let trimmed = line.trim_start();
    if trimmed.is_empty() {
        return None;
    }
    let mut indent = line.len() - trimmed.len();
    let mut body = trimmed;
    while let Some(rest) = body.strip_prefix("- ") {
        indent += 2 + (rest.len() - rest.trim_start().len());
        body = rest.trim_start();
    }
    let (name, after) = split_key(body)?;
    (after.is_empty() || after.starts_with(' ') || after.starts_with('\t')).then_some((indent, name))
}

/// Splits `name: rest` (name optionally quoted) into the name and what follows the colon.
fn split_key(body: &str) -> Option<(String, &str)> {
    for q in ['"', '\''] {
        if let Some(rest) = body.strip_prefix(q) {
            let close = rest.find(q)?;
            let after = rest[close + 1..].trim_start().strip_prefix(':')?;
            return Some((rest[..close].to_string(), after));
        }
    }
    let colon = body.find(": ").or_else(|| body.ends_with(':').then(|| body.len() - 1))?;
    let name = &body[..colon];
    if name.starts_with(['{', '[', '|', '>']) {
        return None;
    }
    Some((name.trim().to_string(), &body[colon + 1..]))
}

/// Like [`find_key`], but falls back to the deepest ancestor that can be found.
pub fn find_key_or_parent(source: &str, path: &[&str]) -> Option<(usize, usize)> {
    (1..=path.len()).rev().find_map(|n| find_key(source, &path[..n]))
}

fn strip_comment(line: &str) -> &str {
    // A `#` starts a comment when it begins the line or follows whitespace, outside quotes.
    let bytes = line.as_bytes();
    let (mut in_single, mut in_double) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !in_double => in_single = !in_single,
            b'"' if !in_single => in_double = !in_double,
            b'#' if !in_single && !in_double && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: &str = "task_name: x\n# comment: here\ndata:\n  input_folder: a\n  output_folder: b # trailing: c\nconcurrency:\n  max_concurrent_requests: 4\n  data: nested-same-name\nretry:\n  max_retries: 2\n";

    #[test]
    fn finds_nested_keys_by_block() {
        assert_eq!(find_key(Y, &["task_name"]), Some((1, 1)));
        assert_eq!(find_key(Y, &["data", "output_folder"]), Some((5, 3)));
        assert_eq!(find_key(Y, &["concurrency", "max_concurrent_requests"]), Some((7, 3)));
        assert_eq!(find_key(Y, &["concurrency", "data"]), Some((8, 3)));
        assert_eq!(find_key(Y, &["retry", "max_retries"]), Some((10, 3)));
        assert_eq!(find_key(Y, &["data", "max_retries"]), None);
        assert_eq!(find_key_or_parent(Y, &["data", "nope"]), Some((3, 1)));
    }

    #[test]
    fn only_direct_children_match() {
        let y = "prompt_template:\n  prompt_text: |\n    system_text: not a key\n    more\n  system_text: real\nplugins:\n  a:\n    config:\n      role: deep\n    role: x\n";
        assert_eq!(find_key(y, &["prompt_template", "system_text"]), Some((5, 3)));
        assert_eq!(find_key(y, &["plugins", "a", "role"]), Some((10, 5)));
        assert_eq!(find_key(y, &["plugins", "role"]), None);
    }

    #[test]
    fn quoted_keys_lists_and_flow_maps() {
        let y = "\"task_name\": x\nmerge_groups:\n- name: a\n  output_file: b\nlogging: { level: INFO }\nurl: \"http://x:80\"\n";
        assert_eq!(find_key(y, &["task_name"]), Some((1, 1)));
        assert_eq!(find_key(y, &["merge_groups", "output_file"]), Some((4, 3)));
        assert_eq!(find_key(y, &["logging"]), Some((5, 1)));
        assert_eq!(find_key_or_parent(y, &["logging", "level"]), Some((5, 1)));
        assert_eq!(find_key(y, &["url"]), Some((6, 1)));
        assert_eq!(find_key(y, &["http"]), None);
    }
}
