//! `modelcall plugin new` and `modelcall plugin build`: a ready plugin project, and its
//! component.
//!
//! `new` writes a project for one role: for Rust a crate implementing the SDK's trait with a
//! native unit test, the SDK itself vendored under `vendor/modelcall-plugin-sdk` (its sources
//! and the WIT are embedded in this binary, so the released binary is all a plugin author
//! needs); for Python an `app.py` for componentize-py with the WIT and the `modelcall_plugin`
//! package vendored under `vendor/modelcall_plugin`. Both get `sample.jsonl`, a
//! `model.yaml` on the built-in simulator and a `task.yaml` that runs the plugin in a scoring
//! task. `build` compiles the project in a folder and copies the component to `NAME.wasm`
//! there, the path `task.yaml` names. `new --task-type` writes the three roles at once (see
//! `task_type.rs`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use modelcall_plugin_host::Role;

use super::embedded::{render, sdk_version, toml_escape, toml_string, tpl, wit, PYTHON_SDK_FILES, SDK_FILES, VENDORED_PYTHON_SDK, VENDORED_SDK};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name (letters, digits, `-`, `_`; starting with a letter): the package name,
    /// the default folder and the component's file name (`NAME.wasm`).
    pub name: String,
    /// preprocessor, prompt-builder or score-parser.
    #[arg(long, required_unless_present = "task_type", conflicts_with = "task_type")]
    pub role: Option<Role>,
    /// A whole task type instead of one plugin: a reader (preprocessor), a prompt builder and a
    /// score parser as Rust crates of one Cargo workspace, a task wiring them, sample data and
    /// scripted replies for the simulator (Rust only).
    #[arg(long)]
    pub task_type: bool,
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// The folder to create (it must not exist, or be empty); default: ./NAME.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rust: depend on the SDK at this path instead of vendoring the copy in this binary.
    #[arg(long)]
    pub sdk_path: Option<PathBuf>,
}

/// What differs between the roles in a new project.
struct RoleKit {
    /// `src/lib.rs` and `app.py`.
    rust: &'static str,
    python: &'static str,
    trait_path: &'static str,
    register_macro: &'static str,
    /// The task's pipeline, in words.
    pipeline: &'static str,
    /// The task reads `prompt.yaml` (with `output_config` when the built-in parser scores).
    prompt_file: bool,
    builtin_parser: bool,
    /// The `plugins:` block of task.yaml (`{{name}}` filled later).
    plugins: &'static str,
    /// A `preprocess:` block, for a preprocessor.
    preprocess: &'static str,
    /// Input of `plugin run`.
    run_input: &'static str,
}

fn kit(role: Role) -> RoleKit {
    match role {
        Role::Preprocessor => RoleKit {
            rust: tpl::RUST_PREPROCESSOR,
            python: tpl::PY_PREPROCESSOR,
            trait_path: "preprocessor::Preprocessor",
            register_macro: "register_preprocessor",
            pipeline: "{{name}} preprocesses each record, then the built-in prompt builder (prompt.yaml) and score parser rate it",
            prompt_file: true,
            builtin_parser: true,
            plugins: "  {{name}}:\n    role: preprocessor\n    path: \"{{name}}.wasm\"\n    config: { min_chars: 20 }\n",
            preprocess: "\npreprocess:\n  output_folder: \"output/preprocessed\"   # the records {{name}} keeps, then scored\n",
            run_input: "sample.jsonl",
        },
        Role::PromptBuilder => RoleKit {
            rust: tpl::RUST_PROMPT_BUILDER,
            python: tpl::PY_PROMPT_BUILDER,
            trait_path: "prompt_builder::PromptBuilder",
            register_macro: "register_prompt_builder",
            pipeline: "{{name}} builds each prompt, the built-in score parser (builtin:json-score) reads the verdict",
            prompt_file: false,
            builtin_parser: true,
            plugins: "  {{name}}:\n    role: prompt-builder\n    path: \"{{name}}.wasm\"\n    config: { field: text }\n  parse:\n    role: score-parser\n    path: builtin:json-score\n    config:\n      json_keys: [score, rationale]\n      json_key_must_exists: [score]\n      score_key: score\n      checks:\n        score: { type: integer, min: 1, max: 5 }\n",
            preprocess: "",
            run_input: "sample.jsonl",
        },
        Role::ScoreParser => RoleKit {
            rust: tpl::RUST_SCORE_PARSER,
            python: tpl::PY_SCORE_PARSER,
            trait_path: "score_parser::ScoreParser",
            register_macro: "register_score_parser",
            pipeline: "the built-in prompt builder (prompt.yaml) asks, {{name}} parses each reply",
            prompt_file: true,
            builtin_parser: false,
            plugins: "  {{name}}:\n    role: score-parser\n    path: \"{{name}}.wasm\"\n    config: { key: score, min: 1, max: 5 }\n",
            preprocess: "",
            run_input: "replies.jsonl",
        },
    }
}

