//! The truncation column: the record's text cut to a token budget, which the scoring prompts
//! read, in a column named after the budget (`content_truncate_32k` for the default 32,768
//! tokens, the reference's name). Several built-ins take the budget as `max_tokens`.

use serde_json::{Map, Value};

use crate::{truncate_tokens, Error};

/// The budget when a config leaves `max_tokens` out, for
/// `#[serde(default = "modelcall_plugin_sdk::preprocessor::default_max_tokens")]`.
pub fn default_max_tokens() -> u32 {
    32768
}

/// A config's `max_tokens`, checked once in `new`, with the column it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    max_tokens: u32,
    column: String,
}

impl Truncation {
    /// Refuses a budget of zero as an invalid config: no text would be left to score.
    pub fn new(max_tokens: u32) -> Result<Self, Error> {
        if max_tokens == 0 {
            return Err(Error::invalid_config("max_tokens must be positive"));
        }
        Ok(Truncation { max_tokens, column: format!("content_truncate_{}k", max_tokens / 1024) })
    }

    /// Sets `content_truncate_{max_tokens/1024}k` in `record` to the longest prefix of `text`
    /// within the budget.
    pub fn add_column(&self, record: &mut Map<String, Value>, text: &str) {
        record.insert(self.column.clone(), Value::String(truncate_tokens(text, self.max_tokens)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{count_tokens, ErrorKind};

    #[test]
    fn the_column_is_named_after_the_budget_and_holds_the_cut_text() {
        let text = "fn main() { println!(\"hello\"); }\n".repeat(200);
        let mut record = Map::new();
        Truncation::new(1024).unwrap().add_column(&mut record, &text);
        let cut = record["content_truncate_1k"].as_str().unwrap();
        assert!(text.starts_with(cut) && cut.len() < text.len());
        assert_eq!(count_tokens(cut), 1024);
        Truncation::new(default_max_tokens()).unwrap().add_column(&mut record, "short");
        assert_eq!(record["content_truncate_32k"], "short");
        Truncation::new(5).unwrap().add_column(&mut record, "short");
        assert!(record.contains_key("content_truncate_0k"));
    }

    #[test]
    fn a_zero_budget_is_an_invalid_config() {
        let e = Truncation::new(0).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidConfig, "max_tokens must be positive"));
    }
}
