//! The generation job (`generate_response`): a teacher model answers each record's conversation.
//!
//! Unlike the reference, which sent only the first message's content as a user turn, the
//! conversation is sent as it is (system prompt and every turn up to the last user turn) unless
//! `first_user_only` reproduces the old behaviour. Truncated (`finish_reason: length`) and empty
//! answers are failures by default, so they land in the error file and are retried.

use std::sync::Arc;

use modelcall_config::step::ReasoningMode;
use modelcall_model::{ChatMessage, ChatRequest, ModelClient};
use serde_json::{json, Map, Value};

use super::model_call;
use crate::engine::{CallTally, Failure, FailureSite, Job, JobInput, Outcome, Produced};

pub struct GenerateJob {
    pub client: ModelClient,
    /// Send only the first message's content as a user turn (the reference's behaviour).
    pub first_user_only: bool,
    /// Keep answers cut by the token limit instead of failing them.
    pub allow_truncated: bool,
    /// Where the teacher's reasoning goes.
    pub reasoning: ReasoningMode,
}

impl Job for GenerateJob {
    async fn run(self: Arc<Self>, key: String, input: JobInput) -> Outcome {
        match input {
            JobInput::Record(record) => self.generate(key, record).await,
            JobInput::Reparse { record, row, .. } => self.rederive(record, row),
            JobInput::File { .. } => Failure::new("unsupported_input", "generation takes records, not raw files", CallTally::default(), None),
        }
    }

    /// The first bytes of the conversation as sent (system prompt first), by the definition
    /// the simulator's prefix cache uses.
    fn prefix_key(&self, input: &JobInput) -> Option<u64> {
        let JobInput::Record(record) = input else { return None };
        let messages = record.get("messages")?.as_array()?;
        let contents = messages.iter().map(|m| m.get("content").and_then(Value::as_str).unwrap_or(""));
        Some(if self.first_user_only { modelcall_sim::prefix_cache::prefix_hash(contents.take(1)) } else { modelcall_sim::prefix_cache::prefix_hash(contents) })
    }

    /// The reference's error lines: the original record plus what went wrong, so the error file
    /// can be fed back as input.
    fn failure_row(&self, site: &FailureSite<'_>, failure: Failure) -> Map<String, Value> {
        let mut r = failure.record.unwrap_or_default();
        r.entry("uid".to_string()).or_insert_with(|| json!(site.key));
        r.insert("error".into(), json!(failure.message));
        r.insert("error_type".into(), json!(failure.cause));
        r.insert("attempts".into(), json!(failure.calls.requests));
        r.insert("timestamp".into(), json!(chrono::Local::now().to_rfc3339()));
        r.insert("source_line".into(), json!(site.line));
        crate::engine::Failure::add_replies(failure.replies, &mut r);
        r
    }
}

impl GenerateJob {
    async fn generate(&self, key: String, record: Map<String, Value>) -> Outcome {
        let mut calls = CallTally::default();
        let sent = match conversation(&record, self.first_user_only) {
            Ok(s) => s,
            Err((cause, message)) => return Failure::new(cause, message, calls, Some(record)),
        };
        let request = ChatRequest { messages: sent.clone(), ..ChatRequest::default() };
        let mut record = Some(record);
        let completion = match model_call::chat(&self.client, &request, &mut calls, &mut record).await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        if completion.finish_reason.as_deref() == Some("length") && !self.allow_truncated {
            return Failure::new("truncated", "the answer was cut by the token limit (finish_reason: length)", calls, record);
        }
        if completion.content.trim().is_empty() {
            return Failure::new("empty_answer", "the model returned an empty answer", calls, record);
        }
        let mut row = record.unwrap_or_default();
        if !row.contains_key("uid") {
            row.insert("uid".into(), json!(key));
        }
        let response = match self.reasoning {
            ReasoningMode::Inline => completion.raw_text.clone(),
            ReasoningMode::Separate | ReasoningMode::Drop => completion.content.clone(),
        };
        if self.reasoning == ReasoningMode::Separate {
            row.insert("reasoning".into(), json!(completion.reasoning));
        }
        let mut final_messages: Vec<Value> = sent.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
        final_messages.push(json!({"role": "assistant", "content": response}));
        row.insert("response".into(), json!(response));
        row.insert("final_messages".into(), Value::Array(final_messages));
        row.insert("usage".into(), model_call::usage_json(&completion));
        row.insert("finish_reason".into(), json!(completion.finish_reason));
        row.insert("latency_ms".into(), json!(completion.latency.as_millis() as u64));
        row.insert("attempts".into(), json!(completion.attempts));
        Outcome::Done { produced: Produced::Row(row), score: None, calls }
    }
}

