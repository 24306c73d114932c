//! End-to-end sharded runs on a real Slurm:
//! - `modelcall submit --scheduler slurm` of a scoring task in 4 shards (each shard starts its
//!   own simulated endpoint, `sim://?latency_ms=50`), one array task cancelled part-way with
//!   `scancel`, `modelcall status` naming it with its log and last error line, then
//!   `submit --resume --merge` submitting that shard alone and the merge after it: the merged
//!   output holds every input record exactly once;
//! - `submit --merge` running a whole task with one command (the merge job waits with
//!   `--dependency=afterok`);
//! - 1,200 shards against the cluster's `MaxArraySize=1001` (.ci/slurm.sh): two arrays, each
//!   task mapped to its shard by the offset `submit` gives the array, all merged.
//!
//! The tests take turns (one lock): they share one small node, and each has its own time budget.
//!
//! Slurm: when `MODELCALL_SLURM_SETUP=1` (CI's `.ci/run` sets it), the test first runs
//! `.ci/slurm.sh`, which installs and starts a one-node cluster when there is none (needs root and
//! apt). Without Slurm the test prints `SKIPPED: <why>` on stderr and passes.

mod common;

use common::{read_jsonl, write_records, Scratch};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SHARDS: u32 = 4;
const RECORDS: usize = 4_000;
/// A test, Slurm's setup and every wait included, stays under this.
const BUDGET: Duration = Duration::from_secs(280);
/// The test of 1,200 shards: 1,200 short processes (about 0.3 CPU-s each in a debug build) on
/// a 2-CPU node: 5 to 8 minutes here.
const MANY_BUDGET: Duration = Duration::from_secs(720);

/// One test at a time on the one node (a failed test poisons nothing: the guard is taken anyway).
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn my_turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Says why the test did not run, straight to the process's stderr: libtest captures `eprintln!`
/// of a passing test (CI runs without `--nocapture`), and a skip must never be silent.
fn skip(reason: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "SKIPPED: slurm_e2e: {reason}");
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A Slurm command, bounded by coreutils `timeout` so a hung controller cannot hang the test.
fn slurm(cmd: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new("timeout").arg("30").arg(cmd).args(args).current_dir(cwd).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// `Ok` when Slurm answers (after running `.ci/slurm.sh` if `MODELCALL_SLURM_SETUP=1`), else why not.
fn slurm_ready() -> Result<(), String> {
    if std::env::var("MODELCALL_SLURM_SETUP").as_deref() == Ok("1") {
        let script = repo_root().join(".ci/slurm.sh");
        let started = Instant::now();
        // The script bounds its own waits (60 s) and apt-get; `timeout` is a last guard.
        let out = Command::new("timeout")
            .args(["600", "bash"])
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", script.display()))?;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("slurm_e2e: {} took {:.1?} ({}):\n{said}", script.display(), started.elapsed(), out.status);
        if !out.status.success() {
            let why = said.lines().find(|l| l.contains("ERROR")).unwrap_or("no ERROR line").trim();
            return Err(format!("{} could not start Slurm ({}): {why}\n{said}", script.display(), out.status));
        }
    } else if !on_path("sbatch") {
        return Err("`sbatch` is not on PATH and MODELCALL_SLURM_SETUP is not 1 \
                    (set it to let the test install and start Slurm with .ci/slurm.sh)"
            .into());
    }
    if !on_path("sbatch") {
        return Err("`sbatch` is still not on PATH".into());
    }
    let ping = slurm("scontrol", &["ping"], Path::new("/"));
    let ping_text = String::from_utf8_lossy(&ping.stdout);
    if !ping.status.success() || !ping_text.contains("is UP") {
        return Err(format!("slurmctld does not answer `scontrol ping`: {}", ping_text.trim()));
    }
    Ok(())
}

/// Cancels what this test submitted when it ends early (a failed assertion), so no array task
/// keeps running into a deleted folder.
struct Cancel(Vec<String>);
impl Drop for Cancel {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.0.is_empty() {
            let _ = Command::new("timeout").arg("30").arg("scancel").args(&self.0).status();
        }
    }
}

/// The scratch folder under /tmp (not a private $TMPDIR), so Slurm's jobs see the same paths.
fn scratch() -> Scratch {
    Scratch { dir: tempfile::Builder::new().prefix("modelcall-slurm-e2e-").tempdir_in("/tmp").unwrap() }
}

