//! Credentials in every form (issue 21, items 1 and 3): a key given as URL userinfo, echoed back
//! by the server as the `Authorization: Basic` base64 of `user:KEY`, as the base64 of the key
//! alone or URL-encoded, is nowhere in what the tool prints or writes; `client_config.api_key_file`
//! holds the key in a file only its owner may read.

mod common;

use common::{read_jsonl, Scratch};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

/// A key whose URL-encoded form differs from it (`/`, `+`, `=`).
const KEY: &str = "sk-live/0123456789+abcdef=SECRET";
const KEY_URL_ENCODED: &str = "sk-live%2F0123456789%2Babcdef%3DSECRET";
const USER: &str = "someone";

/// Standard base64 with padding (written out here: the test does not use the code it checks).
fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// One request as the server saw it: the request line and the `Authorization` header's value.
struct Seen {
    line: String,
    authorization: Option<String>,
}

/// An HTTP/1.1 server on 127.0.0.1 answering each request with `answer(&seen)` → (status line,
/// JSON body), one request per connection, for as long as the test runs.
fn server(answer: fn(&Seen) -> (&'static str, String)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let (mut authorization, mut length) = (None, 0usize);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap_or((&h, ""));
                match name.trim().to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(value.trim().to_string()),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let (status, body) = answer(&Seen { line: line.trim().to_string(), authorization });
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    format!("{addr}")
}

/// The echo a careless server makes: the credentials it got, bare (not as a header line, which
/// any redactor catches), the Basic value decoded to base64 of the key alone, and the key
/// URL-encoded as a query string would carry it.
fn echo(seen: &Seen) -> String {
    let credentials = seen.authorization.as_deref().unwrap_or("none");
    let token = credentials.split_once(' ').map(|(_, t)| t).unwrap_or(credentials);
    format!(
        r#"{{"error":{{"message":"credentials {token} were refused (the key's base64 is {}; as sent: key={KEY_URL_ENCODED})","type":"invalid_request_error"}}}}"#,
        b64(KEY.as_bytes())
    )
}

fn task(s: &Scratch, model_yaml: &str) -> std::path::PathBuf {
    s.write("input/data.jsonl", b"{\"id\":\"a\",\"text\":\"one\"}\n{\"id\":\"b\",\"text\":\"two\"}\n");
    s.write("model.yaml", model_yaml.as_bytes());
    let prompt = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("configs/prompts/en_corpus_quality_v1.yaml");
    let yaml = format!(
        "task_name: credentials\ndata:\n  input_folder: \"{}\"\n  output_folder: \"{}\"\n  input_key: text\n  prompt_format_key: text\n  id_field: id\n  output_format: jsonl\nmodel:\n  config_path: \"{}\"\nprompt:\n  config_path: \"{}\"\nretry:\n  max_retries: 0\n",
        s.path("input").display(),
        s.path("out").display(),
        s.path("model.yaml").display(),
        prompt.display()
    );
    s.write("task.yaml", yaml.as_bytes())
}

fn userinfo_task(s: &Scratch, addr: &str) -> std::path::PathBuf {
    let model =
        format!("client_config:\n  base_url: \"http://{USER}:{KEY_URL_ENCODED}@{addr}/v1\"\n  max_retries: 0\n  timeout: 10\nchat_config:\n  model: \"m\"\n");
    task(s, &model)
}

fn run(task: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelcall")).arg("run-task").arg(task).arg("--no-progress").args(extra).stdin(Stdio::null()).output().unwrap()
}

/// Every byte under `dir` but the inputs and the YAML the test wrote (which hold the key).
fn everything_written(dir: &std::path::Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "input") {
                everything_written(&p, out);
            }
        } else if p.extension().is_none_or(|x| x != "yaml") && p.file_name().is_some_and(|n| n != "key.txt") {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
}

/// Each form of the key a server can echo, by name, with a part of it that must not show
/// anywhere: the whole key, its URL encoding, and 16 characters from the middle of each base64
/// (12 bytes of the key: the edges may stay, they encode at most 2 bytes of it).
fn forms() -> Vec<(&'static str, String)> {
    let basic = b64(format!("{USER}:{KEY}").as_bytes());
    let bare = b64(KEY.as_bytes());
    let middle = |s: &str| s[s.len() / 2 - 8..s.len() / 2 + 8].to_string();
    vec![
        ("the key", KEY.to_string()),
        ("the key's middle", "0123456789".to_string()),
        ("the key URL-encoded", KEY_URL_ENCODED.to_string()),
        ("the Basic-auth base64 of user:key", basic.clone()),
        ("the middle of the Basic-auth base64", middle(&basic)),
        ("the middle of the key's base64", middle(&bare)),
    ]
}

