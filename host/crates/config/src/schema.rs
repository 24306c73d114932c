//! The keys a task file may hold. Unknown keys are errors (with a suggestion); keys the
//! reference accepted but never used are accepted and reported as ignored.

/// Known keys of the section at `path`; `None` means the section is free-form (its keys are
/// checked by whoever consumes it, e.g. a plugin's `config`).
pub fn known_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => &[
            "task_name", "task_type", "description", "data", "model", "prompt", "preprocess", "concurrency", "retry",
            "debug", "options", "environment", "logging", "distributed", "plugins", "distillation", "output_config",
        ],
        ["data"] => &[
            "input_folder", "input_file", "output_folder", "stat_folder", "input_key", "prompt_format_key", "id_field",
            "output_format", "file_pattern",
        ],
        ["model"] => &["config_path"],
        ["prompt"] => &["config_path"],
        ["concurrency"] => &["max_concurrent_files", "max_concurrent_requests", "chunk_size", "parquet_save_interval", "requests_per_minute"],
        ["retry"] => &["enable_format_validation_retry", "max_retries"],
        ["debug"] => &["enabled", "max_files", "max_items_per_file"],
        ["options"] => &["main_resume", "resume", "delete_existing", "preprocess_resume"],
        ["environment"] => &["config_path", "tos_config_path", "timeout", "conda_env", "api_provider"],
        ["logging"] => &["level", "batch_size", "progress_report_interval", "show_progress", "log_dir"],
        ["distributed"] => &["enabled", "world_size", "num_runs"],
        ["preprocess"] => &[
            "enabled", "script_type", "input_folder", "output_folder", "max_tokens", "num_proc", "seed", "num_files",
            "batch_size", "languages", "group_by_language", "source_name", "field_mapping", "filters", "transformations",
            "file_pattern", "computed_fields", "config",
        ],
        ["plugins"] => return None,
        ["plugins", _] => &["role", "path", "config", "limits", "sha256"],
        ["distillation"] => return None,
        ["output_config"] => return None,
        [..] => return None,
    })
}

/// Keys accepted for compatibility with existing task files but with no effect here, and why.
pub fn ignored_reason(path: &[&str]) -> Option<&'static str> {
    Some(match path {
        ["concurrency", "chunk_size"] => "records are scheduled one by one (no chunks, no head-of-line blocking)",
        ["concurrency", "parquet_save_interval"] => "results are journaled continuously; outputs are finalized at the end",
        ["options", "preprocess_resume"] => "never read by the reference either; preprocessing always resumes",
        ["options", "main_resume"] | ["options", "resume"] => return None,
        ["logging", "progress_report_interval"] => "never read by the reference either",
        ["logging", "show_progress"] => "use --no-progress",
        ["logging", "batch_size"] => "there are no batch logs; see run_summary.json",
        ["environment", "conda_env"] => "not applicable to a single binary",
        ["environment", "api_provider"] => "never read by the reference either",
        ["environment", "tos_config_path"] => "TOS object storage is not supported; use local or mounted paths",
        ["distributed", "enabled"] => "sharding is chosen with --shard or world_size",
        ["preprocess", "num_proc"] => "plugin calls run on a fixed worker pool sized to the machine",
        ["preprocess", "seed"] => "preprocessing is deterministic",
        ["preprocess", "batch_size"] => "records are streamed one by one",
        ["preprocess", "group_by_language"] => "never used by the reference either",
        _ => return None,
    })
}
