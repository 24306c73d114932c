//! Python plugins end to end: the examples of examples/python (one per role) and two hostile
//! fixtures built with componentize-py against `wit/plugin.wit` and the SDK of
//! plugins/sdk-python, then run by the real `modelcall` binary: `plugin check`, `plugin run`,
//! a scoring task against `sim://`, a judge that raises (its Python traceback must reach the
//! error row), and the sandbox (no socket, no file, no environment; `print` reaches the
//! captured stderr).
//!
//! componentize-py must be on PATH (`pip install componentize-py==0.25.1`). Without it the
//! tests print `SKIPPED: …` and pass, unless `MODELCALL_REQUIRE_PYTHON_PLUGINS` is set, in
//! which case they fail. Builds go to `target/python-plugins/` (sources are copied there
//! first, so no `__pycache__` lands in the source tree) and are reused while their inputs
//! (app, SDK, WIT, componentize-py version) are unchanged. A first run on a machine compiles
//! each 19 MB component once (~11 s each on two cores; wasmtime's cache keeps them).

mod common;

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{read_jsonl, Scratch};
use serde_json::{json, Value};

/// The componentize-py release series these tests (and the docs) are verified with.
const COMPONENTIZE_PY_SERIES: &str = "0.25.";

const REQUIRE_ENV: &str = "MODELCALL_REQUIRE_PYTHON_PLUGINS";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A score parser that raises on the record whose id is `config.explode_id`, from a helper
/// function, so the traceback has more than one frame. It prints (without flushing) the id of
/// every record it judges, and its config schema allows `explode_id` (a string) only.
const RAISING_JUDGE: &str = r#"
from modelcall_plugin import Score, ScoreParser, register


def explode(record):
    raise ValueError(f"cannot judge record {record['id']}")


@register
class RaisingJudge(ScoreParser):
    name = "raising-judge"
    config_schema = {"type": "object", "properties": {"explode_id": {"type": "string"}}, "additionalProperties": False}

    def __init__(self, config):
        self.explode_id = config.get("explode_id")

    def parse(self, ctx, record, completion):
        print(f"judging {record.get('id')}")
        if record.get("id") == self.explode_id:
            explode(record)
        return Score(3.0, label="fine", extra={"judged_by": "raising-judge"})
"#;

/// A preprocessor that tries the network, the file system and the environment and reports
/// what happened, or (`"spin": true`) prints a marker and loops until the host stops it.
const HOSTILE: &str = r#"
import encodings.idna  # so create_connection reaches the socket calls rather than failing on the codec lookup
import os
import socket
import time

from modelcall_plugin import Keep, Preprocessor, register


def attempt(f):
    try:
        return f()
    except Exception as e:
        return f"{type(e).__name__}: {e}"


@register
class Hostile(Preprocessor):
    name = "hostile"

    def process(self, ctx, record):
        if record.get("spin"):
            print("python print reached the host", flush=True)
            while True:
                pass
        port = int(record["port"])
        def connect():
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return "connected"
        def raw_connect():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(("127.0.0.1", port))
            return "connected"
        def udp():
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", int(record["udp_port"])))
            return "sent"
        def lookup():
            socket.getaddrinfo("localhost", 80)
            return "resolved"
        def read_file():
            with open(record["file"]) as f:
                return "read: " + f.read(20)
        return Keep({
            "create_connection": attempt(connect),
            "connect": attempt(raw_connect),
            "udp": attempt(udp),
            "lookup": attempt(lookup),
            "file": attempt(read_file),
            "env": dict(os.environ),
            "now": time.time(),
        })
"#;

struct Built {
    judge: PathBuf,
    prompt: PathBuf,
    pre: PathBuf,
    raising_judge: PathBuf,
    hostile: PathBuf,
}

