//! The Kubernetes Indexed Job: `<output>/.modelcall/submit/job.yaml`, applied with
//! `kubectl apply -f`. Completion index `i` runs `modelcall run-task TASK` with
//! `JOB_COMPLETION_INDEX=i` (set by Kubernetes) and `MODELCALL_SHARD_COUNT=N` (set here), which
//! `run-task` reads as `--shard i/N`.
//!
//! The shards share one folder through a volume (`--pvc` or `--host-path`): the task file's
//! folder, or the `--host-path` folder when the task file lies inside it. It is mounted at the
//! same absolute path by default, so every path in the task means the same inside the pods.
//! With `--pvc` every file the run reads or writes must be inside that folder.
//!
//! The key: never in the Job. The variable the model config reads (`api_key: ${OPENAI_API_KEY}`)
//! comes from a Secret (`--k8s-secret NAME[:KEY]` → `valueFrom.secretKeyRef`); a model config
//! holding the key itself is refused. The pods run as a non-root user with a read-only root
//! filesystem (an `emptyDir` at /tmp), no privilege escalation and no capabilities; an index
//! whose run exits 2 (a configuration error) fails without retries (`podFailurePolicy`).
//!
//! With `--merge` a second Job follows in the same file: Kubernetes has no dependency between
//! Jobs, so its pod first waits for the shards (`modelcall status TASK --wait`, an init
//! container, bounded by the Job's deadline) and then runs `modelcall merge TASK`. It gets no
//! key: neither command sends anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{parse_mem, run_command, utf8, write_file, Loaded, SubmitArgs, Target};
use crate::cli::exit::BadConfig;
use crate::cli::scheduler_cli::find_on_path;
use modelcall_config::Stages;

const DEFAULT_BACKOFF_LIMIT_PER_INDEX: u32 = 3;
const DEFAULT_ACTIVE_DEADLINE_SECONDS: u64 = 24 * 3600;
const DEFAULT_TTL_SECONDS_AFTER_FINISHED: u64 = 7 * 24 * 3600;
/// The user the pods run as when `submit` runs as root (the "nonroot" user of distroless images).
const NON_ROOT_UID: u32 = 65532;
/// `modelcall run-task`'s exit code for a configuration error: retrying cannot help.
const EXIT_BAD_CONFIGURATION: u32 = 2;
const IMAGE_PLACEHOLDER: &str = "SET-WITH--image";

/// `only`: the shards `--resume` runs again (`None`: every shard).
pub(super) fn submit(args: &SubmitArgs, target: &Target, loaded: &Loaded, only: Option<&[u32]>) -> anyhow::Result<()> {
    if !args.dry_run {
        if args.image.is_none() {
            return Err(BadConfig("--image is required with --scheduler k8s: a container image with `modelcall` on its PATH".into()).into());
        }
        if args.pvc.is_none() && args.host_path.is_none() {
            return Err(
                BadConfig("--pvc NAME or --host-path DIR is required with --scheduler k8s: the shards write into one shared output folder".into()).into()
            );
        }
    }
    let keys = key_env(args, loaded)?;
    let (name, job) = job(args, target, &keys, only)?;
    check_shared(args, target, loaded, &keys)?;
    let mut yaml = format!(
        "# Written by `modelcall submit`: task {task}, {n} shards, one per completion index.\n{body}",
        task = target.task_name,
        n = target.shards,
        body = serde_yaml::to_string(&job)?
    );
    let header = match only {
        None => String::new(),
        Some(list) => format!("# Resumed: shards {} of {}, one per completion index (MODELCALL_SHARD_INDICES).\n", super::slurm::ranges(list), target.shards),
    };
    yaml = header + &yaml;
    let merge_name = match args.merge {
        true => {
            let (merge_name, merge) = merge_job(&job, &name)?;
            yaml += &format!("---\n# The merge: waits until every shard is complete, then merges them.\n{}", serde_yaml::to_string(&merge)?);
            Some(merge_name)
        }
        false => None,
    };
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
        anyhow::bail!("kubectl was not found on PATH; the Job is written to {path}: submit it with `kubectl apply -f {path}`", path = path.display());
    };
    let out = run_command(&kubectl, &["apply", "-f", utf8(&path, "the Job file")?])?;
    print!("{out}");
    println!(
        "submitted Kubernetes Indexed Job {name} ({n} shards, at most {p} at once); follow it with: modelcall status {task} (or kubectl get job {name})",
        n = target.shards,
        p = target.parallel,
        task = args.task.display()
    );
    if let Some(m) = merge_name {
        println!("submitted Kubernetes Job {m}: it waits for every shard (modelcall status --wait), then runs modelcall merge; follow it with: kubectl logs job/{m} --all-containers");
    }
    println!("Job file: {}", path.display());
    Ok(())
}

