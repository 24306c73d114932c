//! What a plugin returns is checked before the host uses it: size and record-count caps,
//! well-formed JSON where JSON is promised, finite numbers, and messages cut to a bounded
//! length. A refusal is a [`CallError::Trap`] (the instance is discarded); a cut message
//! is kept, marked as cut.

use crate::errors::{CallError, TrapKind};
use crate::limits::Limits;
use crate::types::{ItemError, ParseFailure, PreprocessOutcome, Prompt, Score};
use crate::wit::GuestError;

/// Plugin error messages longer than this are cut (they end up in dead-letter rows).
pub(crate) const MAX_ERROR_MESSAGE: usize = 64 * 1024;

/// Score-parser `retry` hints and `invalid` messages longer than this are cut: a hint is
/// sent back to the model as a user turn, and both end up in output rows.
pub(crate) const MAX_PARSE_MESSAGE: usize = 4 * 1024;

/// `s` if it is at most `max` bytes; else its longest prefix (cut at a character boundary)
/// that fits in `max` bytes together with the marker `… [cut: N bytes in all]`.
pub(crate) fn cut(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let marker = format!("… [cut: {} bytes in all]", s.len());
    let mut end = max.saturating_sub(marker.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // A new string, so the guest's (possibly huge) allocation is freed rather than kept.
    let mut out = String::with_capacity(end + marker.len());
    out.push_str(&s[..end]);
    out.push_str(&marker);
    out
}

/// Is `text` one syntactically valid JSON object?
pub(crate) fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Checks one call's result against the plugin's limits.
pub(crate) struct Checker<'a> {
    pub plugin: &'a str,
    pub limits: &'a Limits,
}

impl Checker<'_> {
    fn trap(&self, kind: TrapKind, message: String) -> CallError {
        CallError::Trap { plugin: self.plugin.to_string(), kind, message, stderr: String::new() }
    }

    fn bad_output(&self, message: String) -> CallError {
        self.trap(TrapKind::BadOutput, message)
    }

    fn size(&self, total: u64) -> Result<(), CallError> {
        let max = self.limits.max_output_bytes;
        if total > max {
            return Err(self.trap(TrapKind::OutputTooLarge, format!("the call returned {total} bytes, over limits.max_output_bytes = {max}")));
        }
        Ok(())
    }

    /// A `plugin-error` the guest returned, its message cut.
    pub(crate) fn plugin_error(&self, e: GuestError) -> CallError {
        CallError::Plugin { plugin: self.plugin.to_string(), kind: e.kind, message: cut(e.message, MAX_ERROR_MESSAGE) }
    }

    /// The cheap checks first (record count, then bytes), so an oversized answer is refused
    /// before any record is parsed.
    pub(crate) fn preprocess(&self, outcome: PreprocessOutcome) -> Result<PreprocessOutcome, CallError> {
        match &outcome {
            PreprocessOutcome::Skip(reason) => self.size(reason.len() as u64)?,
            PreprocessOutcome::Keep(items) => {
                let max = self.limits.max_records_per_call;
                if items.len() as u64 > max {
                    return Err(self.bad_output(format!("the call kept {} records, over limits.max_records_per_call = {max}", items.len())));
                }
                let item_bytes = |item: &Result<String, ItemError>| match item {
                    Ok(r) => r.len() as u64,
                    Err(e) => (e.message.len() + e.location.as_ref().map_or(0, String::len)) as u64,
                };
                self.size(items.iter().map(item_bytes).sum())?;
                if let Some(i) = items.iter().position(|r| r.as_ref().is_ok_and(|r| !is_json_object(r))) {
                    return Err(self.bad_output(format!("kept record #{i} is not a JSON object")));
                }
            }
        }
        // Item errors land in error rows: their texts get the cap of any plugin message.
        Ok(match outcome {
            PreprocessOutcome::Keep(items) => PreprocessOutcome::Keep(
                items
                    .into_iter()
                    .map(|item| {
                        item.map_err(|e| ItemError { message: cut(e.message, MAX_ERROR_MESSAGE), location: e.location.map(|l| cut(l, MAX_ERROR_MESSAGE)), ..e })
                    })
                    .collect(),
            ),
            skip => skip,
        })
    }

    pub(crate) fn prompt(&self, prompt: Prompt) -> Result<Prompt, CallError> {
        let total = prompt.messages.iter().map(|m| m.content.len() as u64).sum::<u64>()
            + prompt.stop.iter().map(|s| s.len() as u64).sum::<u64>()
            + prompt.response_schema.as_ref().map_or(0, |s| s.len() as u64);
        self.size(total)?;
        if prompt.messages.is_empty() {
            return Err(self.bad_output("the prompt has no messages".into()));
        }
        if prompt.response_schema.as_deref().is_some_and(|s| !is_json_object(s)) {
            return Err(self.bad_output("response-schema is not a JSON object".into()));
        }
        if prompt.temperature.is_some_and(|t| !t.is_finite() || t < 0.0) {
            return Err(self.bad_output("temperature must be a finite number >= 0".into()));
        }
        Ok(prompt)
    }

    pub(crate) fn parse(&self, parsed: Result<Score, ParseFailure>) -> Result<Result<Score, ParseFailure>, CallError> {
        let s = match parsed {
            Err(ParseFailure::Retry(hint)) => return Ok(Err(ParseFailure::Retry(cut(hint, MAX_PARSE_MESSAGE)))),
            Err(ParseFailure::Invalid(msg)) => return Ok(Err(ParseFailure::Invalid(cut(msg, MAX_PARSE_MESSAGE)))),
            Ok(s) => s,
        };
        let total = [&s.label, &s.rationale, &s.extra].iter().map(|f| f.as_ref().map_or(0, |x| x.len() as u64)).sum();
        self.size(total)?;
        if !s.value.is_finite() {
            return Err(self.bad_output(format!("score value {} is not a finite number", s.value)));
        }
        if s.extra.as_deref().is_some_and(|e| !is_json_object(e)) {
            return Err(self.bad_output("score extra is not a JSON object".into()));
        }
        Ok(Ok(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_not_cut() {
        assert_eq!(cut("hello".into(), 5), "hello");
    }

    #[test]
    fn cuts_fit_the_cap_at_a_character_boundary_and_say_so() {
        let long = format!("x{}", "é".repeat(5000)); // 10001 bytes; odd offsets are mid-character
        let c = cut(long, MAX_PARSE_MESSAGE);
        assert!(c.len() <= MAX_PARSE_MESSAGE, "{}", c.len());
        assert!(c.len() > MAX_PARSE_MESSAGE - 40, "{}", c.len());
        assert!(c.starts_with("xéé"));
        assert!(c.ends_with("é… [cut: 10001 bytes in all]"), "{}", &c[c.len() - 40..]);
    }

    #[test]
    fn too_many_records_are_refused_before_parsing() {
        let limits = Limits { max_records_per_call: 2, ..Limits::default() };
        let check = Checker { plugin: "p", limits: &limits };
        let two = PreprocessOutcome::keep_records(vec!["{}".into(), "{}".into()]);
        assert_eq!(check.preprocess(two.clone()).unwrap(), two);
        // Three records, none of them JSON: the count is what is reported.
        let e = check.preprocess(PreprocessOutcome::keep_records(vec!["x".into(); 3])).unwrap_err();
        assert!(
            matches!(&e, CallError::Trap { kind: TrapKind::BadOutput, message, .. }
            if message.contains("kept 3 records") && message.contains("max_records_per_call = 2")),
            "{e}"
        );
    }
}