const OUTPUT_CONFIG: &str = "# What the built-in score parser (builtin:json-score) reads from the reply.\noutput_config:\n  require_json: true\n  json_keys: [score, rationale]\n  json_key_must_exists: [score]\n  score_key: score\n  checks:\n    score: {type: integer, min: 1, max: 5}\n";
const NO_OUTPUT_CONFIG: &str = "# No output_config: {{name}} parses the replies (its config is in task.yaml).\n";

pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') && name.len() <= 64
}

/// The files of a new project: (relative path, content).
fn project_files(name: &str, role: Role, lang: Lang, sdk_path: Option<&Path>) -> Vec<(String, String)> {
    let k = kit(role);
    let role_s = role.interface();
    let world = format!("{role_s}-plugin");
    let task_name = format!("{}_sim", name.replace('-', "_"));
    let pipeline = render(k.pipeline, &[("name", name)]);
    let run_line = format!("modelcall plugin run {name}.wasm --role {role_s} --input {}", k.run_input);
    let extra_files = [
        k.prompt_file.then_some("| `prompt.yaml` | the prompt of the built-in prompt builder |\n"),
        (role == Role::ScoreParser).then_some("| `replies.jsonl` | records with a model reply in `completion`, for `plugin run` |\n"),
    ]
    .into_iter()
    .flatten()
    .collect::<String>();
    let prompt_section =
        if k.prompt_file { "\nprompt:\n  config_path: \"prompt.yaml\"\n".to_string() } else { format!("\n# No prompt file: {name} builds the prompts.\n") };
    let task = render(
        tpl::TASK,
        &[
            ("pipeline", &pipeline),
            ("task_name", &task_name),
            ("role", role_s),
            ("preprocess", &render(k.preprocess, &[("name", name)])),
            ("prompt", &prompt_section),
            ("plugins", &render(k.plugins, &[("name", name)])),
            ("name", name),
        ],
    );
    let mut files = vec![
        ("sample.jsonl".to_string(), tpl::SAMPLE.to_string()),
        ("model.yaml".to_string(), tpl::MODEL.to_string()),
        ("task.yaml".to_string(), task),
        (".gitignore".to_string(), tpl::GITIGNORE.to_string()),
    ];
    if k.prompt_file {
        let output_config = if k.builtin_parser { OUTPUT_CONFIG.to_string() } else { render(NO_OUTPUT_CONFIG, &[("name", name)]) };
        files.push(("prompt.yaml".into(), render(tpl::PROMPT, &[("output_config", &output_config)])));
    }
    if role == Role::ScoreParser {
        files.push(("replies.jsonl".into(), tpl::REPLIES.to_string()));
    }
    match lang {
        Lang::Rust => {
            let (sdk_dep, sdk_where, sdk_readme) = match sdk_path {
                Some(p) => (p.display().to_string(), format!("from {}", p.display()), p.join("README.md").display().to_string()),
                None => (VENDORED_SDK.to_string(), format!("vendored in `{VENDORED_SDK}`"), format!("`{VENDORED_SDK}/README.md`")),
            };
            let vars = [
                ("name", name),
                ("role", role_s),
                ("sdk_path", &toml_escape(&sdk_dep)),
                ("sdk_version", sdk_version()),
                ("sdk_where", &sdk_where),
                ("sdk_readme", &sdk_readme),
                ("trait", k.trait_path),
                ("macro", k.register_macro),
                ("pipeline", &pipeline),
                ("extra_files", &extra_files),
                ("try_line", &run_line),
            ];
            files.push(("Cargo.toml".into(), render(tpl::CARGO_TOML, &vars)));
            files.push(("src/lib.rs".into(), render(k.rust, &vars)));
            files.push(("README.md".into(), render(tpl::RUST_README, &vars)));
            if sdk_path.is_none() {
                files.extend(SDK_FILES.iter().map(|(p, text)| (format!("{VENDORED_SDK}/{p}"), text.to_string())));
            }
        }
        Lang::Python => {
            let vars = [
                ("name", name),
                ("role", role_s),
                ("world", world.as_str()),
                ("version", env!("CARGO_PKG_VERSION")),
                ("pipeline", &pipeline),
                ("extra_files", &extra_files),
                ("try_line", &run_line),
            ];
            files.push(("app.py".into(), render(k.python, &vars)));
            files.push(("pyproject.toml".into(), render(tpl::PYPROJECT, &vars)));
            files.push(("README.md".into(), render(tpl::PY_README, &vars)));
            files.extend(PYTHON_SDK_FILES.iter().map(|(f, text)| (format!("{VENDORED_PYTHON_SDK}/{f}"), text.to_string())));
            files.push(("wit/plugin.wit".into(), wit().to_string()));
        }
    }
    files
}