impl Scratch {
    /// The scoring task of scoring_e2e.rs: `input/` → `out/`, a sim:// model, jsonl output.
    fn task(&self, sim_url: &str, concurrency: usize, extra: &str) -> PathBuf {
        self.scoring_task(sim_url, concurrency, "", extra)
    }
}

/// The job ids `submit` printed (`submitted Slurm job N`, `submitted Slurm merge job N`), in order.
fn submitted(said: &str) -> Vec<String> {
    said.lines()
        .filter_map(|l| l.strip_prefix("submitted Slurm job ").or_else(|| l.strip_prefix("submitted Slurm merge job ")))
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_digit()).collect::<String>())
        .filter(|id| !id.is_empty())
        .collect()
}

/// `.modelcall/submit/jobs.jsonl`: what `submit` recorded of each job.
fn jobs_file(out: &Path) -> Vec<Value> {
    read_jsonl(&out.join(".modelcall/submit/jobs.jsonl"))
}

/// Every id `r000000`… below `n` exactly once in `rows`.
fn assert_each_once(rows: &[Value], n: usize) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in rows {
        *counts.entry(r["id"].as_str().expect("an id").to_string()).or_insert(0) += 1;
    }
    let dupes: Vec<_> = counts.iter().filter(|(_, &c)| c != 1).take(5).collect();
    assert!(dupes.is_empty(), "records more than once: {dupes:?}");
    let missing: Vec<String> = (0..n).map(|i| format!("r{i:06}")).filter(|id| !counts.contains_key(id)).take(5).collect();
    assert!(missing.is_empty() && counts.len() == n, "{} ids of {n}; missing e.g. {missing:?}", counts.len());
}

fn modelcall(cmd: &str, task: &Path, args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).arg(cmd).arg(task).args(args).current_dir(cwd).stdin(Stdio::null()).output().expect("running modelcall")
}

/// Polls `done` every 200 ms until it holds or `limit` (capped by what is left of the budget) passes.
fn wait_for(what: &str, start: Instant, limit: Duration, diag: &dyn Fn() -> String, done: impl FnMut() -> bool) -> Duration {
    wait_within(BUDGET, what, start, limit, diag, done)
}

