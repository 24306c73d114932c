//! The keys a task file may hold. Unknown keys are errors (with a suggestion); keys the
//! reference accepted but never used (its §2.6, plus those whose job is done differently here)
//! are accepted and reported as ignored.

use crate::distill;

/// Known keys of the section at `path`; `None` means the section is free-form (its keys are
/// checked by whoever consumes it, e.g. a plugin's `config`).
pub fn known_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => &[
            "task_name",
            "task_type",
            "description",
            "data",
            "model",
            "prompt",
            "preprocess",
            "concurrency",
            "retry",
            "debug",
            "options",
            "environment",
            "logging",
            "distributed",
            "plugins",
            "distillation",
            "budget",
            "output",
            // the response cache (checked by the host: host/src/response_cache.rs)
            "cache",
            // batch_distillation_submit and merge_distillation_results (crate::batch)
            "data_split",
            "batch_submit",
            "execution",
            "post_processing",
            "merge",
        ],
        ["data_split"] => crate::batch::BATCH_KEYS[0].1,
        ["batch_submit"] => crate::batch::BATCH_KEYS[1].1,
        ["execution"] => crate::batch::BATCH_KEYS[2].1,
        ["post_processing"] => crate::batch::BATCH_KEYS[3].1,
        ["merge"] => crate::batch::BATCH_KEYS[4].1,
        ["data"] => &[
            "input_folder",
            "input_file",
            "output_folder",
            "stat_folder",
            "input_key",
            "prompt_format_key",
            "id_field",
            "output_format",
            "file_pattern",
            "max_record_bytes",
            "stringify_input",
            "recursive",
        ],
        ["model"] => &["config_path"],
        ["prompt"] => &["config_path"],
        ["concurrency"] => &[
            "max_concurrent_files",
            "max_concurrent_requests",
            "chunk_size",
            "parquet_save_interval",
            "requests_per_minute",
            "tokens_per_minute",
            "mode",
            "scheduling",
            "batch_max_requests",
            "batch_max_bytes",
            "batch_poll_secs",
            "batch_max_rounds",
        ],
        ["retry"] => &["enable_format_validation_retry", "max_retries"],
        ["debug"] => &["enabled", "max_files", "max_items_per_file"],
        ["options"] => &["main_resume", "resume", "delete_existing", "preprocess_resume", "allow_failures", "on_duplicate_id", "audit_sample"],
        ["environment"] => &["config_path", "tos_config_path", "timeout", "conda_env", "api_provider", "project_root", "env_file"],
        ["logging"] => &["level", "batch_size", "progress_report_interval", "show_progress", "log_dir"],
        ["distributed"] => &["enabled", "world_size", "num_runs"],
        ["budget"] => &["max_tokens", "max_cost"],
        ["output"] => &["max_field_bytes", "row_group_rows", "ordered"],
        ["cache"] => &["path", "max_size"],
        ["preprocess"] => &[
            "enabled",
            "script_type",
            "input_folder",
            "output_folder",
            "max_tokens",
            "num_proc",
            "seed",
            "num_files",
            "batch_size",
            "languages",
            "group_by_language",
            "source_name",
            "field_mapping",
            "filters",
            "transformations",
            "file_pattern",
            "input",
        ],
        ["plugins", _] => &["role", "path", "config", "limits", "sha256"],
        ["distillation"] => distill::ALL_KEYS,
        // `plugins` (names are free), plugin configs and limits, field mappings, filters…
        _ => return None,
    })
}

