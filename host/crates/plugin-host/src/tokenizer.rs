//! o200k_base token counting, shared by the `host.count-tokens` / `host.truncate-tokens`
//! imports and by the host itself (context-window checks), so both count the same way.
//! The BPE tables are built once, lazily, on first use (~100 ms) and shared by all threads.
//!
//! Text is tokenized in chunks of at most [`CHUNK_BYTES`]. BPE time and memory grow
//! faster than linearly with the length of one pre-token, and 10 MB of one repeated
//! character is one pre-token (seconds and ~0.5 GB in one piece); in chunks, the work
//! between two deadline checks and the memory in use stay bounded by the chunk size.
//!
//! Chunks are cut just before an ASCII space that follows a non-whitespace character.
//! No o200k pre-token contains such a pair (letter, number and punctuation runs never take
//! a following space, and whitespace runs never start after a non-space), so tokenizing the
//! chunks one by one gives exactly the tokens of the whole text. Only a chunk-sized stretch
//! with no such space (one giant "word") is cut at a plain character boundary, where the
//! count may differ from the unchunked one by a token or two per cut.

use std::time::Instant;

/// Longest piece of text tokenized at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Tokenizing stopped because the deadline passed (checked before each chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tokenizing stopped at the call's deadline")]
pub struct DeadlineExceeded;

/// Number of o200k_base tokens in `text` (special-token text is counted as ordinary text).
pub fn count_tokens(text: &str) -> usize {
    count_tokens_until(text, None).expect("no deadline")
}

/// The longest prefix of `text` holding at most `max_tokens` o200k_base tokens, cut on a
/// UTF-8 character boundary (a token may end inside a multi-byte character).
pub fn truncate_tokens(text: &str, max_tokens: usize) -> String {
    text[..truncated_len(text, max_tokens, None).expect("no deadline")].to_string()
}

/// [`count_tokens`], giving up once `deadline` has passed.
pub fn count_tokens_until(text: &str, deadline: Option<Instant>) -> Result<usize, DeadlineExceeded> {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut total = 0;
    for (_, chunk) in chunks(text) {
        check(deadline)?;
        total += bpe.encode_ordinary(chunk).len();
    }
    Ok(total)
}

/// Byte length of [`truncate_tokens`]'s prefix, giving up once `deadline` has passed.
/// Stops reading `text` at the chunk where the budget runs out.
pub fn truncated_len(text: &str, max_tokens: usize, deadline: Option<Instant>) -> Result<usize, DeadlineExceeded> {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut used = 0;
    for (start, chunk) in chunks(text) {
        check(deadline)?;
        let tokens = bpe.encode_ordinary(chunk);
        if used + tokens.len() <= max_tokens {
            used += tokens.len();
            continue;
        }
        // The tokens of a chunk are a segmentation of its bytes, so the bytes of its first
        // `keep` tokens are exactly a byte prefix of it.
        let keep = max_tokens - used;
        let prefix = bpe.decode_bytes(&tokens[..keep]).map(|b| b.len()).unwrap_or(0);
        let mut end = start + prefix.min(chunk.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return Ok(end);
    }
    Ok(text.len())
}

fn check(deadline: Option<Instant>) -> Result<(), DeadlineExceeded> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(DeadlineExceeded),
        _ => Ok(()),
    }
}

/// `(offset, chunk)` pieces of `text`, each at most [`CHUNK_BYTES`] long (see the module docs).
fn chunks(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end = chunk_end(text, start);
        let piece = (start, &text[start..end]);
        start = end;
        Some(piece)
    })
}

fn chunk_end(text: &str, start: usize) -> usize {
    let limit = start + CHUNK_BYTES;
    if limit >= text.len() {
        return text.len();
    }
    let bytes = text.as_bytes();
    // A space byte is always a character boundary.
    for i in (start + 1..=limit).rev() {
        if bytes[i] == b' ' && text[..i].chars().next_back().is_some_and(|c| !c.is_whitespace()) {
            return i;
        }
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn whole(text: &str) -> usize {
        tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len()
    }

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
        assert_eq!(count_tokens(""), 0);
        assert_eq!(truncate_tokens("", 3), "");
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let text = "日本語のテキストと絵文字😀😀😀を含む文章".repeat(5);
        for max in 0..30 {
            let cut = truncate_tokens(&text, max);
            assert!(text.starts_with(&cut), "max={max}");
        }
    }

    #[test]
    fn chunked_counts_equal_whole_text_counts() {
        // Several chunks of prose, code and mixed whitespace (tabs, newlines, runs of spaces).
        let text = "fn main() {\n\tlet x = 42;   // über naïve café\r\n    println!(\"{x}\");\n}\n\nWords, words.  ".repeat(4000);
        assert!(text.len() > 4 * CHUNK_BYTES);
        let pieces: Vec<_> = chunks(&text).collect();
        assert!(pieces.len() > 4 && pieces.iter().all(|(_, c)| c.len() <= CHUNK_BYTES));
        assert_eq!(pieces.iter().map(|(_, c)| c.len()).sum::<usize>(), text.len());
        assert_eq!(count_tokens(&text), whole(&text));
        // Truncation across chunk boundaries matches truncating the whole text.
        let bpe = tiktoken_rs::o200k_base_singleton();
        let all = bpe.encode_ordinary(&text);
        for max in [0, 1, 17_000, 17_001, all.len() - 1, all.len(), all.len() + 5] {
            let expected = bpe.decode_bytes(&all[..max.min(all.len())]).unwrap().len();
            assert_eq!(truncated_len(&text, max, None).unwrap(), expected, "max {max}");
        }
    }

    #[test]
    fn one_giant_word_is_cut_at_character_boundaries() {
        let text = "é".repeat(CHUNK_BYTES); // 2 bytes each: no space, cuts fall mid-character
        let pieces: Vec<_> = chunks(&text).collect();
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|(_, c)| c.len() <= CHUNK_BYTES && !c.is_empty()));
        let n = count_tokens(&text);
        assert!(n > 0 && n.abs_diff(whole(&text)) <= 2, "{n} vs {}", whole(&text));
    }

    #[test]
    fn a_passed_deadline_stops_before_the_next_chunk() {
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(count_tokens_until("hello", Some(past)), Err(DeadlineExceeded));
        assert_eq!(truncated_len("hello", 1, Some(past)), Err(DeadlineExceeded));
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(count_tokens_until("hello", Some(later)), Ok(1));
    }
}
