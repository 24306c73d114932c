//! o200k_base token counting, shared by the `host.count-tokens` / `host.truncate-tokens`
//! imports and by the host itself (context-window checks), so both count the same way.
//! The BPE tables are built once, lazily, on first use (~100 ms) and shared by all threads.

/// Number of o200k_base tokens in `text` (special-token text is counted as ordinary text).
pub fn count_tokens(text: &str) -> usize {
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len()
}

/// The longest prefix of `text` holding at most `max_tokens` o200k_base tokens, cut on a
/// UTF-8 character boundary (a token may end inside a multi-byte character).
pub fn truncate_tokens(text: &str, max_tokens: usize) -> String {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let tokens = bpe.encode_ordinary(text);
    if tokens.len() <= max_tokens {
        return text.to_string();
    }
    // The tokens of `text` are a segmentation of its bytes, so the bytes of the first
    // `max_tokens` tokens are exactly a byte prefix of `text`.
    let prefix_len = bpe.decode_bytes(&tokens[..max_tokens]).map(|b| b.len()).unwrap_or(0);
    let mut end = prefix_len.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_truncates_consistently() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let n = count_tokens(&text);
        assert!(n > 100 && n < 300, "{n}");
        let cut = truncate_tokens(&text, 10);
        assert!(text.starts_with(&cut));
        assert!(count_tokens(&cut) <= 10);
        assert!(count_tokens(&cut) >= 8);
        assert_eq!(truncate_tokens("short", 10), "short");
        assert_eq!(truncate_tokens("anything", 0), "");
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let text = "日本語のテキストと絵文字😀😀😀を含む文章".repeat(5);
        for max in 0..30 {
            let cut = truncate_tokens(&text, max);
            assert!(text.starts_with(&cut), "max={max}");
        }
    }
}