/// Why a key has no effect here, if it has none. `task_type` is the task's type name, since some
/// keys are ignored only by some types.
pub fn ignored_reason(path: &[&str], task_type: &str) -> Option<&'static str> {
    let scoring = task_type == "data_scoring";
    Some(match path {
        ["concurrency", "chunk_size"] => "records are scheduled one by one (no chunks, so no head-of-line blocking)",
        ["concurrency", "parquet_save_interval"] => "results are journaled continuously and outputs finalized at the end",
        ["options", "preprocess_resume"] => "never read by the reference either; preprocessing always resumes",
        ["logging", "progress_report_interval"] => "never read by the reference either",
        ["logging", "show_progress"] => "never read by the reference either; use --no-progress",
        ["logging", "batch_size"] => "there are no per-batch log records; see run_summary.json",
        ["environment", "conda_env"] => "not applicable to a single binary",
        ["environment", "project_root"] | ["environment", "env_file"] => "SiFlow job settings; use environment.config_path for an env file",
        ["data_split", "output_dir"] => "no chunk files are written: shards read byte ranges of the input",
        ["batch_submit", "name_prefix"] | ["batch_submit", "siflow"] => "SiFlow job settings; use `modelcall submit` options",
        // `execution.dry_run` is honoured (see `TaskConfig::dry_run`); `auto_split: false` is refused.
        ["execution", "auto_split"] => "no chunk files are written: shards read byte ranges of the input (always on)",
        ["post_processing", _] => "merge with `modelcall merge TASK` once the shards are done",
        ["merge", "merge_errors"] => "error files are always merged (true is the default)",
        ["data_split", _] | ["batch_submit", _] if task_type != "batch_distillation_submit" => "read only by batch_distillation_submit tasks",
        ["merge", _] if task_type != "merge_distillation_results" => "read only by merge_distillation_results tasks",
        ["environment", "api_provider"] => "never read by the reference either",
        ["distributed", "enabled"] => "only a log line in the reference; sharding follows --shard or distributed.world_size",
        ["preprocess", "num_proc"] => "plugin calls run on a worker pool sized to the machine",
        ["preprocess", "seed"] => "preprocessing is deterministic",
        ["preprocess", "batch_size"] => "records are streamed one by one",
        ["preprocess", "group_by_language"] => "never used by the reference either",
        ["debug", ..] if !scoring => "debug limits apply to scoring and preprocessing only (as in the reference)",
        ["output", "ordered"] if !scoring => "scoring only; generation reads `distillation.ordered`",
        ["distillation", "step"] if task_type == "generate_response" => {
            "a generate_response task always generates responses (never read by the reference either)"
        }
        _ => return None,
    })
}

/// Why a key is refused: the reference gave it an effect on what is sent, paid or written that
/// is not implemented here, so accepting it silently would change the result. `value` is the
/// key's value as written (before `${VAR}` interpolation). The message says what to do instead.
pub fn refused_reason(path: &[&str], value: &serde_json::Value, task_type: &str) -> Option<&'static str> {
    let is_false = matches!(value, serde_json::Value::Bool(false)) || value.as_str().is_some_and(|s| s.trim() == "false");
    let is_true = matches!(value, serde_json::Value::Bool(true)) || value.as_str().is_some_and(|s| s.trim() == "true");
    Some(match path {
        ["execution", "auto_split"] if is_false && task_type == "batch_distillation_submit" => {
            "the reference then read chunk files already split into data_split.output_dir; here the shards always read \
             byte ranges of data_split.input_file: remove `auto_split: false` (the result is the same records), or \
             point data_split.input_file at the file the chunks were made from"
        }
        ["merge", "merge_errors"] if is_false && task_type == "merge_distillation_results" => {
            "error files are always merged here (the merge verifies every record is in the output or the error file \
             once); remove `merge_errors: false`, and delete the merged *_error.jsonl afterwards if it is not wanted"
        }
        ["debug", "enabled"] if is_true && task_type != "data_scoring" => {
            "debug limits (max_files, max_items_per_file) apply to scoring tasks only, so every record would be \
             processed; set `enabled: false`, or point the task at a small sample of the input"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_depends_on_task_type() {
        assert!(ignored_reason(&["debug", "max_files"], "data_scoring").is_none());
        assert!(ignored_reason(&["debug", "max_files"], "data_distillation").is_some());
        assert!(ignored_reason(&["distillation", "step"], "generate_response").is_some());
        assert!(ignored_reason(&["distillation", "step"], "data_distillation").is_none());
        assert!(ignored_reason(&["retry", "max_retries"], "data_scoring").is_none(), "it is the parse-retry budget here");
        assert!(ignored_reason(&["execution", "dry_run"], "batch_distillation_submit").is_none(), "it is honoured");
        assert!(ignored_reason(&["environment", "tos_config_path"], "data_scoring").is_none(), "it is loaded");
    }

    #[test]
    fn keys_with_an_effect_that_is_not_implemented_are_refused() {
        use serde_json::json;
        assert!(refused_reason(&["execution", "auto_split"], &json!(false), "batch_distillation_submit").is_some());
        assert!(refused_reason(&["execution", "auto_split"], &json!(true), "batch_distillation_submit").is_none());
        assert!(refused_reason(&["merge", "merge_errors"], &json!("false"), "merge_distillation_results").is_some());
        assert!(refused_reason(&["debug", "enabled"], &json!(true), "generate_response").is_some());
        assert!(refused_reason(&["debug", "enabled"], &json!(true), "data_scoring").is_none());
        assert!(refused_reason(&["debug", "enabled"], &json!(false), "data_distillation").is_none());
    }
}

/// A key a config file holds that has no effect here, reported (not rejected) so existing task
/// files keep loading and their authors learn what is ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoredKey {
    /// The file that holds it (the task file, or the model config it names).
    pub path: std::path::PathBuf,
    /// Dotted key, e.g. `concurrency.chunk_size`.
    pub key: String,
    pub line: Option<usize>,
    pub why: String,
}

impl std::fmt::Display for IgnoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": `{}` is accepted but has no effect: {}", self.key, self.why)
    }
}

