//! Builds the fixture plugins of `tests/plugins` (their own cargo workspace) for
//! wasm32-wasip2 and writes one `pub const NAME: &str = "/abs/path.wasm"` per fixture.
//!
//! The nested cargo is set up by `build_nested_cargo.rs`, shared with the plugin-host
//! build script; it gets a target dir of its own, `target/wasm-test-plugins`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

include!("../plugin-host/build_nested_cargo.rs");

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../../..").canonicalize().expect("workspace root");
    let fixtures = root.join("tests/plugins");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/sdk").display());

    let members = workspace_members(&fixtures.join("Cargo.toml"));
    require_wasm_target("");
    let target_dir = root.join("target/wasm-test-plugins");
    let mut cmd = nested_cargo(&fixtures, &target_dir);
    cmd.args(["build", "--workspace", "--release", "--target", "wasm32-wasip2"]);
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
    code.push_str(&format!(
        "/// Every fixture: `(directory name, path)`.\npub const ALL: &[(&str, &str)] = &[{}];\n",
        members.iter().map(|d| format!("({d:?}, {})", d.to_uppercase().replace('-', "_"))).collect::<Vec<_>>().join(", ")
    ));
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
