//! The response cache (opt-in, `cache:` in a task file): a request whose exact content (the
//! endpoint and model, every `chat_config` key that reaches the body, the messages and the
//! prompt's sampling settings, and for `n` answers the sample index) was answered before is
//! answered from here, whatever the output folder, and counted `cached`, never billed.
//!
//! The store is one SQLite database (bundled, WAL mode, a busy timeout), so several runs on one
//! machine (the shards of a job on one node) share it safely; its size is capped by evicting
//! the least recently used answers; a damaged file is reported with how to clear it. The cache
//! is only a source of answers: the journal stays the record of what an output holds, so a
//! kill during a cached run loses nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use modelcall_model::{ChatRequest, Completion, Usage};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What `cache:` in a task file says.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// The database file (default: `$XDG_CACHE_HOME/modelcall/responses.sqlite`, else
    /// `~/.cache/modelcall/responses.sqlite`).
    pub path: Option<String>,
    /// The size cap: bytes, or with a unit (`500MB`, `2GiB`). Default 1 GiB.
    pub max_size: Option<Value>,
}

pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The default database file.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("modelcall").join("responses.sqlite")
}

/// `500MB`, `2GiB`, `1000000` → bytes.
pub fn parse_size(v: &Value) -> Result<u64, String> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let text = v.as_str().ok_or_else(|| format!("`{v}` is not a size (bytes, or e.g. 500MB, 2GiB)"))?.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a size (bytes, or e.g. 500MB, 2GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("`{other}` is not a size unit (B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    Ok((number * scale) as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the response cache {path} cannot be used: {message}; remove the file or run `modelcall cache clear --path {path}`")]
    Damaged { path: String, message: String },
    #[error("the response cache {path}: {0}", path = .1)]
    Sql(rusqlite::Error, String),
    #[error("the response cache {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// An answer as the cache keeps it.
#[derive(Serialize, Deserialize)]
struct Stored {
    content: String,
    reasoning: Option<String>,
    raw_text: String,
    usage: Option<(u64, u64, u64)>,
    finish_reason: Option<String>,
    model: String,
}

pub struct ResponseCache {
    conn: Mutex<Connection>,
    /// The database's size as this process last knew it (summed at open, added to by each put):
    /// eviction, which sums again, runs only when this passes the cap, not on every put.
    approx_bytes: std::sync::atomic::AtomicU64,
    path: PathBuf,
    max_bytes: u64,
    /// A hash of the endpoint and model settings every key of this run starts from.
    identity: [u8; 32],
}

