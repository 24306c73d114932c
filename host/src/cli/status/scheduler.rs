//! The scheduler's word on each shard of a submitted run: Slurm (`squeue`, `sacct`) for a folder
//! with `.modelcall/submit/slurm.sbatch`, Kubernetes (`kubectl get pods`) for one with
//! `.modelcall/submit/job.yaml`. Asked only when the CLI is on PATH, each call bounded by
//! [`ASK_TIMEOUT`]; without the CLI nothing is said.
//!
//! Slurm names array tasks `JOBID_INDEX`; a run of more shards than the cluster's
//! `MaxArraySize` is several arrays, each with an offset, recorded by `submit` in
//! `.modelcall/submit/jobs.jsonl`: shard = index + the offset of its job (0 for a job not
//! recorded there, e.g. an array submitted by hand). The same map finds each shard's logs
//! (`logs/shard-JOBID_INDEX.err`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::scheduler_cli::find_on_path;

/// How long one scheduler command may take.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the scheduler says: per shard index its state, and a note when asking failed.
#[derive(Debug, Default)]
pub struct SchedulerView {
    /// `slurm job modelcall-x` / `kubernetes job modelcall-x`.
    pub what: String,
    pub shards: BTreeMap<u32, String>,
    pub note: Option<String>,
    /// The merge job submitted with `submit --merge`, and its state: `(job id, state)`.
    pub merge: Option<(String, String)>,
}

/// A job `submit` recorded in `.modelcall/submit/jobs.jsonl`.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub id: u64,
    pub merge: bool,
    /// Array task a of this job runs shard a + offset.
    pub offset: u32,
}

/// The jobs `submit` recorded for `folder`, in submission order.
pub fn jobs(folder: &Path) -> Vec<Job> {
    let path = folder.join(".modelcall").join("submit").join("jobs.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some(Job { id: v["job"].as_str()?.parse().ok()?, merge: v["kind"] == "merge", offset: v["offset"].as_u64().unwrap_or(0) as u32 }))
        .collect()
}

/// The offset of each recorded array job.
fn offsets(folder: &Path) -> BTreeMap<u64, u32> {
    jobs(folder).into_iter().filter(|j| !j.merge).map(|j| (j.id, j.offset)).collect()
}

/// A Slurm or Kubernetes state in which the shard is still to run or running.
pub fn under_way(state: &str) -> bool {
    let word = state.split_whitespace().next().unwrap_or("");
    matches!(
        word,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" | "SUSPENDED" | "Pending" | "Running"
    )
}

/// The newest log of each shard in `folder`'s log folder: `shard-JOBID_INDEX.err` (mapped to
/// shards by [`jobs`]) or `shard-INDEX.err` (scripts written before job ids were in the names).
pub fn shard_logs(folder: &Path) -> BTreeMap<u32, std::path::PathBuf> {
    let offsets = offsets(folder);
    let mut best: BTreeMap<u32, (u64, std::path::PathBuf)> = BTreeMap::new();
    let dir = folder.join(".modelcall").join("logs");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix("shard-").and_then(|n| n.strip_suffix(".err")) else { continue };
        let (job, shard) = match stem.split_once('_') {
            Some((job, index)) => {
                let (Ok(job), Ok(index)) = (job.parse::<u64>(), index.parse::<u32>()) else { continue };
                (job, index + offsets.get(&job).copied().unwrap_or(0))
            }
            None => match stem.parse::<u32>() {
                Ok(i) => (0, i),
                Err(_) => continue,
            },
        };
        if best.get(&shard).is_none_or(|(j, _)| *j <= job) {
            best.insert(shard, (job, entry.path()));
        }
    }
    best.into_iter().map(|(i, (_, p))| (i, p)).collect()
}

/// The last line of a log that says what went wrong: the last line naming an error (or a
/// cancellation, a time limit, a kill), else its last non-empty line.
pub fn last_error_line(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    // The tail is enough, and a log of many runs appended stays cheap to read.
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let telling = |l: &&&str| {
        let lower = l.to_lowercase();
        ["error", "cancelled", "due to time limit", "killed", "panicked", "oom"].iter().any(|w| lower.contains(w))
    };
    lines.iter().rev().find(telling).or(lines.last()).map(|l| l.chars().take(300).collect())
}

