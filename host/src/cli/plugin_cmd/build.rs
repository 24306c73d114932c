//! `modelcall plugin build`: the right toolchain for a project from `plugin new` (cargo for a
//! wasm32-wasip2 component, or componentize-py), the component copied to `NAME.wasm`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde_json::Value;

use super::scaffold::toml_string;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project folder (from `plugin new`); default: the current folder.
    pub dir: Option<PathBuf>,
}

/// `modelcall plugin build`: prints the path of the component it wrote.
pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let wasm = if dir.join("Cargo.toml").is_file() {
        build_rust(&dir)?
    } else if dir.join("app.py").is_file() {
        build_python(&dir)?
    } else {
        bail!("{} is not a plugin project: it has neither Cargo.toml (Rust) nor app.py (Python); create one with `modelcall plugin new`", dir.display());
    };
    println!("{}", wasm.display());
    Ok(())
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

fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let name = toml_string(&manifest, "package", "name").with_context(|| format!("{} has no [package] name", manifest_path.display()))?;
    let manifest_abs = std::fs::canonicalize(&manifest_path)?;
    ensure_wasm_target(dir)?;
    eprintln!("cargo build --release --target wasm32-wasip2 (in {})", dir.display());
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo (install Rust from https://rustup.rs)")?;
    // The component is the cdylib artifact of this project's own package (wherever
    // CARGO_TARGET_DIR puts it).
    let mut component: Option<PathBuf> = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else { continue };
        let ours = msg["manifest_path"].as_str().and_then(|p| std::fs::canonicalize(p).ok()).is_some_and(|p| p == manifest_abs);
        if msg["reason"] == "compiler-artifact" && ours {
            let files = msg["filenames"].as_array().into_iter().flatten().filter_map(Value::as_str);
            if let Some(f) = files.filter(|f| f.ends_with(".wasm")).last() {
                component = Some(PathBuf::from(f));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed in {} ({status}); its errors are above", dir.display());
    }
    let built = component.with_context(|| format!("cargo built no .wasm for {name}: is `crate-type = [\"cdylib\", …]` in its [lib]?"))?;
    let out = dir.join(format!("{name}.wasm"));
    std::fs::copy(&built, &out).with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    eprintln!("built {} (copied from {})", out.display(), built.display());
    Ok(out)
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
