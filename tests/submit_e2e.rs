//! `modelcall submit`: the real binary writes the Slurm job script and the Kubernetes Job of a
//! sharded run; the scheduler commands (`sbatch`, `kubectl`) are fakes on a test PATH.

mod common;

use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The key the tests' model config reads from `${OPENAI_API_KEY}`, set in `submit`'s environment
/// (a Slurm submission checks it is there; a Kubernetes Job must never hold it).
const KEY: &str = "sk-submit-0123456789abcdefSECRET";

/// A tiny scoring task over the simulated endpoint in `<scratch>/<dir>/task.yaml`, with its
/// input (`<dir>/input/data.jsonl`, 8 records), its model config (the key from
/// `${OPENAI_API_KEY}`) and prompt in `<dir>`, and output folder `<dir>/out`: everything the run
/// reads inside the one folder a Kubernetes volume shares.
fn task_in(s: &Scratch, dir: &str) -> PathBuf {
    let base = s.path(dir);
    std::fs::create_dir_all(base.join("input")).unwrap();
    let records: String = (0..8).map(|i| format!("{}\n", json!({"id": format!("r{i}"), "text": format!("Record {i} about rivers.")}))).collect();
    std::fs::write(base.join("input/data.jsonl"), records).unwrap();
    let model = base.join("model.yaml");
    std::fs::write(&model, "client_config:\n  base_url: \"sim://\"\n  api_key: \"${OPENAI_API_KEY}\"\n  timeout: 5\nchat_config:\n  model: \"m\"\n").unwrap();
    let prompt = base.join("prompt.yaml");
    std::fs::copy(repo_root().join("configs/prompts/en_corpus_quality_v1.yaml"), &prompt).unwrap();
    let q = |p: &Path| serde_json::to_string(p.to_str().unwrap()).unwrap();
    let yaml = format!(
        "task_name: e2e\ntask_type: data_scoring\n\
         data:\n  input_folder: {input}\n  output_folder: {out}\n  input_key: text\n  prompt_format_key: text\n  id_field: id\n  output_format: jsonl\n\
         model:\n  config_path: {model}\nprompt:\n  config_path: {prompt}\n",
        input = q(&base.join("input")),
        out = q(&base.join("out")),
        model = q(&model),
        prompt = q(&prompt),
    );
    let task = base.join("task.yaml");
    std::fs::write(&task, yaml).unwrap();
    task
}

fn submit(task: &Path, args: &[&str], path_env: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("submit").arg(task).args(args).stdin(Stdio::null()).env("OPENAI_API_KEY", KEY);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    cmd.output().expect("running modelcall submit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
}

/// A fake scheduler command in `dir`: records its arguments (one per line) in `<dir>/<name>.args`
/// and prints `reply`.
fn fake_command(dir: &Path, name: &str, reply: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join(format!("{name}.args"));
    let script = format!("#!/bin/bash\nprintf '%s\\n' \"$@\" > '{}'\necho '{reply}'\n", log.display());
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

#[test]
fn slurm_dry_run_prints_a_valid_array_script_and_writes_nothing() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let out = submit(
        &task,
        &["--scheduler", "slurm", "--shards", "4", "--parallel", "2", "--partition", "gpu", "--account", "lab-7", "--sbatch-arg=--qos=high", "--dry-run"],
        None,
    );
    assert_code(&out, 0);
    let script = text(&out.stdout);
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    for line in [
        "#SBATCH --job-name=modelcall-e2e",
        "#SBATCH --array=0-3%2",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=4G",
        "#SBATCH --time=24:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab-7",
        "#SBATCH --qos=high",
        "set -euo pipefail",
    ] {
        assert!(script.lines().any(|l| l == line), "missing `{line}` in:\n{script}");
    }
    let out_dir = std::fs::canonicalize(s.path("proj")).unwrap().join("out");
    assert!(script.contains(&format!("#SBATCH --output={}/.modelcall/logs/shard-%A_%a.out", out_dir.display())), "{script}");
    assert!(script.contains(&format!("#SBATCH --error={}/.modelcall/logs/shard-%A_%a.err", out_dir.display())), "{script}");
    let exec = script.lines().find(|l| l.starts_with("exec ")).expect("an exec line");
    assert!(exec.starts_with(&format!("exec {} run-task {} ", bin(), std::fs::canonicalize(&task).unwrap().display())), "{exec}");
    assert!(exec.contains(r#"--shard "$shard/4""#), "{exec}");
    assert!(script.contains("shard=$(( SLURM_ARRAY_TASK_ID + ${MODELCALL_SHARD_OFFSET:-0} ))\n"), "{script}");
    assert!(exec.ends_with("--no-progress"), "{exec}");

    let file = s.write("check.sbatch", script.as_bytes());
    let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax.stderr));
    assert!(!s.path("proj/out").exists(), "--dry-run writes nothing");

    // Without partition or account, no such lines; --parallel defaults to every shard.
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "3", "--dry-run"], None);
    assert_code(&out, 0);
    let script = text(&out.stdout);
    assert!(script.contains("#SBATCH --array=0-2%3\n"), "{script}");
    assert!(!script.contains("--partition") && !script.contains("--account"), "{script}");
}

