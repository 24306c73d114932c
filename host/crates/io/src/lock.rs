//! An exclusive lock on an output folder, so two runs of one task writing to one folder never
//! both send every record.
//!
//! The lock is the file `<folder>/.modelcall/run.lock`, holding JSON
//! `{"pid", "host", "started_at", "command"}`. It is created atomically (`O_CREAT|O_EXCL`),
//! written and fsync'd. A run that finds it:
//!
//! - naming this host and a pid that is not alive: the lock is stale (its run was killed), and is
//!   taken over;
//! - naming another host whose heartbeat stopped (the file not refreshed for
//!   [`STALE_AFTER`], three missed [`HEARTBEAT_EVERY`] beats: its node died): stale, taken over
//!   with a warning that says so;
//! - naming another host with a live heartbeat, or a live pid (this process included: a second
//!   acquire in one process is a different run): [`LockError::Held`];
//! - unreadable or garbled: stale when its file is older than [`GARBLED_GRACE`], otherwise Held
//!   (its writer may be between creating and writing it).
//!
//! While a run holds the lock, a thread touches the file (its mtime) every [`HEARTBEAT_EVERY`]:
//! that is the heartbeat another host judges it by (a pid means nothing there).
//!
//! Taking over never removes a lock it has not judged: takeovers are serialised by a `flock` on
//! `.modelcall/run.lock.takeover` (the kernel releases it when a process dies), under
//! which the lock file is re-read and removed only if it still holds the bytes judged stale. The
//! takeover file is removed by the takeover that made it, still under its `flock`; a waiter
//! that then gets the `flock` of the removed file sees that the path no longer names it and
//! opens it again, so two takeovers never hold the mutex at once. The
//! new lock is then created with `O_EXCL` again, and losing that race is Held. So of any number
//! of runs starting together on a stale lock, exactly one gets it.
//!
//! Limits: liveness on another host is judged by the file's mtime against this host's clock, so
//! clocks more than [`STALE_AFTER`] apart (or a shared file system whose mtimes lag) can
//! misjudge it. On the same host name liveness is judged by pid, so two containers sharing a folder
//! and a host name but not a pid namespace may take each other's lock; a pid reused by an
//! unrelated process keeps a dead run's lock Held (the message says which file to remove).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::atomic::process_alive;

/// Folder (inside the output folder) holding the lock file.
pub const LOCK_DIR: &str = ".modelcall";
/// The lock file's name inside [`LOCK_DIR`].
pub const LOCK_FILE: &str = "run.lock";
/// How old an unreadable or garbled lock file must be before it is treated as stale.
pub const GARBLED_GRACE: Duration = Duration::from_secs(60);
/// How often a held lock's file is touched (its mtime is the heartbeat).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A lock of another host not touched for this long (three missed beats) is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Why [`OutputLock::acquire`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run (or an earlier acquire in this process) holds the folder. The fields come from
    /// its lock file; `pid` is `None` (and the strings empty) when that file is being written or
    /// is unreadable.
    /// `note` says more when there is more to say (a lock of another host: its last heartbeat).
    #[error("{}{}", held_message(path, *pid, host, started_at, command), note)]
    /// (Its strings are `Box<str>`: the error stays under clippy's 128-byte `Result` line.)
    Held { path: PathBuf, pid: Option<u32>, host: Box<str>, started_at: Box<str>, command: Box<str>, note: Box<str> },
    /// The lock file or its folder could not be created, read or written.
    #[error("output lock {path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

fn held_message(path: &Path, pid: Option<u32>, host: &str, started_at: &str, command: &str) -> String {
    let folder = output_folder_of(path);
    match pid {
        Some(pid) => format!(
            "another modelcall run (pid {pid} on host {host}, started {started_at}: `{command}`) is writing to {}; \
             wait for it to end, or stop it. If it is not running any more, remove {}",
            folder.display(),
            path.display()
        ),
        None => format!(
            "another modelcall run is writing to {} (its lock file is being written or cannot be read); \
             wait for it to end, or stop it. If it is not running any more, remove {}",
            folder.display(),
            path.display()
        ),
    }
}

