//! `modelcall submit`: write the cluster job of a sharded run and submit it: a Slurm job array
//! ([`slurm`]) or a Kubernetes Indexed Job ([`k8s`]). Every array task / completion index runs
//! `modelcall run-task TASK --shard I/N` into the same output folder; `modelcall status` follows
//! it and `modelcall merge` joins the shards.
//!
//! Exit codes: 0 submitted (or `--dry-run` printed), 1 the scheduler's command is missing or
//! failed, 2 bad configuration (the task, or the options).

mod k8s;
mod slurm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelcall_config::{load_task, load_task_without_secrets, LoadedTask, Overrides, RunPlan, Stages};

use super::exit::{exit_code, BadConfig, Finish};
use super::status::folder::shard_states;
use super::status::scheduler::queued_shards;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// A Slurm job array (`sbatch`).
    Slurm,
    /// A Kubernetes Indexed Job (`kubectl apply`).
    K8s,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SubmitArgs {
    /// The task YAML file (a `data_scoring` or `generate_response` task).
    pub task: PathBuf,

    /// Where the shards run.
    #[arg(long, value_enum)]
    pub scheduler: Scheduler,

    /// How many shards to split the run into (one array task / completion index each).
    #[arg(long, value_name = "N")]
    pub shards: u32,

    /// At most this many shards running at once (default: all of them).
    #[arg(long, value_name = "P")]
    pub parallel: Option<u32>,

    /// Print the job script (Slurm) or Job YAML (Kubernetes) and write or submit nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also submit the merge: a Slurm job that runs `modelcall merge` once every array task
    /// ended well (`--dependency=afterok`), or a Kubernetes Job that waits for the shards
    /// (`modelcall status --wait`) and then merges. One command then runs the whole task.
    #[arg(long)]
    pub merge: bool,

    /// Submit only the shards that have not completed, as the output folder's shard plan and
    /// journals tell: a Slurm array of just those, or a Kubernetes Job whose completion index k
    /// runs the k-th of them (`MODELCALL_SHARD_INDICES`). Shards still running or queued are
    /// left alone.
    #[arg(long)]
    pub resume: bool,

    /// CPUs per shard (Slurm `--cpus-per-task`; Kubernetes cpu request and limit).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub cpus_per_task: u32,

    /// Memory per shard in Slurm units (`4G`, `512M`; a plain number is megabytes). Kubernetes
    /// gets the same amount in binary units (`4Gi`).
    #[arg(long, value_name = "SIZE", default_value = "4G")]
    pub mem: String,

    /// Slurm: the time limit of each shard (`24:00:00`, `2-00:00:00`; default 24:00:00).
    #[arg(long, value_name = "TIME", help_heading = "Slurm")]
    pub time: Option<String>,

    /// Slurm: the partition.
    #[arg(long, value_name = "NAME", help_heading = "Slurm")]
    pub partition: Option<String>,

    /// Slurm: the account charged.
    #[arg(long, value_name = "NAME", help_heading = "Slurm")]
    pub account: Option<String>,

    /// Slurm: one more `#SBATCH` line, passed through as written (repeatable), e.g.
    /// `--sbatch-arg=--qos=high`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true, help_heading = "Slurm")]
    pub sbatch_arg: Vec<String>,

    /// Kubernetes: the container image; it must have `modelcall` on its PATH. Required unless
    /// --dry-run.
    #[arg(long, value_name = "IMAGE", help_heading = "Kubernetes")]
    pub image: Option<String>,

    /// Kubernetes: the PersistentVolumeClaim holding the shared folder (the task file's folder).
    #[arg(long, value_name = "NAME", conflicts_with = "host_path", help_heading = "Kubernetes")]
    pub pvc: Option<String>,

    /// Kubernetes: a folder on every node, instead of --pvc: the same folder as here when the task
    /// file lies inside it (mounted at the same path), else one holding the task file's folder.
    #[arg(long, value_name = "DIR", help_heading = "Kubernetes")]
    pub host_path: Option<PathBuf>,

    /// Kubernetes: where the shared folder is mounted in the container (default: its absolute
    /// path here, so paths in the task resolve the same in the pods).
    #[arg(long, value_name = "DIR", help_heading = "Kubernetes")]
    pub mount_path: Option<PathBuf>,

    /// Kubernetes: the namespace of the Job.
    #[arg(long, value_name = "NAME", help_heading = "Kubernetes")]
    pub namespace: Option<String>,

    /// Kubernetes: retries of each failed index before it counts as failed (default 3). An
    /// index whose run exits 2 (a configuration error) fails at once, without retries.
    #[arg(long, value_name = "N", help_heading = "Kubernetes")]
    pub backoff_limit_per_index: Option<u32>,

    /// Kubernetes: the Secret holding the API key, as `NAME` or `NAME:KEY` (KEY defaults to the
    /// name of the variable the model config reads, e.g. OPENAI_API_KEY for
    /// `api_key: ${OPENAI_API_KEY}`). The pods get that variable from the Secret
    /// (`secretKeyRef`); the key itself is never written into the Job.
    #[arg(long, value_name = "NAME[:KEY]", help_heading = "Kubernetes")]
    pub k8s_secret: Option<String>,

    /// Kubernetes: the longest the whole Job may run, in seconds, before Kubernetes stops it
    /// (`activeDeadlineSeconds`; default 86400, one day).
    #[arg(long, value_name = "SECONDS", help_heading = "Kubernetes")]
    pub active_deadline_seconds: Option<u64>,

    /// Kubernetes: how long the finished Job and its pods are kept before Kubernetes deletes
    /// them, in seconds (`ttlSecondsAfterFinished`; default 604800, a week). The results stay in
    /// the shared folder.
    #[arg(long, value_name = "SECONDS", help_heading = "Kubernetes")]
    pub ttl_seconds_after_finished: Option<u64>,

    /// Kubernetes: the user id the pods run as (never root; default: yours, or 65532 when you
    /// are root). It must be able to write the shared folder.
    #[arg(long, value_name = "UID", help_heading = "Kubernetes")]
    pub run_as_user: Option<u32>,
}

