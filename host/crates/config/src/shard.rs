//! Shard specs: `--shard I/N`, Slurm job arrays, Kubernetes Indexed Jobs.

/// A shard spec or scheduler variables that do not name one shard of N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard `{0}` should be I/N, e.g. 0/4")]
    Syntax(String),
    #[error("--shard `{spec}`: `{part}` is not a whole number")]
    NotAWholeNumber { spec: String, part: String },
    #[error("--shard `{spec}`: the index must be below the count (0-based: 0/{count} … {}/{count})", .count.max(&1) - 1)]
    IndexOutOfRange { spec: String, count: u32 },
    #[error("{var}=`{value}` is not a whole number")]
    VarNotANumber { var: String, value: String },
    #[error("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")]
    SlurmCountMissing,
    #[error("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")]
    SlurmIdBelowMin { id: u32, min: u32 },
    #[error("Slurm array task {id} (min {min}) is outside a count of {count}; use a contiguous array such as --array=0-{}", .count.max(&1) - 1)]
    SlurmIdOutside { id: u32, min: u32, count: u32 },
    #[error("JOB_COMPLETION_INDEX is set but MODELCALL_SHARD_COUNT is not (set it to the Job's completions)")]
    KubernetesCountMissing,
    #[error("JOB_COMPLETION_INDEX {index} is not below MODELCALL_SHARD_COUNT {count}")]
    KubernetesIndexOutOfRange { index: u32, count: u32 },
    #[error("MODELCALL_SHARD_INDICES=`{value}` should list shard numbers below MODELCALL_SHARD_COUNT {count} (e.g. 3,7-9), one per completion index")]
    BadIndexList { value: String, count: u32 },
    #[error("JOB_COMPLETION_INDEX {index} is beyond MODELCALL_SHARD_INDICES, which lists {listed} shard(s); the Job's completions must be {listed}")]
    IndexBeyondList { index: u32, listed: usize },
}

/// `3,7-9` → [3, 7, 8, 9]; `None` when malformed.
pub fn parse_index_list(text: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 1_000_000 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Parses `I/N` (0-based, I < N).
pub fn parse_shard(spec: &str) -> Result<(u32, u32), ShardError> {
    let (i, n) = spec.split_once('/').ok_or_else(|| ShardError::Syntax(spec.to_string()))?;
    let whole = |part: &str| -> Result<u32, ShardError> {
        part.trim().parse().map_err(|_| ShardError::NotAWholeNumber { spec: spec.to_string(), part: part.to_string() })
    };
    let (i, n) = (whole(i)?, whole(n)?);
    if n == 0 || i >= n {
        return Err(ShardError::IndexOutOfRange { spec: spec.to_string(), count: n });
    }
    Ok((i, n))
}

/// The shard given by scheduler variables, if any:
/// - Slurm arrays: `SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN` (default 0) of
///   `SLURM_ARRAY_TASK_COUNT`;
/// - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` of `MODELCALL_SHARD_COUNT` (Kubernetes does
///   not expose the completion count; the generated Job sets it). A Job that runs only some
///   shards again (`submit --resume`) lists them in `MODELCALL_SHARD_INDICES` (`3,7-9`):
///   completion index k runs the k-th listed shard, since an Indexed Job's indices always
///   start at 0.
///
/// Inconsistent values are an error rather than "no sharding": running every shard over the
/// whole input would duplicate the work N times.
pub fn shard_from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<(u32, u32)>, ShardError> {
    let num = |k: &str| -> Result<Option<u32>, ShardError> {
        match get(k) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| ShardError::VarNotANumber { var: k.to_string(), value: v }),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let n = num("SLURM_ARRAY_TASK_COUNT")?.ok_or(ShardError::SlurmCountMissing)?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let i = id.checked_sub(min).ok_or(ShardError::SlurmIdBelowMin { id, min })?;
        if i >= n {
            return Err(ShardError::SlurmIdOutside { id, min, count: n });
        }
        return Ok(Some((i, n)));
    }
    if let Some(i) = num("JOB_COMPLETION_INDEX")? {
        let n = num("MODELCALL_SHARD_COUNT")?.ok_or(ShardError::KubernetesCountMissing)?;
        if let Some(list) = get("MODELCALL_SHARD_INDICES").filter(|v| !v.trim().is_empty()) {
            let shards = parse_index_list(&list).filter(|l| l.iter().all(|&s| s < n)).ok_or(ShardError::BadIndexList { value: list.clone(), count: n })?;
            let shard = *shards.get(i as usize).ok_or(ShardError::IndexBeyondList { index: i, listed: shards.len() })?;
            return Ok(Some((shard, n)));
        }
        if n == 0 || i >= n {
            return Err(ShardError::KubernetesIndexOutOfRange { index: i, count: n });
        }
        return Ok(Some((i, n)));
    }
    Ok(None)
}

