//! Finding a scheduler's command-line tool (`sbatch`, `scontrol`, `squeue`, `sacct`, `kubectl`)
//! on PATH.
//!
//! Its own module because two commands need it: `submit` runs the tools to submit a run, `status`
//! asks them about its shards (and `submit --resume` asks through `status`); keeping the lookup
//! here lets both use it without either importing the other.

use std::path::PathBuf;

/// The full path of `program` on PATH, if it is there and executable.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}
