//! A key never reaches a log, a summary, an error row or a journal, even when the server echoes
//! it back or the user types it into the wrong field.

mod common;

use common::{read_jsonl, Scratch};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

const KEY: &str = "sk-live-0123456789abcdefSECRET";

/// A server that answers every request with HTTP 400 and a body quoting the key and the
/// Authorization header, for `requests` requests, then stops.
fn echoing_server(requests: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = format!("{{\"error\":{{\"message\":\"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}\"}}}}");
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, handle)
}

fn task(s: &Scratch, base_url: &str) -> std::path::PathBuf {
    s.write("input/data.jsonl", b"{\"id\":\"a\",\"text\":\"one\"}\n{\"id\":\"b\",\"text\":\"two\"}\n");
    s.write(
        "model.yaml",
        format!("client_config:\n  base_url: \"{base_url}\"\n  api_key: \"{KEY}\"\n  max_retries: 0\nchat_config:\n  model: \"m\"\n").as_bytes(),
    );
    let prompt = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let yaml = format!(
        "task_name: secrets\ndata:\n  input_folder: \"{}\"\n  output_folder: \"{}\"\n  input_key: text\n  prompt_format_key: text\n  output_format: jsonl\nmodel:\n  config_path: \"{}\"\nprompt:\n  config_path: \"{}\"\n",
        s.path("input").display(),
        s.path("out").display(),
        s.path("model.yaml").display(),
        prompt.display()
    );
    s.write("task.yaml", yaml.as_bytes())
}

fn everything_written(dir: &std::path::Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            everything_written(&p, out);
        } else if !p.starts_with(dir.join("input")) && p.extension().is_none_or(|x| x != "yaml") {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
}

#[test]
fn a_key_echoed_by_the_server_is_nowhere_in_what_the_tool_prints_or_writes() {
    let s = Scratch::new();
    // Two records, and the pre-flight `GET /models` before them.
    let (url, server) = echoing_server(3);
    let task = task(&s, &url);
    let out = Command::new(env!("CARGO_BIN_EXE_modelcall")).args(["run-task"]).arg(&task).arg("--no-progress").stdin(Stdio::null()).output().unwrap();
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 2, "{stderr}");
    assert_eq!(errors[0]["cause"], "model_rejected");
    let mut written = String::new();
    everything_written(s.dir.path(), &mut written);
    for (what, text) in [("stderr", &stderr), ("files", &written)] {
        assert!(!text.contains("0123456789abcdef"), "the key leaked into {what}: {text}");
    }
    assert!(written.contains("***"), "the redaction is visible where the key was");
}

#[test]
fn a_key_in_the_url_or_in_the_wrong_field_is_masked_in_dry_runs_and_config_errors() {
    let s = Scratch::new();
    let task = task(&s, &format!("https://user:{KEY}@example.invalid/v1"));
    let out = Command::new(env!("CARGO_BIN_EXE_modelcall")).args(["run-task"]).arg(&task).arg("--dry-run").output().unwrap();
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("0123456789abcdef") && shown.contains("example.invalid"), "{shown}");

    // The key typed as the model's name: quoted back by no message.
    let model = std::fs::read_to_string(s.path("model.yaml")).unwrap().replace("model: \"m\"", &format!("model: {{\"{KEY}\": 1}}"));
    std::fs::write(s.path("model.yaml"), model).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelcall")).args(["run-task"]).arg(&task).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
}