/// The built components, or why they cannot be built here.
fn built() -> Option<&'static Built> {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    match BUILT.get_or_init(build_all) {
        Ok(b) => Some(b),
        Err(why) => {
            if std::env::var_os(REQUIRE_ENV).is_some() {
                panic!("{REQUIRE_ENV} is set but {why}");
            }
            // Straight to the process's stderr: libtest captures eprintln! of passing tests.
            let _ = std::io::stderr().write_all(format!("SKIPPED: python_plugins_e2e: {why}\n").as_bytes());
            None
        }
    }
}

/// `Err` only when componentize-py is not available; a failing build panics.
fn build_all() -> Result<Built, String> {
    let version = match Command::new("componentize-py").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => return Err(format!("`componentize-py --version` failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return Err(format!("componentize-py is not on PATH ({e}); install it with `pip install componentize-py==0.25.1`")),
    };
    if !version.contains(COMPONENTIZE_PY_SERIES) {
        let _ = std::io::stderr().write_all(
            format!("warning: python_plugins_e2e: {version} found; these tests are verified with componentize-py {COMPONENTIZE_PY_SERIES}*\n").as_bytes(),
        );
    }
    let root = repo_root();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("python-plugins");
    let examples = root.join("examples/python");
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Ok(Built {
        judge: build(&out, "judge", "score-parser-plugin", &read(examples.join("judge/app.py")), &version),
        prompt: build(&out, "prompt", "prompt-builder-plugin", &read(examples.join("prompt/app.py")), &version),
        pre: build(&out, "pre", "preprocessor-plugin", &read(examples.join("pre/app.py")), &version),
        raising_judge: build(&out, "raising-judge", "score-parser-plugin", RAISING_JUDGE, &version),
        hostile: build(&out, "hostile", "preprocessor-plugin", HOSTILE, &version),
    })
}

/// FNV-1a over everything a build depends on, so an unchanged plugin is not rebuilt: a
/// componentize-py build is not byte-for-byte reproducible, and each new build costs a
/// fresh wasmtime compile (~11 s for a 19 MB component on two cores).
fn inputs_key(world: &str, app_source: &str, componentize_py: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    eat(world.as_bytes());
    eat(app_source.as_bytes());
    eat(componentize_py.as_bytes());
    eat(&std::fs::read(repo_root().join("wit/plugin.wit")).unwrap());
    let sdk = repo_root().join("plugins/sdk-python/modelcall_plugin");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&sdk).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "py")).collect();
    files.sort();
    for f in files {
        eat(f.file_name().unwrap().to_string_lossy().as_bytes());
        eat(&std::fs::read(&f).unwrap());
    }
    format!("{h:016x}")
}