/// The generated script, run by bash as one array task would be, runs that shard: paths with
/// spaces and quotes survive the quoting.
#[test]
fn the_slurm_script_runs_its_shard() {
    let s = Scratch::new();
    let task = task_in(&s, "it's a project");
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "2", "--dry-run"], None);
    assert_code(&out, 0);
    // In `#SBATCH` lines sbatch splits words itself: a backslash keeps the space and quote.
    let logs = std::fs::canonicalize(s.path("it's a project")).unwrap().join("out/.modelcall/logs/shard-%A_%a.out");
    let escaped = logs.to_str().unwrap().replace('\'', "\\'").replace(' ', "\\ ");
    assert!(text(&out.stdout).contains(&format!("#SBATCH --output={escaped}\n")), "{escaped}\n{}", text(&out.stdout));
    let script = s.write("shard.sbatch", &out.stdout);
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax.stderr));
    let run = Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", "1").env("OPENAI_API_KEY", KEY).stdin(Stdio::null()).output().unwrap();
    assert_code(&run, 0);
    let names: Vec<String> = std::fs::read_dir(s.path("it's a project/out")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.contains(".shard-1-of-2")), "shard 1 of 2 wrote its outputs: {names:?}");
    assert!(!names.iter().any(|n| n.contains(".shard-0-of-2")), "and only shard 1 ran: {names:?}");
}

#[test]
fn slurm_submits_through_sbatch() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let bin_dir = s.path("fakebin");
    let args_log = fake_command(&bin_dir, "sbatch", "12345");
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "4", "--parallel", "2"], Some(&bin_dir));
    assert_code(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("submitted Slurm job 12345 (4 shards, at most 2 at once)"), "{stdout}");
    assert!(stdout.contains("modelcall status"), "{stdout}");
    let script = std::fs::canonicalize(s.path("proj/out/.modelcall/submit/slurm.sbatch")).expect("the script is written");
    let args: Vec<String> = std::fs::read_to_string(&args_log).unwrap().lines().map(String::from).collect();
    assert_eq!(args, vec!["--parsable".to_string(), "--export=ALL,MODELCALL_SHARD_OFFSET=0".into(), script.display().to_string()]);
    assert!(s.path("proj/out/.modelcall/logs").is_dir(), "the log folder exists before the shards start");
}

#[test]
fn slurm_without_sbatch_says_so_and_keeps_the_script() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let empty = s.path("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "2"], Some(&empty));
    assert_code(&out, 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("sbatch was not found"), "{stderr}");
    let script = std::fs::canonicalize(s.path("proj/out/.modelcall/submit/slurm.sbatch")).expect("the script is written");
    assert!(stderr.contains(&script.display().to_string()), "names the script: {stderr}");
}

