//! The one way modelcall writes a file that someone else reads: under a temporary name in the
//! destination's own folder, fsync'd, renamed into place, and the folder fsync'd, so a reader
//! never sees a partial file and a crash never leaves a half-written one under the real name.
//!
//! Temporary files carry [`TEMP_PREFIX`] and the writer's pid. They are removed on every exit
//! path that unwinds ([`AtomicFile`] removes its temp file when dropped uncommitted), and
//! [`sweep_temp_files`] removes the ones a `kill -9` left behind, at the next start.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Every temporary file modelcall writes starts with this, so a sweep can recognise them.
pub const TEMP_PREFIX: &str = ".modelcall-tmp.";

/// An I/O failure with the file it concerns and, when the disk is full, how much room is left.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}{hint}", path = path.display())]
pub struct WriteError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
    /// Extra advice (free space on a full disk); empty when there is none.
    pub hint: String,
}

impl WriteError {
    pub fn new(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        let hint = if source.raw_os_error() == Some(28) {
            match free_bytes(path) {
                Some(free) => format!(" ({free} bytes free on that file system; free some space, then run the same command again)"),
                None => " (free some space, then run the same command again)".to_string(),
            }
        } else {
            String::new()
        };
        WriteError { op, path: path.to_path_buf(), source, hint }
    }
}

/// Bytes available to this user on the file system holding `path` (or its nearest parent).
fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut probe = path;
        while !probe.exists() {
            probe = probe.parent()?;
        }
        let c = std::ffi::CString::new(probe.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
            return Some(st.f_bavail as u64 * st.f_frsize as u64);
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A file being written under a temporary name; [`AtomicFile::commit`] puts it in place.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `dest` (its folder is created when missing).
    pub fn create(dest: &Path) -> Result<Self, WriteError> {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| WriteError::new("creating folder", dir, e))?;
        }
        let tmp = temp_path_for(dest);
        let file = File::create(&tmp).map_err(|e| WriteError::new("creating", &tmp, e))?;
        Ok(AtomicFile { dest: dest.to_path_buf(), tmp, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// A scratch file beside `dest` (`tag` tells it apart), for data that is read back and
    /// never committed: it is removed when dropped, and swept after a kill.
    pub fn scratch(dest: &Path, tag: &str) -> Result<Self, WriteError> {
        let mut f = Self::create(&dest.with_file_name(format!("{}.{tag}", dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())))?;
        f.dest = PathBuf::new();
        Ok(f)
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file's path (for error messages and for readers of scratch files).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, fsyncs, renames into place and fsyncs the folder. On failure (a full disk, a
    /// file size limit) the temporary file is removed and the error names the destination.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let writer = self.writer.take().expect("an uncommitted file has its writer");
        let result = (|| {
            let file = writer.into_inner().map_err(|e| WriteError::new("writing", &self.dest, e.into_error()))?;
            file.sync_all().map_err(|e| WriteError::new("syncing", &self.dest, e))?;
            drop(file);
            std::fs::rename(&self.tmp, &self.dest).map_err(|e| WriteError::new("renaming into place", &self.dest, e))
        })();
        if result.is_err() {
            // The writer is gone, so drop would not remove it: nothing half-written stays behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
        result?;
        sync_folder(&self.dest);
        Ok(())
    }

    /// Gives up: the temporary file is removed and the destination left as it was.
    pub fn abandon(mut self) {
        self.remove_temp();
    }

    fn remove_temp(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }

    fn io_error(&self, e: std::io::Error) -> std::io::Error {
        // Keep the io::Error type (Write's contract) but name the file in its message: the
        // destination (the temporary name means nothing to a user, and is removed on drop).
        let shown = if self.dest.as_os_str().is_empty() { &self.tmp } else { &self.dest };
        let named = WriteError::new("writing", shown, e);
        std::io::Error::new(named.source.kind(), named.to_string())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self.writer.as_mut().expect("an uncommitted file has its writer");
        match w.write(buf) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let w = self.writer.as_mut().expect("an uncommitted file has its writer");
        match w.write_all(buf) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let w = self.writer.as_mut().expect("an uncommitted file has its writer");
        match w.flush() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error(e)),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        self.remove_temp();
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut f = AtomicFile::create(dest)?;
    if let Err(e) = f.write_all(bytes) {
        f.abandon();
        return Err(WriteError::new("writing", dest, e));
    }
    f.commit()
}

/// `<dir>/.modelcall-tmp.<name>.<pid>`: in the destination's folder (so the rename never
/// crosses file systems), recognisable, and distinct per process.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    dest.with_file_name(format!("{TEMP_PREFIX}{name}.{}", std::process::id()))
}

/// A scratch folder beside `dest`, named like a temp file so a sweep removes it after a kill.
pub fn scratch_dir_for(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    dest.with_file_name(format!("{TEMP_PREFIX}{name}.scratch.{}", std::process::id()))
}

fn sync_folder(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Removes temporary files and scratch folders under `dir` (recursively) left by processes that
/// are no longer running; those of live processes (another run, this one) are kept. Returns how
/// many were removed.
pub fn sweep_temp_files(dir: &Path) -> usize {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let Some(rest) = name.strip_prefix(TEMP_PREFIX) {
            let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !process_alive(p)) {
                let ok = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if ok.is_ok() {
                    removed += 1;
                }
            }
        } else if is_dir {
            removed += sweep_temp_files(&path);
        }
    }
    removed
}

/// Whether a process with this pid runs on this machine.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_puts_the_file_in_place_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.jsonl");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"a\n").unwrap();
        assert!(!dest.exists(), "nothing under the real name before commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a\n");

        let mut g = AtomicFile::create(&dest).unwrap();
        g.write_all(b"partial").unwrap();
        drop(g);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a\n", "an uncommitted write never replaces the file");
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn sweep_removes_temp_files_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7fff_fff0 does not exist on any ordinary machine.
        let dead = dir.path().join(format!("{TEMP_PREFIX}x.jsonl.2147483632"));
        let dead_dir = dir.path().join(format!(".modelcall/{TEMP_PREFIX}y.scratch.2147483632"));
        let live = dir.path().join(format!("{TEMP_PREFIX}z.jsonl.{}", std::process::id()));
        std::fs::write(&dead, "x").unwrap();
        std::fs::create_dir_all(&dead_dir).unwrap();
        std::fs::write(&live, "z").unwrap();
        assert_eq!(sweep_temp_files(dir.path()), 2);
        assert!(!dead.exists() && !dead_dir.exists() && live.exists());
    }

    #[test]
    fn a_full_disk_names_the_file_and_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let err = WriteError::new("writing", &dir.path().join("out.parquet"), std::io::Error::from_raw_os_error(28));
        let text = err.to_string();
        assert!(text.contains("out.parquet") && text.contains("bytes free on that file system"), "{text}");
    }

    #[test]
    fn a_failed_commit_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The destination is a folder: the rename fails after the temp file was written.
        let dest = dir.path().join("taken");
        std::fs::create_dir_all(dest.join("inside")).unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"x").unwrap();
        let err = f.commit().expect_err("renaming over a non-empty folder fails");
        assert!(err.to_string().contains("taken"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "only the folder: {left:?}");
    }

    #[test]
    fn errors_name_the_file() {
        let err = AtomicFile::create(Path::new("/proc/definitely/not/here.jsonl")).err().unwrap();
        assert!(err.to_string().contains("/proc/definitely/not"), "{err}");
    }
}