/// Builds `app_source` (with the SDK beside it) into `<out>/<name>.wasm`, from a copy under
/// `<out>/src/<name>`; reuses an earlier build of the same inputs.
fn build(out: &Path, name: &str, world: &str, app_source: &str, componentize_py: &str) -> PathBuf {
    let wasm = out.join(format!("{name}.wasm"));
    let stamp = out.join(format!("{name}.inputs"));
    let key = inputs_key(world, app_source, componentize_py);
    if wasm.exists() && std::fs::read_to_string(&stamp).is_ok_and(|k| k == key) {
        return wasm;
    }
    let _ = std::fs::remove_file(&stamp);
    let src = out.join("src").join(name);
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app.py"), app_source).unwrap();
    common::copy_dir(&repo_root().join("plugins/sdk-python/modelcall_plugin"), &src.join("modelcall_plugin"));
    let _ = std::fs::remove_dir_all(src.join("modelcall_plugin/__pycache__"));
    let o = Command::new("componentize-py")
        .current_dir(&src)
        .arg("-d")
        .arg(repo_root().join("wit"))
        .args(["-w", world, "componentize", "app", "-p", ".", "-o"])
        .arg(&wasm)
        .stdin(Stdio::null())
        .output()
        .expect("running componentize-py");
    assert!(o.status.success(), "componentize-py failed for {name}:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    std::fs::write(&stamp, key).unwrap();
    wasm
}

fn modelcall(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().expect("running modelcall")
}

fn text(o: &Output) -> String {
    format!("status {}\nstdout:\n{}\nstderr:\n{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `modelcall plugin run` over `records`; one JSON value per outcome.
fn plugin_run(wasm: &Path, role: &str, records: &[Value], extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    let mut args = vec!["plugin", "run", wasm.to_str().unwrap(), "--role", role, "--input", input.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = modelcall(&args);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn examples_pass_plugin_check() {
    let Some(b) = built() else { return };
    for (wasm, role, name) in [
        (&b.judge, "score-parser", "python-json-judge"),
        (&b.prompt, "prompt-builder", "python-quality-prompt"),
        (&b.pre, "preprocessor", "python-non-empty-text"),
    ] {
        let o = modelcall(&["plugin", "check", wasm.to_str().unwrap(), "--role", role]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(&format!("name:        {name}")) && out.contains("version:     0.1.0"), "{out}");
        assert!(out.contains(&format!("role:        {role}")), "{out}");
        assert!(out.contains(&format!("modelcall:plugin/{role}@0.2.0")), "{out}");
        // componentize-py's runtime imports wasi:sockets: linked, and denied at run time.
        assert!(out.contains("wasi:sockets/tcp@"), "{out}");
    }
    // The judge publishes its config schema.
    let o = modelcall(&["plugin", "check", b.judge.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"score_key\""), "{}", text(&o));
}

/// How each `plugin check` process got the component, from the loader's debug lines
/// (`component ready: compile cache hit`, `…: compile cache miss: compiled and stored`, …).
fn how_loaded(wasm: &Path) -> Vec<String> {
    let o = Command::new(bin())
        .args(["plugin", "check", wasm.to_str().unwrap()])
        .env("MODELCALL_LOG", "modelcall_plugin_host=debug")
        .stdin(Stdio::null())
        .output()
        .expect("running modelcall");
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines().filter_map(|l| l.split_once("component ready: ")).map(|(_, how)| how.split(" plugin=").next().unwrap().to_string()).collect()
}

/// A second process loading a 19 MB Python component gets it from wasmtime's on-disk compile
/// cache (wasmtime's own hit counter, through the loader's log line), not from a new compile;
/// within one process `plugin check` (inspect, then load) deserialises it once. The wall times
/// are measured by `bench/python_plugins.sh` (PLUGINS.md, "Python plugins"), not asserted here.
#[test]
fn a_second_load_of_a_python_plugin_is_served_by_the_compile_cache() {
    let Some(b) = built() else { return };
    let first = how_loaded(&b.prompt);
    assert_eq!(first.len(), 2, "inspect and load each say how: {first:?}");
    assert_eq!(first[1], "already compiled in this process", "{first:?}");
    if first[0] == "compiled (not cached)" {
        let _ = std::io::stderr().write_all(b"SKIPPED: python_plugins_e2e: no usable compile cache directory on this machine\n");
        return;
    }
    // The first process compiled it (a cold cache) or another test's process already had.
    assert!(["compile cache miss: compiled and stored", "compile cache hit"].contains(&first[0].as_str()), "{first:?}");
    let second = how_loaded(&b.prompt);
    assert_eq!(second, ["compile cache hit", "already compiled in this process"], "the second process must not compile again");
}

#[test]
fn examples_run_on_sample_records() {
    let Some(b) = built() else { return };

    let l = plugin_run(
        &b.pre,
        "preprocessor",
        &[json!({"id": "a", "text": "hello world"}), json!({"id": "b", "text": "  \n"}), json!({"id": "c", "body": "x"})],
        &[],
    );
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(l[0]["outcome"], "keep", "{}", l[0]);
    assert_eq!(l[0]["records"], json!([{"id": "a", "text": "hello world"}]));
    assert_eq!((&l[1]["outcome"], &l[1]["reason"]), (&json!("skip"), &json!("empty text")), "{}", l[1]);
    assert_eq!(l[2]["outcome"], "skip", "{}", l[2]);
    // A config, and a host call (count-tokens) from Python.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yaml");
    std::fs::write(&cfg, "add_token_count: true\n").unwrap();
    let l = plugin_run(&b.pre, "preprocessor", &[json!({"id": "a", "text": "hello world"})], &["--config", cfg.to_str().unwrap()]);
    assert_eq!(l[0]["records"][0]["text_tokens"], 2, "{}", l[0]);

    let l = plugin_run(&b.prompt, "prompt-builder", &[json!({"id": "p1", "text": "Rivers carry bread."}), json!({"id": "p2"})], &[]);
    assert_eq!(l[0]["outcome"], "prompt", "{}", l[0]);
    let messages = l[0]["prompt"]["messages"].as_array().unwrap_or_else(|| panic!("{}", l[0]));
    assert_eq!(messages.len(), 2, "{}", l[0]);
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1]["role"], "user");
    assert!(messages[1]["content"].as_str().unwrap().contains("Rivers carry bread."), "{}", l[0]);
    assert_eq!(l[1]["outcome"], "error", "{}", l[1]);
    assert_eq!(l[1]["cause"], "plugin_invalid_input", "{}", l[1]);
    assert!(l[1]["message"].as_str().unwrap().contains("has no string field `text`"), "{}", l[1]);

    let l = plugin_run(
        &b.judge,
        "score-parser",
        &[
            json!({"id": "j1", "completion": "Verdict:\n```json\n{\"score\": 4, \"label\": \"general\", \"rationale\": \"clear\", \"tags\": [\"x\"]}\n```"}),
            json!({"id": "j2", "completion": "no verdict here"}),
            json!({"id": "j3", "completion": "{\"score\": 9}"}),
        ],
        &[],
    );
    assert_eq!(l[0]["outcome"], "score", "{}", l[0]);
    assert_eq!(l[0]["score"]["value"], 4.0);
    assert_eq!(l[0]["score"]["label"], "general");
    assert_eq!(l[0]["score"]["rationale"], "clear");
    assert_eq!(l[0]["score"]["extra"]["tags"], json!(["x"]));
    assert_eq!(l[1]["outcome"], "retry", "{}", l[1]);
    assert!(l[1]["hint"].as_str().unwrap().contains("\"score\""), "{}", l[1]);
    assert_eq!(l[2]["outcome"], "retry", "{}", l[2]);
    assert!(l[2]["hint"].as_str().unwrap().contains("between 1 and 5, got 9"), "{}", l[2]);
}

/// A scoring task over `n` records with `plugins` (YAML lines) and the sim endpoint.
fn scoring_task(s: &Scratch, n: usize, plugins: &str) -> PathBuf {
    common::write_records(&s.path("input/data.jsonl"), n);
    let model = s.write(
        "model.yaml",
        b"client_config:\n  base_url: \"sim://\"\n  api_key: \"sk-test\"\n  timeout: 5\n  max_retries: 2\nchat_config:\n  model: \"m\"\n  temperature: 0\n",
    );
    let prompt = repo_root().join("configs/prompts/en_corpus_quality_v1.yaml");
    let yaml = format!(
        "task_name: python-e2e\ntask_type: data_scoring\ndescription: python plugins\n\
         data:\n  input_folder: \"{input}\"\n  output_folder: \"{out}\"\n  stat_folder: \"{stat}\"\n  input_key: text\n  prompt_format_key: text\n  id_field: id\n  output_format: jsonl\n\
         model:\n  config_path: \"{model}\"\nprompt:\n  config_path: \"{prompt}\"\n\
         concurrency:\n  max_concurrent_requests: 8\nretry:\n  max_retries: 2\nplugins:\n{plugins}",
        input = s.path("input").display(),
        out = s.path("out").display(),
        stat = s.path("stat").display(),
        model = model.display(),
        prompt = prompt.display(),
    );
    s.write("task.yaml", yaml.as_bytes())
}

fn run_task(task: &Path) -> Output {
    Command::new(bin()).arg("run-task").arg(task).arg("--no-progress").stdin(Stdio::null()).output().expect("running modelcall")
}

#[test]
fn a_scoring_task_with_the_python_judge_scores_every_record() {
    let Some(b) = built() else { return };
    let s = Scratch::new();
    let task = scoring_task(&s, 40, &format!("  judge:\n    role: score-parser\n    path: \"{}\"\n", b.judge.display()));
    let o = run_task(&task);
    assert!(o.status.success(), "{}", text(&o));
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 40, "{}", text(&o));
    for r in &rows {
        assert_eq!(r["api_status"], "success", "{r}");
        let score = r["score"].as_f64().unwrap_or_else(|| panic!("a numeric score: {r}"));
        assert!((1.0..=5.0).contains(&score), "{r}");
        // `extra` (the whole verdict) is merged into the row.
        assert!(r["corpus_type"].is_string(), "{r}");
    }
    assert!(read_jsonl(&s.path("out/data.errors.jsonl")).is_empty());

    // The three Python plugins together: preprocessor, prompt builder, judge.
    let s = Scratch::new();
    let plugins = format!(
        "  clean:\n    role: preprocessor\n    path: \"{}\"\n  prompt:\n    role: prompt-builder\n    path: \"{}\"\n  judge:\n    role: score-parser\n    path: \"{}\"\n",
        b.pre.display(),
        b.prompt.display(),
        b.judge.display()
    );
    let task = scoring_task(&s, 20, &plugins);
    let mut input = std::fs::read_to_string(s.path("input/data.jsonl")).unwrap();
    input.push_str("{\"id\": \"empty\", \"text\": \"   \"}\n");
    std::fs::write(s.path("input/data.jsonl"), input).unwrap();
    let o = run_task(&task);
    assert!(o.status.success(), "{}", text(&o));
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 20, "the empty record is skipped by the preprocessor: {}", text(&o));
    for r in &rows {
        assert!((1.0..=5.0).contains(&r["score"].as_f64().unwrap_or(0.0)), "{r}");
        // The Python prompt asks for label and rationale; the judge returns them.
        assert!(r["label"].is_string() && r["rationale"].is_string(), "{r}");
    }
}

#[test]
fn a_python_exception_puts_its_traceback_in_the_error_row() {
    let Some(b) = built() else { return };
    let s = Scratch::new();
    let task =
        scoring_task(&s, 5, &format!("  judge:\n    role: score-parser\n    path: \"{}\"\n    config: {{explode_id: r000002}}\n", b.raising_judge.display()));
    let o = run_task(&task);
    let rows = read_jsonl(&s.path("out/data.jsonl"));
    assert_eq!(rows.len(), 4, "the other records are scored: {}", text(&o));
    assert!(rows.iter().all(|r| r["judged_by"] == "raising-judge"), "{rows:?}");
    let errors = read_jsonl(&s.path("out/data.errors.jsonl"));
    assert_eq!(errors.len(), 1, "{errors:?}\n{}", text(&o));
    let e = &errors[0];
    assert_eq!(e["key"], "r000002", "{e}");
    // API 0.2: an exception is the parser's own failure, not an unusable reply.
    assert_eq!(e["cause"], "plugin_internal", "{e}");
    let message = e["message"].as_str().unwrap_or_else(|| panic!("a message: {e}"));
    assert!(message.contains("ValueError: cannot judge record r000002"), "{message}");
    assert!(message.contains("Traceback (most recent call last)"), "{message}");
    assert!(message.contains("app.py\", line") && message.contains("in explode"), "{message}");
}

#[test]
fn python_components_get_no_network_no_files_no_environment() {
    let Some(b) = built() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "secret").unwrap();

    let l = plugin_run(&b.hostile, "preprocessor", &[json!({"id": "net", "port": port, "udp_port": udp_port, "file": secret.path()})], &[]);
    assert_eq!(l[0]["outcome"], "keep", "{}", l[0]);
    let r = &l[0]["records"][0];
    // create_connection fails at its name lookup (denied even for a numeric address);
    // a raw socket is refused when it is created.
    assert!(r["create_connection"].as_str().unwrap().starts_with("gaierror"), "{r}");
    assert!(r["connect"].as_str().unwrap().starts_with("PermissionError"), "{r}");
    assert!(r["udp"].as_str().unwrap().starts_with("PermissionError"), "{r}");
    assert!(r["lookup"].as_str().unwrap().starts_with("gaierror"), "{r}");
    assert!(r["file"].as_str().unwrap().starts_with("FileNotFoundError"), "{r}");
    assert_eq!(r["env"], json!({}), "{r}");
    // The clock is the host's.
    assert!(r["now"].as_f64().unwrap() > 1.7e9, "{r}");
    assert!(listener.accept().is_err(), "nothing may have connected");
    assert!(udp.recv_from(&mut [0u8; 16]).is_err(), "nothing may have been sent");

    // `print` goes to the captured stderr, which a trap report quotes.
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("limits.yaml");
    std::fs::write(&limits, "fuel: 200000000\ntimeout_ms: 10000\n").unwrap();
    let l = plugin_run(&b.hostile, "preprocessor", &[json!({"id": "spin", "spin": true})], &["--limits", limits.to_str().unwrap()]);
    assert_eq!(l[0]["cause"], "plugin_trap_fuel", "{}", l[0]);
    assert!(l[0]["stderr"].as_str().unwrap().contains("python print reached the host"), "{}", l[0]);
}

