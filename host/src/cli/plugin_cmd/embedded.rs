//! What a new plugin project is made of, embedded in this binary: the Rust SDK's files and the
//! Python SDK package (vendored into new projects), the templates under `templates/`, and the
//! helpers that fill and read them (`{{key}}` rendering, TOML escaping and string reading, the
//! SDK's version).
//!
//! Its own module because three commands use these: `plugin new` for one role (`scaffold.rs`)
//! and for a task type (`task_type.rs`) write them, `plugin build` and `plugin dev` read
//! manifests with [`toml_string`]; none of them owns what the others use.

/// The SDK crate's files (as `cargo package` ships them: `Cargo.toml`, `README.md`,
/// `src/**/*.rs`, `wit/*.wit`), embedded so `plugin new` can vendor the SDK. `tests/scaffold_e2e.rs`
/// compares a vendored copy with `plugins/sdk`, so a file added to the SDK and missing here
/// fails that test.
macro_rules! sdk_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../../plugins/sdk/", $path)))),*]
    };
}
pub(super) const SDK_FILES: &[(&str, &str)] = sdk_files![
    "Cargo.toml",
    "README.md",
    "src/base.rs",
    "src/context.rs",
    "src/error.rs",
    "src/glue.rs",
    "src/host.rs",
    "src/lib.rs",
    "src/preprocessor.rs",
    "src/preprocessor/truncation.rs",
    "src/prompt_builder.rs",
    "src/register.rs",
    "src/score_parser.rs",
    "wit/plugin.wit",
];

/// Where `plugin new` puts the vendored SDK inside a Rust project.
pub(super) const VENDORED_SDK: &str = "vendor/modelcall-plugin-sdk";

/// The Python SDK package (`plugins/sdk-python/modelcall_plugin`), embedded so `plugin new
/// --lang python` vendors it; `tests/scaffold_e2e.rs` compares the vendored copy with the
/// repository's, file for file.
macro_rules! python_sdk_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../../plugins/sdk-python/modelcall_plugin/", $path)))),*]
    };
}
pub(super) const PYTHON_SDK_FILES: &[(&str, &str)] = python_sdk_files!["__init__.py", "_errors.py", "_glue.py", "_host.py", "_roles.py"];

/// Where `plugin new --lang python` puts the vendored package (`plugin build` passes
/// `-p vendor` to componentize-py).
pub(super) const VENDORED_PYTHON_SDK: &str = "vendor/modelcall_plugin";

pub(super) mod tpl {
    pub const CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml.tmpl");
    pub const RUST_README: &str = include_str!("templates/rust/README.md.tmpl");
    pub const RUST_PREPROCESSOR: &str = include_str!("templates/rust/preprocessor.rs.tmpl");
    pub const RUST_PROMPT_BUILDER: &str = include_str!("templates/rust/prompt-builder.rs.tmpl");
    pub const RUST_SCORE_PARSER: &str = include_str!("templates/rust/score-parser.rs.tmpl");
    pub const PY_README: &str = include_str!("templates/python/README.md.tmpl");
    pub const PYPROJECT: &str = include_str!("templates/python/pyproject.toml.tmpl");
    pub const PY_PREPROCESSOR: &str = include_str!("templates/python/preprocessor.py.tmpl");
    pub const PY_PROMPT_BUILDER: &str = include_str!("templates/python/prompt-builder.py.tmpl");
    pub const PY_SCORE_PARSER: &str = include_str!("templates/python/score-parser.py.tmpl");
    pub const SAMPLE: &str = include_str!("templates/common/sample.jsonl");
    pub const REPLIES: &str = include_str!("templates/common/replies.jsonl");
    pub const MODEL: &str = include_str!("templates/common/model.yaml");
    pub const PROMPT: &str = include_str!("templates/common/prompt.yaml.tmpl");
    pub const TASK: &str = include_str!("templates/common/task.yaml.tmpl");
    pub const GITIGNORE: &str = include_str!("templates/common/gitignore");
}

/// `{{key}}` replaced by its value, for the keys given (other braces are left alone).
pub(super) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_string(), |s, (k, v)| s.replace(&format!("{{{{{k}}}}}"), v))
}

/// A TOML basic string's content for `s`.
pub(super) fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The plugin WIT, from the embedded SDK.
pub(super) fn wit() -> &'static str {
    SDK_FILES.iter().find(|(p, _)| *p == "wit/plugin.wit").map(|(_, t)| *t).expect("the SDK embeds its WIT")
}

/// The embedded SDK's version, from its Cargo.toml.
pub(super) fn sdk_version() -> &'static str {
    let manifest = SDK_FILES[0].1;
    toml_string(manifest, "package", "version").unwrap_or("0.1.0")
}

/// The string value of `key = "…"` in `[section]` of a simple TOML file (no inline tables
/// needed: it reads the manifests `plugin new` writes).
pub(super) fn toml_string<'a>(text: &'a str, section: &str, key: &str) -> Option<&'a str> {
    let mut current = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim();
            continue;
        }
        if current != section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        if k.trim() == key {
            return v.trim().strip_prefix('"')?.split('"').next();
        }
    }
    None
}