fn k8s_job(s: &Scratch, task: &Path, extra: &[&str]) -> serde_yaml::Value {
    let mut args =
        vec!["--scheduler", "k8s", "--shards", "4", "--parallel", "2", "--image", "registry.example.com/modelcall:1.0", "--pvc", "shared-data", "--dry-run"];
    if !extra.contains(&"--k8s-secret") {
        args.extend(["--k8s-secret", "openai"]);
    }
    args.extend_from_slice(extra);
    let out = submit(task, &args, None);
    assert_code(&out, 0);
    assert!(!text(&out.stdout).contains("0123456789abcdef"), "the key is in the Job:\n{}", text(&out.stdout));
    assert!(!s.path("proj/out").exists(), "--dry-run writes nothing");
    serde_yaml::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[test]
fn k8s_dry_run_prints_an_indexed_job() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let job = k8s_job(&s, &task, &["--namespace", "batch", "--mem", "8G", "--cpus-per-task", "3"]);
    let task_dir = std::fs::canonicalize(s.path("proj")).unwrap();
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], "modelcall-e2e");
    assert_eq!(job["metadata"]["namespace"], "batch");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 2);
    assert_eq!(spec["backoffLimitPerIndex"], 3);
    assert!(spec.get("maxFailedIndexes").is_none(), "{spec:?}");
    assert_eq!(spec["activeDeadlineSeconds"], 86400);
    assert_eq!(spec["ttlSecondsAfterFinished"], 604800);
    // A configuration error (exit 2) fails its index without the retries.
    let rules = spec["podFailurePolicy"]["rules"].as_sequence().expect("a podFailurePolicy");
    assert_eq!(rules[0]["action"], "FailIndex");
    assert_eq!(rules[0]["onExitCodes"]["operator"], "In");
    assert_eq!(rules[0]["onExitCodes"]["values"][0], 2);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example.com/modelcall:1.0");
    let command: Vec<&str> = c["command"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&command[..4], ["modelcall", "run-task", task_dir.join("task.yaml").to_str().unwrap(), "--no-progress"]);
    assert_eq!(&command[4..], ["--output-folder", task_dir.join("out").to_str().unwrap()]);
    assert_eq!(c["env"][0]["name"], "MODELCALL_SHARD_COUNT");
    assert_eq!(c["env"][0]["value"], "4");
    // The key: the variable the model config reads, from the Secret, never a value.
    let key_env = c["env"].as_sequence().unwrap().iter().find(|e| e["name"] == "OPENAI_API_KEY").expect("OPENAI_API_KEY in env");
    assert_eq!(key_env["valueFrom"]["secretKeyRef"]["name"], "openai");
    assert_eq!(key_env["valueFrom"]["secretKeyRef"]["key"], "OPENAI_API_KEY");
    assert!(key_env.get("value").is_none(), "{key_env:?}");
    // Hardened: non-root, read-only root filesystem (with /tmp writable), no capabilities.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let tmp = mounts.iter().find(|m| m["mountPath"] == "/tmp").expect("/tmp is mounted");
    let tmp_volume = pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == tmp["name"]).unwrap();
    assert!(tmp_volume.get("emptyDir").is_some(), "{tmp_volume:?}");
    assert_eq!(c["resources"]["limits"]["memory"], "8Gi");
    assert_eq!(c["resources"]["requests"]["cpu"], "3");
    let shared = mounts.iter().find(|m| m["name"] == "shared").unwrap();
    assert_eq!(shared["mountPath"], task_dir.to_str().unwrap());
    let shared = pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == "shared").unwrap();
    assert_eq!(shared["persistentVolumeClaim"]["claimName"], "shared-data");

    // Another mount path moves the task and output paths with it.
    let job = k8s_job(
        &s,
        &task,
        &[
            "--mount-path",
            "/data",
            "--backoff-limit-per-index",
            "0",
            "--k8s-secret",
            "llm-keys:openai",
            "--active-deadline-seconds",
            "3600",
            "--ttl-seconds-after-finished",
            "60",
            "--run-as-user",
            "1234",
        ],
    );
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"][2], "/data/task.yaml");
    assert_eq!(c["command"][5], "/data/out");
    assert!(c["volumeMounts"].as_sequence().unwrap().iter().any(|m| m["mountPath"] == "/data"));
    assert_eq!(job["spec"]["backoffLimitPerIndex"], 0);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600);
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 60);
    assert_eq!(job["spec"]["template"]["spec"]["securityContext"]["runAsUser"], 1234);
    let key_env = c["env"].as_sequence().unwrap().iter().find(|e| e["name"] == "OPENAI_API_KEY").unwrap();
    assert_eq!(key_env["valueFrom"]["secretKeyRef"]["name"], "llm-keys");
    assert_eq!(key_env["valueFrom"]["secretKeyRef"]["key"], "openai");
}