#[test]
fn what_a_python_plugin_prints_shows_in_plugin_run() {
    let Some(b) = built() else { return };
    let l = plugin_run(&b.raising_judge, "score-parser", &[json!({"id": "j1", "completion": "fine"}), json!({"id": "j2", "completion": "fine"})], &[]);
    assert_eq!(l[0]["outcome"], "score", "{}", l[0]);
    // Each call's own print, flushed by the SDK at the end of the call.
    assert_eq!(l[0]["output"], "judging j1\n", "{}", l[0]);
    assert_eq!(l[1]["output"], "judging j2\n", "{}", l[1]);
}

#[test]
fn a_python_config_the_schema_refuses_names_the_yaml_line() {
    let Some(b) = built() else { return };
    for (config, key, expected) in [
        ("explode_idd: r000002", "explode_idd", "unknown key (did you mean `explode_id`?); the schema allows: explode_id"),
        ("explode_id: 3", "explode_id", "expected string, got integer"),
    ] {
        let s = Scratch::new();
        let task =
            scoring_task(&s, 3, &format!("  judge:\n    role: score-parser\n    path: \"{}\"\n    config:\n      {config}\n", b.raising_judge.display()));
        let yaml = std::fs::read_to_string(&task).unwrap();
        let line = yaml.lines().position(|l| l.trim_start().starts_with(config)).unwrap() + 1;
        let o = run_task(&task);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{}:{line}:7: `plugins.judge.config.{key}`: {expected}", task.display())), "{}", text(&o));
        assert!(!s.path("out/data.jsonl").exists(), "no record was scored: {}", text(&o));
    }
    // `plugin run` refuses the unknown key too (the SDK and the host both hold the config to the schema).
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yaml");
    std::fs::write(&cfg, "explode_idd: x\n").unwrap();
    let o = modelcall(&["plugin", "check", b.raising_judge.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("{}:1:1: `explode_idd`: unknown key", cfg.display())), "{}", text(&o));
}
