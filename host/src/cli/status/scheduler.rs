//! The scheduler's word on each shard of a submitted run: Slurm (`squeue`, `sacct`) for a folder
//! with `.modelcall/submit/slurm.sbatch`, Kubernetes (`kubectl get pods`) for one with
//! `.modelcall/submit/job.yaml`. Asked only when the CLI is on PATH, each call bounded by
//! [`ASK_TIMEOUT`]; without the CLI nothing is said.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one scheduler command may take.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the scheduler says: per shard index its state, and a note when asking failed.
#[derive(Debug, Default)]
pub struct SchedulerView {
    /// `slurm job modelcall-x` / `kubernetes job modelcall-x`.
    pub what: String,
    pub shards: BTreeMap<u32, String>,
    pub note: Option<String>,
}

/// The scheduler's view of the shards of `folder`, when it was submitted there and the CLI is present.
pub fn ask(folder: &Path) -> Option<SchedulerView> {
    let submit = folder.join(".modelcall").join("submit");
    if let Ok(script) = std::fs::read_to_string(submit.join("slurm.sbatch")) {
        let name = script.lines().find_map(|l| l.trim().strip_prefix("#SBATCH --job-name="))?.trim().to_string();
        let since = std::fs::metadata(submit.join("slurm.sbatch")).and_then(|m| m.modified()).ok();
        return slurm(&name, since);
    }
    if let Ok(text) = std::fs::read_to_string(submit.join("job.yaml")) {
        let job: Value = serde_yaml::from_str(&text).ok()?;
        let name = job["metadata"]["name"].as_str()?.to_string();
        return kubernetes(&name, job["metadata"]["namespace"].as_str());
    }
    None
}

fn slurm(name: &str, since: Option<std::time::SystemTime>) -> Option<SchedulerView> {
    let squeue = super::super::submit::find_on_path("squeue");
    let sacct = super::super::submit::find_on_path("sacct");
    if squeue.is_none() && sacct.is_none() {
        return None;
    }
    let mut view = SchedulerView { what: format!("slurm job {name}"), ..Default::default() };
    let mut notes = Vec::new();
    // sacct first (finished and running array tasks since the script was written), then squeue
    // (live ones, newest word): later lines win.
    if let Some(sacct) = sacct {
        let start = since.map(|t| chrono::DateTime::<chrono::Local>::from(t).format("%Y-%m-%dT%H:%M:%S").to_string()).unwrap_or_else(|| "now-7days".into());
        let name_arg = format!("--name={name}");
        let start_arg = format!("--starttime={start}");
        match run_bounded(&sacct, &["--noheader", "--parsable2", "--allocations", &name_arg, &start_arg, "--format=JobID,State"]) {
            Ok(out) => slurm_lines(&out, &mut view.shards),
            Err(e) => notes.push(format!("sacct: {e}")),
        }
    }
    if let Some(squeue) = squeue {
        let name_arg = format!("--name={name}");
        match run_bounded(&squeue, &["--noheader", &name_arg, "--format=%i|%T"]) {
            Ok(out) => slurm_lines(&out, &mut view.shards),
            Err(e) => notes.push(format!("squeue: {e}")),
        }
    }
    view.note = (!notes.is_empty()).then(|| notes.join("; "));
    Some(view)
}

/// `JOBID_INDEX|STATE` or `JOBID_[a-b,c%p]|STATE` lines into states per array index.
fn slurm_lines(out: &str, shards: &mut BTreeMap<u32, String>) {
    let mut lines: Vec<(u64, Vec<u32>, String)> = Vec::new();
    for line in out.lines() {
        let Some((id, state)) = line.trim().split_once('|') else { continue };
        let Some((job, index)) = id.split_once('_') else { continue };
        let job: u64 = job.parse().unwrap_or(0);
        let state = state.split_whitespace().next().unwrap_or("").to_string();
        lines.push((job, array_indices(index), state));
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

fn kubernetes(name: &str, namespace: Option<&str>) -> Option<SchedulerView> {
    let kubectl = super::super::submit::find_on_path("kubectl")?;
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
                if let (Some(i), Some(phase)) = (index, pod["status"]["phase"].as_str()) {
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
        slurm_lines("12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-3%2]|PENDING\n15_1|RUNNING\n", &mut shards);
        assert_eq!(shards.get(&0).map(String::as_str), Some("COMPLETED"));
        assert_eq!(shards.get(&1).map(String::as_str), Some("RUNNING"));
        assert_eq!(shards.get(&3).map(String::as_str), Some("PENDING"));
        assert_eq!(array_indices("[0-2,5]"), vec![0, 1, 2, 5]);
    }
}
