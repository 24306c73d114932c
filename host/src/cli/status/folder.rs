//! What an output folder's own files say about its run, or about each shard of a sharded run:
//! the journals (done / failed per unit, last progress = a journal's last write), the locks
//! (running or not), the run records (spend, and their rewrite every 2 s as a heartbeat) and the
//! summaries. Nothing is written and nothing is sent.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use modelcall_io::ShardPlan;
use modelcall_io::Slice;
use serde_json::Value;

use crate::run_records::Spent;
use crate::tasks::shards::{lock_name, RecordOutputs};

/// A run record not rewritten for this long, under a lock held from another host, is a run that
/// no longer beats (a live run rewrites it every 2 s).
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(60);

/// One unit: an input file (unsharded) or one input's piece(s) in a shard.
#[derive(Debug, Clone, Default)]
pub struct UnitStatus {
    pub name: String,
    /// Records (times samples per record) the unit has, when cheap to count.
    pub total: Option<u64>,
    pub done: u64,
    pub failed: u64,
    /// Of `failed`, those a plain rerun does not send again.
    pub failed_permanently: u64,
    /// When its journal was last written.
    pub last_progress: Option<SystemTime>,
}

impl UnitStatus {
    /// Not yet answered at all (neither done nor failed).
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.done + self.failed))
    }
}

/// An unsharded run, or one shard, as its files tell it.
pub struct ShardState {
    /// `None`: the unsharded run.
    pub shard: Option<(u32, u32)>,
    pub units: Vec<UnitStatus>,
    /// Keys whose latest journal entry is a result / a failure.
    pub done: u64,
    pub failed: u64,
    /// Its lock is held by a run that may still be going (a dead process's lock on this host
    /// does not count).
    pub locked: bool,
    /// Who holds the lock, as its file says (`pid 12 on host h since …`).
    pub holder: Option<String>,
    /// Its `run_summary[.shard-I-of-N].json`, written when it ended.
    pub summary: Option<Value>,
    /// Its latest run record (`.modelcall/runs/…`), and when that was last rewritten.
    pub record: Option<Value>,
    pub heartbeat: Option<SystemTime>,
    /// What its runs spent (every run record of this shard, or of the unsharded run).
    pub spent: Spent,
    /// The scheduler's word on it (Slurm / Kubernetes), when its CLI answered.
    pub scheduler: Option<String>,
}

impl ShardState {
    pub fn label(&self) -> String {
        match self.shard {
            Some((i, n)) => format!("{i}/{n}"),
            None => "run".into(),
        }
    }

    pub fn last_progress(&self) -> Option<SystemTime> {
        self.units.iter().filter_map(|u| u.last_progress).max()
    }

    pub fn total(&self) -> Option<u64> {
        self.units.iter().map(|u| u.total).sum()
    }

    pub fn remaining(&self) -> Option<u64> {
        self.units.iter().map(UnitStatus::remaining).sum()
    }

    /// A held lock whose run record has not been rewritten for [`HEARTBEAT_STALE`].
    pub fn heartbeat_lost(&self) -> bool {
        self.locked && self.heartbeat.is_some_and(|t| t.elapsed().unwrap_or_default() > HEARTBEAT_STALE)
    }

    /// Ended without being stopped.
    pub fn complete(&self) -> bool {
        self.state() == "completed"
    }

    pub fn state(&self) -> &'static str {
        if self.locked {
            return if self.heartbeat_lost() { "no heartbeat" } else { "running" };
        }
        // The latest run record says how the latest run ended; "running" there with no live
        // lock is a run that was killed.
        if let Some(status) = self.record.as_ref().and_then(|r| r["status"].as_str()) {
            return match status {
                "running" => "interrupted",
                "completed" => "completed",
                "failed" => "failed",
                _ => "stopped",
            };
        }
        match &self.summary {
            Some(s) if s["status"] == "completed" => "completed",
            Some(s) if s["status"] == "failed" => "failed",
            Some(_) => "stopped",
            None if self.done + self.failed > 0 => "stopped",
            None => "not started",
        }
    }

    pub fn describe(&self) -> String {
        let what = match self.shard {
            Some((i, n)) => format!("shard {i}/{n}"),
            None => "the run".into(),
        };
        format!("{what}: {} ({} done, {} failed)", self.state(), self.done, self.failed)
    }
}

/// An input of an unsharded run: its unit name (the input's stem) and path, when known.
pub struct Input {
    pub stem: String,
    pub path: Option<PathBuf>,
}

/// The state of every shard of `plan` in `folder`.
pub fn shards(folder: &Path, plan: &ShardPlan, samples_per_record: u64) -> Vec<ShardState> {
    let records = crate::run_records::load(folder);
    (0..plan.shards)
        .map(|i| {
            let shard = Some((i, plan.shards));
            let units = plan
                .pieces_of(i)
                .into_iter()
                .map(|(file, _, slice)| {
                    let stem = modelcall_io::input_stem(&file.path);
                    let total = count_slice(&file.path, slice).map(|n| n * samples_per_record);
                    unit(folder, &stem, shard, total)
                })
                .collect();
            group(folder, shard, units, &records)
        })
        .collect()
}

/// The state of an unsharded run of `inputs` in `folder`.
pub fn unsharded(folder: &Path, inputs: &[Input], samples_per_record: u64) -> ShardState {
    let records = crate::run_records::load(folder);
    let units = inputs
        .iter()
        .map(|i| unit(folder, &i.stem, None, i.path.as_deref().and_then(crate::input_count::count_records_fast).map(|n| n * samples_per_record)))
        .collect();
    group(folder, None, units, &records)
}

