// Shared by the build scripts of modelcall-plugin-host and modelcall-test-plugins
// (`include!`d by both): running a nested cargo that builds wasm32-wasip2 components.
//
// The nested cargo uses a target dir of its own, so it never waits on the lock held by the
// outer build, and runs with the outer build's `CARGO_*`/`RUSTFLAGS` variables removed (the
// pattern of wasmtime's test-programs build script): they describe the host build and would
// leak into the wasm one. Paths are spelled out so the including script's imports don't clash.

/// Panics with `why` unless the wasm32-wasip2 target is installed for the outer rustc.
fn require_wasm_target(why: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        panic!("the wasm32-wasip2 Rust target is not installed{why}; run `rustup target add wasm32-wasip2` and build again");
    }
}

/// `cargo` (the outer build's own) run in `dir` with a clean environment, its output shown,
/// building into `target_dir`. The caller adds the arguments.
fn nested_cargo(dir: &std::path::Path, target_dir: &std::path::Path) -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(dir).stdout(std::process::Stdio::inherit()).stderr(std::process::Stdio::inherit());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = key == "CARGO_HOME" || key.starts_with("CARGO_NET_") || key.starts_with("CARGO_REGISTRIES_") || key.starts_with("CARGO_HTTP_");
        if (key.starts_with("CARGO_") && !keep) || ["RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"].contains(&&*key) {
            cmd.env_remove(&*key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", target_dir);
    cmd
}

/// The `name = "..."` of a manifest's `[package]` section.
fn package_name(manifest: &std::path::Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
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
