//! The pre-run estimate `--dry-run` prints: records, prompt tokens (prompts built for a sample of
//! records and counted with o200k), output tokens at most, cost with the model's `pricing`, and
//! how far the task's `budget:` goes.

use std::path::PathBuf;

use modelcall_config::ModelConfig;
use modelcall_plugin_host::Plugin;
use serde_json::Value;

/// Records sampled to estimate the prompt size.
const SAMPLE: usize = 50;

/// `to_send`: the records a run would send now (resume counted), when known; else every record.
pub fn print(inputs: &[PathBuf], prompt: &Plugin, model: &ModelConfig, budget: &modelcall_config::task::BudgetSection, to_send: Option<u64>) {
    let records = to_send.or_else(|| crate::input_count::count_all(inputs));
    let mut sampled = Vec::new();
    if let Some(Ok(source)) = inputs.first().map(|f| modelcall_io::open_source(f)) {
        for item in source.filter_map(Result::ok).take(SAMPLE * 2) {
            if let modelcall_io::SourceItem::Record { record, .. } = item {
                let json = Value::Object(record).to_string();
                if let Ok(p) = prompt.build_prompt("estimate", 1, &json) {
                    let tokens: usize = p.messages.iter().map(|m| modelcall_plugin_host::tokenizer::count_tokens(&m.content)).sum();
                    sampled.push((tokens as u64, p.max_tokens));
                }
                if sampled.len() == SAMPLE {
                    break;
                }
            }
        }
    }
    if sampled.is_empty() {
        println!("estimate    no record could be sampled for a size estimate");
        return;
    }
    let avg_prompt = sampled.iter().map(|(t, _)| *t).sum::<u64>() / sampled.len() as u64;
    let max_out = sampled.iter().filter_map(|(_, m)| *m).max().map(u64::from).or_else(|| model.chat_config.get("max_tokens").and_then(Value::as_u64));
    let n = match records {
        Some(n) => n,
        None => {
            println!("estimate    ~{avg_prompt} prompt tokens a record (sampled {}); the record count is unknown (compressed input)", sampled.len());
            return;
        }
    };
    let prompt_total = n * avg_prompt;
    let out_total = max_out.map(|m| n * m);
    let out_text = match (max_out, out_total) {
        (Some(m), Some(t)) => format!("at most {m} output tokens each, {t} in all"),
        _ => "output tokens unbounded (no max_tokens set)".to_string(),
    };
    println!("estimate    {n} records to send × ~{avg_prompt} prompt tokens (sampled {}) = ~{prompt_total}; {out_text}", sampled.len());
    if let Some(p) = model.pricing {
        if let Some(d) = p.applied_discount() {
            println!("batch       concurrency.mode: batch: prices with pricing.batch_discount {d} taken off (the Batch API's price)");
        }
        let low = p.cost(prompt_total, 0);
        match out_total {
            Some(t) => println!(
                "cost        ~{low:.2} for the prompts, at most {:.2} with full outputs (pricing of {})",
                p.cost(prompt_total, t),
                model.path.display()
            ),
            None => println!("cost        ~{low:.2} for the prompts, plus the outputs (pricing of {})", model.path.display()),
        }
    }
    if let Some(max) = budget.max_tokens {
        let per = avg_prompt + max_out.unwrap_or(0);
        println!("budget      max_tokens {max}: about {} of {n} records", (max / per.max(1)).min(n));
    }
    if let (Some(max), Some(p)) = (budget.max_cost, model.pricing) {
        let per = p.cost(avg_prompt, max_out.unwrap_or(0));
        let records = if per > 0.0 { ((max / per) as u64).min(n) } else { n };
        let at = if p.applied_discount().is_some() { " at the batch price" } else { "" };
        println!("budget      max_cost {max}: about {records} of {n} records{at} (full outputs counted)");
    }
}