/// The merge Job, made from the shards' Job (same image, volume, security and folder): one pod
/// whose init container waits for the shards and whose container merges them.
fn merge_job(shards_job: &Value, name: &str) -> Result<(String, Value), BadConfig> {
    let mut merge_name = format!("{name}-merge");
    if merge_name.len() > 63 {
        merge_name = format!("{}-merge", &name[..57].trim_end_matches('-'));
    }
    let spec = &shards_job["spec"];
    let mut pod = spec["template"]["spec"].clone();
    let mut container = pod["containers"][0].clone();
    let command: Vec<String> = container["command"].as_array().map(|c| c.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let task = command.get(2).cloned().ok_or_else(|| BadConfig("the shards' Job has no task in its command".into()))?;
    // No key and no shard count: status and merge send nothing and read the plan.
    let env: Vec<Value> = container["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|v| v.get("valueFrom").is_none() && v["name"] != "MODELCALL_SHARD_COUNT" && v["name"] != "MODELCALL_SHARD_INDICES")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    container["env"] = json!(env);
    let mut wait = container.clone();
    wait["name"] = json!("wait-for-shards");
    wait["command"] = json!(["modelcall", "status", task, "--wait"]);
    container["command"] = json!(["modelcall", "merge", task]);
    // Merging reads and writes every shard's files once: the shards' resources are ample.
    pod["initContainers"] = json!([wait]);
    pod["containers"] = json!([container]);
    let labels = json!({ "app.kubernetes.io/name": "modelcall", "app.kubernetes.io/instance": merge_name });
    let mut metadata = json!({ "name": merge_name, "labels": labels });
    if let Some(ns) = shards_job["metadata"].get("namespace") {
        metadata["namespace"] = ns.clone();
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 1,
            "activeDeadlineSeconds": spec["activeDeadlineSeconds"],
            "ttlSecondsAfterFinished": spec["ttlSecondsAfterFinished"],
            "template": { "metadata": { "labels": labels }, "spec": pod },
        },
    });
    Ok((merge_name, job))
}

/// Where a model config takes its API key from.
#[derive(Debug, Clone, PartialEq)]
enum KeySource {
    /// No key (a local server that needs none).
    None,
    /// The variable named by `api_key: ${VAR}` (or `API_KEY` with no `client_config`).
    Env(String),
    /// `api_key` written out in the file.
    Literal,
    /// `api_key_file: PATH`, resolved.
    File(PathBuf),
}

/// What the Job gets for the key: the variables set from the Secret, and the key files the
/// pods read.
pub(super) struct KeyEnv {
    /// `(variable, secret name, secret key)`.
    from_secret: Vec<(String, String, String)>,
    files: Vec<PathBuf>,
}

/// Reads `model_config` as written (not interpolated) to find where its key comes from.
fn key_source(model_config: &Path) -> Result<KeySource, BadConfig> {
    let text = std::fs::read_to_string(model_config).map_err(|e| BadConfig(format!("{}: {e}", model_config.display())))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| BadConfig(format!("{}: {e}", model_config.display())))?;
    let Some(client) = yaml.get("client_config").filter(|c| !c.is_null()) else {
        // No client_config: the key is read from API_KEY (see `ModelConfig::load`).
        return Ok(KeySource::Env("API_KEY".into()));
    };
    if let Some(file) = client.get("api_key_file").and_then(|v| v.as_str()) {
        let written = Path::new(file.trim());
        let dir = model_config.parent().unwrap_or(Path::new("."));
        return Ok(KeySource::File(if written.is_absolute() { written.to_path_buf() } else { dir.join(written) }));
    }
    let api_key = match client.get("api_key") {
        None | Some(serde_yaml::Value::Null) => return Ok(KeySource::None),
        Some(serde_yaml::Value::String(s)) => s.clone(),
        Some(_) => return Ok(KeySource::Literal),
    };
    let names = std::cell::RefCell::new(Vec::new());
    let rest = modelcall_config::env::interpolate(&api_key, &|name| {
        names.borrow_mut().push(name.to_string());
        Some(String::new())
    })
    .unwrap_or_default();
    let names = names.into_inner();
    Ok(match names.into_iter().next() {
        Some(var) => KeySource::Env(var),
        None if rest.trim().is_empty() => KeySource::None,
        None => KeySource::Literal,
    })
}