/// The Job against the Kubernetes JSON schema, with `kubernetes-validate` (PyPI, schemas
/// bundled, no cluster). Skipped, loudly, when it is not installed; with
/// MODELCALL_REQUIRE_K8S_VALIDATE=1 (CI) a missing validator fails the test.
#[test]
fn k8s_job_passes_the_kubernetes_schema() {
    let available = Command::new("kubernetes-validate").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available {
        let why = "`kubernetes-validate` is not on PATH (install: python3 -m pip install kubernetes-validate)";
        if std::env::var_os("MODELCALL_REQUIRE_K8S_VALIDATE").is_some_and(|v| v == "1") {
            panic!("MODELCALL_REQUIRE_K8S_VALIDATE=1 but {why}");
        }
        eprintln!("SKIPPED k8s_job_passes_the_kubernetes_schema: {why}");
        return;
    }
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    for extra in [&["--namespace", "batch"][..], &["--mount-path", "/data"][..]] {
        let job = k8s_job(&s, &task, extra);
        let yaml = serde_yaml::to_string(&job).unwrap();
        assert!(yaml.contains("secretKeyRef") && !yaml.contains("0123456789abcdef"), "{yaml}");
        let file = s.write("job.yaml", yaml.as_bytes());
        let check = Command::new("kubernetes-validate").arg("--strict").arg(&file).output().unwrap();
        assert!(check.status.success(), "kubernetes-validate --strict:\n{}{}", text(&check.stdout), text(&check.stderr));
        eprintln!("kubernetes-validate: {}", text(&check.stdout).trim());
    }
    // The merge Job that --merge adds after the shards' Job passes too.
    let out = submit(
        &task,
        &["--scheduler", "k8s", "--shards", "4", "--image", "m:1", "--pvc", "shared-data", "--k8s-secret", "openai", "--merge", "--dry-run"],
        None,
    );
    assert_code(&out, 0);
    let both = s.write("both.yaml", &out.stdout);
    let check = Command::new("kubernetes-validate").arg("--strict").arg(&both).output().unwrap();
    assert!(check.status.success(), "kubernetes-validate --strict (shards and merge Jobs):\n{}{}", text(&check.stdout), text(&check.stderr));
    assert_eq!(text(&check.stdout).matches("passed for resource job/").count(), 2, "both documents were checked: {}", text(&check.stdout));
    // A host-path volume too (the real command writes the file; a fake kubectl accepts it).
    let bin_dir = s.path("fakebin");
    fake_command(&bin_dir, "kubectl", "ok");
    let out = submit(&task, &["--scheduler", "k8s", "--shards", "2", "--image", "m:1", "--host-path", "/srv/shared", "--k8s-secret", "openai"], Some(&bin_dir));
    assert_code(&out, 0);
    let written = std::fs::read_to_string(s.path("proj/out/.modelcall/submit/job.yaml")).unwrap();
    assert!(written.contains("secretKeyRef") && !written.contains("0123456789abcdef"), "{written}");
    let check = Command::new("kubernetes-validate").arg("--strict").arg(s.path("proj/out/.modelcall/submit/job.yaml")).output().unwrap();
    assert!(check.status.success(), "kubernetes-validate --strict:\n{}{}", text(&check.stdout), text(&check.stderr));
}

#[test]
fn k8s_applies_through_kubectl() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let bin_dir = s.path("fakebin");
    let args_log = fake_command(&bin_dir, "kubectl", "job.batch/modelcall-e2e created");
    let out = submit(&task, &["--scheduler", "k8s", "--shards", "3", "--image", "m:1", "--pvc", "data", "--k8s-secret", "openai"], Some(&bin_dir));
    assert_code(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("job.batch/modelcall-e2e created"), "kubectl's output is shown: {stdout}");
    assert!(stdout.contains("submitted Kubernetes Indexed Job modelcall-e2e (3 shards, at most 3 at once)"), "{stdout}");
    let file = std::fs::canonicalize(s.path("proj/out/.modelcall/submit/job.yaml")).expect("the Job file is written");
    let args: Vec<String> = std::fs::read_to_string(&args_log).unwrap().lines().map(String::from).collect();
    assert_eq!(args, vec!["apply".to_string(), "-f".into(), file.display().to_string()]);
    let job: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(job["spec"]["completions"], 3);

    // No kubectl: exit 1, the file is kept and named.
    let empty = s.path("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = submit(&task, &["--scheduler", "k8s", "--shards", "3", "--image", "m:1", "--pvc", "data", "--k8s-secret", "openai"], Some(&empty));
    assert_code(&out, 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("kubectl was not found") && stderr.contains(&file.display().to_string()), "{stderr}");
}

