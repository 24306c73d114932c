//! `modelcall status`: how far a run is, for any output folder (sharded or not), read from the
//! files the run writes (journals, locks, run records, summaries) without sending anything and
//! without the model's key: per unit and per shard done / failed / remaining, running or not,
//! last progress, what was spent, and for a submitted run what Slurm or Kubernetes says of each
//! shard (when its CLI is on PATH).

pub(crate) mod folder;
pub(crate) mod scheduler;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use modelcall_config::{load_task_without_secrets, Overrides, RunPlan};
use modelcall_io::ShardPlan;

use super::exit::{exit_code, BadConfig, Finish};
use crate::numbers::grouped;
use crate::run_records::Spent;
use crate::tasks::shards::{RecordOutputs, MERGED_MARKER};
pub use folder::{ShardState, UnitStatus};

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// The task YAML file, or a run's output folder (sharded or not; the task is then found from
    /// the folder's run records when it can be).
    #[arg(value_name = "TASK_OR_FOLDER")]
    pub task: PathBuf,

    /// Wait until the run is complete (every shard, or the unsharded run), checking every
    /// --every seconds, then print its status and exit 0. What `submit --merge` puts before the
    /// merge in a Kubernetes Job, which has no dependencies between Jobs. Stops with exit 2 on
    /// a configuration error; bound it with the Job's deadline (or `timeout`).
    #[arg(long)]
    pub wait: bool,

    /// With --wait: seconds between checks.
    #[arg(long, value_name = "SECONDS", default_value_t = 15, requires = "wait")]
    pub every: u64,
}

pub fn run(args: StatusArgs) -> ExitCode {
    if args.wait {
        if let Err(e) = wait_complete(&args) {
            return exit_code(Err(e), false);
        }
    }
    exit_code(status(&args), false)
}

/// Polls `modelcall status` (a child process, its output dropped) until it exits 0. Exit 1 is
/// "not complete yet"; anything else (a bad task, 2) is returned as the error.
fn wait_complete(args: &StatusArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("finding the modelcall binary: {e}"))?;
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let out = std::process::Command::new(&exe)
            .arg("status")
            .arg(&args.task)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| anyhow::anyhow!("running {} status: {e}", exe.display()))?;
        match out.status.code() {
            Some(0) => return Ok(()),
            Some(1) => {
                if !said || started.elapsed().as_secs() % 600 < args.every {
                    let why = String::from_utf8_lossy(&out.stderr);
                    eprintln!("waiting ({} s so far): {}", started.elapsed().as_secs(), why.trim().lines().last().unwrap_or("not complete"));
                    said = true;
                }
            }
            _ => return Err(BadConfig(String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("error: ").to_string()).into()),
        }
        std::thread::sleep(std::time::Duration::from_secs(args.every.max(1)));
    }
}

/// Where a folder's inputs come from, when known.
struct Known {
    inputs: Vec<folder::Input>,
    samples_per_record: u64,
    task_name: String,
    task_file: Option<PathBuf>,
}

fn status(args: &StatusArgs) -> anyhow::Result<Finish> {
    if args.task.is_dir() {
        let folder = args.task.clone();
        if !folder.join(".modelcall").is_dir() {
            return Err(BadConfig(format!("{} is not the output folder of a modelcall run (it has no .modelcall/ folder)", folder.display())).into());
        }
        let known = task_of_folder(&folder);
        return folder_status(&folder, known);
    }
    let task = load_task_without_secrets(&args.task, &Overrides::default()).map_err(|e| BadConfig(e.to_string()))?;
    let mut finish = Finish::Done;
    let mut not_complete = Vec::new();
    for run in task.expand().map_err(|e| BadConfig(e.to_string()))? {
        let plan = RunPlan::from_task(&run).map_err(|e| BadConfig(e.to_string()))?;
        let outputs = RecordOutputs::of(&run, &plan)?;
        let known = known_of(&outputs, &plan.task_name, Some(args.task.clone()));
        match folder_status(&outputs.folder, Some(known)) {
            Ok(f) => finish = finish.and(f),
            Err(e) if e.is::<BadConfig>() => return Err(e),
            Err(e) => not_complete.push(e.to_string()),
        }
    }
    match not_complete.len() {
        0 => Ok(finish),
        _ => Err(anyhow::anyhow!("{}", not_complete.join("\n"))),
    }
}