/// The model configs the run uses (one, or one per model of a batch).
fn model_configs(loaded: &Loaded) -> Vec<PathBuf> {
    match &loaded.plan.stages {
        Stages::Batch(b) => b.models.iter().map(|m| m.run.model_config_path.clone()).collect(),
        Stages::Generate(g) => vec![g.model_config_path.clone()],
        _ => loaded.task.model.iter().map(|m| m.path.clone()).collect(),
    }
}

/// The Secret references for the key (or the refusal to write a Job that would need it
/// written out).
fn key_env(args: &SubmitArgs, loaded: &Loaded) -> Result<KeyEnv, BadConfig> {
    let mut vars = BTreeSet::new();
    let mut files = Vec::new();
    for config in model_configs(loaded) {
        match key_source(&config)? {
            KeySource::None => {}
            KeySource::Env(var) => {
                vars.insert(var);
            }
            KeySource::File(path) => files.push(path),
            KeySource::Literal => {
                return Err(BadConfig(format!(
                    "{}: client_config.api_key holds the key itself; a Kubernetes Job never carries a key: write `api_key: ${{OPENAI_API_KEY}}`, create a Secret (kubectl create secret generic NAME --from-literal=OPENAI_API_KEY=…) and submit with --k8s-secret NAME",
                    config.display()
                )))
            }
        }
    }
    let Some(secret) = &args.k8s_secret else {
        return match vars.first() {
            Some(var) => Err(BadConfig(format!(
                "the model config reads its key from ${{{var}}}, which the pods do not have: give --k8s-secret NAME[:KEY], a Secret holding it (kubectl create secret generic NAME --from-literal={var}=…)"
            ))),
            None => Ok(KeyEnv { from_secret: Vec::new(), files }),
        };
    };
    if vars.is_empty() {
        let why = if files.is_empty() { "reads no key from the environment (no `api_key: ${VAR}`)" } else { "reads its key from client_config.api_key_file" };
        return Err(BadConfig(format!("--k8s-secret {secret}: the model config {why}, so the Secret would not be used")));
    }
    let (name, key) = match secret.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (secret.as_str(), None),
    };
    let dns_name = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let key_ok = |k: &str| !k.is_empty() && k.len() <= 253 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !dns_name || key.is_some_and(|k| !key_ok(k)) {
        return Err(BadConfig(format!(
            "--k8s-secret `{secret}` should be NAME or NAME:KEY: a Secret name (lower case letters, digits, `-`, `.`) and a key in it (letters, digits, `-`, `_`, `.`)"
        )));
    }
    let from_secret = vars.into_iter().map(|var| (var.clone(), name.to_string(), key.map(str::to_string).unwrap_or(var))).collect();
    Ok(KeyEnv { from_secret, files })
}

