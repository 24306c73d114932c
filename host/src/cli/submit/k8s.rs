//! The Kubernetes Indexed Job: `<output>/.modelcall/submit/job.yaml`, applied with
//! `kubectl apply -f`. Completion index `i` runs `modelcall run-task TASK` with
//! `JOB_COMPLETION_INDEX=i` (set by Kubernetes) and `MODELCALL_SHARD_COUNT=N` (set here), which
//! `run-task` reads as `--shard i/N`.
//!
//! The shards share one folder through a volume (`--pvc` or `--host-path`): the task file's
//! folder, or the `--host-path` folder when the task file lies inside it. It is mounted at the
//! same absolute path by default, so every path in the task means the same inside the pods.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{find_on_path, parse_mem, run_command, utf8, write_file, SubmitArgs, Target};
use crate::cli::exit::BadConfig;

const DEFAULT_BACKOFF_LIMIT_PER_INDEX: u32 = 3;
const IMAGE_PLACEHOLDER: &str = "SET-WITH--image";

pub(super) fn submit(args: &SubmitArgs, target: &Target) -> anyhow::Result<()> {
    if !args.dry_run {
        if args.image.is_none() {
            return Err(BadConfig("--image is required with --scheduler k8s: a container image with `modelcall` on its PATH".into()).into());
        }
        if args.pvc.is_none() && args.host_path.is_none() {
            return Err(BadConfig("--pvc NAME or --host-path DIR is required with --scheduler k8s: the shards write into one shared output folder".into()).into());
        }
    }
    let (name, job) = job(args, target)?;
    let yaml = format!(
        "# Written by `modelcall submit`: task {task}, {n} shards, one per completion index.\n{body}",
        task = target.task_name,
        n = target.shards,
        body = serde_yaml::to_string(&job)?
    );
    if args.dry_run {
        if args.image.is_none() {
            eprintln!("note: no --image given; the Job shows the placeholder `{IMAGE_PLACEHOLDER}`");
        }
        if args.pvc.is_none() && args.host_path.is_none() {
            eprintln!("note: no --pvc or --host-path given; the Job has no shared volume");
        }
        print!("{yaml}");
        return Ok(());
    }
    let path = target.submit_file("job.yaml");
    write_file(&path, &yaml)?;
    let Some(kubectl) = find_on_path("kubectl") else {
        anyhow::bail!(
            "kubectl was not found on PATH; the Job is written to {path}: submit it with `kubectl apply -f {path}`",
            path = path.display()
        );
    };
    let out = run_command(&kubectl, &["apply", "-f", utf8(&path, "the Job file")?])?;
    print!("{out}");
    println!(
        "submitted Kubernetes Indexed Job {name} ({n} shards, at most {p} at once); follow it with: modelcall status {task} (or kubectl get job {name})",
        n = target.shards,
        p = target.parallel,
        task = args.task.display()
    );
    println!("Job file: {}", path.display());
    Ok(())
}