/// `modelcall plugin new`. An existing non-empty folder is refused with exit code 2.
pub fn new(args: NewArgs) -> anyhow::Result<()> {
    let NewArgs { name, role, task_type, lang, dir, sdk_path } = args;
    if !valid_name(&name) {
        bail!("`{name}` is not a plugin name: use letters, digits, `-` and `_`, starting with a letter (at most 64 characters)");
    }
    if task_type && lang == Lang::Python {
        bail!("--task-type writes Rust crates (one Cargo workspace); a Python plugin of one role: --role ROLE --lang python");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    if dir.exists() {
        let empty = dir.is_dir() && std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?.next().is_none();
        if !empty {
            eprintln!("error: {} already exists and is not empty; plugin new writes a new project: choose another --dir", dir.display());
            std::process::exit(2);
        }
    }
    let sdk_path = match (sdk_path, lang) {
        (None, _) => None,
        (Some(_), Lang::Python) => bail!("--sdk-path is for Rust projects (the Python project vendors its package under vendor/)"),
        (Some(p), Lang::Rust) => {
            let manifest = std::fs::read_to_string(p.join("Cargo.toml"))
                .with_context(|| format!("--sdk-path {}: no Cargo.toml there (give the folder of modelcall-plugin-sdk)", p.display()))?;
            if toml_string(&manifest, "package", "name") != Some("modelcall-plugin-sdk") {
                bail!("--sdk-path {}: its Cargo.toml is not the package modelcall-plugin-sdk", p.display());
            }
            Some(std::fs::canonicalize(&p).with_context(|| format!("resolving --sdk-path {}", p.display()))?)
        }
    };
    let shown = dir.display();
    let Some(role) = role.filter(|_| !task_type) else {
        write_files(&dir, super::task_type::files(&name, sdk_path.as_deref()))?;
        println!("created the task type `{name}` (a reader, a prompt builder and a score parser in one Cargo workspace) in {shown}");
        println!("next: cd {shown} && cargo test && modelcall plugin build && modelcall plugin dev task.yaml");
        return Ok(());
    };
    write_files(&dir, project_files(&name, role, lang, sdk_path.as_deref()))?;
    println!("created the {role} plugin `{name}` ({}) in {shown}", if lang == Lang::Rust { "Rust" } else { "Python" });
    match lang {
        Lang::Rust => println!("next: cd {shown} && cargo test && modelcall plugin build && modelcall run-task task.yaml"),
        Lang::Python => println!("next: cd {shown} && pip install componentize-py && modelcall plugin build && modelcall run-task task.yaml (see README.md)"),
    }
    Ok(())
}

/// Writes `files` (relative path, content) under `dir`, creating folders.
fn write_files(dir: &Path, files: Vec<(String, String)>) -> anyhow::Result<()> {
    for (rel, content) in files {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
