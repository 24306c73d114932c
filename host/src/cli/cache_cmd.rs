//! `modelcall cache stats|prune|clear`: the response cache on this machine (see
//! [`crate::response_cache`]).

use std::path::PathBuf;

use crate::response_cache::{default_path, parse_size, ResponseCache, DEFAULT_MAX_BYTES};

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CacheCommand {
    /// How many answers the cache holds and their size.
    Stats(CachePath),
    /// Evict the least recently used answers down to a size.
    Prune {
        #[command(flatten)]
        at: CachePath,
        /// The size to keep: bytes, or with a unit (500MB, 2GiB).
        #[arg(long, value_name = "SIZE")]
        max_size: String,
    },
    /// Remove every answer.
    Clear(CachePath),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CachePath {
    /// The cache file (default: the one a task's `cache: {}` uses, under $XDG_CACHE_HOME or ~/.cache).
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
}

impl CachePath {
    fn open(&self) -> anyhow::Result<ResponseCache> {
        let path = self.path.clone().unwrap_or_else(default_path);
        if !path.exists() {
            anyhow::bail!("no response cache at {} (a task's `cache:` section creates it)", path.display());
        }
        Ok(ResponseCache::open(&path, DEFAULT_MAX_BYTES)?)
    }
}

pub fn run(cmd: CacheCommand) -> anyhow::Result<()> {
    match cmd {
        CacheCommand::Stats(at) => {
            let cache = at.open()?;
            let (answers, bytes) = cache.stats()?;
            println!("{}: {answers} answer(s), {:.1} MB", cache.path().display(), bytes as f64 / 1e6);
        }
        CacheCommand::Prune { at, max_size } => {
            let max = parse_size(&serde_json::Value::String(max_size)).map_err(|e| anyhow::anyhow!("--max-size: {e}"))?;
            let cache = at.open()?;
            let removed = cache.prune(max)?;
            let (answers, bytes) = cache.stats()?;
            println!("{}: {removed} answer(s) evicted; {answers} left, {:.1} MB", cache.path().display(), bytes as f64 / 1e6);
        }
        CacheCommand::Clear(at) => {
            // A damaged file cannot be opened to be cleared: removed instead.
            let path = at.path.clone().unwrap_or_else(default_path);
            match at.open() {
                Ok(cache) => println!("{}: {} answer(s) removed", path.display(), cache.clear()?),
                Err(e) if path.exists() => {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                    println!("{}: removed ({e})", path.display());
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