fn assert_nowhere(s: &Scratch, out: &Output) {
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut written = String::new();
    everything_written(s.dir.path(), &mut written);
    assert!(!written.is_empty(), "the run wrote nothing");
    for (what, form) in forms() {
        assert!(!printed.contains(&form), "{what} ({form}) was printed:\n{printed}");
        assert!(!written.contains(&form), "{what} ({form}) was written:\n{written}");
    }
}

#[test]
fn userinfo_echoed_by_a_401_as_basic_auth_base64_or_url_encoded_is_nowhere() {
    let addr = server(|seen| ("401 Unauthorized", echo(seen)));
    // The server really got the key as Basic auth (else the test proves nothing).
    let s = Scratch::new();
    let task = userinfo_task(&s, &addr);
    let out = run(&task, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(matches!(out.status.code(), Some(1..=3)), "{stderr}");
    assert!(stderr.contains("401") || stderr.contains("refused"), "the 401 is reported: {stderr}");
    let summary = std::fs::read_to_string(s.path("out/run_summary.json")).unwrap_or_default();
    assert!(summary.contains("credentials"), "the server's message is in the summary: {summary}");
    assert_nowhere(&s, &out);
}

#[test]
fn userinfo_echoed_by_a_400_into_every_error_row_is_nowhere() {
    let addr = server(|seen| {
        assert!(seen.line.starts_with("GET") || seen.authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")), "{:?}", seen.authorization);
        ("400 Bad Request", echo(seen))
    });
    let s = Scratch::new();
    let task = userinfo_task(&s, &addr);
    let out = run(&task, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors.iter().all(|e| e.to_string().contains("credentials")), "the server's message is kept: {errors:?}");
    assert!(errors.iter().all(|e| e.to_string().contains("***")), "the redaction shows: {errors:?}");
    assert_nowhere(&s, &out);
}

/// A reply the scoring prompt accepts, only for the right Bearer key.
fn bearer_checking(seen: &Seen) -> (&'static str, String) {
    if seen.authorization.as_deref() != Some(&format!("Bearer {KEY}")) {
        return ("401 Unauthorized", r#"{"error":{"message":"wrong key"}}"#.to_string());
    }
    if seen.line.starts_with("GET") {
        return ("200 OK", r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#.to_string());
    }
    let content = r#"{\"score\": 4, \"corpus_type\": \"general\", \"main_languages\": [\"en\"], \"quality_tags\": [], \"recommended_use_case\": \"x\"}"#;
    let body = format!(
        r#"{{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}}}"#
    );
    ("200 OK", body)
}

#[cfg(unix)]
#[test]
fn api_key_file_is_read_only_when_its_owner_alone_may_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let addr = server(bearer_checking);
    let s = Scratch::new();
    let key_file = s.write("key.txt", format!("{KEY}\n").as_bytes());
    // Line 3 of the model config.
    let model = format!("client_config:\n  base_url: \"http://{addr}/v1\"\n  api_key_file: key.txt\n  max_retries: 0\nchat_config:\n  model: \"m\"\n");
    let task = task(&s, &model);

    // Readable by the group: refused at load, naming file:line and the key, before any request.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run(&task, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let model_path = s.path("model.yaml").display().to_string();
    assert!(stderr.contains(&format!("{model_path}:3")), "file:line in {stderr}");
    assert!(stderr.contains("api_key_file") && stderr.contains("0640") && stderr.contains("0600"), "{stderr}");
    assert!(!s.path("out/data.jsonl").exists());

    // Both api_key and api_key_file: refused.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(s.path("model.yaml"), model.replace("  api_key_file:", "  api_key: \"x-other-key\"\n  api_key_file:")).unwrap();
    let out = run(&task, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");

    // 0600, the key in no environment variable: the server gets it as the Bearer token.
    std::fs::write(s.path("model.yaml"), &model).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelcall"))
        .arg("run-task")
        .arg(&task)
        .arg("--no-progress")
        .env_remove("OPENAI_API_KEY")
        .env_remove("API_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 2, "{stderr}");
    assert_eq!(rows[0]["score"], 4, "{:?}", rows[0]);
    assert_nowhere(&s, &out);

    // A missing key file stops a run at load.
    std::fs::remove_file(&key_file).unwrap();
    let out = run(&task, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("key.txt") && stderr.contains(&format!("{model_path}:3")), "{stderr}");
}
