//! `modelcall plugin new NAME --task-type`: a whole task type in one folder. The three roles
//! (`NAME-reader`, a preprocessor; `NAME-prompt`, a prompt builder; `NAME-parser`, a score
//! parser) are crates of ONE Cargo workspace, so they share a target directory and a
//! `Cargo.lock` and `plugin build` compiles the dependencies once for the three. The SDK is
//! vendored once for all three (or `--sdk-path`); `task.yaml` wires the three plugins;
//! `model.yaml` is the simulator with the scripted replies of `replies.jsonl`.

use std::path::Path;

use super::embedded::{render, sdk_version, toml_escape, tpl, SDK_FILES, VENDORED_SDK};

const WORKSPACE: &str = include_str!("templates/task-type/Cargo.toml.tmpl");
const MEMBER: &str = include_str!("templates/task-type/member.Cargo.toml.tmpl");
const TASK: &str = include_str!("templates/task-type/task.yaml.tmpl");
const MODEL: &str = include_str!("templates/task-type/model.yaml");
const REPLIES: &str = include_str!("templates/task-type/replies.jsonl");
const README: &str = include_str!("templates/task-type/README.md.tmpl");
const GITIGNORE: &str = include_str!("templates/task-type/gitignore");

/// The three members: (folder, crate-name suffix, SDK feature, `src/lib.rs` template).
pub(super) const MEMBERS: [(&str, &str, &str, &str); 3] = [
    ("reader", "reader", "preprocessor", tpl::RUST_PREPROCESSOR),
    ("prompt", "prompt", "prompt-builder", tpl::RUST_PROMPT_BUILDER),
    ("parser", "parser", "score-parser", tpl::RUST_SCORE_PARSER),
];

/// The files of a new task type: (relative path, content).
pub(super) fn files(name: &str, sdk_path: Option<&Path>) -> Vec<(String, String)> {
    let (sdk_dep, sdk_where, sdk_readme) = match sdk_path {
        Some(p) => (p.display().to_string(), format!("from {}", p.display()), p.join("README.md").display().to_string()),
        None => (VENDORED_SDK.to_string(), format!("vendored once for the three in `{VENDORED_SDK}`"), format!("`{VENDORED_SDK}/README.md`")),
    };
    let task_name = format!("{}_sim", name.replace('-', "_"));
    let vars = [
        ("name", name),
        ("task_name", task_name.as_str()),
        ("sdk_path", &toml_escape(&sdk_dep)),
        ("sdk_version", sdk_version()),
        ("sdk_where", &sdk_where),
        ("sdk_readme", &sdk_readme),
    ];
    let mut files = vec![
        ("Cargo.toml".to_string(), render(WORKSPACE, &vars)),
        ("task.yaml".to_string(), render(TASK, &vars)),
        ("model.yaml".to_string(), MODEL.to_string()),
        ("replies.jsonl".to_string(), REPLIES.to_string()),
        ("sample.jsonl".to_string(), tpl::SAMPLE.to_string()),
        ("README.md".to_string(), render(README, &vars)),
        (".gitignore".to_string(), GITIGNORE.to_string()),
    ];
    for (folder, suffix, role, lib) in MEMBERS {
        let krate = format!("{name}-{suffix}");
        let member_vars = [("name", name), ("crate", krate.as_str()), ("role", role)];
        files.push((format!("{folder}/Cargo.toml"), render(MEMBER, &member_vars)));
        // The role's template, its plugin named after the crate.
        files.push((format!("{folder}/src/lib.rs"), render(lib, &[("name", krate.as_str()), ("role", role)])));
    }
    if sdk_path.is_none() {
        files.extend(SDK_FILES.iter().map(|(p, text)| (format!("{VENDORED_SDK}/{p}"), text.to_string())));
    }
    files
}