fn wait_within(budget: Duration, what: &str, start: Instant, limit: Duration, diag: &dyn Fn() -> String, mut done: impl FnMut() -> bool) -> Duration {
    let began = Instant::now();
    let limit = limit.min(budget.saturating_sub(start.elapsed()));
    loop {
        if done() {
            return began.elapsed();
        }
        if began.elapsed() >= limit {
            panic!("timed out after {:.0?} waiting for {what}\n{}", began.elapsed(), diag());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// True once `squeue -j ID` lists nothing: every task of the job has ended.
fn job_gone(id: &str, cwd: &Path) -> bool {
    let q = slurm("squeue", &["-h", "-j", id, "-o", "%i %T"], cwd);
    let err = String::from_utf8_lossy(&q.stderr);
    (q.status.success() && String::from_utf8_lossy(&q.stdout).trim().is_empty()) || err.contains("Invalid job id")
}

/// What went wrong, for a failed wait: the queue, the shard logs and journals.
fn diagnostics(out: &Path, cwd: &Path) -> String {
    let mut s = String::new();
    let q = slurm("squeue", &["-a", "-o", "%i %T %r %M"], cwd);
    s += &format!("squeue:\n{}\n", String::from_utf8_lossy(&q.stdout));
    for dir in [out.join(".modelcall/logs"), out.join(".modelcall")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            entries.sort();
            for p in entries {
                let body = std::fs::read_to_string(&p).unwrap_or_default();
                let lines: Vec<&str> = body.lines().collect();
                let tail = lines[lines.len().saturating_sub(8)..].join("\n");
                s += &format!("---- {} ({} lines), last lines:\n{tail}\n", p.display(), lines.len());
            }
        }
    }
    s
}

fn journal(out: &Path, i: u32) -> PathBuf {
    out.join(format!(".modelcall/data.shard-{i}-of-{SHARDS}.journal.jsonl"))
}

/// Whether `modelcall status` output names shard `i` (as `i/N`, `shard i` or `shard-i-of-N`).
fn names_shard(status: &str, i: u32) -> bool {
    let lower = status.to_lowercase();
    lower.contains(&format!("{i}/{SHARDS}")) || lower.contains(&format!("shard {i}")) || lower.contains(&format!("shard-{i}-of-{SHARDS}"))
}

#[test]
fn a_cancelled_shard_is_named_by_status_resubmitted_alone_and_merged_once() {
    let _turn = my_turn();
    // The budget counts from here: installing and starting Slurm is part of the 5 minutes.
    let start = Instant::now();
    if let Err(why) = slurm_ready() {
        skip(&why);
        return;
    }
    let s = scratch();
    let dir = s.dir.path().to_path_buf();
    let out = s.path("out");
    std::fs::create_dir_all(&out).unwrap();
    write_records(&s.path("input/data.jsonl"), RECORDS);
    // 1,000 records a shard at 4 requests of 50 ms at once: about 13 s a shard, long enough to
    // cancel one part-way.
    let task = s.task("sim://?latency_ms=50", 4, "");
    let diag = || diagnostics(&out, &dir);
    let mut cancel = Cancel(Vec::new());

    // Submit the array: 4 shards, all may run at once (1 CPU each; the node decides how many do).
    let sub = modelcall(
        "submit",
        &task,
        &["--scheduler", "slurm", "--shards", "4", "--parallel", "4", "--cpus-per-task", "1", "--mem", "1G", "--time", "00:15:00"],
        &dir,
    );
    assert!(sub.status.success(), "submit failed ({}):\n{}", sub.status, text(&sub));
    let sub_out = String::from_utf8_lossy(&sub.stdout).to_string() + &String::from_utf8_lossy(&sub.stderr);
    let job: String = sub_out
        .split("submitted Slurm job ")
        .nth(1)
        .unwrap_or_else(|| panic!("no 'submitted Slurm job <id>' in:\n{}", text(&sub)))
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    assert!(!job.is_empty(), "no job id in:\n{}", text(&sub));
    cancel.0.push(job.clone());
    let script = out.join(".modelcall/submit/slurm.sbatch");
    assert!(script.is_file(), "submit did not keep {}", script.display());
    eprintln!("slurm_e2e: submitted array job {job} at {:.1?}", start.elapsed());

    // Wait until one shard has journaled work, then cancel that array task.
    let mut victim = None;
    let waited = wait_for("a shard journal with records", start, Duration::from_secs(120), &diag, || {
        victim = (0..SHARDS).find(|&i| std::fs::metadata(journal(&out, i)).is_ok_and(|m| m.len() > 0));
        victim.is_some()
    });
    let victim = victim.unwrap();
    let task_id = format!("{job}_{victim}");
    let sc = slurm("scancel", &[&task_id], &dir);
    assert!(sc.status.success(), "scancel {task_id}:\n{}", text(&sc));
    let journaled_at_cancel = read_jsonl(&journal(&out, victim)).len();
    eprintln!("slurm_e2e: shard {victim} journaled after {waited:.1?}; cancelled {task_id} with {journaled_at_cancel} journal lines");

    // The rest of the array runs to its end.
    let waited = wait_for(&format!("job {job} to leave the queue"), start, Duration::from_secs(180), &diag, || job_gone(&job, &dir));
    eprintln!("slurm_e2e: array {job} done {waited:.1?} later (at {:.1?})", start.elapsed());

    // status: not complete, and it says which shard.
    let st = modelcall("status", &task, &[], &dir);
    let st_text = text(&st);
    assert!(!st.status.success(), "status must fail while shard {victim} is not complete:\n{st_text}\n{}", diag());
    assert!(names_shard(&st_text, victim), "status does not name shard {victim}:\n{st_text}");
    eprintln!("slurm_e2e: status with shard {victim} cancelled ({}):\n{st_text}", st.status);
    let journal_lines = read_jsonl(&journal(&out, victim)).len();
    assert!(journal_lines < RECORDS / SHARDS as usize, "shard {victim} was not interrupted ({journal_lines} journal lines)");
    assert!(st_text.contains(&format!("log: {}", out.join(format!(".modelcall/logs/shard-{job}_{victim}.err")).display())), "{st_text}");

    // status shows where that shard's log is and its last error line (Slurm's cancellation).
    let log_line = st_text.lines().find(|l| l.trim_start().starts_with("log: ")).unwrap_or_else(|| panic!("no log line in:\n{st_text}"));
    let log = PathBuf::from(log_line.trim_start().trim_start_matches("log: "));
    assert_eq!(log, out.join(format!(".modelcall/logs/shard-{job}_{victim}.err")), "{st_text}");
    let last_error = st_text.lines().find(|l| l.trim_start().starts_with("last error: ")).unwrap_or_else(|| panic!("no last error in:\n{st_text}"));
    assert!(last_error.contains("CANCELLED"), "{last_error}");

    // `submit --resume --merge`: that shard alone, and the merge once it ends well.
    let re = modelcall(
        "submit",
        &task,
        &["--scheduler", "slurm", "--shards", "4", "--cpus-per-task", "1", "--mem", "1G", "--time", "00:15:00", "--resume", "--merge"],
        &dir,
    );
    let re_text = text(&re);
    assert!(re.status.success(), "submit --resume ({}):\n{re_text}", re.status);
    assert!(re_text.contains(&format!("resuming 1 unfinished shard(s) of 4: {victim} (3 completed)")), "{re_text}");
    let jobs = submitted(&re_text);
    assert_eq!(jobs.len(), 2, "one array and the merge job: {re_text}");
    cancel.0.extend(jobs.iter().cloned());
    let recorded = jobs_file(&out);
    let resumed = recorded.iter().rev().find(|j| j["kind"] == "shards").unwrap();
    assert_eq!(resumed["shards"], serde_json::json!([victim]), "only the unfinished shard: {recorded:?}");
    assert_eq!(resumed["job"], jobs[0].as_str());
    let waited =
        wait_for("the resumed shard and the merge to leave the queue", start, Duration::from_secs(150), &diag, || jobs.iter().all(|j| job_gone(j, &dir)));
    eprintln!("slurm_e2e: shard {victim} resumed as job {} and merged by job {} after {waited:.1?} (at {:.1?})", jobs[0], jobs[1], start.elapsed());
    assert!(out.join(".modelcall/merged.json").is_file(), "the merge job merged:\n{}", diag());
    let merge_log = std::fs::read_to_string(out.join(format!(".modelcall/logs/merge-{}.err", jobs[1]))).unwrap_or_default();
    assert!(merge_log.contains("verified"), "merge log: {merge_log}");

    // status reads the merged folder: complete.
    let st = modelcall("status", &task, &[], &dir);
    assert!(st.status.success(), "status after the merge ({}):\n{}\n{}", st.status, text(&st), diag());

    // Every input id exactly once in the merged output, and the summary counts them all.
    let rows = read_jsonl(&out.join("data.jsonl"));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *counts.entry(r["id"].as_str().expect("an id").to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), RECORDS, "every record is in the merged output ({} rows)", rows.len());
    let dupes: Vec<_> = counts.iter().filter(|(_, &c)| c != 1).take(5).collect();
    assert!(dupes.is_empty(), "records more than once: {dupes:?}");
    for i in 0..RECORDS {
        assert!(counts.contains_key(&format!("r{i:06}")), "r{i:06} missing");
    }
    for r in &rows {
        assert_eq!(r["api_status"], "success", "{r}");
    }
    assert!(read_jsonl(&out.join("data.errors.jsonl")).is_empty(), "no errors");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run_summary.json")).expect("run_summary.json after merge")).expect("run_summary.json is JSON");
    // The merged summary counts what the merged files hold, whatever runs it took.
    let rec = &summary["records"];
    let n = |k: &str| rec[k].as_u64().unwrap_or_else(|| panic!("records.{k} in {summary}"));
    assert_eq!(n("scored"), RECORDS as u64, "the merged outputs hold every record: {summary}");
    assert_eq!(n("seen"), RECORDS as u64, "{summary}");
    assert_eq!(n("failed"), 0, "{summary}");
    assert_eq!(summary["merged_from_shards"], SHARDS, "{summary}");
    eprintln!("slurm_e2e: passed in {:.1?}", start.elapsed());
}

#[test]
fn submit_merge_runs_a_whole_task_with_one_command() {
    let _turn = my_turn();
    let start = Instant::now();
    if let Err(why) = slurm_ready() {
        skip(&why);
        return;
    }
    let s = scratch();
    let dir = s.dir.path().to_path_buf();
    let out = s.path("out");
    write_records(&s.path("input/data.jsonl"), 600);
    let task = s.task("sim://", 8, "");
    let diag = || diagnostics(&out, &dir);
    let mut cancel = Cancel(Vec::new());

    let sub =
        modelcall("submit", &task, &["--scheduler", "slurm", "--shards", "3", "--cpus-per-task", "1", "--mem", "500M", "--time", "00:10:00", "--merge"], &dir);
    let said = text(&sub);
    assert!(sub.status.success(), "submit --merge ({}):\n{said}", sub.status);
    let jobs = submitted(&said);
    assert_eq!(jobs.len(), 2, "the array and the merge job: {said}");
    cancel.0.extend(jobs.iter().cloned());
    assert!(said.contains(&format!("runs `modelcall merge` once job(s) {} end well", jobs[0])), "{said}");
    let merge_script = std::fs::read_to_string(out.join(".modelcall/submit/merge.sbatch")).expect("merge.sbatch is kept");
    assert!(merge_script.contains(" merge "), "{merge_script}");

    // Nothing else is done by hand: the merge job runs after the array.
    let waited = wait_for("the array and the merge job to leave the queue", start, Duration::from_secs(200), &diag, || jobs.iter().all(|j| job_gone(j, &dir)));
    eprintln!("slurm_e2e: submit --merge: jobs {jobs:?} done after {waited:.1?}");
    let marker: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(".modelcall/merged.json")).unwrap_or_else(|_| panic!("not merged:\n{}", diag()))).unwrap();
    assert_eq!(marker["shards"], 3, "{marker}");
    assert_eq!(marker["missing"], 0, "{marker}");
    assert_each_once(&read_jsonl(&out.join("data.jsonl")), 600);
    // The shard logs are named by job and task, and appended to.
    for i in 0..3 {
        let log = out.join(format!(".modelcall/logs/shard-{}_{i}.err", jobs[0]));
        let body = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(body.contains(&format!("modelcall: shard {i}/3, Slurm job {}_{i}", jobs[0])), "{body}");
    }
    let st = modelcall("status", &task, &[], &dir);
    assert!(st.status.success(), "status after the merge job ({}):\n{}", st.status, text(&st));
    assert!(text(&st).contains("state: completed"), "{}", text(&st));
}

