//! Task, model and prompt YAML configs.
//!
//! - [`error`]: config errors that name the file, line and dotted key, with suggestions;
//! - [`locate`]: finding the line of a key in YAML source text;
//! - [`schema`]: the keys a task file may hold (and those accepted but ignored);
//! - [`env`]: `${VAR}` interpolation and env files;
//! - [`task`], [`model`], [`prompt`]: the typed configs;
//! - [`paths`]: `{timestamp}`/`{task_name}` templating, resume folders, path resolution.

pub mod env;
pub mod error;
pub mod locate;
pub mod model;
pub mod paths;
pub mod prompt;
pub mod schema;
pub mod task;

pub use error::ConfigError;
pub use model::{ModelConfig, SimSpec};
pub use prompt::PromptConfig;
pub use task::{load_task, LoadedTask, Overrides, PluginEntry, TaskConfig, TaskType};

/// Parses `I/N` (0-based I < N).
pub fn parse_shard(spec: &str) -> Result<(u32, u32), String> {
    let (i, n) = spec.split_once('/').ok_or_else(|| format!("--shard `{spec}` should be I/N, e.g. 0/4"))?;
    let i: u32 = i.trim().parse().map_err(|_| format!("--shard `{spec}`: `{i}` is not a number"))?;
    let n: u32 = n.trim().parse().map_err(|_| format!("--shard `{spec}`: `{n}` is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("--shard `{spec}`: the index must be below the count (0-based)"));
    }
    Ok((i, n))
}

/// A shard from Slurm array or Kubernetes Indexed Job variables, when present.
pub fn shard_from_env() -> Option<(u32, u32)> {
    let get = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(i), Some(n)) = (get("SLURM_ARRAY_TASK_ID"), get("SLURM_ARRAY_TASK_COUNT")) {
        let min = get("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
        let i = i.checked_sub(min)?;
        return (i < n).then_some((i, n));
    }
    if let (Some(i), Some(n)) = (get("JOB_COMPLETION_INDEX"), get("MODELCALL_SHARD_COUNT")) {
        return (i < n).then_some((i, n));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs() {
        assert_eq!(parse_shard("3/8"), Ok((3, 8)));
        assert!(parse_shard("8/8").is_err());
        assert!(parse_shard("x/2").is_err());
        assert!(parse_shard("1").is_err());
    }
}