/// [`shard_from_vars`] over the process environment.
pub fn shard_from_env_checked() -> Result<Option<(u32, u32)>, ShardError> {
    shard_from_vars(&|k| std::env::var(k).ok())
}

/// Like [`shard_from_env_checked`], with inconsistent variables treated as absent. Prefer the
/// checked form; this one remains for callers written against it.
pub fn shard_from_env() -> Option<(u32, u32)> {
    shard_from_env_checked().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        move |k| owned.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn shard_specs() {
        assert_eq!(parse_shard("3/8"), Ok((3, 8)));
        assert_eq!(parse_shard(" 0 / 1 "), Ok((0, 1)));
        assert!(parse_shard("8/8").is_err());
        assert!(parse_shard("0/0").is_err());
        assert!(parse_shard("x/2").unwrap_err().to_string().contains("`x`"));
        assert_eq!(parse_shard("8/8").unwrap_err().to_string(), "--shard `8/8`: the index must be below the count (0-based: 0/8 … 7/8)");
        assert_eq!(parse_shard("1").unwrap_err().to_string(), "--shard `1` should be I/N, e.g. 0/4");
        assert!(parse_shard("1").is_err());
    }

    #[test]
    fn scheduler_variables() {
        assert_eq!(shard_from_vars(&vars(&[])), Ok(None));
        assert_eq!(shard_from_vars(&vars(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")])), Ok(Some((2, 4))));
        assert_eq!(shard_from_vars(&vars(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "8")])), Ok(Some((4, 8))));
        assert_eq!(
            shard_from_vars(&vars(&[("SLURM_ARRAY_TASK_ID", "9"), ("SLURM_ARRAY_TASK_COUNT", "4")])).unwrap_err().to_string(),
            "Slurm array task 9 (min 0) is outside a count of 4; use a contiguous array such as --array=0-3"
        );
        assert!(shard_from_vars(&vars(&[("SLURM_ARRAY_TASK_ID", "1")])).is_err());
        assert_eq!(shard_from_vars(&vars(&[("JOB_COMPLETION_INDEX", "0"), ("MODELCALL_SHARD_COUNT", "3")])), Ok(Some((0, 3))));
        assert!(shard_from_vars(&vars(&[("JOB_COMPLETION_INDEX", "0")])).is_err());
        assert!(shard_from_vars(&vars(&[("JOB_COMPLETION_INDEX", "3"), ("MODELCALL_SHARD_COUNT", "3")])).is_err());
        // A resumed Job: completion index k runs the k-th listed shard.
        let resumed =
            |k: &str, list: &str| shard_from_vars(&vars(&[("JOB_COMPLETION_INDEX", k), ("MODELCALL_SHARD_COUNT", "10"), ("MODELCALL_SHARD_INDICES", list)]));
        assert_eq!(resumed("0", "3,7-9"), Ok(Some((3, 10))));
        assert_eq!(resumed("3", "3,7-9"), Ok(Some((9, 10))));
        assert!(resumed("4", "3,7-9").unwrap_err().to_string().contains("lists 4 shard(s)"));
        assert!(resumed("0", "3,12").unwrap_err().to_string().contains("below MODELCALL_SHARD_COUNT 10"));
        assert!(resumed("0", "x").is_err());
    }
}
