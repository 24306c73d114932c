//! A line of input that is not a record, as it appears in every error output.

use serde_json::{json, Map, Value};

/// Where and why a line could not be read as a record.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    /// The typed cause (`invalid_json`, `invalid_utf8`, `not_an_object`, …).
    pub cause: String,
    pub message: String,
    pub raw_excerpt: String,
}

impl BadLine {
    /// The error row: file, line, cause, message, the start of the raw line, and the
    /// reference's `api_status`/`api_fail_reason` so scoring error files keep their shape.
    pub fn to_row(&self) -> Map<String, Value> {
        let row = json!({
            "file": self.file, "line": self.line, "cause": self.cause, "message": self.message,
            "raw_excerpt": self.raw_excerpt,
            "api_status": "error", "api_fail_reason": format!("{}:{}: {}", self.file, self.line, self.message),
        });
        match row {
            Value::Object(m) => m,
            _ => unreachable!("json! of an object literal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_names_file_line_and_cause() {
        let b = BadLine { file: "in.jsonl".into(), line: 3, cause: "invalid_json".into(), message: "expected value".into(), raw_excerpt: "{oops".into() };
        let row = b.to_row();
        assert_eq!(row["line"], 3);
        assert_eq!(row["cause"], "invalid_json");
        assert_eq!(row["api_fail_reason"], "in.jsonl:3: expected value");
    }
}