/// The run every scheduler submits, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub task_name: String,
    /// The task file, absolute.
    pub task_file: PathBuf,
    /// The folder of the task file, absolute.
    pub task_dir: PathBuf,
    /// The output folder every shard writes into, absolute (passed as `--output-folder`, so a
    /// `{timestamp}` in the task resolves once, here, and not once per shard).
    pub output: PathBuf,
    /// Pass `output` to the shards as `--output-folder` (one run; a batch of several models
    /// keeps each model's own folder under it).
    pub pin_output: bool,
    /// The folder `submit` was run from (Slurm runs the shards there).
    pub cwd: PathBuf,
    pub shards: u32,
    pub parallel: u32,
}

/// The loaded task and its plan, for what a scheduler checks beyond [`Target`] (Kubernetes:
/// where the key comes from, which files the pods read).
pub(crate) struct Loaded {
    pub task: LoadedTask,
    pub plan: RunPlan,
}

impl Target {
    /// `<output>/.modelcall/submit/<file>`.
    pub fn submit_file(&self, file: &str) -> PathBuf {
        self.output.join(".modelcall").join("submit").join(file)
    }
}

pub fn run(args: SubmitArgs) -> ExitCode {
    exit_code(submit(&args).map(|()| Finish::Done), false)
}

fn submit(args: &SubmitArgs) -> anyhow::Result<()> {
    check_scheduler_options(args)?;
    let (target, loaded) = resolve(args)?;
    check_plan(&target, &loaded)?;
    match args.scheduler {
        Scheduler::Slurm => {
            let shards = match args.resume {
                true => unfinished(&target, &loaded)?,
                false => (0..target.shards).collect(),
            };
            slurm::submit(args, &target, &shards)
        }
        Scheduler::K8s if args.resume => {
            let shards = unfinished(&target, &loaded)?;
            if shards.is_empty() {
                if args.merge {
                    println!("every shard completed: merge them with `modelcall merge {}`", args.task.display());
                }
                return Ok(());
            }
            k8s::submit(args, &target, &loaded, Some(&shards))
        }
        Scheduler::K8s => k8s::submit(args, &target, &loaded, None),
    }
}

/// The shard plan the shards will make, made here first, so a split every shard would refuse
/// (one compressed file over several shards) is refused before N jobs are queued. Inputs that
/// do not exist yet (a preprocess stage writes them) are left to the shards.
fn check_plan(target: &Target, loaded: &Loaded) -> Result<(), BadConfig> {
    if target.shards < 2 || modelcall_io::ShardPlan::load(&target.output).ok().flatten().is_some() {
        return Ok(());
    }
    let Ok(outputs) = crate::tasks::shards::RecordOutputs::of(&loaded.task, &loaded.plan) else { return Ok(()) };
    if outputs.inputs.is_empty() || !outputs.inputs.iter().all(|p| p.is_file()) {
        return Ok(());
    }
    match modelcall_io::ShardPlan::build(&outputs.inputs, target.shards) {
        Err(e @ modelcall_io::PlanError::Unsplittable { .. }) => Err(BadConfig(format!("--shards {}: {e}", target.shards))),
        _ => Ok(()),
    }
}