/// Every local file or folder the run reads, by what names it (`s3://`/`tos://` ones excluded).
fn files_read(loaded: &Loaded, keys: &KeyEnv) -> Vec<(String, PathBuf)> {
    let mut read: Vec<(String, PathBuf)> = Vec::new();
    match &loaded.plan.stages {
        Stages::Scoring(p) => {
            if let Some((what, path)) = &p.input {
                read.push((what.to_string(), path.clone()));
            }
            if let Some(pre) = &p.preprocess {
                read.push(("preprocess input".into(), pre.input_root.clone()));
                read.push((format!("the {} plugin ({})", pre.plugin.role, pre.plugin.slot), PathBuf::from(&pre.plugin.source)));
            }
            for plugin in [&p.prompt_builder, &p.score_parser] {
                read.push((format!("the {} plugin ({})", plugin.role, plugin.slot), PathBuf::from(&plugin.source)));
            }
            if let Some(prompt) = &p.prompt_file {
                read.push(("prompt.config_path".into(), prompt.clone()));
            }
        }
        Stages::Generate(g) => read.push(("the input".into(), g.input_path.clone())),
        Stages::Batch(b) => read.push(("the input".into(), b.input_file.clone())),
        _ => {}
    }
    for config in model_configs(loaded) {
        read.push(("the model config".into(), config));
    }
    for file in &keys.files {
        read.push(("client_config.api_key_file".into(), file.clone()));
    }
    for key in ["config_path", "tos_config_path"] {
        if let Some(p) = loaded.task.json.get("environment").and_then(|e| e.get(key)).and_then(Value::as_str) {
            read.push((format!("environment.{key}"), loaded.task.resolve(p)));
        }
    }
    read.retain(|(_, p)| {
        let s = p.to_string_lossy();
        !s.starts_with("builtin:") && !s.contains("://") && !s.starts_with("s3:/") && !s.starts_with("tos:/")
    });
    read
}

/// `path` made absolute from `cwd`, with symbolic links resolved as far as it exists.
fn real(cwd: &Path, path: &Path) -> PathBuf {
    let path = cwd.join(path);
    if let Ok(p) = std::fs::canonicalize(&path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => real(cwd, parent).join(name),
        _ => path,
    }
}

/// What lies outside the shared folder the volume holds: with `--pvc`, an error naming each;
/// otherwise a warning (a `--host-path` node may hold the same paths, a dry run has no volume).
fn check_shared(args: &SubmitArgs, target: &Target, loaded: &Loaded, keys: &KeyEnv) -> Result<(), BadConfig> {
    let paths = Paths::new(args, target)?;
    let mut outside: Vec<String> = Vec::new();
    let written = std::iter::once(("the output folder".to_string(), target.output.clone())).chain(match &loaded.plan.stages {
        Stages::Scoring(p) => p.stat_folder.clone().map(|f| ("data.stat_folder".to_string(), f)),
        _ => None,
    });
    for (what, path) in written.chain(files_read(loaded, keys)) {
        let full = real(&target.cwd, &path);
        if !full.starts_with(&paths.shared) {
            let line = format!("{what} {}", full.display());
            if !outside.contains(&line) {
                outside.push(line);
            }
        }
    }
    if outside.is_empty() {
        return Ok(());
    }
    let shared = paths.shared.display();
    if let Some(claim) = &args.pvc {
        return Err(BadConfig(format!(
            "with --pvc {claim} the pods see only the shared folder {shared}, and these are outside it: {}; move them into it (or submit from a task file in a folder that holds them all)",
            outside.join("; ")
        )));
    }
    for line in outside {
        eprintln!("warning: {line} is outside the shared folder {shared} that the volume holds; the pods see it only if the nodes or the image provide it");
    }
    Ok(())
}

/// The user (and group) the pods run as: never root.
fn run_as(args: &SubmitArgs) -> (u32, Option<u32>) {
    if let Some(uid) = args.run_as_user {
        return (uid, None);
    }
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        (NON_ROOT_UID, Some(NON_ROOT_UID))
    } else {
        (uid, Some(gid))
    }
}