/// `<folder>` from `<folder>/.modelcall/run.lock`.
fn output_folder_of(lock_path: &Path) -> &Path {
    lock_path.parent().and_then(Path::parent).unwrap_or(lock_path)
}

/// The contents of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct LockInfo {
    pid: u32,
    host: String,
    started_at: String,
    command: String,
}

/// An exclusive hold on an output folder; released (its file removed, if still ours) on drop.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    /// The exact bytes we wrote: the file is removed on drop only if it still holds them.
    content: Vec<u8>,
    /// Stops the heartbeat thread when dropped.
    heartbeat: Option<Heartbeat>,
}

/// The thread touching the lock file every [`HEARTBEAT_EVERY`]; dropping this stops it.
#[derive(Debug)]
struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(path: PathBuf, content: Vec<u8>) -> Option<Heartbeat> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lock-heartbeat".into())
            .spawn(move || loop {
                match rx.recv_timeout(HEARTBEAT_EVERY) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => beat(&path, &content),
                    _ => return,
                }
            })
            .ok()?;
        Some(Heartbeat { stop: Some(tx), thread: Some(thread) })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Touches the lock file if it is still ours (never one another run took over).
fn beat(path: &Path, content: &[u8]) {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else { return };
    let mut now = Vec::new();
    if (&file).read_to_end(&mut now).is_err() || now != content {
        return;
    }
    if let Err(e) = file.set_modified(SystemTime::now()) {
        tracing::warn!(lock = %path.display(), error = %e, "could not refresh the output lock's heartbeat");
    }
}

impl OutputLock {
    /// Takes `<folder>/.modelcall/run.lock` (creating folders), writing JSON {pid, host,
    /// started_at (RFC 3339 UTC), command (the process's argv joined)}.
    pub fn acquire(folder: &Path) -> Result<OutputLock, LockError> {
        Self::acquire_named(folder, LOCK_FILE)
    }

    /// Like [`OutputLock::acquire`] with another lock file name in the same place (one lock
    /// per shard of a sharded run: shards share the folder, each owns its own files).
    pub fn acquire_named(folder: &Path, name: &str) -> Result<OutputLock, LockError> {
        let dir = folder.join(LOCK_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| LockError::Io { path: dir.clone(), source })?;
        let path = dir.join(name);
        let info = LockInfo {
            pid: std::process::id(),
            host: hostname(),
            started_at: rfc3339_utc(SystemTime::now()),
            command: std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
        };
        let mut content = serde_json::to_vec(&info).expect("a lock record serialises");
        content.push(b'\n');

        // Attempt 0 may take over a stale lock; attempt 1 is the retry after that, where any
        // existing file (a lost race) is Held.
        for attempt in 0..2 {
            match create_exclusive(&path, &content) {
                Ok(()) => {
                    let heartbeat = Heartbeat::start(path.clone(), content.clone());
                    return Ok(OutputLock { path, content, heartbeat });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(source) => return Err(LockError::Io { path, source }),
            }
            let Some(found) = read_existing(&path)? else {
                continue; // removed between our create and read: try again
            };
            if attempt == 0 && found.is_stale(&info.host) {
                tracing::warn!(lock = %path.display(), holder = %found.describe(), "taking over a stale output lock: {}", found.why_stale(&info.host));
                take_away(&path, &found.bytes)?;
                continue;
            }
            return Err(found.held(&path));
        }
        // The file came and went twice (or a takeover lost its race and the winner already left):
        // report whatever holds it now, or Held without details.
        match read_existing(&path)? {
            Some(found) => Err(found.held(&path)),
            None => Err(LockError::Held { path, pid: None, host: "".into(), started_at: "".into(), command: "".into(), note: "".into() }),
        }
    }

    /// Whether `<folder>/.modelcall/<name>` is held by a run that may still be going (a lock
    /// of a dead process on this host is not).
    pub fn is_held(folder: &Path, name: &str) -> bool {
        let path = folder.join(LOCK_DIR).join(name);
        matches!(read_existing(&path), Ok(Some(found)) if !found.is_stale(&hostname()))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        drop(self.heartbeat.take());
        // Only if it is still ours: someone may have removed it by hand and another run taken it.
        if std::fs::read(&self.path).is_ok_and(|b| b == self.content) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(lock = %self.path.display(), error = %e, "could not remove the output lock");
            }
        }
    }
}