/// The shards Slurm or Kubernetes still has queued or running for `folder` (empty when no
/// scheduler CLI answers): `submit --resume` leaves them alone.
pub fn queued_shards(folder: &Path) -> std::collections::BTreeSet<u32> {
    ask(folder).map(|v| v.shards.into_iter().filter(|(_, s)| under_way(s)).map(|(i, _)| i).collect()).unwrap_or_default()
}

/// The scheduler's view of the shards of `folder`, when it was submitted there and the CLI is present.
pub fn ask(folder: &Path) -> Option<SchedulerView> {
    let submit = folder.join(".modelcall").join("submit");
    if let Ok(script) = std::fs::read_to_string(submit.join("slurm.sbatch")) {
        let name = script.lines().find_map(|l| l.trim().strip_prefix("#SBATCH --job-name="))?.trim().to_string();
        let since = std::fs::metadata(submit.join("slurm.sbatch")).and_then(|m| m.modified()).ok();
        return slurm(folder, &name, since);
    }
    if let Ok(text) = std::fs::read_to_string(submit.join("job.yaml")) {
        // The shards' Job is the first document (a merge Job may follow it).
        use serde::Deserialize;
        let job = Value::deserialize(serde_yaml::Deserializer::from_str(&text).next()?).ok()?;
        let name = job["metadata"]["name"].as_str()?.to_string();
        // A resumed Job's index k runs the k-th shard its MODELCALL_SHARD_INDICES lists.
        let listed = job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| e["name"] == "MODELCALL_SHARD_INDICES"))
            .and_then(|e| e["value"].as_str())
            .and_then(modelcall_config::shard::parse_index_list);
        return kubernetes(&name, job["metadata"]["namespace"].as_str(), listed.as_deref());
    }
    None
}

fn slurm(folder: &Path, name: &str, since: Option<std::time::SystemTime>) -> Option<SchedulerView> {
    let squeue = find_on_path("squeue");
    let sacct = find_on_path("sacct");
    if squeue.is_none() && sacct.is_none() {
        return None;
    }
    let mut view = SchedulerView { what: format!("slurm job {name}"), ..Default::default() };
    let mut notes = Vec::new();
    let offsets = offsets(folder);
    let merge_job = jobs(folder).into_iter().rfind(|j| j.merge);
    let mut merge_state: Option<String> = None;
    // sacct first (finished and running array tasks since the script was written), then squeue
    // (live ones, newest word): later lines win.
    if let Some(sacct) = sacct {
        let start = since.map(|t| chrono::DateTime::<chrono::Local>::from(t).format("%Y-%m-%dT%H:%M:%S").to_string()).unwrap_or_else(|| "now-7days".into());
        let name_arg = format!("--name={name}");
        let start_arg = format!("--starttime={start}");
        match run_bounded(&sacct, &["--noheader", "--parsable2", "--allocations", &name_arg, &start_arg, "--format=JobID,State"]) {
            Ok(out) => slurm_lines(&out, &offsets, &mut view.shards),
            Err(e) => notes.push(format!("sacct: {e}")),
        }
        if let Some(m) = &merge_job {
            let id = m.id.to_string();
            if let Ok(out) = run_bounded(&sacct, &["--noheader", "--parsable2", "--allocations", "-j", &id, "--format=State"]) {
                merge_state = out.lines().next().map(|l| l.trim().to_string()).filter(|s| !s.is_empty());
            }
        }
    }
    if let Some(squeue) = squeue {
        let name_arg = format!("--name={name}");
        // `%r`: why a task waits (Resources, Priority, Dependency, JobArrayTaskLimit …).
        match run_bounded(&squeue, &["--noheader", &name_arg, "--format=%i|%T|%r"]) {
            Ok(out) => slurm_lines(&out, &offsets, &mut view.shards),
            Err(e) => notes.push(format!("squeue: {e}")),
        }
        if let Some(m) = &merge_job {
            let id = m.id.to_string();
            if let Ok(out) = run_bounded(&squeue, &["--noheader", "-j", &id, "--format=%T|%r"]) {
                if let Some(line) = out.lines().next().filter(|l| !l.trim().is_empty()) {
                    merge_state = Some(state_with_reason(line));
                }
            }
        }
    }
    if let Some(m) = merge_job {
        view.merge = Some((m.id.to_string(), merge_state.unwrap_or_else(|| "not known to Slurm".into())));
    }
    view.note = (!notes.is_empty()).then(|| notes.join("; "));
    Some(view)
}