#[test]
fn bad_input_exits_2_and_names_the_option() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let cases: &[(&[&str], &str)] = &[
        (&["--scheduler", "slurm", "--shards", "0", "--dry-run"], "--shards"),
        (&["--scheduler", "slurm", "--shards", "2", "--parallel", "0", "--dry-run"], "--parallel"),
        (&["--scheduler", "pbs", "--shards", "2", "--dry-run"], "--scheduler"),
        (&["--scheduler", "k8s", "--shards", "2", "--pvc", "data"], "--image"),
        (&["--scheduler", "k8s", "--shards", "2", "--image", "m:1"], "--pvc"),
        (&["--scheduler", "slurm", "--shards", "2", "--mem", "lots", "--dry-run"], "--mem"),
        (&["--scheduler", "slurm", "--shards", "2", "--image", "m:1", "--dry-run"], "--image"),
        (&["--scheduler", "k8s", "--shards", "2", "--partition", "gpu", "--dry-run"], "--partition"),
    ];
    for (args, named) in cases {
        let out = submit(&task, args, None);
        assert_code(&out, 2);
        let stderr = text(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: the error should name {named}: {stderr}");
    }
    assert!(!s.path("proj/out").exists(), "nothing written for bad input");

    // The output folder's parent must already exist (the shared folder).
    let yaml = std::fs::read_to_string(&task).unwrap();
    let missing = s.path("nowhere/deeper/out");
    let moved = yaml.replace(s.path("proj/out").to_str().unwrap(), missing.to_str().unwrap());
    let task2 = s.write("proj/task2.yaml", moved.as_bytes());
    let out = submit(&task2, &["--scheduler", "slurm", "--shards", "2", "--dry-run"], None);
    assert_code(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(s.path("nowhere/deeper").to_str().unwrap()), "names the missing folder: {stderr}");

    // An output folder already split into another number of shards.
    let plan = s.write("proj/out/.modelcall/shards.json", br#"{"shards": 8, "files": []}"#);
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "4", "--dry-run"], None);
    assert_code(&out, 2);
    assert!(text(&out.stderr).contains("--shards 8"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(plan.parent().unwrap().parent().unwrap()).unwrap();

    // A task that cannot be loaded is a configuration error too.
    let broken = s.write("proj/broken.yaml", b"task_name: x\ntask_type: data_scoring\n");
    let out = submit(&broken, &["--scheduler", "slurm", "--shards", "2", "--dry-run"], None);
    assert_code(&out, 2);
}

/// A `{timestamp}` in `data.output_folder` is resolved once, by `submit`: every shard gets the
/// same folder as `--output-folder`, and the submission files live in it.
#[test]
fn a_timestamped_output_folder_is_resolved_once_for_every_shard() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let out_dir = s.path("proj/out");
    let yaml = std::fs::read_to_string(&task).unwrap().replace(out_dir.to_str().unwrap(), &format!("{}/{{timestamp}}", out_dir.display()));
    std::fs::write(&task, yaml).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let bin_dir = s.path("fakebin");
    fake_command(&bin_dir, "sbatch", "777");
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "2"], Some(&bin_dir));
    assert_code(&out, 0);
    let runs: Vec<PathBuf> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "one timestamped folder: {runs:?}");
    let script = std::fs::read_to_string(runs[0].join(".modelcall/submit/slurm.sbatch")).unwrap();
    assert!(!script.contains("{timestamp}"), "{script}");
    let run_dir = std::fs::canonicalize(&runs[0]).unwrap();
    assert!(script.contains(&format!("--output-folder {} ", run_dir.display())), "{script}");
}

/// The key never goes into a Job: a model config holding it is refused, a key read from the
/// environment needs `--k8s-secret`, and `--dry-run` needs no key at all.
#[test]
fn k8s_takes_the_key_from_a_secret_and_refuses_a_literal_one() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let k8s = ["--scheduler", "k8s", "--shards", "2", "--image", "m:1", "--pvc", "data", "--dry-run"];

    // No Secret for ${OPENAI_API_KEY}: exit 2, naming the variable and the option.
    let out = submit(&task, &k8s, None);
    assert_code(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("OPENAI_API_KEY") && stderr.contains("--k8s-secret"), "{stderr}");

    // A dry run with no key in the environment at all still writes the Job.
    let out = Command::new(bin())
        .arg("submit")
        .arg(&task)
        .args(k8s)
        .args(["--k8s-secret", "openai"])
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(text(&out.stdout).contains("secretKeyRef"), "{}", text(&out.stdout));

    // The key written in the model config: refused with or without a Secret, and not quoted.
    let model = s.path("proj/model.yaml");
    let yaml = std::fs::read_to_string(&model).unwrap();
    std::fs::write(&model, yaml.replace("${OPENAI_API_KEY}", KEY)).unwrap();
    for extra in [&[][..], &["--k8s-secret", "openai"][..]] {
        let out = submit(&task, &[&k8s[..], extra].concat(), None);
        assert_code(&out, 2);
        let stderr = text(&out.stderr);
        assert!(stderr.contains("api_key holds the key itself") && stderr.contains("model.yaml"), "{stderr}");
        assert!(!stderr.contains("0123456789abcdef") && out.stdout.is_empty(), "{stderr}");
    }
    let bin_dir = s.path("fakebin");
    fake_command(&bin_dir, "kubectl", "ok");
    let out = submit(&task, &["--scheduler", "k8s", "--shards", "2", "--image", "m:1", "--pvc", "data", "--k8s-secret", "openai"], Some(&bin_dir));
    assert_code(&out, 2);
    assert!(!s.path("proj/out").exists(), "no Job file is written for a literal key");
    std::fs::write(&model, yaml).unwrap();

    // A bad Secret reference.
    let out = submit(&task, &[&k8s[..], &["--k8s-secret", "Bad_Name"]].concat(), None);
    assert_code(&out, 2);
    assert!(text(&out.stderr).contains("--k8s-secret"), "{}", text(&out.stderr));
}