/// Creates `path` only if it does not exist, writes `content` and fsyncs it and its folder. A
/// failure after creating removes the partial file.
fn create_exclusive(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    drop(file);
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// An existing lock file as read.
struct Found {
    bytes: Vec<u8>,
    /// `None` when garbled.
    info: Option<LockInfo>,
    /// Time since the file was last modified (zero when unknown or in the future).
    age: Duration,
}

impl Found {
    fn is_stale(&self, our_host: &str) -> bool {
        match &self.info {
            Some(info) if info.host == our_host => !process_alive(info.pid),
            Some(_) => self.age >= STALE_AFTER,
            None => self.age >= GARBLED_GRACE,
        }
    }

    /// Why a stale lock is stale, for the takeover warning.
    fn why_stale(&self, our_host: &str) -> String {
        match &self.info {
            Some(info) if info.host == our_host => format!("process {} is not running on this host", info.pid),
            Some(info) => format!(
                "host {} has not refreshed it for {}s (its heartbeat comes every {}s; a lock from another host is stale after {}s, 3 missed beats: that run's node is gone)",
                info.host,
                self.age.as_secs(),
                HEARTBEAT_EVERY.as_secs(),
                STALE_AFTER.as_secs()
            ),
            None => format!("its file is unreadable and {}s old", self.age.as_secs()),
        }
    }

    fn held(self, path: &Path) -> LockError {
        let note = match &self.info {
            Some(i) if i.host != hostname() => format!(
                " (its last heartbeat was {}s ago; a lock from another host counts as stale {}s after its last one)",
                self.age.as_secs(),
                STALE_AFTER.as_secs()
            ),
            _ => String::new(),
        };
        match self.info {
            Some(i) => LockError::Held {
                path: path.to_path_buf(),
                pid: Some(i.pid),
                host: i.host.into(),
                started_at: i.started_at.into(),
                command: i.command.into(),
                note: note.into(),
            },
            None => LockError::Held { path: path.to_path_buf(), pid: None, host: "".into(), started_at: "".into(), command: "".into(), note: "".into() },
        }
    }

    fn describe(&self) -> String {
        match &self.info {
            Some(i) => format!("pid {} on host {}, started {}", i.pid, i.host, i.started_at),
            None => format!("unreadable lock file, {}s old", self.age.as_secs()),
        }
    }
}

/// Reads the lock file; `None` if it does not exist (any more).
fn read_existing(path: &Path) -> Result<Option<Found>, LockError> {
    let io = |source| LockError::Io { path: path.to_path_buf(), source };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let modified = file.metadata().and_then(|m| m.modified()).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO);
    Ok(Some(Found { info: parse(&bytes), bytes, age }))
}

/// A well-formed lock record, or `None`. A pid outside 1..=i32::MAX is garbled (signalling it
/// would address a process group).
fn parse(bytes: &[u8]) -> Option<LockInfo> {
    let info: LockInfo = serde_json::from_slice(bytes).ok()?;
    (info.pid >= 1 && info.pid <= i32::MAX as u32).then_some(info)
}