/// The ignored keys of one task file (and the configs it names) as one note, printed once per
/// task file (not once per key, nor once per run of a batch):
/// `note: N keys of the reference are accepted and have no effect here: a, b (task.yaml:3, 7; model.yaml:10)`.
/// With `reasons`, one indented line per key says why (for `--dry-run`, where the plan is read).
pub fn notes_block(keys: &[IgnoredKey], reasons: bool) -> Option<String> {
    let mut unique: Vec<&IgnoredKey> = Vec::new();
    for k in keys {
        if !unique.iter().any(|u| u.path == k.path && u.key == k.key) {
            unique.push(k);
        }
    }
    if unique.is_empty() {
        return None;
    }
    // In file order (the task file first), then by line.
    let file_rank = |k: &IgnoredKey| keys.iter().position(|x| x.path == k.path).unwrap_or(0);
    unique.sort_by_key(|k| (file_rank(k), k.line.unwrap_or(usize::MAX)));
    let names: Vec<&str> = unique.iter().map(|k| k.key.as_str()).collect();
    let mut files: Vec<(&std::path::Path, Vec<String>)> = Vec::new();
    for k in &unique {
        let Some(line) = k.line else { continue };
        match files.iter_mut().find(|(p, _)| *p == k.path.as_path()) {
            Some((_, lines)) => lines.push(line.to_string()),
            None => files.push((k.path.as_path(), vec![line.to_string()])),
        }
    }
    let at = files.iter().map(|(p, lines)| format!("{}:{}", p.display(), lines.join(", "))).collect::<Vec<_>>().join("; ");
    let (n, s) = (unique.len(), if unique.len() == 1 { "key" } else { "keys" });
    let verb = if n == 1 { "is" } else { "are" };
    let mut out = format!("note: {n} {s} of the reference {verb} accepted and {} no effect here: {}", if n == 1 { "has" } else { "have" }, names.join(", "));
    if !at.is_empty() {
        out.push_str(&format!(" ({at})"));
    }
    if reasons {
        for k in &unique {
            out.push_str(&format!("\n      {}: {}", k.key, k.why));
        }
    }
    Some(out)
}

#[cfg(test)]
mod notes_tests {
    use super::*;

    #[test]
    fn one_block_for_all_keys_with_their_lines_per_file() {
        let k = |p: &str, key: &str, line| IgnoredKey { path: p.into(), key: key.into(), line: Some(line), why: format!("why {key}") };
        let keys = [k("t.yaml", "c", 7), k("t.yaml", "a.b", 3), k("m.yaml", "d", 10), k("t.yaml", "c", 7)];
        let block = notes_block(&keys, false).unwrap();
        assert_eq!(block, "note: 3 keys of the reference are accepted and have no effect here: a.b, c, d (t.yaml:3, 7; m.yaml:10)");
        let with = notes_block(&keys, true).unwrap();
        assert_eq!(with.matches("note:").count(), 1);
        assert!(with.contains("\n      d: why d"), "{with}");
        assert!(notes_block(&[], true).is_none());
        assert!(notes_block(&keys[..1], false).unwrap().starts_with("note: 1 key of the reference is accepted and has no effect"));
    }
}