impl GenerateJob {
    /// The stored answer given this run's `reasoning` handling (it changed): no request. The
    /// reasoning comes from the row's `reasoning` column or the `<think>` block of an inline
    /// answer; an answer stored with `reasoning: drop` has none left to give.
    fn rederive(&self, record: Map<String, Value>, stored: Map<String, Value>) -> Outcome {
        let calls = CallTally { reparsed: true, ..CallTally::default() };
        let response = stored.get("response").and_then(Value::as_str).unwrap_or_default().to_string();
        let (reasoning, content) = match stored.get("reasoning") {
            Some(Value::String(r)) => (Some(r.clone()), response),
            _ => match response.strip_prefix("<think>\n").and_then(|rest| rest.split_once("\n</think>\n\n")) {
                Some((r, answer)) => (Some(r.to_string()), answer.to_string()),
                None => (None, response),
            },
        };
        let answer = match (self.reasoning, &reasoning) {
            (ReasoningMode::Inline, Some(r)) => format!("<think>\n{r}\n</think>\n\n{content}"),
            _ => content,
        };
        let mut row = stored;
        for (k, v) in record {
            row.entry(k).or_insert(v);
        }
        row.remove("reasoning");
        if self.reasoning == ReasoningMode::Separate {
            row.insert("reasoning".into(), json!(reasoning));
        }
        if let Some(Value::Array(messages)) = row.get_mut("final_messages") {
            if let Some(last) = messages.last_mut() {
                last["content"] = json!(answer);
            }
        }
        row.insert("response".into(), json!(answer));
        Outcome::Done { produced: Produced::Row(row), score: None, calls }
    }
}

/// The turns to send: everything up to and including the last user turn.
pub fn conversation(record: &Map<String, Value>, first_user_only: bool) -> Result<Vec<ChatMessage>, (String, String)> {
    let Some(messages) = record.get("messages").and_then(Value::as_array) else {
        return Err(("missing_messages".into(), "the record has no `messages` list (ChatML conversations are expected)".into()));
    };
    let mut turns = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        if !matches!(role, "system" | "user" | "assistant" | "tool") {
            return Err(("bad_message".into(), format!("messages[{i}] has role `{role}`; expected system, user or assistant")));
        }
        turns.push(ChatMessage { role: role.to_string(), content });
    }
    if first_user_only {
        let first = turns.first().map(|t| t.content.clone()).unwrap_or_default();
        return Ok(vec![ChatMessage { role: "user".into(), content: first }]);
    }
    let Some(last_user) = turns.iter().rposition(|t| t.role == "user") else {
        return Err(("no_user_turn".into(), "the conversation has no user turn to answer".into()));
    };
    turns.truncate(last_user + 1);
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn sends_everything_up_to_the_last_user_turn() {
        let r = rec(json!({"messages": [
            {"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "old answer"}
        ]}));
        let turns = conversation(&r, false).unwrap();
        assert_eq!(turns.iter().map(|t| t.content.as_str()).collect::<Vec<_>>(), vec!["S", "Q1", "A1", "Q2"]);
        let first = conversation(&r, true).unwrap();
        assert_eq!(first, vec![ChatMessage { role: "user".into(), content: "S".into() }]);
        assert_eq!(conversation(&rec(json!({"x": 1})), false).unwrap_err().0, "missing_messages");
        assert_eq!(conversation(&rec(json!({"messages": [{"role": "system", "content": "S"}]})), false).unwrap_err().0, "no_user_turn");
    }
}
