//! The keys a task file may hold. Unknown keys are errors (with a suggestion); keys the
//! reference accepted but never used (its §2.6, plus those whose job is done differently here)
//! are accepted and reported as ignored.

use crate::distill;

/// Known keys of the section at `path`; `None` means the section is free-form (its keys are
/// checked by whoever consumes it, e.g. a plugin's `config`).
pub fn known_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => &[
            "task_name", "task_type", "description", "data", "model", "prompt", "preprocess", "concurrency", "retry",
            "debug", "options", "environment", "logging", "distributed", "plugins", "distillation", "budget",
            // batch_distillation_submit and merge_distillation_results (crate::batch)
            "data_split", "batch_submit", "execution", "post_processing", "merge",
        ],
        ["data_split"] => crate::batch::BATCH_KEYS[0].1,
        ["batch_submit"] => crate::batch::BATCH_KEYS[1].1,
        ["execution"] => crate::batch::BATCH_KEYS[2].1,
        ["post_processing"] => crate::batch::BATCH_KEYS[3].1,
        ["merge"] => crate::batch::BATCH_KEYS[4].1,
        ["data"] => &[
            "input_folder", "input_file", "output_folder", "stat_folder", "input_key", "prompt_format_key", "id_field",
            "output_format", "file_pattern", "max_record_bytes", "stringify_input",
        ],
        ["model"] => &["config_path"],
        ["prompt"] => &["config_path"],
        ["concurrency"] => &["max_concurrent_files", "max_concurrent_requests", "chunk_size", "parquet_save_interval", "requests_per_minute", "tokens_per_minute", "mode", "scheduling"],
        ["retry"] => &["enable_format_validation_retry", "max_retries"],
        ["debug"] => &["enabled", "max_files", "max_items_per_file"],
        ["options"] => &["main_resume", "resume", "delete_existing", "preprocess_resume", "allow_failures", "on_duplicate_id", "audit_sample"],
        ["environment"] => &["config_path", "tos_config_path", "timeout", "conda_env", "api_provider", "project_root", "env_file"],
        ["logging"] => &["level", "batch_size", "progress_report_interval", "show_progress", "log_dir"],
        ["distributed"] => &["enabled", "world_size", "num_runs"],
        ["budget"] => &["max_tokens", "max_cost"],
        ["preprocess"] => &[
            "enabled", "script_type", "input_folder", "output_folder", "max_tokens", "num_proc", "seed", "num_files",
            "batch_size", "languages", "group_by_language", "source_name", "field_mapping", "filters", "transformations",
            "file_pattern", "input",
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
        ["execution", _] => "use `modelcall submit --dry-run` (splitting is a shard plan, always on)",
        ["post_processing", _] => "merge with `modelcall merge TASK` once the shards are done",
        ["merge", "merge_errors"] => "error files are always merged",
        ["data_split", _] | ["batch_submit", _] if task_type != "batch_distillation_submit" => "read only by batch_distillation_submit tasks",
        ["merge", _] if task_type != "merge_distillation_results" => "read only by merge_distillation_results tasks",
        ["environment", "api_provider"] => "never read by the reference either",
        ["environment", "tos_config_path"] => "TOS object storage is not supported; use local or mounted paths",
        ["distributed", "enabled"] => "only a log line in the reference; sharding follows --shard or distributed.world_size",
        ["preprocess", "num_proc"] => "plugin calls run on a worker pool sized to the machine",
        ["preprocess", "seed"] => "preprocessing is deterministic",
        ["preprocess", "batch_size"] => "records are streamed one by one",
        ["preprocess", "group_by_language"] => "never used by the reference either",
        ["debug", ..] if !scoring => "debug limits apply to scoring and preprocessing only (as in the reference)",
        ["distillation", "step"] if task_type == "generate_response" => {
            "a generate_response task always generates responses (never read by the reference either)"
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
