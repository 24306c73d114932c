//! Host functions, with native stand-ins so plugins unit-test with `cargo test`.

/// Severity of a [`log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// A log line, attributed by the host to the plugin and the current record. (A plugin's
/// stdout and stderr are only kept (bounded) when it traps: use this.)
pub fn log(level: LogLevel, message: &str) {
    imp::log(level, message)
}

/// o200k_base tokens in `text` (the encoding behind `content_truncate_32k`).
pub fn count_tokens(text: &str) -> u32 {
    imp::count_tokens(text)
}

/// The longest prefix of `text` holding at most `max_tokens` o200k_base tokens.
///
/// Only as much of the text as needed is tokenized: a token is at least one byte, so a text of
/// at most `max_tokens` bytes is kept whole, and otherwise a prefix a few times `max_tokens`
/// bytes long is tokenized, doubled until the cut falls well inside it (BPE segments words, so
/// a longer text cannot tokenize that prefix differently). Packs are megabytes; budgets are
/// tens of kilobytes.
pub fn truncate_tokens(text: &str, max_tokens: u32) -> String {
    let max = max_tokens as usize;
    if text.len() <= max {
        return text.to_string();
    }
    let mut window = max.saturating_mul(5).max(4096);
    loop {
        if window >= text.len() {
            return imp::truncate_tokens(text, max_tokens);
        }
        let mut end = window;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = imp::truncate_tokens(&text[..end], max_tokens);
        if cut.len() + 256 < end {
            return cut;
        }
        window = window.saturating_mul(2);
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::LogLevel;
    use crate::base::modelcall::plugin::{host, types};

    pub fn log(level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => types::LogLevel::Trace,
            LogLevel::Debug => types::LogLevel::Debug,
            LogLevel::Info => types::LogLevel::Info,
            LogLevel::Warn => types::LogLevel::Warn,
            LogLevel::Error => types::LogLevel::Error,
        };
        host::log(level, message)
    }
    pub fn count_tokens(text: &str) -> u32 {
        host::count_tokens(text)
    }
    pub fn truncate_tokens(text: &str, max_tokens: u32) -> String {
        host::truncate_tokens(text, max_tokens)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::LogLevel;

    pub fn log(level: LogLevel, message: &str) {
        eprintln!("[plugin {level:?}] {message}");
    }
    pub fn count_tokens(text: &str) -> u32 {
        tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u32
    }
    /// Same algorithm as the host: cut on the byte boundary of the last kept token, then back
    /// to a character boundary.
    pub fn truncate_tokens(text: &str, max_tokens: u32) -> String {
        let bpe = tiktoken_rs::o200k_base_singleton();
        let tokens = bpe.encode_ordinary(text);
        if tokens.len() <= max_tokens as usize {
            return text.to_string();
        }
        let prefix = bpe.decode_bytes(&tokens[..max_tokens as usize]).map(|b| b.len()).unwrap_or(0);
        let mut end = prefix.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn native_stand_ins_count_and_truncate() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(10);
        let n = count_tokens(&text);
        assert!(n > 50, "{n}");
        let cut = truncate_tokens(&text, 7);
        assert!(text.starts_with(&cut));
        assert_eq!(count_tokens(&cut), 7);
        assert_eq!(truncate_tokens("short", 100), "short");
    }

    #[test]
    fn windowed_truncation_equals_full_tokenization() {
        let text = "fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }\n// comment with words\n".repeat(3000);
        for max in [1u32, 100, 5000, 20000] {
            assert_eq!(truncate_tokens(&text, max), imp::truncate_tokens(&text, max), "max {max}");
        }
    }
}
