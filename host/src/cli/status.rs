//! `modelcall status`: how far each shard of a sharded run is, read from the files the shards
//! write (their journals, summaries and locks), without sending anything.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use modelcall_config::{load_task, Overrides, RunPlan};
use modelcall_io::{KeySet, ShardPlan};
use serde_json::Value;

use super::exit::{exit_code, BadConfig, Finish};
use crate::tasks::shards::{lock_name, RecordOutputs};

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// The task YAML file the shards run.
    pub task: PathBuf,
}

/// One shard as its files tell it.
pub struct ShardState {
    pub index: u32,
    pub count: u32,
    /// Keys whose latest journal entry is a result / a failure.
    pub done: u64,
    pub failed: u64,
    /// Its lock is held by a run that may still be going (a dead process's lock on this
    /// host does not count).
    pub locked: bool,
    /// Its `run_summary.shard-I-of-N.json`, written when it ended.
    pub summary: Option<Value>,
}

impl ShardState {
    /// Ended without being stopped.
    pub fn complete(&self) -> bool {
        !self.locked && self.summary.as_ref().is_some_and(|s| s["status"] == "completed")
    }

    pub fn state(&self) -> &'static str {
        match (&self.summary, self.locked) {
            (_, true) => "running",
            (Some(s), false) if s["status"] == "completed" => "completed",
            (Some(_), false) => "stopped",
            (None, false) if self.done + self.failed > 0 => "stopped",
            (None, false) => "not started",
        }
    }

    pub fn describe(&self) -> String {
        format!("shard {}/{}: {} ({} done, {} failed)", self.index, self.count, self.state(), self.done, self.failed)
    }
}

pub fn run(args: StatusArgs) -> ExitCode {
    exit_code(status(&args), false)
}

fn status(args: &StatusArgs) -> anyhow::Result<Finish> {
    let task = load_task(&args.task, &Overrides::default()).map_err(|e| BadConfig(e.to_string()))?;
    let mut finish = Finish::Done;
    for run in task.expand().map_err(|e| BadConfig(e.to_string()))? {
        let plan = RunPlan::from_task(&run).map_err(|e| BadConfig(e.to_string()))?;
        let outputs = RecordOutputs::of(&run, &plan)?;
        if task.task.distillation.as_ref().is_some_and(|d| matches!(d, modelcall_config::DistillationStep::BatchSubmit(_))) {
            println!("{} ({})", plan.task_name, outputs.folder.display());
        }
        finish = finish.and(folder_status(args, &outputs)?);
    }
    Ok(finish)
}

fn folder_status(args: &StatusArgs, outputs: &RecordOutputs) -> anyhow::Result<Finish> {
    let Some(shard_plan) = ShardPlan::load(&outputs.folder).map_err(|e| BadConfig(e.to_string()))? else {
        return Err(BadConfig(format!("{} has no shard plan (.modelcall/shards.json): no sharded run has started there", outputs.folder.display())).into());
    };
    let states = shard_states(outputs, &shard_plan);
    let bytes = shard_plan.bytes_per_shard();
    println!("{:<8} {:<12} {:>10} {:>10} {:>14}", "shard", "state", "done", "failed", "input bytes");
    for s in &states {
        println!("{:<8} {:<12} {:>10} {:>10} {:>14}", format!("{}/{}", s.index, s.count), s.state(), s.done, s.failed, bytes[s.index as usize]);
    }
    let (done, failed): (u64, u64) = states.iter().fold((0, 0), |(d, f), s| (d + s.done, f + s.failed));
    println!("all      {:<12} {:>10} {:>10}", "", done, failed);
    let unfinished: Vec<String> = states.iter().filter(|s| !s.complete()).map(|s| format!("{}/{} ({})", s.index, s.count, s.state())).collect();
    if unfinished.is_empty() {
        println!("every shard completed; next: modelcall merge {}", args.task.display());
        return Ok(Finish::Done);
    }
    Err(anyhow::anyhow!("{} shard(s) not complete: {}", unfinished.len(), unfinished.join(", ")))
}

/// The state of every shard of `plan`.
pub fn shard_states(outputs: &RecordOutputs, plan: &ShardPlan) -> Vec<ShardState> {
    (0..plan.shards)
        .map(|i| {
            let shard = Some((i, plan.shards));
            let (mut done, mut failed) = (KeySet::default(), KeySet::default());
            for (file, _, _) in plan.pieces_of(i) {
                let journal = outputs.paths(&modelcall_io::input_stem(&file.path), shard).journal;
                read_journal_keys(&journal, &mut done, &mut failed);
            }
            let summary_path = outputs.folder.join(crate::tasks::scoring::summary_name(shard));
            let summary = std::fs::read_to_string(summary_path).ok().and_then(|t| serde_json::from_str(&t).ok());
            let locked = modelcall_io::OutputLock::is_held(&outputs.folder, &lock_name(shard));
            ShardState { index: i, count: plan.shards, done: done.len() as u64, failed: failed.len() as u64, locked, summary }
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct KeyStatus {
    key: String,
    status: modelcall_io::EntryStatus,
}

/// Latest status per key of a journal, read-only (a torn last line is skipped).
fn read_journal_keys(path: &std::path::Path, done: &mut KeySet, failed: &mut KeySet) {
    let Ok(file) = std::fs::File::open(path) else { return };
    for line in std::io::BufReader::new(file).split(b'\n').map_while(Result::ok) {
        let Ok(entry) = serde_json::from_slice::<KeyStatus>(&line) else { continue };
        match entry.status {
            modelcall_io::EntryStatus::Ok => {
                failed.remove(&entry.key);
                done.insert(&entry.key);
            }
            modelcall_io::EntryStatus::Error if !done.contains(&entry.key) => {
                failed.insert(&entry.key);
            }
            modelcall_io::EntryStatus::Error => {}
            modelcall_io::EntryStatus::Retired => {
                done.remove(&entry.key);
                failed.remove(&entry.key);
            }
        }
    }
}