/// The Job's name and the Job.
pub(super) fn job(args: &SubmitArgs, target: &Target) -> Result<(String, Value), BadConfig> {
    let (mem, unit) = parse_mem(&args.mem)?;
    let image = args.image.as_deref().unwrap_or(IMAGE_PLACEHOLDER);
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(BadConfig(format!("--image `{image}` should be an image reference such as registry.example.com/modelcall:1.0")));
    }
    let paths = Paths::new(args, target)?;
    let task_in_pod = paths.in_pod(&target.task_file);
    let output_in_pod = paths.in_pod(&target.output);
    if !target.output.starts_with(&paths.shared) {
        eprintln!(
            "warning: the output folder {} is outside the shared folder {} that the volume holds; the pods write it in their own file system unless the image provides it",
            target.output.display(),
            paths.shared.display()
        );
    }
    // The shards start where `submit` ran when that is inside the shared folder.
    let workdir = if target.cwd.starts_with(&paths.shared) { paths.in_pod(&target.cwd) } else { paths.mount.clone() };
    let name = job_name(&target.task_name);
    let labels = json!({ "app.kubernetes.io/name": "modelcall", "app.kubernetes.io/instance": name });
    let resources = json!({ "cpu": args.cpus_per_task.to_string(), "memory": format!("{mem}{unit}i") });
    let mut command = vec!["modelcall", "run-task", utf8(&task_in_pod, "the task file")?, "--no-progress"];
    if target.pin_output {
        command.extend(["--output-folder", utf8(&output_in_pod, "the output folder")?]);
    }
    let mut container = json!({
        "name": "modelcall",
        "image": image,
        "command": command,
        "workingDir": utf8(&workdir, "the working folder")?,
        "env": [{ "name": "MODELCALL_SHARD_COUNT", "value": target.shards.to_string() }],
        "resources": { "requests": resources, "limits": resources },
    });
    let mut pod = json!({ "restartPolicy": "Never", "containers": [] });
    let volume = match (&args.pvc, &args.host_path) {
        (Some(claim), _) => Some(json!({ "name": "shared", "persistentVolumeClaim": { "claimName": claim } })),
        (None, Some(dir)) => Some(json!({ "name": "shared", "hostPath": { "path": utf8(dir, "--host-path")?, "type": "Directory" } })),
        (None, None) => None,
    };
    if let Some(volume) = volume {
        container["volumeMounts"] = json!([{ "name": "shared", "mountPath": utf8(&paths.mount, "--mount-path")? }]);
        pod["volumes"] = json!([volume]);
    }
    pod["containers"] = json!([container]);
    let mut metadata = json!({ "name": name, "labels": labels });
    if let Some(ns) = &args.namespace {
        metadata["namespace"] = json!(ns);
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": target.shards,
            "parallelism": target.parallel,
            "backoffLimitPerIndex": args.backoff_limit_per_index.unwrap_or(DEFAULT_BACKOFF_LIMIT_PER_INDEX),
            "template": { "metadata": { "labels": labels }, "spec": pod },
        },
    });
    Ok((name, job))
}

/// The shared folder on this machine and where the pods see it.
struct Paths {
    shared: PathBuf,
    mount: PathBuf,
}

impl Paths {
    fn new(args: &SubmitArgs, target: &Target) -> Result<Paths, BadConfig> {
        if let Some(dir) = &args.host_path {
            if !dir.is_absolute() {
                return Err(BadConfig(format!("--host-path {} should be an absolute path on the nodes", dir.display())));
            }
        }
        // A --host-path folder that holds the task here is the same folder on the nodes.
        let shared = args
            .host_path
            .as_ref()
            .and_then(|d| std::fs::canonicalize(d).ok())
            .filter(|d| target.task_file.starts_with(d))
            .unwrap_or_else(|| target.task_dir.clone());
        let mount = match &args.mount_path {
            Some(m) if !m.is_absolute() => return Err(BadConfig(format!("--mount-path {} should be an absolute path", m.display()))),
            Some(m) => m.clone(),
            None => shared.clone(),
        };
        Ok(Paths { shared, mount })
    }

    /// Where the pods see `path` (a path inside the shared folder moves with the mount; others
    /// stay as they are).
    fn in_pod(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.shared) {
            Ok(rel) if rel.as_os_str().is_empty() => self.mount.clone(),
            Ok(rel) => self.mount.join(rel),
            Err(_) => path.to_path_buf(),
        }
    }
}

/// `modelcall-<task name>` as a DNS label short enough for the pod names Kubernetes derives.
fn job_name(task_name: &str) -> String {
    let mut name = String::from("modelcall-");
    for c in task_name.chars() {
        let c = c.to_ascii_lowercase();
        name.push(if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' });
    }
    name.truncate(52);
    name.trim_end_matches('-').to_string()
}