fn known_of(outputs: &RecordOutputs, task_name: &str, task_file: Option<PathBuf>) -> Known {
    Known {
        inputs: outputs.inputs.iter().map(|p| folder::Input { stem: modelcall_io::input_stem(p), path: Some(p.clone()) }).collect(),
        samples_per_record: outputs.read.samples_per_record.max(1) as u64,
        task_name: task_name.to_string(),
        task_file,
    }
}

/// The task that wrote `folder`, from its latest run record's `task_file` when that file still
/// loads (without secrets) and writes this folder.
fn task_of_folder(folder: &Path) -> Option<Known> {
    let records = crate::run_records::load(folder);
    let (_, latest) = records.last()?;
    let task_file = PathBuf::from(latest["task_file"].as_str()?);
    let task = load_task_without_secrets(&task_file, &Overrides::default()).ok()?;
    let want = folder.canonicalize().ok()?;
    for run in task.expand().ok()? {
        let Ok(plan) = RunPlan::from_task(&run) else { continue };
        let Ok(outputs) = RecordOutputs::of(&run, &plan) else { continue };
        if outputs.folder.canonicalize().ok().as_ref() == Some(&want) {
            return Some(known_of(&outputs, &plan.task_name, Some(task_file)));
        }
    }
    None
}

fn folder_status(out: &Path, known: Option<Known>) -> anyhow::Result<Finish> {
    let shard_plan = ShardPlan::load(out).map_err(|e| BadConfig(e.to_string()))?;
    let merged = out.join(".modelcall").join(MERGED_MARKER).exists();
    let samples = known.as_ref().map_or(1, |k| k.samples_per_record);
    let name = known
        .as_ref()
        .map(|k| k.task_name.clone())
        .or_else(|| crate::run_records::load(out).last().and_then(|(_, r)| r["task_name"].as_str().map(str::to_string)));
    let all_records = crate::run_records::load(out);
    println!("{}{}", name.map(|n| format!("{n}: ")).unwrap_or_default(), out.display());
    let task_hint = known.as_ref().and_then(|k| k.task_file.as_ref()).map(|p| p.display().to_string()).unwrap_or_else(|| "<task.yaml>".into());
    crate::tasks::batch_mode::print_status(out);
    match shard_plan {
        Some(plan) if !merged => {
            let mut states = folder::shards(out, &plan, samples);
            let sched = scheduler::ask(out);
            if let Some(view) = &sched {
                for s in &mut states {
                    if let Some((i, _)) = s.shard {
                        s.scheduler = view.shards.get(&i).cloned();
                    }
                }
            }
            let logs = scheduler::shard_logs(out);
            print_shards(&states, sched.as_ref(), &logs);
            print_spent(&Spent::of(&all_records, None));
            let unfinished: Vec<String> = states.iter().filter(|s| !s.complete()).map(|s| format!("{} ({})", s.label(), s.state())).collect();
            if unfinished.is_empty() {
                println!("every shard completed; next: modelcall merge {task_hint}");
                return Ok(Finish::Done);
            }
            Err(anyhow::anyhow!("{} shard(s) not complete: {}", unfinished.len(), unfinished.join(", ")))
        }
        _ => {
            let inputs = match known {
                Some(k) => k.inputs,
                None => folder::discovered_inputs(out),
            };
            let state = folder::unsharded(out, &inputs, samples);
            print_run(&state);
            print_spent(&Spent::of(&all_records, None));
            match state.state() {
                "completed" => Ok(Finish::Done),
                "running" => Err(anyhow::anyhow!("the run is still going ({})", state.holder.as_deref().unwrap_or("its lock is held"))),
                s => Err(anyhow::anyhow!("the run is {s}: run the task again to go on (modelcall run-task {task_hint})")),
            }
        }
    }
}

fn print_run(s: &ShardState) {
    let mut line = format!("state: {}", s.state());
    match &s.holder {
        Some(h) => line += &format!(" (lock held by {h})"),
        None if !s.locked => line += " (not running)",
        None => {}
    }
    if let Some(t) = s.heartbeat.filter(|_| s.locked) {
        line += &format!(", heartbeat {}", ago(t));
    }
    println!("{line}");
    println!("last progress: {}", s.last_progress().map(when).unwrap_or_else(|| "none yet".into()));
    println!("{:<24} {:>10} {:>10} {:>10} {:>10}  last progress", "unit", "done", "failed", "remaining", "total");
    for u in &s.units {
        println!(
            "{:<24} {:>10} {:>10} {:>10} {:>10}  {}",
            u.name,
            u.done,
            u.failed,
            opt(u.remaining()),
            opt(u.total),
            u.last_progress.map(when).unwrap_or_else(|| "-".into())
        );
    }
    println!("{:<24} {:>10} {:>10} {:>10} {:>10}", "all", s.done, s.failed, opt(s.remaining()), opt(s.total()));
    print_failed(&s.units);
}

