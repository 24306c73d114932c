//! The output-folder lock: one run per folder, stale locks of dead runs taken over.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use modelcall_io::lock::hostname;
use modelcall_io::{LockError, OutputLock};

/// A pid no process has (above any `pid_max`, still a positive `pid_t`).
const DEAD_PID: u32 = 2_147_483_632;

fn lock_path(folder: &Path) -> PathBuf {
    folder.join(".modelcall").join("run.lock")
}

fn write_lock(folder: &Path, pid: u32, host: &str) -> PathBuf {
    let path = lock_path(folder);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let json = serde_json::json!({
        "pid": pid,
        "host": host,
        "started_at": "2026-12-01T15:00:00Z",
        "command": "modelcall run-task x.yaml",
    });
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

fn lock_dir_names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder.join(".modelcall")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn lock_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn assert_held_by(err: LockError, want_pid: Option<u32>) -> String {
    match &err {
        LockError::Held { pid, .. } => assert_eq!(*pid, want_pid, "{err}"),
        other => panic!("expected Held, got {other:?}"),
    }
    err.to_string()
}

#[test]
fn second_acquire_is_held_naming_the_pid_and_drop_releases() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let lock = OutputLock::acquire(&out).unwrap();
    assert_eq!(lock.path(), lock_path(&out));

    let json = lock_json(lock.path());
    assert_eq!(json["pid"], std::process::id());
    assert_eq!(json["host"], hostname());
    let started = json["started_at"].as_str().unwrap();
    assert!(started.len() == 20 && started.ends_with('Z') && &started[10..11] == "T", "{started}");
    assert!(!json["command"].as_str().unwrap().is_empty());

    let msg = assert_held_by(OutputLock::acquire(&out).unwrap_err(), Some(std::process::id()));
    assert!(msg.contains(&format!("pid {} on host {}", std::process::id(), hostname())), "{msg}");
    assert!(msg.contains(&out.display().to_string()), "{msg}");
    assert!(msg.contains(&lock_path(&out).display().to_string()), "{msg}");
    assert!(lock.path().exists(), "a refused acquire leaves the holder's lock alone");

    drop(lock);
    assert!(!lock_path(&out).exists(), "drop removes the lock file");
    let again = OutputLock::acquire(&out).unwrap();
    drop(again);
    assert!(!lock_path(&out).exists());
}

#[test]
fn drop_leaves_a_lock_that_is_no_longer_ours() {
    let dir = tempfile::tempdir().unwrap();
    let lock = OutputLock::acquire(dir.path()).unwrap();
    // Removed by hand, then taken by another run.
    let path = write_lock(dir.path(), 4242, "elsewhere");
    drop(lock);
    assert_eq!(lock_json(&path)["pid"], 4242);
}

#[test]
fn a_dead_pid_on_this_host_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    write_lock(dir.path(), DEAD_PID, &hostname());
    let lock = OutputLock::acquire(dir.path()).unwrap();
    assert_eq!(lock_json(lock.path())["pid"], std::process::id());
    assert_eq!(lock_dir_names(dir.path()), ["run.lock"], "no stale copies nor the takeover file left aside");
}

#[test]
fn a_lock_of_another_host_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_lock(dir.path(), DEAD_PID, "some-other-host.example");
    let msg = assert_held_by(OutputLock::acquire(dir.path()).unwrap_err(), Some(DEAD_PID));
    assert!(
        msg.contains(&format!(
            "another modelcall run (pid {DEAD_PID} on host some-other-host.example, started 2026-12-01T15:00:00Z: `modelcall run-task x.yaml`) is writing to {}; wait for it to end, or stop it. If it is not running any more, remove {}",
            dir.path().display(),
            path.display()
        )),
        "{msg}"
    );
    assert_eq!(lock_json(&path)["pid"], DEAD_PID, "untouched");
}

#[test]
fn a_lock_of_another_host_without_a_heartbeat_for_30s_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_lock(dir.path(), DEAD_PID, "some-other-host.example");
    let age = |secs| {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs)).unwrap();
    };
    age(20); // two missed beats: maybe a slow file system, still held
    let msg = assert_held_by(OutputLock::acquire(dir.path()).unwrap_err(), Some(DEAD_PID));
    assert!(msg.contains("last heartbeat was 20s ago") || msg.contains("last heartbeat was 21s ago"), "{msg}");
    age(40);
    let lock = OutputLock::acquire(dir.path()).unwrap();
    assert_eq!(lock_json(lock.path())["pid"], std::process::id());
    assert!(OutputLock::is_held(dir.path(), "run.lock"));
}

#[test]
fn a_garbled_fresh_lock_is_held_and_an_old_one_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"pid\": 12").unwrap();
    let msg = assert_held_by(OutputLock::acquire(dir.path()).unwrap_err(), None);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"pid\": 12", "untouched");

    // The same file two minutes old: its writer died before finishing it.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(120)).unwrap();
    drop(f);
    let lock = OutputLock::acquire(dir.path()).unwrap();
    assert_eq!(lock_json(lock.path())["pid"], std::process::id());
}

#[test]
fn a_live_other_process_holds_and_its_lock_is_taken_over_once_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id();
    write_lock(dir.path(), pid, &hostname());

    let msg = assert_held_by(OutputLock::acquire(dir.path()).unwrap_err(), Some(pid));
    assert!(msg.contains(&format!("pid {pid} ")), "{msg}");

    child.kill().unwrap();
    child.wait().unwrap(); // reaped: the pid no longer exists
    let lock = OutputLock::acquire(dir.path()).unwrap();
    assert_eq!(lock_json(lock.path())["pid"], std::process::id());
}

#[test]
fn racing_takeovers_of_one_stale_lock_leave_exactly_one_holder() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        write_lock(dir.path(), DEAD_PID, &hostname());
        let barrier = std::sync::Barrier::new(6);
        let wins: Vec<OutputLock> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        match OutputLock::acquire(dir.path()) {
                            Ok(lock) => Some(lock),
                            Err(LockError::Held { .. }) => None,
                            Err(e) => panic!("{e}"),
                        }
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(wins.len(), 1, "exactly one run holds the folder");
        assert_eq!(lock_json(wins[0].path())["pid"], std::process::id());
        assert_eq!(lock_dir_names(dir.path()), ["run.lock"]);
    }
}