/// With `--pvc` the pods see only the shared folder: an input, a config or a plugin outside it
/// is an error naming it (not only the output folder).
#[test]
fn k8s_pvc_refuses_files_outside_the_shared_folder() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let yaml = std::fs::read_to_string(&task).unwrap();
    let k8s = ["--scheduler", "k8s", "--shards", "2", "--image", "m:1", "--pvc", "data", "--k8s-secret", "openai", "--dry-run"];
    let outside = s.path("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let prompt = outside.join("prompt.yaml");
    std::fs::copy(s.path("proj/prompt.yaml"), &prompt).unwrap();
    std::fs::copy(s.path("proj/model.yaml"), outside.join("model.yaml")).unwrap();
    std::fs::create_dir_all(outside.join("input")).unwrap();
    std::fs::copy(s.path("proj/input/data.jsonl"), outside.join("input/data.jsonl")).unwrap();
    let cases = [
        ("the prompt", s.path("proj/prompt.yaml"), prompt.clone()),
        ("the model config", s.path("proj/model.yaml"), outside.join("model.yaml")),
        ("the input", s.path("proj/input"), outside.join("input")),
        ("the output", s.path("proj/out"), outside.join("out")),
    ];
    for (what, inside, moved) in cases {
        let q = |p: &Path| serde_json::to_string(p.to_str().unwrap()).unwrap();
        std::fs::write(&task, yaml.replace(&q(&inside), &q(&moved))).unwrap();
        let out = submit(&task, &k8s, None);
        assert_code(&out, 2);
        let stderr = text(&out.stderr);
        let shown = std::fs::canonicalize(moved.parent().unwrap()).unwrap().join(moved.file_name().unwrap());
        assert!(stderr.contains("--pvc") && stderr.contains(shown.to_str().unwrap()), "{what}: {stderr}");
        // Without --pvc (a dry run with no volume): a warning, the Job is printed.
        let no_pvc: Vec<&str> = k8s.iter().copied().filter(|a| *a != "--pvc" && *a != "data").collect();
        let out = submit(&task, &no_pvc, None);
        assert_code(&out, 0);
        assert!(text(&out.stderr).contains("warning") && text(&out.stderr).contains(shown.to_str().unwrap()), "{what}: {}", text(&out.stderr));
    }
    std::fs::write(&task, &yaml).unwrap();
    let out = submit(&task, &k8s, None);
    assert_code(&out, 0);
}

/// The environment a container of `doc` gets: its `env` list, with each `secretKeyRef` looked up
/// in `secrets` ((secret, key) → value), as Kubernetes would.
fn pod_env(container: &serde_yaml::Value, secrets: &[((&str, &str), &str)]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in container["env"].as_sequence().cloned().unwrap_or_default() {
        let name = e["name"].as_str().expect("an env name").to_string();
        let value = match (e["value"].as_str(), &e["valueFrom"]["secretKeyRef"]) {
            (Some(v), _) => v.to_string(),
            (None, r) => {
                let wanted = (r["name"].as_str().unwrap_or(""), r["key"].as_str().unwrap_or(""));
                secrets.iter().find(|(k, _)| *k == wanted).unwrap_or_else(|| panic!("no secret {wanted:?} for {name}")).1.to_string()
            }
        };
        env.push((name, value));
    }
    env
}

/// Runs a container's `command` here with only the environment Kubernetes would give it (the
/// manifest's `env`, plus `extra` such as `JOB_COMPLETION_INDEX`) in its `workingDir`, with the
/// real binary in place of the image's `modelcall`.
fn run_container(container: &serde_yaml::Value, secrets: &[((&str, &str), &str)], extra: &[(&str, String)]) -> Output {
    let command: Vec<String> = container["command"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(command[0], "modelcall", "{command:?}");
    let mut cmd = Command::new(bin());
    cmd.args(&command[1..]).args(container["args"].as_sequence().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()));
    cmd.current_dir(container["workingDir"].as_str().expect("a workingDir")).env_clear().stdin(Stdio::null());
    cmd.envs(pod_env(container, secrets));
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The pods' command, run here for both indices with exactly the environment the manifest sets
/// (and the Secret's key): a variable the Job forgets (the shard count, the key) fails here as it
/// would in the pods. Then the merge Job's two containers (wait, merge) finish the task.
#[test]
fn k8s_pod_commands_run_here_with_the_manifest_environment() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let shared = std::fs::canonicalize(s.path("proj")).unwrap();
    let out = submit(
        &task,
        &["--scheduler", "k8s", "--shards", "2", "--image", "m:1", "--host-path", shared.to_str().unwrap(), "--k8s-secret", "openai", "--merge", "--dry-run"],
        None,
    );
    assert_code(&out, 0);
    let yaml = text(&out.stdout);
    assert!(!yaml.contains("0123456789abcdef"), "the key is in the Jobs:\n{yaml}");
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&yaml).map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{e}: {yaml}"))).collect();
    assert_eq!(docs.len(), 2, "the shards' Job and the merge Job:\n{yaml}");
    let (shards, merge) = (&docs[0], &docs[1]);
    assert_eq!(shards["spec"]["completionMode"], "Indexed");
    assert_eq!(merge["metadata"]["name"], "modelcall-e2e-merge");
    let secrets = [(("openai", "OPENAI_API_KEY"), KEY)];

    let container = &shards["spec"]["template"]["spec"]["containers"][0];
    for index in 0..2 {
        let run = run_container(container, &secrets, &[("JOB_COMPLETION_INDEX", index.to_string())]);
        assert_code(&run, 0);
        assert!(s.path(&format!("proj/out/run_summary.shard-{index}-of-2.json")).is_file(), "index {index} ran shard {index}/2");
    }
    // Without the Secret's variable, the pod would fail: the check above is not vacuous.
    let mut bare = container.clone();
    bare["env"] =
        serde_yaml::to_value(container["env"].as_sequence().unwrap().iter().filter(|e| e["name"] != "MODELCALL_SHARD_COUNT").cloned().collect::<Vec<_>>())
            .unwrap();
    let run = run_container(&bare, &secrets, &[("JOB_COMPLETION_INDEX", "0".into())]);
    assert_code(&run, 2);
    assert!(text(&run.stderr).contains("MODELCALL_SHARD_COUNT"), "{}", text(&run.stderr));

    // The merge Job: its init container waits for the shards (done already), then it merges.
    let pod = &merge["spec"]["template"]["spec"];
    let wait = &pod["initContainers"][0];
    assert_eq!(wait["command"][1], "status");
    let run = run_container(wait, &secrets, &[]);
    assert_code(&run, 0);
    let run = run_container(&pod["containers"][0], &secrets, &[]);
    assert_code(&run, 0);
    assert!(text(&run.stderr).contains("verified"), "{}", text(&run.stderr));
    let merged = std::fs::read_to_string(s.path("proj/out/data.jsonl")).unwrap();
    assert_eq!(merged.lines().count(), 8, "{merged}");
}

