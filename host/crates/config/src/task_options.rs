//! Small typed options of a task file (`options.on_duplicate_id`, `concurrency.mode`,
//! `budget:`, `preprocess.input`), re-exported from [`crate::task`].

use serde::Deserialize;

/// `options.on_duplicate_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateIds {
    /// Process every record; repeats get keys `id#2`, `id#3`, … in input order.
    #[default]
    Keep,
    /// Process only the first record of each id; repeats are counted and left out.
    Skip,
    /// Repeats go to the error output as `duplicate_id`.
    Error,
}

/// `concurrency.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyMode {
    Fixed,
    Adaptive,
    /// The provider's Batch API (OpenAI's `/v1/batches`): requests collected into batch files,
    /// half the price, answers within the completion window.
    Batch,
}

/// `concurrency.scheduling`: the order records are sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// As read (the default).
    #[default]
    InOrder,
    /// Records whose prompts begin alike (system prompt, template head) sent together, so a
    /// server's prefix cache hits.
    PrefixGroups,
}

/// `budget:`: limits on what a run spends; `max_cost` needs `pricing` in the model config.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BudgetSection {
    /// Prompt plus completion tokens, as the endpoint reports them in `usage`.
    pub max_tokens: Option<u64>,
    /// In the currency of the model config's `pricing`.
    pub max_cost: Option<f64>,
}

/// `preprocess.input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreprocessInputKind {
    Files,
    Records,
}
