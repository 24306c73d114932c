//! Builds the fixture plugins of `tests/plugins` (their own cargo workspace) for
//! wasm32-wasip2 and writes one `pub const NAME: &str = "/abs/path.wasm"` per fixture.
//!
//! As in the plugin-host build script, the nested cargo gets a target dir of its own
//! (`target/wasm-test-plugins`, so it never waits on the outer build's lock) and none of
//! the outer build's `CARGO_*`/`RUSTFLAGS` variables.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../../..").canonicalize().expect("workspace root");
    let fixtures = root.join("tests/plugins");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/sdk").display());

    let members = workspace_members(&fixtures.join("Cargo.toml"));
    require_wasm_target();
    let target_dir = root.join("target/wasm-test-plugins");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&fixtures)
        .args(["build", "--workspace", "--release", "--target", "wasm32-wasip2"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    scrub_env(&mut cmd);
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let status = cmd.status().expect("running cargo to build tests/plugins");
    if !status.success() {
        panic!("building the fixture plugins in {} failed (cargo's output is above)", fixtures.display());
    }

    let out = target_dir.join("wasm32-wasip2/release");
    let mut code = String::new();
    for dir in &members {
        let pkg = package_name(&fixtures.join(dir).join("Cargo.toml"));
        let wasm = out.join(format!("{}.wasm", pkg.replace('-', "_")));
        assert!(wasm.is_file(), "fixture {dir} produced no {}", wasm.display());
        let konst = dir.to_uppercase().replace('-', "_");
        code.push_str(&format!("/// Component built from `tests/plugins/{dir}`.\npub const {konst}: &str = {:?};\n", wasm.display().to_string()));
    }
    code.push_str(&format!("/// Every fixture: `(directory name, path)`.\npub const ALL: &[(&str, &str)] = &[{}];\n",
        members.iter().map(|d| format!("({d:?}, {})", d.to_uppercase().replace('-', "_"))).collect::<Vec<_>>().join(", ")));
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("fixtures.rs"), code).unwrap();
}

/// The (uncommented) entries of `members = [...]`.
fn workspace_members(manifest: &Path) -> Vec<String> {
    let text = fs::read_to_string(manifest).unwrap();
    let start = text.find("members = [").expect("tests/plugins/Cargo.toml lists members") + "members = [".len();
    let end = start + text[start..].find(']').unwrap();
    text[start..end]
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().trim_end_matches(',').trim_matches('"').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn package_name(manifest: &Path) -> String {
    let text = fs::read_to_string(manifest).unwrap();
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(v) = line.strip_prefix("name").and_then(|r| r.trim_start().strip_prefix('=')) {
                return v.trim().trim_matches('"').to_string();
            }
        }
    }
    panic!("{} has no [package] name", manifest.display());
}

fn require_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        panic!("the wasm32-wasip2 Rust target is not installed; run `rustup target add wasm32-wasip2` and build again");
    }
}

fn scrub_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let keep = key == "CARGO_HOME" || key.starts_with("CARGO_NET_") || key.starts_with("CARGO_REGISTRIES_") || key.starts_with("CARGO_HTTP_");
        if (key.starts_with("CARGO_") && !keep) || ["RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"].contains(&&*key) {
            cmd.env_remove(&*key);
        }
    }
}