/// A fake `sbatch` that appends each call's arguments (one line per call) to `<dir>/sbatch.calls`
/// and answers job ids 100, 101, …; a fake `scontrol show config` with `MaxArraySize=max`.
fn fake_slurm(dir: &Path, max: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let calls = dir.join("sbatch.calls");
    let sbatch =
        format!("#!/bin/bash\necho \"$*\" >> '{calls}'\nn=0\nwhile read -r _; do n=$((n + 1)); done < '{calls}'\necho $((99 + n))\n", calls = calls.display());
    let scontrol = format!("#!/bin/bash\n[ \"$*\" = 'show config' ] && printf 'MaxArraySize            = {max}\\nMaxJobCount             = 10000\\n'\n");
    for (name, body) in [("sbatch", sbatch), ("scontrol", scontrol)] {
        std::fs::write(dir.join(name), body).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    calls
}

/// More shards than `MaxArraySize`: one array per block of ids below it, each with its offset
/// (recorded in jobs.jsonl), and with --merge a merge job after all of them; the script maps
/// an array task to its shard by that offset. `--resume` submits only the unfinished shards.
#[test]
fn slurm_splits_arrays_at_max_array_size_merges_after_them_and_resumes_the_rest() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let bin_dir = s.path("fakebin");
    let calls = fake_slurm(&bin_dir, 3);
    // Only the fakes on PATH: a real Slurm on this machine is not asked.
    let path = bin_dir.display().to_string();
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "7", "--merge"], Some(Path::new(&path)));
    assert_code(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("stop below 3 (MaxArraySize in `scontrol show config`), so the 7 shard(s) go in 3 arrays"), "{stdout}");
    let script = std::fs::canonicalize(s.path("proj/out/.modelcall/submit/slurm.sbatch")).unwrap();
    let merge = std::fs::canonicalize(s.path("proj/out/.modelcall/submit/merge.sbatch")).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&calls).unwrap().lines().map(String::from).collect();
    let (script, merge) = (script.display().to_string(), merge.display().to_string());
    assert_eq!(
        lines,
        vec![
            format!("--parsable --array=0-2%7 --export=ALL,MODELCALL_SHARD_OFFSET=0 {script}"),
            format!("--parsable --array=0-2%7 --export=ALL,MODELCALL_SHARD_OFFSET=3 {script}"),
            format!("--parsable --array=0%7 --export=ALL,MODELCALL_SHARD_OFFSET=6 {script}"),
            format!("--parsable --dependency=afterok:100:101:102 --kill-on-invalid-dep=yes {merge}"),
        ]
    );
    assert!(stdout.contains("submitted Slurm job 101 (shard(s) 3-5 of 7, at most 3 at once)"), "{stdout}");
    assert!(stdout.contains("submitted Slurm merge job 103"), "{stdout}");
    let jobs: Vec<serde_json::Value> =
        std::fs::read_to_string(s.path("proj/out/.modelcall/submit/jobs.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(jobs.len(), 4);
    assert_eq!((jobs[1]["job"].as_str(), jobs[1]["offset"].as_u64(), &jobs[1]["shards"]), (Some("101"), Some(3), &json!([3, 4, 5])));
    assert_eq!(jobs[3]["kind"], "merge");
    let merge_script = std::fs::read_to_string(&merge).unwrap();
    assert!(merge_script.contains("#SBATCH --job-name=modelcall-e2e-merge") && merge_script.contains(" merge "), "{merge_script}");

    // Array task 1 of the second array (offset 3), as Slurm runs it: shard 4 of 7.
    let run = Command::new("bash")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("MODELCALL_SHARD_OFFSET", "3")
        .env("OPENAI_API_KEY", KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_code(&run, 0);
    assert!(text(&run.stderr).contains("modelcall: shard 4/7"), "{}", text(&run.stderr));
    assert!(s.path("proj/out/run_summary.shard-4-of-7.json").is_file(), "shard 4 of 7 ran");

    // --resume: the six shards not run yet, below the limit: ids 0-2 and 0-2 (offset 3, minus
    // shard 4) and 0 (offset 6).
    std::fs::remove_file(&calls).unwrap();
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "7", "--resume"], Some(Path::new(&path)));
    assert_code(&out, 0);
    assert!(text(&out.stderr).contains("resuming 6 unfinished shard(s) of 7: 0-3,5-6 (1 completed)"), "{}", text(&out.stderr));
    let lines: Vec<String> = std::fs::read_to_string(&calls).unwrap().lines().map(String::from).collect();
    assert_eq!(
        lines,
        vec![
            format!("--parsable --array=0-2%7 --export=ALL,MODELCALL_SHARD_OFFSET=0 {script}"),
            format!("--parsable --array=0,2%7 --export=ALL,MODELCALL_SHARD_OFFSET=3 {script}"),
            format!("--parsable --array=0%7 --export=ALL,MODELCALL_SHARD_OFFSET=6 {script}"),
        ]
    );
    // Another shard count than the folder's plan is refused up front.
    let out = submit(&task, &["--scheduler", "slurm", "--shards", "5", "--resume"], Some(Path::new(&path)));
    assert_code(&out, 2);
}