fn unit(folder: &Path, stem: &str, shard: Option<(u32, u32)>, total: Option<u64>) -> UnitStatus {
    let journal = modelcall_io::naming::journal_path(folder, &format!("{stem}{}", modelcall_io::naming::shard_suffix(shard)));
    let state = modelcall_io::journal::read_state(&journal).unwrap_or_default();
    UnitStatus {
        name: stem.to_string(),
        total,
        done: state.done_ok.len() as u64,
        failed: state.failed.len() as u64,
        failed_permanently: state.failed_permanently.len() as u64,
        last_progress: std::fs::metadata(&journal).and_then(|m| m.modified()).ok(),
    }
}

fn group(folder: &Path, shard: Option<(u32, u32)>, units: Vec<UnitStatus>, records: &[(String, Value)]) -> ShardState {
    let shard_field = shard.map(|(i, n)| format!("{i}/{n}"));
    let mine: Vec<(String, Value)> = records.iter().filter(|(_, r)| r["shard"].as_str().map(str::to_string) == shard_field).cloned().collect();
    let latest = mine.last();
    let heartbeat = latest.and_then(|(name, _)| std::fs::metadata(crate::run_records::runs_dir(folder).join(name)).and_then(|m| m.modified()).ok());
    let summary_path = folder.join(crate::tasks::scoring::summary_name(shard));
    let summary = std::fs::read_to_string(summary_path).ok().and_then(|t| serde_json::from_str(&t).ok());
    let lock = lock_name(shard);
    let locked = modelcall_io::OutputLock::is_held(folder, &lock);
    let holder = locked.then(|| lock_holder(folder, &lock)).flatten();
    let (done, failed) = units.iter().fold((0, 0), |(d, f), u| (d + u.done, f + u.failed));
    ShardState {
        shard,
        units,
        done,
        failed,
        locked,
        holder,
        summary,
        record: latest.map(|(_, r)| r.clone()),
        heartbeat,
        spent: Spent::of(&mine, None),
        scheduler: None,
    }
}

/// `pid P on host H since T` from a lock file.
fn lock_holder(folder: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(folder.join(modelcall_io::lock::LOCK_DIR).join(name)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(format!("pid {} on host {} since {}", v["pid"], v["host"].as_str()?, v["started_at"].as_str()?))
}

/// Records in one piece of a shard plan: lines in a byte range, rows in Parquet row groups, or
/// the whole file's count.
fn count_slice(path: &Path, slice: Slice) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    match slice {
        Slice::Whole => crate::input_count::count_records_fast(path),
        Slice::Bytes { start, end } => {
            let mut file = std::fs::File::open(path).ok()?;
            file.seek(SeekFrom::Start(start)).ok()?;
            let mut rest = file.take(end.saturating_sub(start));
            let mut buf = vec![0u8; 1 << 20];
            let (mut lines, mut last) = (0u64, b'\n');
            loop {
                let n = rest.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                last = buf[n - 1];
            }
            Some(lines + (last != b'\n') as u64)
        }
        Slice::RowGroups { start, end } => {
            use parquet::file::reader::FileReader;
            let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
            let meta = reader.metadata();
            Some((start..end.min(meta.num_row_groups())).map(|g| meta.row_group(g).num_rows().max(0) as u64).sum())
        }
    }
}

/// The units of an unsharded folder known only by its files: every unsharded journal in
/// `.modelcall/`, with the input each `run_summary.json` names for it (when it still exists).
pub fn discovered_inputs(folder: &Path) -> Vec<Input> {
    let mut stems: Vec<String> = std::fs::read_dir(folder.join(".modelcall"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".journal.jsonl").map(str::to_string))
        .filter(|stem| !is_shard_stem(stem))
        .collect();
    stems.sort();
    let summary: Option<Value> = std::fs::read_to_string(folder.join("run_summary.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let named: Vec<PathBuf> =
        summary.iter().flat_map(|s| s["files"].as_array().cloned().unwrap_or_default()).filter_map(|f| f["input"].as_str().map(PathBuf::from)).collect();
    let mut inputs: Vec<Input> = stems
        .into_iter()
        .map(|stem| {
            let path = named.iter().find(|p| modelcall_io::input_stem(p) == stem && p.is_file()).cloned();
            Input { stem, path }
        })
        .collect();
    // Inputs the summary names that have no journal yet: not started.
    for p in named {
        let stem = modelcall_io::input_stem(&p);
        if !inputs.iter().any(|i| i.stem == stem) {
            inputs.push(Input { stem, path: p.is_file().then_some(p) });
        }
    }
    inputs
}

/// `name.shard-I-of-N`.
fn is_shard_stem(stem: &str) -> bool {
    stem.rsplit_once(".shard-").is_some_and(|(_, rest)| rest.split_once("-of-").is_some_and(|(i, n)| i.parse::<u32>().is_ok() && n.parse::<u32>().is_ok()))
}

/// The state of every shard of `plan` (for `merge` and `submit --resume`).
pub fn shard_states(outputs: &RecordOutputs, plan: &ShardPlan) -> Vec<ShardState> {
    shards(&outputs.folder, plan, outputs.read.samples_per_record.max(1) as u64)
}