#[test]
fn more_shards_than_max_array_size_go_in_several_arrays_and_all_complete() {
    let _turn = my_turn();
    let start = Instant::now();
    if let Err(why) = slurm_ready() {
        skip(&why);
        return;
    }
    const MANY: u32 = 1_200;
    let config = slurm("scontrol", &["show", "config"], Path::new("/"));
    let max: u32 = String::from_utf8_lossy(&config.stdout)
        .lines()
        .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == "MaxArraySize").and_then(|(_, v)| v.trim().parse().ok()))
        .expect("MaxArraySize in scontrol show config");
    if max > MANY {
        skip(&format!("MaxArraySize is {max} here, not below {MANY} (.ci/slurm.sh sets 1001)"));
        return;
    }
    let s = scratch();
    let dir = s.dir.path().to_path_buf();
    let out = s.path("out");
    // One tiny record a shard: the test is about the arrays, not the work.
    write_records(&s.path("input/data.jsonl"), MANY as usize);
    let task = s.task("sim://", 1, "");
    let diag = || diagnostics(&out, &dir);
    let mut cancel = Cancel(Vec::new());

    let shards = MANY.to_string();
    let sub = modelcall(
        "submit",
        &task,
        &["--scheduler", "slurm", "--shards", &shards, "--cpus-per-task", "1", "--mem", "200M", "--time", "00:10:00", "--merge"],
        &dir,
    );
    let said = text(&sub);
    assert!(sub.status.success(), "submit ({}):\n{said}", sub.status);
    let arrays = MANY.div_ceil(max) as usize;
    assert!(said.contains(&format!("stop below {max} (MaxArraySize in `scontrol show config`), so the {MANY} shard(s) go in {arrays} arrays")), "{said}");
    let jobs = submitted(&said);
    assert_eq!(jobs.len(), arrays + 1, "{said}");
    cancel.0.extend(jobs.iter().cloned());
    let recorded: Vec<Value> = jobs_file(&out).into_iter().filter(|j| j["kind"] == "shards").collect();
    let offsets: Vec<u64> = recorded.iter().map(|j| j["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, (0..arrays as u64).map(|k| k * max as u64).collect::<Vec<_>>(), "{recorded:?}");

    let waited =
        wait_within(MANY_BUDGET, "every array and the merge job to leave the queue", start, MANY_BUDGET, &diag, || jobs.iter().all(|j| job_gone(j, &dir)));
    eprintln!("slurm_e2e: {MANY} shards in {arrays} arrays and the merge done after {waited:.1?}");
    let marker: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(".modelcall/merged.json")).unwrap_or_else(|_| panic!("not merged:\n{}", diag()))).unwrap();
    assert_eq!((marker["shards"].as_u64(), marker["missing"].as_u64()), (Some(MANY as u64), Some(0)), "{marker}");
    assert_each_once(&read_jsonl(&out.join("data.jsonl")), MANY as usize);
    // The last array's first task ran the first shard past the limit.
    let log = out.join(format!(".modelcall/logs/shard-{}_0.err", jobs[1]));
    let body = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(body.contains(&format!("modelcall: shard {max}/{MANY}, Slurm job {}_0", jobs[1])), "{body}");
}
