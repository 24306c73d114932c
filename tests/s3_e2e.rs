//! Object storage end to end: input, output and journals on `s3://` against a real
//! S3-compatible server (moto's, from PyPI, started here on 127.0.0.1), with a kill -9 in the
//! middle and the resume on a "new machine" (the local staging folder deleted): every record
//! lands once, and what was uploaded before the kill is not sent again.
//!
//! The server comes from `target/s3-venv` (made here with pip when missing: moto[server] 5.2.5
//! and boto3); without it the test prints `SKIPPED: …` (MODELCALL_REQUIRE_S3=1 makes that a
//! failure, as `.ci/run` does).

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/s3-venv")
}

fn skipped(why: &str) {
    use std::io::Write;
    if std::env::var("MODELCALL_REQUIRE_S3").is_ok_and(|v| v == "1") {
        panic!("the S3 test must run here: {why}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: s3_e2e: {why}");
}

/// The venv's python with moto and boto3, installed once.
fn python() -> Option<PathBuf> {
    let py = venv().join("bin/python");
    let ready = |py: &Path| Command::new(py).args(["-c", "import moto, boto3, flask"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if py.is_file() && ready(&py) {
        return Some(py);
    }
    let made = Command::new("python3").args(["-m", "venv"]).arg(venv()).status().is_ok_and(|s| s.success())
        && Command::new(&py).args(["-m", "pip", "install", "-q", "moto[server]==5.2.5", "boto3==1.44.8"]).status().is_ok_and(|s| s.success());
    (made && ready(&py)).then_some(py)
}

/// moto's S3 server on a free port, under `timeout 600`; stopped when dropped (and it stops by
/// itself after 10 minutes).
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGTERM, which `timeout` passes on to the server; a SIGKILL would end `timeout` alone
        // and leave the server running with nothing to stop it.
        // SAFETY: signals our own child process, which has not been waited for yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start_moto(py: &Path) -> Option<Moto> {
    let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("timeout")
        .args(["600"])
        .arg(py)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(moto);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

const CREDENTIALS: [(&str, &str); 4] =
    [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "moto-secret-not-for-logs"), ("AWS_REGION", "us-east-1"), ("AWS_ALLOW_HTTP", "true")];

/// Runs Python with boto3 against the server (bucket setup and reading results).
fn boto(py: &Path, moto: &Moto, script: &str) -> String {
    let o = Command::new(py)
        .args(["-c", &format!("import boto3, json, sys\ns3 = boto3.client('s3', endpoint_url='{}')\n{script}", moto.url)])
        .envs(CREDENTIALS)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn modelcall(task: &Path, moto: &Moto, staging: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("run-task")
        .arg(task)
        .arg("--no-progress")
        .envs(CREDENTIALS)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("MODELCALL_STAGING_DIR", staging)
        .env("MODELCALL_REMOTE_SYNC_SECS", "0.2");
    c.stdin(Stdio::null());
    c
}

#[test]
fn input_output_and_resume_after_kill_on_s3() {
    let Some(py) = python() else { return skipped("no python venv with moto[server] (pip could not install it)") };
    let Some(moto) = start_moto(&py) else { return skipped("moto's S3 server did not start") };
    let s = Scratch::new();
    // 400 records in s3://data/in/part.jsonl.
    boto(&py, &moto, "s3.create_bucket(Bucket='data')\nbody = ''.join(json.dumps({'id': f'r{i:04d}', 'text': f'record {i} about tides'}) + '\\n' for i in range(400))\ns3.put_object(Bucket='data', Key='in/part.jsonl', Body=body.encode())");
    s.write("model.yaml", b"client_config:\n  base_url: \"sim://?latency_ms=40\"\n  api_key: k\n  timeout: 5\n  max_retries: 2\nchat_config:\n  model: m\n");
    let prompt = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let task = s.write(
        "task.yaml",
        format!(
            "task_name: s3\ndata:\n  input_folder: \"s3://data/in\"\n  output_folder: \"s3://data/out\"\n  input_key: text\n  id_field: id\n  output_format: jsonl\nmodel:\n  config_path: \"{}\"\nprompt:\n  config_path: \"{}\"\nconcurrency:\n  max_concurrent_requests: 8\n",
            s.path("model.yaml").display(),
            prompt.display()
        )
        .as_bytes(),
    );
    // A dry run stages the input to plan it, and sends and uploads nothing.
    let dry = modelcall(&task, &moto, &s.path("staging-dry")).arg("--dry-run").output().unwrap();
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let listed = boto(&py, &moto, "print(len(s3.list_objects_v2(Bucket='data', Prefix='out/').get('Contents', [])))");
    assert_eq!(listed.trim(), "0", "a dry run uploads nothing");
    // 400 records at 8 in flight and 40 ms: about 2 s. Killed after 1.2 s.
    let staging = s.path("staging-a");
    let mut child = modelcall(&task, &moto, &staging).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().unwrap();
    child.wait().unwrap();
    let journals = boto(&py, &moto, "print(len([o['Key'] for o in s3.list_objects_v2(Bucket='data', Prefix='out/.modelcall/').get('Contents', [])]))");
    assert!(journals.trim().parse::<u32>().unwrap() >= 1, "the journal was uploaded during the run");

    // Resumed on another machine: nothing local.
    let o = modelcall(&task, &moto, &s.path("staging-b")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("moto-secret-not-for-logs"), "the storage secret is never printed: {err}");
    let summary: Value =
        serde_json::from_str(&boto(&py, &moto, "print(s3.get_object(Bucket='data', Key='out/run_summary.json')['Body'].read().decode())")).unwrap();
    let resent = summary["requests"].as_u64().unwrap();
    assert!(resent < 400 && summary["records"]["already_done"].as_u64().unwrap() > 0, "the second run resumed from the uploaded journal: {summary}");
    let rows = boto(&py, &moto, "print(s3.get_object(Bucket='data', Key='out/part.jsonl')['Body'].read().decode(), end='')");
    let ids: Vec<String> = rows.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (400, 400), "every record once in s3://data/out/part.jsonl");
    eprintln!("second run sent {resent} of 400 requests");
}

#[test]
fn tos_paths_use_the_tos_environment() {
    let Some(py) = python() else { return skipped("no python venv with moto[server] (pip could not install it)") };
    let Some(moto) = start_moto(&py) else { return skipped("moto's S3 server did not start") };
    let s = Scratch::new();
    boto(&py, &moto, "s3.create_bucket(Bucket='agi-data')\ns3.put_object(Bucket='agi-data', Key='chats/c.jsonl', Body=b'{\"uid\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\\n')");
    s.write("teacher.yaml", b"client_config:\n  base_url: \"sim://\"\n  api_key: k\nchat_config:\n  model: t\n");
    let task = s.write(
        "task.yaml",
        format!(
            "task_name: tos\ntask_type: data_distillation\ndistillation:\n  step: generate_response\n  response_config_path: \"{}\"\n  input_path: \"tos://agi-data/chats/c.jsonl\"\n  output_path: \"tos://agi-data/answers\"\n",
            s.path("teacher.yaml").display()
        )
        .as_bytes(),
    );
    let mut c = Command::new(bin());
    c.arg("run-task").arg(&task).arg("--no-progress").stdin(Stdio::null()).env("MODELCALL_STAGING_DIR", s.path("staging"));
    // TOS's own variables only (no AWS ones): credentials and endpoint.
    c.env("TOS_ACCESS_KEY", "testing").env("TOS_SECRET_KEY", "tos-secret-not-for-logs").env("TOS_ENDPOINT", &moto.url).env("AWS_ALLOW_HTTP", "true");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = boto(&py, &moto, "print(s3.get_object(Bucket='agi-data', Key='answers/c.jsonl')['Body'].read().decode(), end='')");
    let row: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["uid"], "a");
    assert!(row["response"].is_string(), "{row}");
}