/// The shards `--resume` submits: every shard not completed, except those still running (a
/// live lock) or waiting in Slurm's queue.
fn unfinished(target: &Target, loaded: &Loaded) -> anyhow::Result<Vec<u32>> {
    use crate::tasks::shards::{RecordOutputs, MERGED_MARKER};
    if matches!(loaded.plan.stages, Stages::Batch(_)) {
        return Err(BadConfig(
            "--resume reads one output folder's shards; a batch task has one folder per model: submit it again without --resume (completed shards exit at once)".into(),
        )
        .into());
    }
    if target.output.join(".modelcall").join(MERGED_MARKER).exists() {
        return Err(BadConfig(format!(
            "the shards of {} are merged already (.modelcall/merged.json); run the task without --shard to send what is missing (modelcall run-task TASK)",
            target.output.display()
        ))
        .into());
    }
    let outputs = RecordOutputs::of(&loaded.task, &loaded.plan)?;
    let Some(plan) = modelcall_io::ShardPlan::load(&target.output).map_err(|e| BadConfig(e.to_string()))? else {
        eprintln!("note: no shard has started in {} yet (no .modelcall/shards.json): submitting all {} shards", target.output.display(), target.shards);
        return Ok((0..target.shards).collect());
    };
    let states = shard_states(&outputs, &plan);
    let queued = queued_shards(&target.output);
    let (mut todo, mut done, mut busy) = (Vec::new(), 0u32, Vec::new());
    for s in &states {
        let Some((i, _)) = s.shard else { continue };
        if s.complete() {
            done += 1;
        } else if (s.locked && !s.heartbeat_lost()) || queued.contains(&i) {
            busy.push(i);
        } else {
            todo.push(i);
        }
    }
    if !busy.is_empty() {
        eprintln!("note: shard(s) {} are running or queued; left alone", slurm::ranges(&busy));
    }
    // On stderr: stdout is the job script or YAML with --dry-run.
    if todo.is_empty() {
        eprintln!("every shard is completed or under way ({done} completed): nothing to resubmit");
    } else {
        eprintln!("resuming {} unfinished shard(s) of {}: {} ({done} completed)", todo.len(), target.shards, slurm::ranges(&todo));
    }
    Ok(todo)
}

/// Options of the other scheduler are refused rather than silently ignored.
fn check_scheduler_options(args: &SubmitArgs) -> Result<(), BadConfig> {
    let slurm_only = [
        ("--time", args.time.is_some()),
        ("--partition", args.partition.is_some()),
        ("--account", args.account.is_some()),
        ("--sbatch-arg", !args.sbatch_arg.is_empty()),
    ];
    let k8s_only = [
        ("--image", args.image.is_some()),
        ("--pvc", args.pvc.is_some()),
        ("--host-path", args.host_path.is_some()),
        ("--mount-path", args.mount_path.is_some()),
        ("--namespace", args.namespace.is_some()),
        ("--backoff-limit-per-index", args.backoff_limit_per_index.is_some()),
        ("--k8s-secret", args.k8s_secret.is_some()),
        ("--active-deadline-seconds", args.active_deadline_seconds.is_some()),
        ("--ttl-seconds-after-finished", args.ttl_seconds_after_finished.is_some()),
        ("--run-as-user", args.run_as_user.is_some()),
    ];
    let (other, given) = match args.scheduler {
        Scheduler::Slurm => ("Kubernetes", &k8s_only[..]),
        Scheduler::K8s => ("Slurm", &slurm_only[..]),
    };
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        let this = match args.scheduler {
            Scheduler::Slurm => "slurm",
            Scheduler::K8s => "k8s",
        };
        return Err(BadConfig(format!("{flag} is a {other} option; it has no effect with --scheduler {this}")));
    }
    Ok(())
}