fn print_shards(states: &[ShardState], sched: Option<&scheduler::SchedulerView>, logs: &std::collections::BTreeMap<u32, PathBuf>) {
    let with_sched = sched.is_some();
    print!("{:<8} {:<13} {:>10} {:>10} {:>10} {:>10}  {:<32}", "shard", "state", "done", "failed", "remaining", "total", "last progress");
    println!("{}", if with_sched { " scheduler" } else { "" });
    for s in states {
        print!(
            "{:<8} {:<13} {:>10} {:>10} {:>10} {:>10}  {:<32}",
            s.label(),
            s.state(),
            s.done,
            s.failed,
            opt(s.remaining()),
            opt(s.total()),
            s.last_progress().map(when).unwrap_or_else(|| "-".into())
        );
        println!("{}", if with_sched { format!(" {}", s.scheduler.as_deref().unwrap_or("-")) } else { String::new() });
        if let Some(h) = &s.holder {
            println!("         lock: {h}{}", s.heartbeat.map(|t| format!(", heartbeat {}", ago(t))).unwrap_or_default());
        }
        // A shard that ended without completing: where its log is, and what it last said.
        let waiting = s.locked || s.scheduler.as_deref().is_some_and(scheduler::under_way);
        if let (false, false, Some(log)) = (s.complete(), waiting, s.shard.and_then(|(i, _)| logs.get(&i))) {
            println!("         log: {}", log.display());
            if let Some(line) = scheduler::last_error_line(log) {
                println!("         last error: {line}");
            }
        }
    }
    let (done, failed) = states.iter().fold((0, 0), |(d, f), s| (d + s.done, f + s.failed));
    let remaining: Option<u64> = states.iter().map(ShardState::remaining).sum();
    let total: Option<u64> = states.iter().map(ShardState::total).sum();
    println!("{:<8} {:<13} {:>10} {:>10} {:>10} {:>10}", "all", "", done, failed, opt(remaining), opt(total));
    // Per unit (input file), over its shards.
    let mut units: Vec<UnitStatus> = Vec::new();
    for u in states.iter().flat_map(|s| &s.units) {
        match units.iter_mut().find(|x| x.name == u.name) {
            Some(x) => {
                x.done += u.done;
                x.failed += u.failed;
                x.failed_permanently += u.failed_permanently;
                x.total = x.total.zip(u.total).map(|(a, b)| a + b);
                x.last_progress = x.last_progress.max(u.last_progress);
            }
            None => units.push(u.clone()),
        }
    }
    println!("{:<24} {:>10} {:>10} {:>10} {:>10}", "unit", "done", "failed", "remaining", "total");
    for u in &units {
        println!("{:<24} {:>10} {:>10} {:>10} {:>10}", u.name, u.done, u.failed, opt(u.remaining()), opt(u.total));
    }
    print_failed(&units);
    if let Some(v) = sched {
        match &v.note {
            Some(n) => println!("scheduler: {} ({n})", v.what),
            None => println!("scheduler: {}", v.what),
        }
        if let Some((id, state)) = &v.merge {
            println!("merge job: {id} {state}");
        }
    }
}

fn print_failed(units: &[UnitStatus]) {
    let (failed, permanent) = units.iter().fold((0, 0), |(f, p), u| (f + u.failed, p + u.failed_permanently));
    if failed > 0 {
        println!("failed: {} ({} permanent: sent again only with --retry-failed; the rest a plain rerun sends again)", grouped(failed), grouped(permanent));
    }
}

fn print_spent(s: &Spent) {
    if s.runs == 0 {
        println!("spent: nothing recorded (no run record in .modelcall/runs)");
        return;
    }
    let cost = match s.cost {
        Some(c) => format!("cost ${c:.4}"),
        None => "cost unknown (no pricing in the model config)".into(),
    };
    println!(
        "spent: {} request(s), {} tokens ({} prompt + {} completion), {cost}, over {} run(s)",
        grouped(s.requests),
        grouped(s.tokens()),
        grouped(s.prompt_tokens),
        grouped(s.completion_tokens),
        s.runs
    );
}

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
}

/// `2026-12-06 13:36:33 UTC (12 s ago)`.
fn when(t: SystemTime) -> String {
    format!("{} ({})", chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d %H:%M:%S UTC"), ago(t))
}

fn ago(t: SystemTime) -> String {
    let s = t.elapsed().unwrap_or_default().as_secs();
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}