impl ResponseCache {
    /// Opens (creating) the database at `path`, checking it is whole.
    pub fn open(path: &Path, max_bytes: u64) -> Result<ResponseCache, CacheError> {
        let shown = path.display().to_string();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| CacheError::Io { path: shown.clone(), source })?;
        }
        // Several runs may open the file at once (the shards of a job on one node): setting up
        // the journal mode and the table takes a lock another opener may hold for a moment, and
        // SQLite can report that at once rather than through the busy timeout; waited out here.
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(path) {
                Ok(conn) => {
                    let bytes: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM answers", [], |r| r.get(0)).unwrap_or(0);
                    let approx_bytes = std::sync::atomic::AtomicU64::new(bytes as u64);
                    return Ok(ResponseCache { conn: Mutex::new(conn), path: path.to_path_buf(), max_bytes, identity: [0; 32], approx_bytes });
                }
                Err(e) if is_busy(&e) && started.elapsed() < std::time::Duration::from_secs(60) => std::thread::sleep(std::time::Duration::from_millis(50)),
                Err(e) => return Err(CacheError::Damaged { path: shown, message: e.to_string() }),
            }
        }
    }

    fn open_once(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), Some(check)));
        }
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
        }
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS answers (key BLOB PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL, last_used INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS answers_by_use ON answers(last_used);",
        )?;
        Ok(conn)
    }

    /// The same database, for the requests of one endpoint and model (`identity`: what of the
    /// model config reaches every request body).
    pub fn for_identity(mut self, identity: &Value) -> ResponseCache {
        self.identity = Sha256::digest(identity.to_string().as_bytes()).into();
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key of `request` (with `salt`: the sample index of `n` answers).
    pub fn key(&self, request: &ChatRequest, salt: Option<&str>) -> Vec<u8> {
        let body = json!({
            "messages": request.messages.iter().map(|m| json!([m.role, m.content])).collect::<Vec<_>>(),
            "max_tokens": request.max_tokens, "temperature": request.temperature, "stop": request.stop,
            "response_schema": request.response_schema, "n": request.n, "salt": salt,
        });
        let mut h = Sha256::new();
        h.update(self.identity);
        h.update(body.to_string().as_bytes());
        h.finalize().to_vec()
    }

    fn sql(&self, e: rusqlite::Error) -> CacheError {
        CacheError::Sql(e, self.path.display().to_string())
    }

    /// The stored answer of `key`, marked as used now.
    pub fn get(&self, key: &[u8]) -> Result<Option<Completion>, CacheError> {
        let conn = self.conn.lock().unwrap();
        let value: Option<Vec<u8>> =
            conn.query_row("SELECT value FROM answers WHERE key = ?1", params![key], |r| r.get(0)).optional().map_err(|e| self.sql(e))?;
        let Some(value) = value else { return Ok(None) };
        conn.execute("UPDATE answers SET last_used = ?2 WHERE key = ?1", params![key, now_micros()]).map_err(|e| self.sql(e))?;
        let Ok(stored) = serde_json::from_slice::<Stored>(&value) else { return Ok(None) };
        Ok(Some(Completion {
            content: stored.content,
            reasoning: stored.reasoning,
            raw_text: stored.raw_text,
            usage: stored.usage.map(|(p, c, t)| Usage { prompt_tokens: p, completion_tokens: c, total_tokens: t }),
            finish_reason: stored.finish_reason,
            model: stored.model,
            // No attempt was made: what marks a completion as answered from the cache.
            attempts: 0,
            retries: Default::default(),
            latency: std::time::Duration::ZERO,
        }))
    }

    /// Keeps `completion` under `key`, then evicts the least recently used answers while the
    /// database holds more than its cap.
    pub fn put(&self, key: &[u8], completion: &Completion) -> Result<(), CacheError> {
        let stored = Stored {
            content: completion.content.clone(),
            reasoning: completion.reasoning.clone(),
            raw_text: completion.raw_text.clone(),
            usage: completion.usage.as_ref().map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
            finish_reason: completion.finish_reason.clone(),
            model: completion.model.clone(),
        };
        let value = serde_json::to_vec(&stored).expect("answers serialize");
        let size = (value.len() + key.len() + 64) as i64;
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "INSERT INTO answers (key, value, size, last_used) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET value = excluded.value, size = excluded.size, last_used = excluded.last_used",
            params![key, value, size, now_micros()],
        )
        .map_err(|e| self.sql(e))?;
        let known = self.approx_bytes.fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed) + size as u64;
        if known > self.max_bytes {
            // Down to 90 %: the next tenth of puts then needs no sum of the table.
            evict(&conn, self.max_bytes / 10 * 9).map_err(|e| self.sql(e))?;
            let total: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM answers", [], |r| r.get(0)).map_err(|e| self.sql(e))?;
            self.approx_bytes.store(total as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<(u64, u64), CacheError> {
        let conn = self.conn.lock().unwrap();
        conn.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM answers", [], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.sql(e))
    }

    /// Evicts down to `max_bytes`; returns how many answers went.
    pub fn prune(&self, max_bytes: u64) -> Result<u64, CacheError> {
        let conn = self.conn.lock().unwrap();
        evict(&conn, max_bytes).map_err(|e| self.sql(e))
    }

    pub fn clear(&self) -> Result<u64, CacheError> {
        let conn = self.conn.lock().unwrap();
        let n = conn.execute("DELETE FROM answers", []).map_err(|e| self.sql(e))?;
        conn.execute_batch("VACUUM").map_err(|e| self.sql(e))?;
        Ok(n as u64)
    }
}

/// SQLite's "busy" or "locked": another connection holds the lock for now.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Deletes the least recently used answers, a batch at a time, while the total is over `max`.
fn evict(conn: &Connection, max: u64) -> rusqlite::Result<u64> {
    let mut removed = 0u64;
    loop {
        let total: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM answers", [], |r| r.get(0))?;
        if total as u64 <= max {
            return Ok(removed);
        }
        let n = conn.execute("DELETE FROM answers WHERE key IN (SELECT key FROM answers ORDER BY last_used LIMIT 64)", [])?;
        if n == 0 {
            return Ok(removed);
        }
        removed += n as u64;
    }
}

/// The cache of the run in progress, if its task asked for one (set by the model presets
/// before their first request, read by every model call).
static ACTIVE: RwLock<Option<Arc<ResponseCache>>> = RwLock::new(None);

pub fn install(cache: Option<ResponseCache>) {
    *ACTIVE.write().unwrap() = cache.map(Arc::new);
}

pub fn active() -> Option<Arc<ResponseCache>> {
    ACTIVE.read().unwrap().clone()
}

/// The task's `cache:` opened for `model` (none without the section, or with `--no-cache`).
/// The error names the task file and the key (a configuration error: exit 2).
pub fn for_task(task: &modelcall_config::LoadedTask, model: &modelcall_config::ModelConfig, no_cache: bool) -> Result<Option<ResponseCache>, String> {
    let file = task.source_path.display();
    let Some(section) = task.json.get("cache").filter(|_| !no_cache) else { return Ok(None) };
    let section: CacheSection = serde_json::from_value(if section.is_null() { json!({}) } else { section.clone() })
        .map_err(|e| format!("{file}: `cache`: {e} (it takes `path` and `max_size`)"))?;
    let max = match &section.max_size {
        Some(v) => parse_size(v).map_err(|e| format!("{file}: `cache.max_size`: {e}"))?,
        None => DEFAULT_MAX_BYTES,
    };
    let path = section.path.as_deref().map(|p| task.resolve(p)).unwrap_or_else(default_path);
    let cache = ResponseCache::open(&path, max).map_err(|e| format!("{file}: `cache`: {e}"))?;
    let mut chat = model.chat_config.clone();
    chat.remove("stream");
    chat.remove("stream_options");
    Ok(Some(cache.for_identity(&json!({"base_url": model.base_url, "model": model.model, "chat_config": chat}))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelcall_model::ChatMessage;

    fn completion(text: &str) -> Completion {
        Completion {
            content: text.into(),
            reasoning: None,
            raw_text: text.into(),
            usage: Some(Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }),
            finish_reason: Some("stop".into()),
            model: "m".into(),
            attempts: 1,
            retries: Default::default(),
            latency: std::time::Duration::from_millis(5),
        }
    }

    fn request(text: &str) -> ChatRequest {
        ChatRequest { messages: vec![ChatMessage { role: "user".into(), content: text.into() }], ..ChatRequest::default() }
    }

    #[test]
    fn answers_are_kept_by_request_identity_and_salt_and_evicted_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let cache = ResponseCache::open(&path, 100_000).unwrap().for_identity(&json!({"model": "m"}));
        let k = cache.key(&request("a"), None);
        assert!(cache.get(&k).unwrap().is_none());
        cache.put(&k, &completion("A")).unwrap();
        let hit = cache.get(&k).unwrap().unwrap();
        assert_eq!((hit.content.as_str(), hit.attempts), ("A", 0));
        assert_ne!(k, cache.key(&request("a"), Some("1")), "a sample index is its own answer");
        let other = ResponseCache::open(&path, 100_000).unwrap().for_identity(&json!({"model": "m2"}));
        assert!(other.get(&other.key(&request("a"), None)).unwrap().is_none(), "another model, another answer");
        // A small cap keeps the most recently used.
        let small = ResponseCache::open(&path, 2_000).unwrap().for_identity(&json!({"model": "m"}));
        for i in 0..50 {
            small.put(&small.key(&request(&format!("q{i}")), None), &completion(&"x".repeat(100))).unwrap();
        }
        let (n, bytes) = small.stats().unwrap();
        assert!(bytes <= 2_000 && n > 0, "{n} answers, {bytes} bytes");
        assert!(small.get(&small.key(&request("q49"), None)).unwrap().is_some());
        assert!(small.get(&small.key(&request("q0"), None)).unwrap().is_none());
    }

    #[test]
    fn a_damaged_file_is_an_error_that_says_how_to_clear_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let err = ResponseCache::open(&path, 1000).err().unwrap().to_string();
        assert!(err.contains("cannot be used") && err.contains("modelcall cache clear"), "{err}");
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size(&json!(1000)).unwrap(), 1000);
        assert_eq!(parse_size(&json!("500MB")).unwrap(), 500_000_000);
        assert_eq!(parse_size(&json!("2GiB")).unwrap(), 2 << 30);
        assert!(parse_size(&json!("2 parsecs")).is_err());
    }
}