/// Loads the task, finds its output folder and checks the counts.
fn resolve(args: &SubmitArgs) -> anyhow::Result<(Target, Loaded)> {
    if args.shards == 0 {
        return Err(BadConfig("--shards must be at least 1".into()).into());
    }
    let parallel = args.parallel.unwrap_or(args.shards);
    if parallel == 0 {
        return Err(BadConfig("--parallel must be at least 1".into()).into());
    }
    if args.cpus_per_task == 0 {
        return Err(BadConfig("--cpus-per-task must be at least 1".into()).into());
    }
    // The key is not needed to write a job: a dry run never sends anything, and Kubernetes pods
    // take it from a Secret. Slurm shards inherit the submitting shell's environment (sbatch
    // exports it), so a real Slurm submission checks here that the variables are set.
    let without_secrets = args.dry_run || args.scheduler == Scheduler::K8s;
    let task = if without_secrets { load_task_without_secrets(&args.task, &Overrides::default()) } else { load_task(&args.task, &Overrides::default()) }
        .map_err(|e| BadConfig(e.to_string()))?;
    if let Some(block) = modelcall_config::schema::notes_block(&task.ignored_keys, args.dry_run) {
        eprintln!("{block}");
    }
    for warning in &task.warnings {
        eprintln!("warning: {warning}");
    }
    let plan = RunPlan::from_task(&task).map_err(|e| BadConfig(e.to_string()))?;
    let pin_output = !matches!(plan.stages, Stages::Batch(_));
    if let Stages::Batch(b) = &plan.stages {
        if b.shards != args.shards {
            eprintln!("note: data_split.num_chunks is {}; the job runs --shards {} as asked", b.shards, args.shards);
        }
    }
    let output = match &plan.stages {
        Stages::Scoring(p) => p.output_folder.clone(),
        Stages::Generate(g) => g.output_path.clone(),
        Stages::Batch(b) => b.output_base_dir.clone(),
        other => {
            return Err(BadConfig(format!(
                "{}: a {} task runs in one piece; submit runs scoring and generate_response tasks",
                args.task.display(),
                other.name()
            ))
            .into())
        }
    };
    if plan.fresh_start {
        eprintln!("note: the task starts over (options.resume: false or delete_existing): a shard run again discards what it did before");
    }
    let cwd = std::env::current_dir().map_err(|e| anyhow::anyhow!("the current folder: {e}"))?;
    let task_file = std::fs::canonicalize(&args.task).map_err(|e| BadConfig(format!("{}: {e}", args.task.display())))?;
    let task_dir = task_file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let output = shared_output(&cwd.join(&output))?;
    check_earlier_split(&output, args.shards)?;
    let target =
        Target { task_name: plan.task_name.clone(), task_file, task_dir, output, pin_output, cwd, shards: args.shards, parallel: parallel.min(args.shards) };
    Ok((target, Loaded { task, plan }))
}

/// The output folder, absolute, with its parent on the shared file system already there: the
/// shards on other machines write into it, and a typo should fail here, not in N jobs.
fn shared_output(output: &Path) -> Result<PathBuf, BadConfig> {
    let output = std::path::absolute(output).map_err(|e| BadConfig(format!("{}: {e}", output.display())))?;
    let (Some(parent), Some(name)) = (output.parent(), output.file_name()) else {
        return Err(BadConfig(format!("the output folder {} cannot be shared by the shards", output.display())));
    };
    match std::fs::canonicalize(parent) {
        Ok(p) if p.is_dir() => Ok(p.join(name)),
        _ => Err(BadConfig(format!(
            "the output folder's parent {} does not exist; the shards write into it, so it must be a folder every node sees (a shared file system)",
            parent.display()
        ))),
    }
}

/// A run already split into another number of shards is refused up front: every shard of the
/// new job would fail on it (see `modelcall_io::shard_plan`).
fn check_earlier_split(output: &Path, shards: u32) -> Result<(), BadConfig> {
    let plan = output.join(".modelcall").join("shards.json");
    let Ok(text) = std::fs::read_to_string(&plan) else { return Ok(()) };
    let planned = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("shards")?.as_u64());
    match planned {
        Some(n) if n != u64::from(shards) => Err(BadConfig(format!(
            "{} splits this output folder into {n} shards, not {shards}; submit with --shards {n}, or merge the finished shards (`modelcall merge`) and remove the plan to split it again",
            plan.display()
        ))),
        _ => Ok(()),
    }
}

/// A `--mem` size in Slurm units: the number and its unit (`K`, `M`, `G`, `T`; none = `M`). A
/// binary suffix (`4Gi`) is taken as the same amount.
pub(crate) fn parse_mem(mem: &str) -> Result<(u64, char), BadConfig> {
    let bad = || BadConfig(format!("--mem `{mem}` should be a size such as 4G, 512M or 16384 (megabytes)"));
    let s = mem.trim();
    let s = s.strip_suffix('i').unwrap_or(s);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit = match unit.to_ascii_uppercase().as_str() {
        "" if !mem.trim().ends_with('i') => 'M',
        "K" => 'K',
        "M" => 'M',
        "G" => 'G',
        "T" => 'T',
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    Ok((n, unit))
}

/// Writes a generated file (folders created, atomically).
pub(crate) fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    modelcall_io::write_atomically(path, text.as_bytes())?;
    Ok(())
}

/// `path` as UTF-8, which the generated script and YAML need.
pub(crate) fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str, BadConfig> {
    path.to_str().ok_or_else(|| BadConfig(format!("{what} {} is not valid UTF-8", path.display())))
}

/// Runs a scheduler command; its stdout on success, else an error with its stderr.
pub(crate) fn run_command(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", program.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("`{} {}` failed ({}): {}", program.display(), args.join(" "), out.status, stderr.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