/// The Job's name and the Job.
pub(super) fn job(args: &SubmitArgs, target: &Target, keys: &KeyEnv, only: Option<&[u32]>) -> Result<(String, Value), BadConfig> {
    let (mem, unit) = parse_mem(&args.mem)?;
    let image = args.image.as_deref().unwrap_or(IMAGE_PLACEHOLDER);
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(BadConfig(format!("--image `{image}` should be an image reference such as registry.example.com/modelcall:1.0")));
    }
    let paths = Paths::new(args, target)?;
    let task_in_pod = paths.in_pod(&target.task_file);
    let output_in_pod = paths.in_pod(&target.output);
    // The shards start where `submit` ran when that is inside the shared folder.
    let workdir = if target.cwd.starts_with(&paths.shared) { paths.in_pod(&target.cwd) } else { paths.mount.clone() };
    // A Job's indices always run 0..completions: a resumed Job lists the shards its indices run
    // (MODELCALL_SHARD_INDICES) and has its own name, beside the first Job.
    let name = match only {
        None => job_name(&target.task_name),
        Some(_) => {
            let mut base = job_name(&target.task_name);
            base.truncate(40);
            format!("{}-r{}", base.trim_end_matches('-'), chrono::Local::now().format("%m%d%H%M%S"))
        }
    };
    let (completions, parallelism) = match only {
        None => (target.shards, target.parallel),
        Some(list) => (list.len() as u32, target.parallel.min(list.len() as u32)),
    };
    let labels = json!({ "app.kubernetes.io/name": "modelcall", "app.kubernetes.io/instance": name });
    let resources = json!({ "cpu": args.cpus_per_task.to_string(), "memory": format!("{mem}{unit}i") });
    let mut command = vec!["modelcall", "run-task", utf8(&task_in_pod, "the task file")?, "--no-progress"];
    if target.pin_output {
        command.extend(["--output-folder", utf8(&output_in_pod, "the output folder")?]);
    }
    let mut env = vec![
        json!({ "name": "MODELCALL_SHARD_COUNT", "value": target.shards.to_string() }),
        // The root filesystem is read-only: temporary files and any cache go to /tmp.
        json!({ "name": "TMPDIR", "value": "/tmp" }),
        json!({ "name": "HOME", "value": "/tmp" }),
    ];
    if let Some(list) = only {
        env.push(json!({ "name": "MODELCALL_SHARD_INDICES", "value": super::slurm::ranges(list) }));
    }
    for (var, secret, key) in &keys.from_secret {
        env.push(json!({ "name": var, "valueFrom": { "secretKeyRef": { "name": secret, "key": key } } }));
    }
    let mut container = json!({
        "name": "modelcall",
        "image": image,
        "command": command,
        "workingDir": utf8(&workdir, "the working folder")?,
        "env": env,
        "resources": { "requests": resources, "limits": resources },
        "securityContext": {
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": { "drop": ["ALL"] },
        },
    });
    if args.active_deadline_seconds == Some(0) {
        return Err(BadConfig("--active-deadline-seconds must be at least 1".into()));
    }
    let (uid, gid) = run_as(args);
    if uid == 0 {
        return Err(BadConfig("--run-as-user 0 is root; the pods run as a non-root user".into()));
    }
    let mut security = json!({ "runAsNonRoot": true, "runAsUser": uid, "seccompProfile": { "type": "RuntimeDefault" } });
    if let Some(gid) = gid {
        security["runAsGroup"] = json!(gid);
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "securityContext": security,
        "containers": [],
    });
    let mut volumes = vec![json!({ "name": "tmp", "emptyDir": {} })];
    let mut mounts = vec![json!({ "name": "tmp", "mountPath": "/tmp" })];
    let volume = match (&args.pvc, &args.host_path) {
        (Some(claim), _) => Some(json!({ "name": "shared", "persistentVolumeClaim": { "claimName": claim } })),
        (None, Some(dir)) => Some(json!({ "name": "shared", "hostPath": { "path": utf8(dir, "--host-path")?, "type": "Directory" } })),
        (None, None) => None,
    };
    if let Some(volume) = volume {
        mounts.push(json!({ "name": "shared", "mountPath": utf8(&paths.mount, "--mount-path")? }));
        volumes.push(volume);
    }
    container["volumeMounts"] = json!(mounts);
    pod["volumes"] = json!(volumes);
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
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimitPerIndex": args.backoff_limit_per_index.unwrap_or(DEFAULT_BACKOFF_LIMIT_PER_INDEX),
            // A configuration error (exit 2) fails the index at once: every retry would fail
            // the same way. A pod evicted by a drain or preemption is not counted.
            "podFailurePolicy": { "rules": [
                { "action": "FailIndex", "onExitCodes": { "containerName": "modelcall", "operator": "In", "values": [EXIT_BAD_CONFIGURATION] } },
                { "action": "Ignore", "onPodConditions": [{ "type": "DisruptionTarget", "status": "True" }] },
            ] },
            "activeDeadlineSeconds": args.active_deadline_seconds.unwrap_or(DEFAULT_ACTIVE_DEADLINE_SECONDS),
            "ttlSecondsAfterFinished": args.ttl_seconds_after_finished.unwrap_or(DEFAULT_TTL_SECONDS_AFTER_FINISHED),
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
