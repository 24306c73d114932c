//! `modelcall status` on any output folder (issue 20 item 6): an unsharded run finished,
//! interrupted (killed with SIGKILL: a stale lock) or still running, given the task file or the
//! folder; per unit done / failed / remaining, running or not, last progress, tokens; no model
//! key needed (nor for `merge` and `report`); and what a scheduler CLI on PATH says of each shard.

mod common;

use common::{write_records, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn modelcall(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("SOME_UNSET_VAR").stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The `all` row of the unit table: (done, failed, remaining, total).
fn all_row(out: &str) -> (u64, u64, String, String) {
    let line = out.lines().find(|l| l.starts_with("all ")).unwrap_or_else(|| panic!("no `all` row in:\n{out}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].to_string(), f[4].to_string())
}

/// A scoring task whose model config's key is `${SOME_UNSET_VAR}`.
fn keyless_task(s: &Scratch, base_url: &str, concurrency: usize) -> PathBuf {
    let model = s.write(
        "model.yaml",
        format!(
            "client_config:\n  base_url: \"{base_url}\"\n  api_key: \"${{SOME_UNSET_VAR}}\"\n  timeout: 5\n  max_retries: 0\nchat_config:\n  model: \"m\"\n"
        )
        .as_bytes(),
    );
    s.scoring_task_for(&model, concurrency, "", "")
}

/// `run-task` with the key variable set (the run needs it; status must not).
fn spawn_run(task: &Path, extra: &[&str]) -> Child {
    Command::new(bin())
        .arg("run-task")
        .arg(task)
        .arg("--no-progress")
        .args(extra)
        .env("SOME_UNSET_VAR", "sk-test-1234")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal_lines(s: &Scratch) -> usize {
    std::fs::read_to_string(s.path("out/.modelcall/data.journal.jsonl")).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn a_finished_unsharded_run_by_task_and_by_folder_without_the_key() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 60);
    write_records(&s.path("input/more.jsonl"), 25);
    let task = keyless_task(&s, "sim://?fault=malformed:0.2&seed=7", 8);
    let o = spawn_run(&task, &[]).wait_with_output().unwrap();
    assert!(o.status.code() == Some(3) || o.status.success(), "{o:?}");

    let out_dir = s.path("out");
    for target in [task.to_str().unwrap(), out_dir.to_str().unwrap()] {
        let o = modelcall(&["status", target]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "status {target}:\n{t}");
        assert!(t.contains("state: completed (not running)"), "{t}");
        let (done, failed, remaining, total) = all_row(&t);
        assert!(failed > 0 && done > 0, "{t}");
        assert_eq!(done + failed, 85, "{t}");
        assert_eq!((remaining.as_str(), total.as_str()), ("0", "85"), "{t}");
        assert!(t.lines().any(|l| l.starts_with("data ") && l.split_whitespace().nth(4) == Some("60")), "per unit:\n{t}");
        assert!(t.lines().any(|l| l.starts_with("more ") && l.split_whitespace().nth(4) == Some("25")), "per unit:\n{t}");
        assert!(t.contains("last progress: 20"), "{t}");
        assert!(t.contains("spent: 85 request(s)") && t.contains(" tokens ("), "{t}");
        assert!(!t.contains("SOME_UNSET_VAR"), "{t}");
    }
    // report reads only the folder, and needs no key either.
    let o = modelcall(&["report", out_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn an_interrupted_run_shows_what_remains_and_is_not_running() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 2000);
    let task = keyless_task(&s, "sim://?latency_ms=200", 4);
    let mut child = spawn_run(&task, &[]);
    wait_for("the first results in the journal", Duration::from_secs(20), || journal_lines(&s) > 0);
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL: the lock and a `running` run record stay behind
    child.wait().unwrap();
    assert!(s.path("out/.modelcall/run.lock").exists(), "a killed run leaves its lock");

    for target in [task.to_str().unwrap(), s.path("out").to_str().unwrap()] {
        let o = modelcall(&["status", target]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "an unfinished run is not complete:\n{t}");
        assert!(t.contains("state: interrupted (not running)"), "{t}");
        let (done, _, remaining, total) = all_row(&t);
        let remaining: u64 = remaining.parse().unwrap();
        assert!(done > 0 && remaining > 0, "{t}");
        assert_eq!(total, "2000", "{t}");
        assert!(t.contains("last progress: 20"), "{t}");
        assert!(t.contains("spent: ") && !t.contains("nothing recorded"), "{t}");
        assert!(t.contains("run the task again"), "{t}");
    }
}

#[test]
fn a_running_run_is_shown_running() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 2000);
    let task = keyless_task(&s, "sim://?latency_ms=200", 4);
    let mut child = spawn_run(&task, &[]);
    wait_for("the first results in the journal", Duration::from_secs(20), || journal_lines(&s) > 0);
    let o = modelcall(&["status", s.path("out").to_str().unwrap()]);
    let alive = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    let t = text(&o);
    assert!(alive, "the run ended before status was asked");
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("state: running (lock held by pid "), "{t}");
    assert!(t.contains("heartbeat "), "{t}");
    assert!(t.contains("the run is still going"), "{t}");
}

/// A sharded run with the key unset: status and merge work; a Slurm CLI on PATH is asked for each
/// shard's state, and one that hangs is cut off.
#[test]
fn sharded_status_and_merge_without_the_key_and_the_schedulers_word() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 300);
    let task = keyless_task(&s, "sim://", 16);
    for i in 0..2 {
        let o = spawn_run(&task, &["--shard", &format!("{i}/2")]).wait_with_output().unwrap();
        assert!(o.status.success(), "shard {i}: {o:?}");
    }
    s.write("out/.modelcall/submit/slurm.sbatch", b"#!/bin/bash\n#SBATCH --job-name=modelcall-e2e\n#SBATCH --array=0-1%2\n");
    let bin_dir = s.path("fakebin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let script = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = bin_dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("sacct", "case \"$*\" in *--name=modelcall-e2e*) printf '77_0|COMPLETED\\n77_1|CANCELLED by 0\\n' ;; esac");
    script("squeue", "case \"$*\" in *--name=modelcall-e2e*) printf '78_1|RUNNING\\n' ;; esac");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let status = |path: &str| Command::new(bin()).args(["status", task.to_str().unwrap()]).env("PATH", path).env_remove("SOME_UNSET_VAR").output().unwrap();

    let o = status(&path);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("scheduler: slurm job modelcall-e2e"), "{t}");
    let row = |shard: &str| t.lines().find(|l| l.starts_with(shard)).unwrap_or_else(|| panic!("no row {shard}:\n{t}")).to_string();
    assert!(row("0/2 ").contains("completed") && row("0/2 ").ends_with("COMPLETED"), "{t}");
    assert!(row("1/2 ").ends_with("RUNNING"), "squeue's newer job wins:\n{t}");
    let (done, failed, remaining, total) = all_row(&t);
    assert_eq!((done, failed, remaining.as_str(), total.as_str()), (300, 0, "0", "300"), "{t}");

    // No scheduler CLI on PATH (an empty folder: this machine may have a real Slurm in /usr/bin):
    // nothing said.
    let empty_bin = s.path("emptybin");
    std::fs::create_dir_all(&empty_bin).unwrap();
    let o = status(empty_bin.to_str().unwrap());
    assert!(o.status.success() && !text(&o).contains("scheduler"), "{}", text(&o));

    // A hanging squeue is cut off after 5 s.
    script("squeue", "sleep 30");
    let start = Instant::now();
    let o = status(&path);
    assert!(start.elapsed() < Duration::from_secs(15), "{:?}", start.elapsed());
    assert!(text(&o).contains("squeue: no answer within 5 s"), "{}", text(&o));

    let o = modelcall(&["merge", task.to_str().unwrap()]);
    assert!(o.status.success(), "merge without the key:\n{}", text(&o));
    let o = modelcall(&["report", s.path("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A run submitted as several arrays (`.modelcall/submit/jobs.jsonl`: array task a of job 91
/// runs shard a + 2): Slurm's `91_0` is shard 2, for the scheduler column and for the log
/// `logs/shard-91_0.err`, whose path and last error line `status` prints while the shard is not
/// complete and not queued; the merge job's state and reason are shown; `status --wait` returns
/// once the last shard completes.
#[test]
fn shard_logs_and_states_follow_the_array_offsets_and_wait_returns_when_complete() {
    let s = Scratch::new();
    write_records(&s.path("input/data.jsonl"), 300);
    let task = keyless_task(&s, "sim://", 16);
    for i in 0..2 {
        let o = spawn_run(&task, &["--shard", &format!("{i}/3")]).wait_with_output().unwrap();
        assert!(o.status.success(), "shard {i}: {o:?}");
    }
    s.write("out/.modelcall/submit/slurm.sbatch", b"#!/bin/bash\n#SBATCH --job-name=modelcall-e2e\n#SBATCH --array=0-1%2\n");
    s.write(
        "out/.modelcall/submit/jobs.jsonl",
        b"{\"job\":\"90\",\"kind\":\"shards\",\"offset\":0,\"shards\":[0,1]}\n{\"job\":\"91\",\"kind\":\"shards\",\"offset\":2,\"shards\":[2]}\n{\"job\":\"92\",\"kind\":\"merge\",\"after\":[\"90\",\"91\"]}\n",
    );
    s.write("out/.modelcall/logs/shard-90_0.err", b"modelcall: shard 0/3\n");
    s.write("out/.modelcall/logs/shard-91_0.err", b"modelcall: shard 2/3, Slurm job 91_0\nerror: the endpoint refused the key (401)\nbye\n");
    let bin_dir = s.path("fakebin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let script = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = bin_dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("squeue", "case \"$*\" in *'-j 92'*) printf 'PENDING|Dependency\\n' ;; esac");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let status = |extra: &[&str]| {
        Command::new(bin()).arg("status").arg(&task).args(extra).env("PATH", &path).env_remove("SOME_UNSET_VAR").stdin(Stdio::null()).output().unwrap()
    };

    let o = status(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let log = s.path("out/.modelcall/logs/shard-91_0.err");
    let after_row: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("2/3 ")).take(3).collect();
    assert_eq!(after_row.get(1).map(|l| l.trim()), Some(format!("log: {}", log.display()).as_str()), "{t}");
    assert_eq!(after_row.get(2).map(|l| l.trim()), Some("last error: error: the endpoint refused the key (401)"), "{t}");
    assert_eq!(t.matches("log: ").count(), 1, "only the unfinished shard's log:\n{t}");
    assert!(t.contains("merge job: 92 PENDING (Dependency)"), "{t}");

    // Queued again (array task 0 of job 91 = shard 2): its state and reason, no log.
    script("squeue", "case \"$*\" in *--name=modelcall-e2e*) printf '91_0|PENDING|Priority\\n' ;; *'-j 92'*) printf 'PENDING|Dependency\\n' ;; esac");
    let o = status(&[]);
    let t = text(&o);
    let row = t.lines().find(|l| l.starts_with("2/3 ")).unwrap_or_else(|| panic!("{t}"));
    assert!(row.ends_with("PENDING (Priority)"), "{t}");
    assert!(!t.contains("log: "), "{t}");

    // --wait: still waiting while shard 2 has not run, back with exit 0 once it has.
    let mut waiting = Command::new(bin())
        .arg("status")
        .arg(&task)
        .args(["--wait", "--every", "1"])
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(waiting.try_wait().unwrap().is_none(), "--wait returned before shard 2 ran");
    let o = spawn_run(&task, &["--shard", "2/3"]).wait_with_output().unwrap();
    assert!(o.status.success(), "shard 2: {o:?}");
    let start = Instant::now();
    let done = loop {
        if let Some(st) = waiting.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "--wait did not return after the last shard completed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = waiting.wait_with_output().unwrap();
    assert!(done.success(), "{}", text(&out));
    assert!(text(&out).contains("every shard completed"), "{}", text(&out));
}