/// Removes the stale lock at `path` whose content was judged to be `judged`, without ever
/// removing a lock some other run created in the meantime.
///
/// Takeovers are serialised by an advisory `flock` on [`TAKEOVER_FILE`] (released by the kernel
/// if we die, so it never goes stale). Under it the file is re-read: if it still holds what was
/// judged, only a takeover (us) can remove it, so removing it is safe; otherwise it is left
/// alone and the caller's retry reports the new holder. Where `flock` is not available the
/// stale lock is reported, to be removed by hand.
fn take_away(path: &Path, judged: &[u8]) -> Result<(), LockError> {
    let Some(guard) = takeover_mutex(path) else {
        return Err(LockError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("cannot lock it for a takeover on this file system; if no run is using the folder, remove it by hand"),
        });
    };
    let result = match std::fs::read(path) {
        Ok(now) if now == judged => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()), // removed by hand
            Err(source) => Err(LockError::Io { path: path.to_path_buf(), source }),
        },
        Ok(_) => Ok(()),                                     // another run took it over first
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()), // gone already
        Err(source) => Err(LockError::Io { path: path.to_path_buf(), source }),
    };
    // Still under the flock: a waiter on this file notices it was removed and opens it anew.
    let _ = std::fs::remove_file(path.with_file_name(TAKEOVER_FILE));
    drop(guard);
    result
}

/// Beside the lock while a takeover runs; removed by that takeover under its own `flock`.
pub const TAKEOVER_FILE: &str = "run.lock.takeover";

/// An exclusive `flock` on `<lock dir>/run.lock.takeover`, held while the returned file is open;
/// `None` when the file system does not support it. The flock counts only if, once taken, the
/// path still names the file locked (a takeover removes it before letting go): otherwise the
/// file is opened again.
fn takeover_mutex(path: &Path) -> Option<File> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let mutex_path = path.with_file_name(TAKEOVER_FILE);
        let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&mutex_path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %mutex_path.display(), error = %e, "cannot open the lock takeover file");
                return None;
            }
        };
        loop {
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                use std::os::unix::fs::MetadataExt;
                let same = match (file.metadata(), std::fs::metadata(&mutex_path)) {
                    (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                    _ => false,
                };
                if same {
                    return Some(file);
                }
                return takeover_mutex(path); // removed by the takeover before us: a new file
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                tracing::warn!(path = %mutex_path.display(), error = %e, "cannot flock the lock takeover file");
                return None;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// This machine's host name (`gethostname`), or `"unknown"` when it cannot be read.
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
        if r == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
        "unknown".to_string()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".to_string())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time (seconds precision, UTC).
fn rfc3339_utc(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn lock_rfc3339_formats_utc_seconds() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_796_137_200)), "2026-12-01T15:00:00Z");
    }

    #[test]
    fn lock_parse_rejects_garbage_and_group_pids() {
        assert!(parse(b"{\"pid\":1").is_none());
        assert!(parse(br#"{"pid":0,"host":"h","started_at":"s","command":"c"}"#).is_none());
        assert!(parse(br#"{"pid":4294967295,"host":"h","started_at":"s","command":"c"}"#).is_none());
        assert_eq!(parse(br#"{"pid":7,"host":"h","started_at":"s","command":"c"}"#).unwrap().pid, 7);
    }

    #[test]
    fn lock_held_message_names_the_run_the_folder_and_the_file() {
        let e = LockError::Held {
            path: PathBuf::from("/out/.modelcall/run.lock"),
            pid: Some(123),
            host: "h".into(),
            started_at: "2026-12-01T15:00:00Z".into(),
            command: "modelcall run-task x.yaml".into(),
            note: "".into(),
        };
        assert_eq!(
            e.to_string(),
            "another modelcall run (pid 123 on host h, started 2026-12-01T15:00:00Z: `modelcall run-task x.yaml`) \
             is writing to /out; wait for it to end, or stop it. If it is not running any more, remove /out/.modelcall/run.lock"
        );
    }

    #[test]
    fn lock_take_away_leaves_a_lock_it_did_not_judge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(&path, b"fresh").unwrap();
        take_away(&path, b"stale").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"fresh");
        take_away(&path, b"fresh").unwrap();
        assert!(!path.exists());
        take_away(&path, b"fresh").unwrap(); // already gone: fine
    }

    #[test]
    fn lock_takeover_mutex_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let first = takeover_mutex(&path).expect("flock works on a local file system");
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let _second = takeover_mutex(&p).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "second waits while the first holds");
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).expect("second gets it once the first lets go");
        t.join().unwrap();
    }
}