/// `PENDING|Dependency` → `PENDING (Dependency)`; `RUNNING|None` → `RUNNING`.
fn state_with_reason(fields: &str) -> String {
    let mut parts = fields.trim().split('|');
    let state = parts.next().unwrap_or("").split_whitespace().next().unwrap_or("").to_string();
    match parts.next().map(str::trim) {
        Some(r) if !r.is_empty() && r != "None" => format!("{state} ({r})"),
        _ => state,
    }
}

/// `JOBID_INDEX|STATE[|REASON]` or `JOBID_[a-b,c%p]|STATE[|REASON]` lines into states per
/// shard (array index + the job's offset).
fn slurm_lines(out: &str, offsets: &BTreeMap<u64, u32>, shards: &mut BTreeMap<u32, String>) {
    let mut lines: Vec<(u64, Vec<u32>, String)> = Vec::new();
    // Slurm job ids only grow: a job of the same name older than the first one `submit`
    // recorded here belongs to another folder (or an earlier run) and says nothing of these shards.
    let first = offsets.keys().next().copied().unwrap_or(0);
    for line in out.lines() {
        let Some((id, state)) = line.trim().split_once('|') else { continue };
        let Some((job, index)) = id.split_once('_') else { continue };
        let job: u64 = job.parse().unwrap_or(0);
        if job < first {
            continue;
        }
        let offset = offsets.get(&job).copied().unwrap_or(0);
        let indices = array_indices(index).into_iter().map(|i| i + offset).collect();
        lines.push((job, indices, state_with_reason(state)));
    }
    // The newest job (a resubmitted shard) has the last word.
    lines.sort_by_key(|l| l.0);
    for (_, indices, state) in lines {
        for i in indices {
            shards.insert(i, state.clone());
        }
    }
}

/// `4` → [4]; `[0-3,7%2]` → [0, 1, 2, 3, 7].
fn array_indices(text: &str) -> Vec<u32> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    let text = text.split('%').next().unwrap_or(text);
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(100_000)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

fn kubernetes(name: &str, namespace: Option<&str>, listed: Option<&[u32]>) -> Option<SchedulerView> {
    let kubectl = find_on_path("kubectl")?;
    let mut view = SchedulerView { what: format!("kubernetes job {name}"), ..Default::default() };
    let selector = format!("job-name={name}");
    let mut args = vec!["get", "pods", "-l", &selector, "-o", "json"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    match run_bounded(&kubectl, &args).and_then(|out| serde_json::from_str::<Value>(&out).map_err(|e| format!("unreadable answer: {e}"))) {
        Ok(pods) => {
            let mut items: Vec<&Value> = pods["items"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
            items.sort_by_key(|p| p["metadata"]["creationTimestamp"].as_str().unwrap_or("").to_string());
            for pod in items {
                let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().and_then(|i| i.parse().ok());
                let shard = index.and_then(|i: u32| match listed {
                    Some(list) => list.get(i as usize).copied(),
                    None => Some(i),
                });
                if let (Some(i), Some(phase)) = (shard, pod["status"]["phase"].as_str()) {
                    view.shards.insert(i, phase.to_string());
                }
            }
        }
        Err(e) => view.note = Some(format!("kubectl: {e}")),
    }
    Some(view)
}

/// Runs `program args`, its stdout if it succeeds within [`ASK_TIMEOUT`].
fn run_bounded(program: &Path, args: &[&str]) -> Result<String, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
    let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + ASK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", ASK_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{status}: {}", stderr.trim()));
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lines() {
        let mut shards = BTreeMap::new();
        let offsets = BTreeMap::from([(12, 0), (16, 1001)]);
        slurm_lines("12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-3%2]|PENDING|JobArrayTaskLimit\n15_1|RUNNING|None\n16_4|FAILED\n", &offsets, &mut shards);
        assert_eq!(shards.get(&0).map(String::as_str), Some("COMPLETED"));
        assert_eq!(shards.get(&1).map(String::as_str), Some("RUNNING"));
        assert_eq!(shards.get(&3).map(String::as_str), Some("PENDING (JobArrayTaskLimit)"));
        assert_eq!(shards.get(&1005).map(String::as_str), Some("FAILED"));
        assert_eq!(shards.get(&4), None);
        // An older job of the same name (another folder) is not these shards.
        slurm_lines("11_2|FAILED\n", &offsets, &mut shards);
        assert_eq!(shards.get(&2).map(String::as_str), Some("PENDING (JobArrayTaskLimit)"));
        assert_eq!(array_indices("[0-2,5]"), vec![0, 1, 2, 5]);
    }
}
