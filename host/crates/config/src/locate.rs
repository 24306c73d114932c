//! Finding where a dotted key sits in YAML source text, so errors can name the line.
//!
//! serde_yaml reports positions for syntax errors only; for a key that parses but is unknown or
//! mistyped we scan the text with indentation awareness. Block-style YAML (what config files
//! use) is handled exactly; flow-style maps fall back to the parent key's line.

/// 1-based (line, column) of the key at `path` (segments of a dotted path).
pub fn find_key(source: &str, path: &[&str]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut start = 0usize;
    let mut end = lines.len();
    let mut parent_indent: isize = -1;
    let mut found = None;
    for seg in path {
        let mut hit = None;
        for (i, raw) in lines.iter().enumerate().take(end).skip(start) {
            let line = strip_comment(raw);
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim_start();
            if trimmed.is_empty() {
                continue;
            }
            if (indent as isize) <= parent_indent && i > start {
                break;
            }
            let key = trimmed.trim_start_matches("- ");
            let name = key.split(':').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
            if name == *seg && key.contains(':') {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = hit?;
        found = Some((i + 1, indent + 1));
        // The block of this key: following lines indented deeper.
        start = i + 1;
        end = lines.len();
        for (j, raw) in lines.iter().enumerate().skip(i + 1) {
            let line = strip_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            let ind = line.len() - line.trim_start().len();
            if ind <= indent {
                end = j;
                break;
            }
        }
        parent_indent = indent as isize;
    }
    found
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
}
