//! `modelcall plugin new` / `plugin build` end to end, as a plugin author outside the
//! repository: for each Rust role a new project (SDK vendored from the binary) passes its own
//! `cargo test`, builds to a component that `plugin check` accepts, and its `task.yaml` scores
//! every sample record against the simulator. The three builds share one CARGO_TARGET_DIR
//! (`target/scaffold-e2e`) so the dependencies compile once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn shared_target_dir() -> PathBuf {
    repo_root().join("target/scaffold-e2e")
}

/// The Rust roles build one after another: they share a target dir and two CPU cores.
static BUILDS: Mutex<()> = Mutex::new(());

fn show(out: &Output) -> String {
    format!("{}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawning a command");
    assert!(out.status.success(), "{cmd:?} failed: {}", show(&out));
    out
}

fn modelcall(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir).env("CARGO_TARGET_DIR", shared_target_dir());
    c
}

/// A scratch folder outside the repository (the system temp dir), so the project is not
/// inside the modelcall workspace.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("modelcall-scaffold-").tempdir().unwrap();
    assert!(!dir.path().starts_with(repo_root()), "the scratch folder must be outside the repository");
    dir
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = if rel.is_empty() { e.file_name().to_string_lossy().to_string() } else { format!("{rel}/{}", e.file_name().to_string_lossy()) };
            if e.path().is_dir() {
                walk(&e.path(), &name, out);
            } else {
                out.push(name);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// No `{{placeholder}}` of the templates is left in the project's own files.
fn assert_placeholders_filled(project: &Path) {
    for rel in files_under(project) {
        if rel.starts_with("vendor/") {
            continue;
        }
        let text = std::fs::read_to_string(project.join(&rel)).unwrap();
        if let Some(i) = text.as_bytes().windows(3).position(|w| w[0] == b'{' && w[1] == b'{' && w[2].is_ascii_lowercase()) {
            panic!("{rel}: a placeholder is left: {}", &text[i..(i + 40).min(text.len())]);
        }
    }
}

/// The SDK the binary vendors is the repository's SDK, file for file (the files `cargo
/// package` ships), with the WIT inside it.
fn assert_vendored_sdk_is_current(project: &Path) {
    let vendored = project.join("vendor/modelcall-plugin-sdk");
    let sdk = repo_root().join("plugins/sdk");
    let shipped = |f: &String| {
        f == "Cargo.toml"
            || f == "README.md"
            || (f.starts_with("src/") && f.ends_with(".rs"))
            || (f.starts_with("wit/") && f.ends_with(".wit") && f.matches('/').count() == 1)
    };
    // (`include = ["wit/*.wit"]`: the current track only; frozen tracks stay in the repository.)
    let expected: Vec<String> = files_under(&sdk).into_iter().filter(shipped).collect();
    assert!(expected.contains(&"wit/plugin.wit".to_string()), "plugins/sdk/wit/plugin.wit (the link to wit/) is missing");
    assert_eq!(files_under(&vendored), expected, "the SDK embedded in modelcall (scaffold.rs SDK_FILES) differs from plugins/sdk");
    for f in &expected {
        assert_eq!(std::fs::read(vendored.join(f)).unwrap(), std::fs::read(sdk.join(f)).unwrap(), "vendored {f} differs from plugins/sdk/{f}");
    }
    assert!(!vendored.join("wit").is_symlink(), "the vendored WIT is a real folder");
}

fn rust_role(role: &str) {
    let _serial = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = scratch();
    let name = format!("my-{role}");
    let project = tmp.path().join(&name);

    let out = run(modelcall(tmp.path()).args(["plugin", "new", &name, "--role", role]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name), "{}", show(&out));
    for f in ["Cargo.toml", "src/lib.rs", "sample.jsonl", "model.yaml", "task.yaml", "README.md", "vendor/modelcall-plugin-sdk/wit/plugin.wit"] {
        assert!(project.join(f).is_file(), "plugin new wrote no {f}");
    }
    let model = std::fs::read_to_string(project.join("model.yaml")).unwrap();
    assert!(model.contains("base_url: \"sim://\""), "{model}");
    let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    let (feature_trait, register) = match role {
        "preprocessor" => ("impl Preprocessor for", "register_preprocessor!"),
        "prompt-builder" => ("impl PromptBuilder for", "register_prompt_builder!"),
        _ => ("impl ScoreParser for", "register_score_parser!"),
    };
    assert!(lib.contains(feature_trait) && lib.contains(register) && lib.contains("#[test]"), "{lib}");
    assert_placeholders_filled(&project);
    assert_vendored_sdk_is_current(&project);

    // The native unit tests of the new project.
    let out = run(Command::new("cargo").arg("test").current_dir(&project).env("CARGO_TARGET_DIR", shared_target_dir()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("test result: ok. 2 passed"), "the project's two unit tests should pass: {text}");

    // The component: built, copied to NAME.wasm, and accepted by `plugin check`.
    let out = run(modelcall(&project).args(["plugin", "build"]));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let wasm = project.join(format!("{name}.wasm"));
    assert_eq!(project.join(&printed).canonicalize().ok(), wasm.canonicalize().ok(), "plugin build prints the component's path: {}", show(&out));
    let out = run(modelcall(&project).args(["plugin", "check"]).arg(&wasm).args(["--role", role]));
    let check = String::from_utf8_lossy(&out.stdout);
    assert!(check.contains(&name), "plugin check names the plugin: {check}");

    // The task: every sample record scored against the simulator.
    let out = run(modelcall(&project).args(["run-task", "task.yaml", "--no-progress"]));
    let samples = read_jsonl(&project.join("sample.jsonl"));
    let rows = read_jsonl(&project.join("output/scored/sample.jsonl"));
    assert_eq!(rows.len(), samples.len(), "one scored row per sample record: {}", show(&out));
    for row in &rows {
        assert_eq!(row["api_status"], "success", "{row}");
        let score = row["score"].as_f64().unwrap_or_else(|| panic!("a numeric score in {row}"));
        assert!((1.0..=5.0).contains(&score), "{row}");
        if role == "preprocessor" {
            assert!(row["char_count"].as_u64().is_some(), "the preprocessor's field reaches the output: {row}");
        }
    }
    let errors = project.join("output/scored/sample.errors.jsonl");
    assert!(!errors.exists() || read_jsonl(&errors).is_empty(), "no errors: {}", show(&out));

    // plugin dev on the one-role project (built-ins for the other roles): the chain of 2
    // records, the task's own rows untouched.
    let before = std::fs::read(project.join("output/scored/sample.jsonl")).unwrap();
    let out = run(modelcall(&project).args(["plugin", "dev", "task.yaml", "--sample", "2"]));
    let chain = chains(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(chain.len(), 2, "{}", show(&out));
    for (id, labels) in &chain {
        let kinds: Vec<&str> = labels.iter().map(|l| l.split(' ').next().unwrap()).collect();
        let expected: &[&str] =
            if role == "preprocessor" { &["record", "reader", "prompt", "reply", "verdict"] } else { &["record", "prompt", "reply", "verdict"] };
        assert_eq!(kinds, expected, "{id}: {}", show(&out));
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains("rebuilding"), "the .wasm is newer than its sources: {}", show(&out));
    assert_eq!(std::fs::read(project.join("output/scored/sample.jsonl")).unwrap(), before, "plugin dev wrote into the task's output");
}

#[test]
fn rust_preprocessor_project_tests_builds_checks_and_scores() {
    rust_role("preprocessor");
}

#[test]
fn rust_prompt_builder_project_tests_builds_checks_and_scores() {
    rust_role("prompt-builder");
}

#[test]
fn rust_score_parser_project_tests_builds_checks_and_scores() {
    rust_role("score-parser");
}

/// A `SKIPPED: …` line on the real stderr (not the test harness's captured one), so it shows
/// in every run.
fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {what}");
}

#[test]
fn python_project_files_and_build() {
    let tmp = scratch();
    for role in ["preprocessor", "prompt-builder", "score-parser"] {
        let name = format!("py-{role}");
        let dir = tmp.path().join("projects").join(&name);
        run(modelcall(tmp.path()).args(["plugin", "new", &name, "--role", role, "--lang", "python", "--dir"]).arg(&dir));
        for f in ["app.py", "pyproject.toml", "README.md", "wit/plugin.wit", "sample.jsonl", "model.yaml", "task.yaml"] {
            assert!(dir.join(f).is_file(), "plugin new --lang python wrote no {f}");
        }
        assert_eq!(std::fs::read(dir.join("wit/plugin.wit")).unwrap(), std::fs::read(repo_root().join("wit/plugin.wit")).unwrap());
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let build = format!("componentize-py -d wit -w {role}-plugin componentize app -p . -p vendor -o {name}.wasm");
        assert!(readme.contains(&build), "the README gives the build command `{build}`:\n{readme}");
        let app = std::fs::read_to_string(dir.join("app.py")).unwrap();
        assert!(app.contains("modelcall_plugin"), "{app}");
        let task = std::fs::read_to_string(dir.join("task.yaml")).unwrap();
        assert!(task.contains(&format!("path: \"{name}.wasm\"")) && task.contains(&format!("role: {role}")), "{task}");
        assert_placeholders_filled(&dir);
        assert_vendored_python_sdk_is_current(&dir);
    }
    let has_componentize = Command::new("componentize-py").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !has_componentize {
        let dir = tmp.path().join("projects/py-preprocessor");
        let out = modelcall(&dir).args(["plugin", "build"]).stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pip install componentize-py"), "the error names the install line: {}", show(&out));
        skipped("building the Python plugins: componentize-py is not installed (pip install componentize-py)");
        return;
    }
    // Each project as written (the package vendored from the binary): build, check, run.
    for role in ["preprocessor", "prompt-builder", "score-parser"] {
        let name = format!("py-{role}");
        let dir = tmp.path().join("projects").join(&name);
        let out = run(modelcall(&dir).args(["plugin", "build"]));
        let wasm = dir.join(format!("{name}.wasm"));
        assert_eq!(dir.join(String::from_utf8_lossy(&out.stdout).trim()).canonicalize().ok(), wasm.canonicalize().ok(), "{}", show(&out));
        run(modelcall(&dir).args(["plugin", "check"]).arg(&wasm).args(["--role", role]));
        let out = run(modelcall(&dir).args(["run-task", "task.yaml", "--no-progress"]));
        let rows = read_jsonl(&dir.join("output/scored/sample.jsonl"));
        assert_eq!(rows.len(), read_jsonl(&dir.join("sample.jsonl")).len(), "{role}: one scored row per sample record: {}", show(&out));
        assert!(rows.iter().all(|r| r["api_status"] == "success" && r["score"].is_number()), "{role}: {rows:?}");
    }
}

/// The Python package the binary vendors is the repository's `modelcall_plugin`, file for
/// file (scaffold.rs PYTHON_SDK_FILES), so a file added to the package and not embedded fails.
fn assert_vendored_python_sdk_is_current(project: &Path) {
    let vendored = project.join("vendor/modelcall_plugin");
    let package = repo_root().join("plugins/sdk-python/modelcall_plugin");
    let expected: Vec<String> = files_under(&package).into_iter().filter(|f| f.ends_with(".py") && !f.contains("__pycache__")).collect();
    assert_eq!(files_under(&vendored), expected, "the Python SDK embedded in modelcall differs from plugins/sdk-python/modelcall_plugin");
    for f in &expected {
        assert_eq!(std::fs::read(vendored.join(f)).unwrap(), std::fs::read(package.join(f)).unwrap(), "vendored {f} differs");
    }
}

#[test]
fn refuses_a_non_empty_folder_and_bad_names() {
    let tmp = scratch();
    let dir = tmp.path().join("taken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let out = modelcall(tmp.path()).args(["plugin", "new", "p", "--role", "preprocessor", "--dir"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&dir.display().to_string()), "the error names the folder: {}", show(&out));
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine");
    assert_eq!(files_under(&dir), ["keep.txt"], "nothing written");

    // An empty folder is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run(modelcall(tmp.path()).args(["plugin", "new", "p", "--role", "score-parser", "--dir"]).arg(&empty));
    assert!(empty.join("src/lib.rs").is_file());

    let out = modelcall(tmp.path()).args(["plugin", "new", "../evil", "--role", "preprocessor"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a plugin name"), "{}", show(&out));

    // A task type is Rust crates; it is not a role.
    let out = modelcall(tmp.path()).args(["plugin", "new", "t", "--task-type", "--lang", "python"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--task-type writes Rust"), "{}", show(&out));
    let out = modelcall(tmp.path()).args(["plugin", "new", "t", "--task-type", "--role", "preprocessor"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot be used with"), "{}", show(&out));
    let out = modelcall(tmp.path()).args(["plugin", "new", "t"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--role"), "a role or --task-type is needed: {}", show(&out));
    assert!(!tmp.path().join("t").exists(), "nothing written");

    // `plugin build` outside a project says so.
    let out = modelcall(tmp.path()).args(["plugin", "build"]).arg(&dir).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a plugin project"), "{}", show(&out));
}

#[test]
fn sdk_path_replaces_the_vendored_sdk() {
    let tmp = scratch();
    let dir = tmp.path().join("p");
    let sdk = repo_root().join("plugins/sdk");
    run(modelcall(tmp.path()).args(["plugin", "new", "p", "--role", "prompt-builder", "--sdk-path"]).arg(&sdk).arg("--dir").arg(&dir));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let path_line = format!("modelcall-plugin-sdk = {{ path = \"{}\"", sdk.canonicalize().unwrap().display());
    assert!(manifest.contains(&path_line), "{manifest}");
    assert!(!dir.join("vendor").exists(), "nothing vendored with --sdk-path");

    let out = modelcall(tmp.path()).args(["plugin", "new", "q", "--role", "preprocessor", "--sdk-path"]).arg(tmp.path()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--sdk-path"), "{}", show(&out));
}

/// The chain `plugin dev` printed for one record: its label lines (`record`, `reader`,
/// `prompt`, `reply`, `verdict`, `error`) in order, continuation lines left out.
fn chains(stdout: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in stdout.lines() {
        if let Some(head) = line.strip_prefix("── ") {
            if !head.contains("input(s):") {
                out.push((head.split_whitespace().next().unwrap_or_default().to_string(), Vec::new()));
            }
        } else if let (Some((_, labels)), Some(label)) = (out.last_mut(), line.split_whitespace().next().filter(|_| !line.starts_with(' '))) {
            labels.push(format!("{label} {}", line[label.len()..].trim()));
        }
    }
    out
}

/// `plugin new --task-type`: the three roles in one Cargo workspace outside the repository,
/// built by ONE `plugin build` (one cargo invocation) with the network off, their unit tests
/// passing, the task scoring every sample record against the scripted simulator; then `plugin
/// dev` on it: the chain for N records, nothing in the task's output folder, typed errors,
/// the simulator instead of a real endpoint without `--live`, and a rebuild (with `--watch`)
/// after a plugin's source changes.
#[test]
fn task_type_builds_in_one_go_offline_and_plugin_dev_shows_the_chain() {
    let _serial = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = scratch();
    let project = tmp.path().join("pairs");
    let out = run(modelcall(tmp.path()).args(["plugin", "new", "pairs", "--task-type"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("task type `pairs`"), "{}", show(&out));
    for f in
        ["Cargo.toml", "reader/src/lib.rs", "prompt/src/lib.rs", "parser/src/lib.rs", "task.yaml", "sample.jsonl", "model.yaml", "replies.jsonl", "README.md"]
    {
        assert!(project.join(f).is_file(), "plugin new --task-type wrote no {f}");
    }
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[workspace]") && manifest.contains(r#"members = ["reader", "prompt", "parser"]"#), "{manifest}");
    assert!(!manifest.contains("[package]"), "the root is a workspace, not a fourth crate: {manifest}");
    let model = std::fs::read_to_string(project.join("model.yaml")).unwrap();
    assert!(model.contains(r#"base_url: "sim://?replies=replies.jsonl""#), "{model}");
    assert_placeholders_filled(&project);
    assert_vendored_sdk_is_current(&project);

    // ONE plugin build, network off: one cargo invocation writes the three components. The
    // crates must be on the machine, as after building modelcall: `cargo fetch` makes sure of
    // that on a fresh CI cache (without network it fails, and the cache must hold them), and its
    // Cargo.lock is removed again so that the build resolves one offline itself.
    let _ = Command::new("cargo").arg("fetch").current_dir(&project).stdin(Stdio::null()).output().unwrap();
    let _ = std::fs::remove_file(project.join("Cargo.lock"));
    let out = run(modelcall(&project).env("CARGO_NET_OFFLINE", "true").args(["plugin", "build"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("cargo build --release --target wasm32-wasip2 --offline").count(), 1, "one cargo invocation, offline: {}", show(&out));
    assert!(project.join("Cargo.lock").is_file(), "the lock file resolved offline is kept");
    let printed: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout).lines().map(|l| project.join(l.trim()).canonicalize().unwrap()).collect();
    for (role, name) in [("preprocessor", "pairs-reader"), ("prompt-builder", "pairs-prompt"), ("score-parser", "pairs-parser")] {
        let wasm = project.join(format!("{name}.wasm")).canonicalize().unwrap_or_else(|e| panic!("no {name}.wasm: {e}\n{}", show(&out)));
        assert!(printed.contains(&wasm), "plugin build prints {}: {}", wasm.display(), show(&out));
        let check = run(modelcall(&project).args(["plugin", "check"]).arg(&wasm).args(["--role", role]));
        assert!(String::from_utf8_lossy(&check.stdout).contains(name), "{}", show(&check));
    }
    assert_eq!(printed.len(), 3, "three components, no more: {}", show(&out));

    // The workspace's native unit tests: two per crate.
    let out = run(Command::new("cargo").args(["test", "--offline"]).current_dir(&project).env("CARGO_TARGET_DIR", shared_target_dir()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("test result: ok. 2 passed").count(), 3, "two unit tests in each of the three crates: {text}");

    // The task: every sample record through reader → prompt → scripted sim → parser.
    let out = run(modelcall(&project).args(["run-task", "task.yaml", "--no-progress"]));
    let rows = read_jsonl(&project.join("output/scored/sample.jsonl"));
    assert_eq!(rows.len(), read_jsonl(&project.join("sample.jsonl")).len(), "one row per sample record: {}", show(&out));
    for row in &rows {
        assert_eq!(row["api_status"], "success", "{row}");
        assert!(row["char_count"].is_u64(), "the reader's field reaches the output: {row}");
        let expected = match row["id"].as_str().unwrap() {
            "s03" | "s05" => 1.0, // the spam rule; the navigation record after a re-ask
            _ => 4.0,             // the default rule
        };
        assert_eq!(row["score_value"], expected, "the scripted replies decide the score: {row}");
    }
    let s05 = rows.iter().find(|r| r["id"] == "s05").unwrap();
    assert_eq!(s05["parse_attempts"], 2, "the parser's hint re-asked once: {s05}");

    // plugin dev: the chain of 3 records, into the scratch folder only. The task keeps a
    // response cache, which must not answer the sample runs on the simulator (an edited
    // replies file would never show).
    std::fs::remove_dir_all(project.join("output")).unwrap();
    let mut task = std::fs::read_to_string(project.join("task.yaml")).unwrap();
    task.push_str(&format!("\ncache:\n  path: \"{}\"\n", tmp.path().join("responses.sqlite").display()));
    std::fs::write(project.join("task.yaml"), task).unwrap();
    let out = run(modelcall(&project).args(["plugin", "dev", "task.yaml", "--sample", "3"]));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let chain = chains(&stdout);
    assert_eq!(chain.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["s01", "s02", "s03"], "{}", show(&out));
    for (id, labels) in &chain {
        let kinds: Vec<&str> = labels.iter().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(kinds, ["record", "reader", "prompt", "reply", "verdict"], "{id}: {}", show(&out));
    }
    assert!(chain[0].1[2].contains("[system]") && stdout.contains("[user] Text:"), "the prompt's messages: {stdout}");
    assert_eq!(chain[2].1[4], "verdict score 1 — spam", "{stdout}");
    assert!(stdout.contains("3 input(s): 3 scored, 0 failed, 0 skipped"), "{stdout}");
    assert!(!project.join("output").exists(), "plugin dev wrote into the task's output folder: {}", show(&out));
    assert_eq!(read_jsonl(&project.join(".modelcall-dev/out/sample.jsonl")).len(), 3, "the sample's rows are in the scratch folder");

    // A reply the parser never accepts: the typed error, after the re-asks, in the chain.
    std::fs::write(project.join("replies.jsonl"), "{\"default\": \"{\\\"score\\\": 9}\"}\n").unwrap();
    let out = run(modelcall(&project).args(["plugin", "dev", "task.yaml", "--sample", "1"]));
    let chain = chains(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(chain.len(), 1, "{}", show(&out));
    let last = chain[0].1.last().unwrap();
    assert!(last.starts_with("error [parse_retries_exhausted]") && last.contains("out of range"), "{}", show(&out));
    assert!(chain[0].1.iter().any(|l| l.starts_with("reply {\"score\": 9}")), "the reply that failed: {}", show(&out));
    assert!(!project.join("output").exists());

    // A real endpoint (here `serve-sim` over HTTP, scripted to say so): without --live nothing
    // is sent there, the built-in simulator answers and plugin dev says so; with --live the
    // sample goes there.
    let live_replies = tmp.path().join("live-replies.jsonl");
    std::fs::write(&live_replies, "{\"default\": \"```json\\n{\\\"score\\\": 5, \\\"rationale\\\": \\\"from the real endpoint\\\"}\\n```\"}\n").unwrap();
    /// Ends the server however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Command::new(bin())
        .args(["serve-sim", "--port", "0", "--exit-after-secs", "300", "--replies"])
        .arg(&live_replies)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner_pipe = server.stdout.take().unwrap();
    let server = Server(server);
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(banner_pipe), &mut banner).unwrap();
    let url = banner.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in serve-sim's banner: {banner}")).to_string();
    let model = model.replace(r#"base_url: "sim://?replies=replies.jsonl""#, &format!("base_url: \"{url}\""));
    std::fs::write(project.join("model.yaml"), model).unwrap();
    let out = run(modelcall(&project).args(["plugin", "dev", "task.yaml", "--sample", "2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not sim://") && stderr.contains("--live") && stderr.contains(&url), "{}", show(&out));
    let chain = chains(&String::from_utf8_lossy(&out.stdout));
    assert!(chain.len() == 2 && chain.iter().all(|(_, l)| l.last().unwrap().starts_with("verdict score")), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("from the real endpoint"), "sent to the real endpoint without --live: {}", show(&out));
    let out = run(modelcall(&project).args(["plugin", "dev", "task.yaml", "--sample", "2", "--live"]));
    let chain = chains(&String::from_utf8_lossy(&out.stdout));
    assert!(chain.len() == 2 && chain.iter().all(|(_, l)| l.last().unwrap() == "verdict score 5 — from the real endpoint"), "{}", show(&out));
    drop(server);

    // --watch: a changed plugin source is rebuilt and the sample runs again.
    let mut child = modelcall(&project)
        .args(["plugin", "dev", "task.yaml", "--sample", "1", "--watch", "--max-runs", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child_stderr = child.stderr.take().unwrap();
    // Read as it comes, so a full pipe never blocks the child.
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut child_stderr, &mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The lines of the next run, up to its tally; None if none came within 5 minutes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let next_run = || -> Option<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let line = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).ok()?;
            let tally = line.contains("input(s):");
            lines.push(line);
            if tally {
                return Some(lines);
            }
        }
    };
    let give_up = |child: &mut std::process::Child, what: &str| -> ! {
        let _ = child.kill();
        panic!("plugin dev --watch: {what}");
    };
    if next_run().is_none() {
        give_up(&mut child, "the first run printed no tally");
    }
    // A plugin source changes: rebuilt, run again.
    let parser = project.join("parser/src/lib.rs");
    let source = std::fs::read_to_string(&parser).unwrap();
    let edited =
        source.replace("rationale: verdict.get(\"rationale\").and_then(Value::as_str).map(str::to_string),", "rationale: Some(\"edited\".to_string()),");
    assert_ne!(edited, source, "the parser template changed: update this edit");
    std::fs::write(&parser, edited).unwrap();
    let Some(second) = next_run() else { give_up(&mut child, "no second run within 5 minutes of a plugin source change") };
    assert!(second.iter().any(|l| l.contains("— edited")), "the rebuilt parser's verdict: {second:?}");
    // The model config changes (back to the scripted simulator, whose replies never parse): run again.
    std::fs::write(project.join("model.yaml"), std::fs::read_to_string(project.join("model.yaml")).unwrap().replace(&url, "sim://?replies=replies.jsonl"))
        .unwrap();
    let Some(third) = next_run() else { give_up(&mut child, "no third run within 5 minutes of a model config change") };
    assert!(third.iter().any(|l| l.starts_with("error") && l.contains("[parse_retries_exhausted]")), "the scripted replies again: {third:?}");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr_reader.join().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr.matches("a source changed").count(), 2, "{stderr}");
    assert!(stderr.contains("rebuilding the plugins"), "{stderr}");
}
