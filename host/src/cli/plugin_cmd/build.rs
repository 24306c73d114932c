//! `modelcall plugin build`: the right toolchain for a project from `plugin new` (cargo for a
//! wasm32-wasip2 component, or componentize-py), the component copied to `NAME.wasm`. A task
//! type's Cargo workspace (`plugin new --task-type`) is built in one cargo invocation, each
//! plugin copied to `PACKAGE.wasm`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde_json::Value;

use super::embedded::toml_string;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project folder (from `plugin new`); default: the current folder.
    pub dir: Option<PathBuf>,
}

/// `modelcall plugin build`: prints the path of each component it wrote, one a line.
pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    for wasm in build_dir(&dir)? {
        println!("{}", wasm.display());
    }
    Ok(())
}

/// Builds the project in `dir` (Rust: one crate or a workspace of plugins; Python) and returns
/// the components it wrote there.
pub(super) fn build_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join("Cargo.toml").is_file() {
        build_rust(dir)
    } else if dir.join("app.py").is_file() {
        Ok(vec![build_python(dir)?])
    } else {
        bail!("{} is not a plugin project: it has neither Cargo.toml (Rust) nor app.py (Python); create one with `modelcall plugin new`", dir.display());
    }
}

/// Adds the wasm32-wasip2 target with rustup when the toolchain used in `dir` lacks it. Without
/// rustup nothing is done: cargo then says what is missing.
fn ensure_wasm_target(dir: &Path) -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).current_dir(dir).output() else { return Ok(()) };
    if !out.status.success() || String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") {
        return Ok(());
    }
    eprintln!("the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2");
    let status =
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).current_dir(dir).stdout(std::io::stderr()).status().context("running rustup")?;
    if !status.success() {
        bail!("`rustup target add wasm32-wasip2` failed ({status}); plugins are built for that target");
    }
    Ok(())
}

/// Builds the Rust project in `dir`: one crate, or a workspace of several plugin crates (`plugin
/// new --task-type`), in ONE cargo invocation; each plugin's component is copied to
/// `dir/PACKAGE.wasm`. Returns those paths, by package name.
fn build_rust(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let manifest_path = dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let is_package = toml_string(&manifest, "package", "name").is_some();
    if !is_package && !manifest.lines().any(|l| l.trim() == "[workspace]") {
        bail!("{} has neither a [package] name nor a [workspace]", manifest_path.display());
    }
    let root = std::fs::canonicalize(dir)?;
    ensure_wasm_target(dir)?;
    let offline = lock_offline(dir);
    eprintln!("cargo build --release --target wasm32-wasip2{} (in {})", if offline { " --offline" } else { "" }, dir.display());
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"]);
    if offline {
        cmd.arg("--offline");
    }
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo (install Rust from https://rustup.rs)")?;
    // The components are the cdylib artifacts of this project's own packages (wherever
    // CARGO_TARGET_DIR puts them): the root package, or the workspace's members; never a
    // vendored dependency.
    let mut components: Vec<(String, PathBuf)> = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(member) = msg["manifest_path"].as_str().and_then(|p| std::fs::canonicalize(p).ok()) else { continue };
        let ours = member.starts_with(&root) && !member.starts_with(root.join("vendor"));
        let Some(wasm) = msg["filenames"].as_array().into_iter().flatten().filter_map(Value::as_str).rfind(|f| f.ends_with(".wasm")) else {
            continue;
        };
        if !ours {
            continue;
        }
        let text = std::fs::read_to_string(&member).with_context(|| format!("reading {}", member.display()))?;
        let name = toml_string(&text, "package", "name").with_context(|| format!("{} has no [package] name", member.display()))?.to_string();
        components.retain(|(n, _)| *n != name);
        components.push((name, PathBuf::from(wasm)));
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed in {} ({status}); its errors are above", dir.display());
    }
    if components.is_empty() {
        bail!("cargo built no .wasm in {}: is `crate-type = [\"cdylib\", …]` in the [lib] of its plugin crates?", dir.display());
    }
    components.sort();
    let mut out = Vec::new();
    for (name, built) in components {
        let copy = dir.join(format!("{name}.wasm"));
        std::fs::copy(&built, &copy).with_context(|| format!("copying {} to {}", built.display(), copy.display()))?;
        eprintln!("built {} (copied from {})", copy.display(), built.display());
        out.push(copy);
    }
    Ok(out)
}

/// A project without a `Cargo.lock` gets one resolved from the crates already on this machine
/// (`cargo generate-lockfile --offline`), so a build needs no network when the SDK's
/// dependencies were downloaded before (building modelcall, or an earlier plugin). True when
/// the build can then run `--offline`; false (cargo resolves online as usual) when that
/// resolution fails, or with a lock file already there.
fn lock_offline(dir: &Path) -> bool {
    if dir.join("Cargo.lock").exists() {
        return false;
    }
    Command::new("cargo")
        .args(["generate-lockfile", "--offline"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn build_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let pyproject_path = dir.join("pyproject.toml");
    let pyproject = std::fs::read_to_string(&pyproject_path).with_context(|| format!("reading {}", pyproject_path.display()))?;
    let world = toml_string(&pyproject, "tool.modelcall", "world")
        .with_context(|| format!("{} has no `world` under [tool.modelcall] (e.g. world = \"preprocessor-plugin\")", pyproject_path.display()))?;
    let name = toml_string(&pyproject, "project", "name").with_context(|| format!("{} has no [project] name", pyproject_path.display()))?;
    let out = format!("{name}.wasm");
    let mut cmd = Command::new("componentize-py");
    cmd.args(["-d", "wit", "-w", world, "componentize", "app"]);
    if dir.join("vendor/modelcall_plugin/__init__.py").is_file() {
        cmd.args(["-p", ".", "-p", "vendor"]);
    }
    // Its chatter goes to stderr: stdout is only the component's path.
    cmd.args(["-o", &out]).current_dir(dir).stdin(Stdio::null()).stdout(std::io::stderr());
    let shown: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    eprintln!("componentize-py {} (in {})", shown.join(" "), dir.display());
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("componentize-py is not installed (it compiles Python plugins): pip install componentize-py")
        }
        Err(e) => return Err(e).context("running componentize-py"),
    };
    if !status.success() {
        bail!("componentize-py failed in {} ({status}); its errors are above", dir.display());
    }
    Ok(dir.join(out))
}
