//! The start banner: one block on stderr before the first request, saying what the run is
//! about to do: the model and its endpoint(s), the records to send and those already done, the
//! concurrency, and the estimated tokens and cost (with the model's `pricing`).

use std::path::PathBuf;

use modelcall_config::ModelConfig;
use serde_json::{Map, Value};

use crate::engine::survey::Survey;
use crate::numbers::grouped;

/// What the run will send, as far as it is known before it starts.
#[derive(Debug, Clone)]
pub enum Records {
    /// Counted record by record against the journals (as `--dry-run` does).
    Surveyed(Survey),
    /// Records in the inputs (resume is counted as the run reads them); `None`: unknown.
    Inputs(Option<u64>),
    /// The records are the preprocessor's output, known as it finishes each group.
    AfterPreprocessing,
}

/// The prompt size of a few records, sampled before the run.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    /// Prompt tokens a record, on average over the sample.
    pub prompt_tokens: u64,
    pub sampled: usize,
    /// Output tokens a request at most (`max_tokens`), when bounded.
    pub max_output_tokens: Option<u64>,
}

pub struct Banner<'a> {
    pub task_name: &'a str,
    pub model: &'a ModelConfig,
    /// Endpoints as they may be shown (redacted).
    pub endpoints: Vec<String>,
    pub records: Records,
    pub concurrency: usize,
    pub adaptive: bool,
    /// Work items a record makes (generation with `n: k`).
    pub per_record: u64,
    pub estimate: Option<Estimate>,
    pub shard: Option<(u32, u32)>,
}

/// Records sampled to estimate the prompt size.
const SAMPLE: usize = 50;

/// The average prompt size of up to 50 records of the first input, each measured by `measure`
/// (prompt tokens, the request's `max_tokens` if it sets one); `fallback_max` is the model's.
pub fn sample(inputs: &[PathBuf], fallback_max: Option<u64>, measure: impl Fn(&Map<String, Value>) -> Option<(u64, Option<u64>)>) -> Option<Estimate> {
    let source = modelcall_io::open_source(inputs.first()?).ok()?;
    let mut sampled = Vec::new();
    for item in source.filter_map(Result::ok).take(SAMPLE * 2) {
        if let modelcall_io::SourceItem::Record { record, .. } = item {
            if let Some(m) = measure(&record) {
                sampled.push(m);
            }
            if sampled.len() == SAMPLE {
                break;
            }
        }
    }
    if sampled.is_empty() {
        return None;
    }
    Some(Estimate {
        prompt_tokens: sampled.iter().map(|(t, _)| *t).sum::<u64>() / sampled.len() as u64,
        sampled: sampled.len(),
        max_output_tokens: sampled.iter().filter_map(|(_, m)| *m).max().or(fallback_max),
    })
}

/// Tokens of every string in `value` (a conversation's texts, roughly what is sent).
pub fn text_tokens(value: &Value) -> u64 {
    match value {
        Value::String(s) => modelcall_plugin_host::tokenizer::count_tokens(s) as u64,
        Value::Array(a) => a.iter().map(text_tokens).sum(),
        Value::Object(m) => m.values().map(text_tokens).sum(),
        _ => 0,
    }
}

/// The model's own `max_tokens` (or `max_completion_tokens`), when it sets one.
pub fn model_max_tokens(model: &ModelConfig) -> Option<u64> {
    model.chat_config.get("max_tokens").or_else(|| model.chat_config.get("max_completion_tokens")).and_then(Value::as_u64)
}

impl Banner<'_> {
    /// Requests the run will send, when known.
    fn to_send(&self) -> Option<u64> {
        match &self.records {
            Records::Surveyed(s) => Some(s.to_send()),
            Records::Inputs(n) => n.map(|n| n * self.per_record),
            Records::AfterPreprocessing => None,
        }
    }

    pub fn render(&self) -> String {
        let mut lines = Vec::new();
        let shard = self.shard.map(|(i, n)| format!(" (shard {i}/{n})")).unwrap_or_default();
        lines.push(format!("run         {}{shard}", self.task_name));
        let simulated = if self.model.sim().is_some() { " (SIMULATED: synthetic replies)" } else { "" };
        lines.push(format!("model       {}{simulated}", self.model.model));
        match self.endpoints.as_slice() {
            [one] => lines.push(format!("endpoint    {one}")),
            many => {
                lines.push(format!("endpoints   {} of them:", many.len()));
                for e in many {
                    lines.push(format!("              {e}"));
                }
            }
        }
        lines.push(match &self.records {
            Records::Surveyed(s) => {
                let mut line = format!("records     {} to send · {} already done", grouped(s.to_send()), grouped(s.done + s.adopted));
                let mut parts = Vec::new();
                if s.new > 0 && s.to_send() != s.new {
                    parts.push(format!("{} new", grouped(s.new)));
                }
                if s.failed_retryable > 0 {
                    parts.push(format!("{} failed before, sent again", grouped(s.failed_retryable)));
                }
                if s.changed > 0 {
                    parts.push(format!("{} changed since their result", grouped(s.changed)));
                }
                if s.failed_permanent > 0 {
                    parts.push(format!("{} failed permanently before, not sent (--retry-failed sends them)", grouped(s.failed_permanent)));
                }
                if s.not_sent > 0 {
                    parts.push(format!("{} other line(s) not sent", grouped(s.not_sent)));
                }
                if !parts.is_empty() {
                    line.push_str(&format!(" ({})", parts.join(", ")));
                }
                line
            }
            Records::Inputs(Some(n)) => format!("records     {} in the inputs (those already done are skipped as they are read)", grouped(*n)),
            Records::Inputs(None) => "records     not counted up front (compressed input); already done ones are skipped as they are read".to_string(),
            Records::AfterPreprocessing => "records     counted as preprocessing writes its groups".to_string(),
        });
        lines.push(if self.adaptive {
            format!("concurrency adaptive, up to {} requests in flight", self.concurrency)
        } else {
            format!("concurrency {} requests in flight", self.concurrency)
        });
        if let Some(e) = self.estimate {
            match self.to_send() {
                Some(n) => {
                    let prompt = n * e.prompt_tokens;
                    let out = e.max_output_tokens.map(|m| n * m);
                    let out_text = match out {
                        Some(o) => format!("at most ~{} output", grouped(o)),
                        None => "output unbounded (no max_tokens)".to_string(),
                    };
                    lines.push(format!("tokens      ~{} prompt ({} a request, sampled {}) + {out_text}", grouped(prompt), grouped(e.prompt_tokens), e.sampled));
                    if let Some(p) = self.model.pricing {
                        let low = p.cost(prompt, 0);
                        lines.push(match out {
                            Some(o) => format!("cost        ~{low:.4} for the prompts, at most ~{:.4} with full outputs", p.cost(prompt, o)),
                            None => format!("cost        ~{low:.4} for the prompts, plus the outputs"),
                        });
                    }
                }
                None => lines.push(format!("tokens      ~{} prompt tokens a request (sampled {})", grouped(e.prompt_tokens), e.sampled)),
            }
        }
        lines.join("\n")
    }

    /// Prints the banner (redacted) on stderr, and hands the pricing to the progress display.
    pub fn print(&self) {
        crate::progress::set_pricing(self.model.pricing);
        eprintln!("{}", crate::shown::shown(&self.render()));
    }
}
