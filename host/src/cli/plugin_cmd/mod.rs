//! `modelcall plugin list|check|run|bench|new|build|dev`: inspect and exercise one plugin on its
//! own, with the same runtime, sandbox and limits a task uses. Plugin authors use `run` to try a
//! plugin on sample data, `dev` to run a task's chain on a few records; `check` is what to run
//! when a task refuses to load a plugin.

mod build;
mod check;
mod dev;
mod dev_show;
mod dev_watch;
mod embedded;
mod exercise;
mod scaffold;
mod task_type;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use modelcall_plugin_host::{builtins, Limits, PluginRuntime, PluginSource, PluginSpec, Role};
use serde_json::{json, Value};

use check::check;
use exercise::{bench, run_files, run_records};

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// List the plugins built into this binary (use them as `builtin:<name>`).
    List,
    /// Validate a plugin and print its name, version, WIT version, sha256, imports and exports.
    Check {
        /// A `.wasm` component or `builtin:<name>`.
        plugin: String,
        /// The role to load it as; default: the one role it exports.
        #[arg(long)]
        role: Option<Role>,
        /// Config (YAML or JSON file) passed to the plugin's `init`; default `{}`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run records (or files) through a plugin and print one JSON line per outcome.
    Run {
        #[command(flatten)]
        target: PluginTarget,
        /// Limits (YAML or JSON file, the `limits:` block of a task); default: the defaults.
        #[arg(long)]
        limits: Option<PathBuf>,
        /// JSONL file of records.
        #[arg(long, conflicts_with = "files", required_unless_present = "files")]
        input: Option<PathBuf>,
        /// Directory whose files (recursively) are each given to a preprocessor as raw bytes.
        #[arg(long)]
        files: Option<PathBuf>,
        /// Task name lent to the plugin through its call context.
        #[arg(long, default_value = "plugin-run")]
        task_name: String,
    },
    /// Measure a plugin: first compile (no cache), load with a warm cache, µs per record warm.
    Bench {
        #[command(flatten)]
        target: PluginTarget,
        /// JSONL file of records (for a score parser each needs the completion field).
        #[arg(long)]
        input: PathBuf,
        /// Passes over the records timed for the warm µs-per-record figure.
        #[arg(long, default_value_t = 1000)]
        iterations: u32,
    },
    /// Create a plugin project: the role's trait implemented with a unit test, the SDK vendored,
    /// sample records and a task that runs it against the simulator; or, with --task-type, the
    /// three roles as one Cargo workspace with a task wiring them.
    New(scaffold::NewArgs),
    /// Build the plugin project in DIR to a component (`cargo build --release --target
    /// wasm32-wasip2`, or componentize-py) and print the path of its `NAME.wasm` (a task type's
    /// workspace: its three plugins, in one cargo build).
    Build(build::BuildArgs),
    /// Rebuild a task's changed plugins and run it on a few records into a scratch folder,
    /// printing record → prompt → reply → verdict for each (sim:// unless --live).
    Dev(dev::DevArgs),
}

/// The plugin that `run` and `bench` exercise, and how.
#[derive(clap::Args)]
pub struct PluginTarget {
    /// A `.wasm` component or `builtin:<name>`.
    plugin: String,
    /// The role to exercise it as: preprocessor, prompt-builder or score-parser.
    #[arg(long)]
    role: Role,
    /// Config (YAML or JSON file) passed to the plugin's `init`; default `{}`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// For a score parser: the record field holding the model's completion.
    #[arg(long, default_value = "completion")]
    completion_field: String,
}

pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    // Plugin authors want to see what their plugin logs through `host.log`: show it on
    // stderr (RUST_LOG overrides). Ignored if the binary already installed a subscriber.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,modelcall::plugin=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(crate::progress::colour_on_stderr()).try_init();
    match cmd {
        PluginCommand::List => {
            for name in builtins::names() {
                let about = BUILTIN_ABOUT.iter().find(|(n, _, _)| *n == name).map(|(_, role, about)| format!("{role:<15} {about}")).unwrap_or_default();
                println!("builtin:{name:<18} {about}");
            }
            Ok(())
        }
        PluginCommand::Check { plugin, role, config } => check(&plugin, role, config.as_deref()),
        PluginCommand::Run { target: PluginTarget { plugin, role, config, completion_field }, limits, input, files, task_name } => {
            let mut spec = PluginSpec::new(PluginSource::parse(&plugin), role);
            spec.config = read_config(config.as_deref())?;
            spec.task_name = task_name;
            if let Some(path) = limits {
                spec.limits = read_limits(&path)?;
            }
            let rt = PluginRuntime::new()?;
            // What `init` prints, on stderr; each call's is the `output` of its line.
            let (plugin, init_output) = modelcall_plugin_host::capture_output(|| rt.load(spec));
            if !init_output.is_empty() {
                eprint!("plugin output during init: {init_output}");
            }
            let plugin = plugin?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let fatal = match (input, files) {
                (Some(path), _) => run_records(&plugin, role, &path, &completion_field, &mut out)?,
                (None, Some(dir)) => {
                    if role != Role::Preprocessor {
                        bail!("--files gives raw files to a preprocessor; a {role} takes records: use --input records.jsonl");
                    }
                    run_files(&plugin, &dir, &mut out)?
                }
                (None, None) => bail!("give --input records.jsonl or --files DIR"),
            };
            if let Some(e) = fatal {
                bail!("{e}");
            }
            Ok(())
        }
        PluginCommand::Bench { target: PluginTarget { plugin, role, config, completion_field }, input, iterations } => {
            bench(&plugin, role, config.as_deref(), &input, iterations, &completion_field)
        }
        PluginCommand::New(args) => scaffold::new(args),
        PluginCommand::Build(args) => build::build(args),
        PluginCommand::Dev(args) => dev::dev(args),
    }
}

/// Each built-in's role and job, for `plugin list`.
const BUILTIN_ABOUT: &[(&str, &str, &str)] = &[
    ("chatml", "preprocessor", "datasets in six format styles to ChatML `messages` (chatml_conversion)"),
    ("github-raw-code", "preprocessor", "raw GitHub source files to records with token-truncated text"),
    ("json-score", "score-parser", "the JSON verdict of a reply: required keys, defaults, checks, re-ask hints"),
    ("repo-xml", "preprocessor", "Repomix/RenderGit packs to one record per repository"),
    ("template-prompt", "prompt-builder", "a prompt from a template filled with record fields"),
    ("triplet-filter", "preprocessor", "the reference's pt_data triplets, placeholders never overwriting real fields"),
    ("universal", "preprocessor", "field mapping, filters, text cleaning and computed fields for any records"),
];

/// A plugin config file: YAML (so also JSON). An empty file means `{}`.
pub(super) fn read_config(path: Option<&Path>) -> anyhow::Result<Value> {
    let Some(path) = path else { return Ok(json!({})) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading plugin config {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_yaml::from_str(&text).with_context(|| format!("parsing plugin config {} as YAML/JSON", path.display()))
}

fn read_limits(path: &Path) -> anyhow::Result<Limits> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading limits {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing limits {} (keys: timeout_ms, init_timeout_ms, fuel, memory_mib, max_output_bytes, max_records_per_call, max_log_bytes, max_calls_per_instance, max_consecutive_traps)", path.display()))
}