/// `--resume` on Kubernetes: a Job of just the unfinished shards, its completion index k running
/// the k-th of them (`MODELCALL_SHARD_INDICES`), run here with the manifest's environment.
#[test]
fn k8s_resume_runs_only_the_unfinished_shards() {
    let s = Scratch::new();
    let task = task_in(&s, "proj");
    let shared = std::fs::canonicalize(s.path("proj")).unwrap();
    let base = ["--scheduler", "k8s", "--shards", "3", "--image", "m:1", "--host-path", shared.to_str().unwrap(), "--k8s-secret", "openai", "--dry-run"];
    let secrets = [(("openai", "OPENAI_API_KEY"), KEY)];
    let doc = |out: &Output| -> serde_yaml::Value {
        let yaml = text(&out.stdout);
        let first = serde_yaml::Deserializer::from_str(&yaml).next().unwrap();
        serde::Deserialize::deserialize(first).unwrap_or_else(|e| panic!("{e}: {yaml}"))
    };
    // Shard 1 of 3 runs (index 1 of the full Job).
    let out = submit(&task, &base, None);
    assert_code(&out, 0);
    let full = doc(&out);
    let run = run_container(&full["spec"]["template"]["spec"]["containers"][0], &secrets, &[("JOB_COMPLETION_INDEX", "1".into())]);
    assert_code(&run, 0);

    let out = submit(&task, &[&base[..], &["--resume"]].concat(), None);
    assert_code(&out, 0);
    assert!(text(&out.stderr).contains("resuming 2 unfinished shard(s) of 3: 0,2 (1 completed)"), "{}", text(&out.stderr));
    let job = doc(&out);
    assert_eq!(job["spec"]["completions"], 2, "{job:?}");
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("modelcall-e2e-r") && name.len() <= 52, "{name}");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    for (index, shard) in [(0, 0), (1, 2)] {
        let run = run_container(container, &secrets, &[("JOB_COMPLETION_INDEX", index.to_string())]);
        assert_code(&run, 0);
        assert!(s.path(&format!("proj/out/run_summary.shard-{shard}-of-3.json")).is_file(), "index {index} ran shard {shard}/3");
    }
    let status = Command::new(bin()).arg("status").arg(&task).stdin(Stdio::null()).output().unwrap();
    assert_code(&status, 0);
    // Nothing left: nothing to submit.
    let out = submit(&task, &[&base[..], &["--resume"]].concat(), None);
    assert_code(&out, 0);
    assert!(text(&out.stderr).contains("nothing to resubmit") && out.stdout.is_empty(), "{}{}", text(&out.stdout), text(&out.stderr));
}
