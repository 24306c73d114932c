//! The task file: loading, key checking, interpolation, typed sections.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::env::{interpolate, read_env_file};
use crate::error::{closest, ConfigError};
use crate::locate::{find_key, find_key_or_parent};
use crate::model::ModelConfig;
use crate::paths;
use crate::prompt::PromptConfig;
use crate::schema::{ignored_reason, known_keys};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskType {
    DataScoring,
    DataDistillation,
    GenerateResponse,
}

impl TaskType {
    pub const NAMES: [&'static str; 3] = ["data_scoring", "data_distillation", "generate_response"];
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DataSection {
    pub input_folder: Option<String>,
    pub input_file: Option<String>,
    pub output_folder: Option<String>,
    pub stat_folder: Option<String>,
    pub input_key: Option<String>,
    pub prompt_format_key: Option<String>,
    pub id_field: Option<String>,
    pub output_format: Option<String>,
    pub file_pattern: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PathSection {
    pub config_path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConcurrencySection {
    pub max_concurrent_files: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub chunk_size: Option<i64>,
    pub parquet_save_interval: Option<i64>,
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RetrySection {
    pub enable_format_validation_retry: Option<bool>,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DebugSection {
    pub enabled: bool,
    pub max_files: Option<i64>,
    pub max_items_per_file: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OptionsSection {
    pub main_resume: Option<bool>,
    pub resume: Option<bool>,
    pub delete_existing: Option<bool>,
    pub preprocess_resume: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EnvironmentSection {
    pub config_path: Option<String>,
    pub tos_config_path: Option<String>,
    pub timeout: Option<f64>,
    pub conda_env: Option<String>,
    pub api_provider: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LoggingSection {
    pub level: Option<String>,
    pub batch_size: Option<i64>,
    pub progress_report_interval: Option<f64>,
    pub show_progress: Option<bool>,
    pub log_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DistributedSection {
    pub enabled: Option<bool>,
    pub world_size: Option<u32>,
    pub num_runs: Option<u32>,
}

/// One entry of the `plugins:` block.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginEntry {
    #[serde(skip)]
    pub name: String,
    pub role: String,
    pub path: String,
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub limits: Value,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaskConfig {
    pub task_name: String,
    #[serde(skip, default = "default_type")]
    pub task_type: TaskType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub model: PathSection,
    #[serde(default)]
    pub prompt: PathSection,
    #[serde(default)]
    pub concurrency: ConcurrencySection,
    #[serde(default)]
    pub retry: RetrySection,
    #[serde(default)]
    pub debug: DebugSection,
    #[serde(default)]
    pub options: OptionsSection,
    #[serde(default)]
    pub environment: EnvironmentSection,
    #[serde(default)]
    pub logging: LoggingSection,
    #[serde(default)]
    pub distributed: DistributedSection,
    /// Checked by the preprocessing stage.
    #[serde(default)]
    pub preprocess: Value,
    /// Checked by the distillation engine.
    #[serde(default)]
    pub distillation: Value,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginEntry>,
}

fn default_type() -> TaskType {
    TaskType::DataScoring
}

/// A key the reference accepted but that has no effect here.
#[derive(Debug, Clone)]
pub struct IgnoredKey {
    pub key: String,
    pub line: Option<usize>,
    pub why: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--model`: replaces `model.config_path`.
    pub model_config: Option<PathBuf>,
    /// `--output-folder`: replaces `data.output_folder`.
    pub output_folder: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct LoadedTask {
    pub source_path: PathBuf,
    pub task: TaskConfig,
    /// The interpolated task file as JSON (for sections other stages interpret).
    pub json: Value,
    pub model: Option<ModelConfig>,
    pub prompt: Option<PromptConfig>,
    pub ignored_keys: Vec<IgnoredKey>,
    /// `data.output_folder` with `{timestamp}`/`{task_name}` resolved.
    pub output_folder: Option<PathBuf>,
    pub stat_folder: Option<PathBuf>,
    /// The folder of the task file, for resolving relative paths.
    pub task_dir: PathBuf,
}

impl LoadedTask {
    pub fn resolve(&self, path: &str) -> PathBuf {
        paths::resolve(path, &self.task_dir)
    }
}

pub(crate) fn yaml_to_json(v: serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Interpolates `${VAR}` in every string of `v`; errors name the key's line.
pub(crate) fn interpolate_tree(
    v: &mut Value,
    path: &mut Vec<String>,
    source: &str,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains('$') => {
            *s = interpolate(s, lookup).map_err(|var| {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                ConfigError::new(
                    file,
                    format!("environment variable `{var}` is not set (set it, put it in the env file named by environment.config_path, or write ${{{var}:-default}})"),
                )
                .key(keys.join("."))
                .at(find_key_or_parent(source, &keys))
            })?;
        }
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                path.push(k.clone());
                interpolate_tree(child, path, source, file, lookup)?;
                path.pop();
            }
        }
        Value::Array(a) => {
            for child in a.iter_mut() {
                interpolate_tree(child, path, source, file, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_keys(
    v: &Value,
    path: &mut Vec<String>,
    source: &str,
    file: &Path,
    ignored: &mut Vec<IgnoredKey>,
) -> Result<(), ConfigError> {
    let Value::Object(map) = v else { return Ok(()) };
    let owned: Vec<String> = path.clone();
    let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let Some(known) = known_keys(&segs) else { return Ok(()) };
    for (k, child) in map {
        let mut full: Vec<&str> = segs.clone();
        full.push(k);
        if !known.contains(&k.as_str()) {
            let where_ = find_key(source, &full).or_else(|| find_key_or_parent(source, &segs));
            let section = if segs.is_empty() { "at the top level".to_string() } else { format!("in `{}`", segs.join(".")) };
            return Err(ConfigError::new(file, format!("unknown key {section}; known keys: {}", known.join(", ")))
                .key(full.join("."))
                .at(where_)
                .suggest(closest(k, known.iter().copied()).map(|s| {
                    let mut p = segs.clone();
                    p.push(&s);
                    p.join(".")
                })));
        }
        if let Some(why) = ignored_reason(&full) {
            ignored.push(IgnoredKey { key: full.join("."), line: find_key(source, &full).map(|l| l.0), why });
        }
        path.push(k.clone());
        check_keys(child, path, source, file, ignored)?;
        path.pop();
    }
    Ok(())
}

/// Loads and validates a task file and the model and prompt configs it names.
pub fn load_task(path: &Path, overrides: &Overrides) -> Result<LoadedTask, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, format!("cannot read the task file: {e}")))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&source)
        .map_err(|e| ConfigError::new(path, format!("not valid YAML: {e}")).at(e.location().map(|l| (l.line(), l.column()))))?;
    let mut json = yaml_to_json(yaml);
    if !json.is_object() {
        return Err(ConfigError::new(path, "a task file must be a mapping (task_name, task_type, data, …)"));
    }
    let task_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut ignored = Vec::new();
    check_keys(&json, &mut Vec::new(), &source, path, &mut ignored)?;

    // Environment: the env file fills variables the real environment does not set (so a CI
    // secret wins over a checked-in file; the reference let the file override).
    let mut file_vars: HashMap<String, String> = HashMap::new();
    if let Some(Value::String(env_path)) = json.pointer("/environment/config_path") {
        let p = paths::resolve(env_path, &task_dir);
        match read_env_file(&p) {
            Ok(vars) => file_vars = vars,
            Err(e) => {
                return Err(ConfigError::new(path, format!("cannot read the env file {}: {e}", p.display()))
                    .key("environment.config_path")
                    .at(find_key(&source, &["environment", "config_path"])))
            }
        }
    }
    let lookup = move |k: &str| std::env::var(k).ok().or_else(|| file_vars.get(k).cloned());
    interpolate_tree(&mut json, &mut Vec::new(), &source, path, &lookup)?;

    let task_type = match json.get("task_type") {
        None => TaskType::DataScoring,
        Some(Value::String(t)) => match t.as_str() {
            "data_scoring" => TaskType::DataScoring,
            "data_distillation" => TaskType::DataDistillation,
            "generate_response" => TaskType::GenerateResponse,
            other => {
                return Err(ConfigError::new(path, format!("unknown task type `{other}`; expected one of {}", TaskType::NAMES.join(", ")))
                    .key("task_type")
                    .at(find_key(&source, &["task_type"]))
                    .suggest(closest(other, TaskType::NAMES)))
            }
        },
        Some(other) => {
            return Err(ConfigError::new(path, format!("must be a string, found {other}")).key("task_type").at(find_key(&source, &["task_type"])))
        }
    };
    let mut typed = json.clone();
    if let Some(m) = typed.as_object_mut() {
        m.remove("task_type");
        m.remove("output_config");
    }
    let mut task: TaskConfig = serde_path_to_error::deserialize(typed).map_err(|e| {
        let key = e.path().to_string();
        let segs: Vec<&str> = key.split('.').filter(|s| !s.is_empty() && *s != "?").collect();
        ConfigError::new(path, e.inner().to_string()).key(key.clone()).at(find_key_or_parent(&source, &segs))
    })?;
    task.task_type = task_type.clone();
    for (name, entry) in task.plugins.iter_mut() {
        entry.name = name.clone();
        if !["preprocessor", "prompt-builder", "score-parser"].contains(&entry.role.as_str()) {
            return Err(ConfigError::new(path, format!("role `{}` is not one of preprocessor, prompt-builder, score-parser", entry.role))
                .key(format!("plugins.{name}.role"))
                .at(find_key(&source, &["plugins", name, "role"]))
                .suggest(closest(&entry.role, ["preprocessor", "prompt-builder", "score-parser"])));
        }
    }
    if let Some(fmt) = &task.data.output_format {
        if fmt != "parquet" && fmt != "jsonl" {
            return Err(ConfigError::new(path, format!("`{fmt}` is not an output format; use parquet or jsonl"))
                .key("data.output_format")
                .at(find_key(&source, &["data", "output_format"])));
        }
    }

    let resume = task.options.main_resume.or(task.options.resume).unwrap_or(true);
    let (output_folder, stat_folder) = match (&overrides.output_folder, &task.data.output_folder) {
        (Some(o), _) => (Some(o.clone()), task.data.stat_folder.as_ref().map(|s| PathBuf::from(paths::template(s, &paths::timestamp_now(), &task.task_name)))),
        (None, Some(o)) => {
            let ts = if resume { paths::resume_timestamp(o, &task.task_name) } else { None }.unwrap_or_else(paths::timestamp_now);
            (
                Some(PathBuf::from(paths::template(o, &ts, &task.task_name))),
                task.data.stat_folder.as_ref().map(|s| PathBuf::from(paths::template(s, &ts, &task.task_name))),
            )
        }
        (None, None) => (None, None),
    };

    let mut model = None;
    let mut prompt = None;
    if task_type == TaskType::DataScoring {
        let model_path = match (&overrides.model_config, &task.model.config_path) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => paths::resolve(p, &task_dir),
            (None, None) => {
                return Err(ConfigError::new(path, "missing: a scoring task needs model.config_path (or --model)")
                    .key("model.config_path")
                    .at(find_key_or_parent(&source, &["model", "config_path"])))
            }
        };
        if !model_path.exists() {
            return Err(ConfigError::new(path, format!("the model config {} does not exist", model_path.display()))
                .key("model.config_path")
                .at(find_key_or_parent(&source, &["model", "config_path"])));
        }
        model = Some(ModelConfig::load(&model_path, &lookup)?);
        if let Some(p) = &task.prompt.config_path {
            let prompt_path = paths::resolve(p, &task_dir);
            if !prompt_path.exists() {
                return Err(ConfigError::new(path, format!("the prompt config {} does not exist", prompt_path.display()))
                    .key("prompt.config_path")
                    .at(find_key(&source, &["prompt", "config_path"])));
            }
            prompt = Some(PromptConfig::load(&prompt_path)?);
        } else if !task.plugins.values().any(|p| p.role == "prompt-builder") {
            return Err(ConfigError::new(path, "missing: a scoring task needs prompt.config_path or a prompt-builder plugin")
                .key("prompt.config_path")
                .at(find_key_or_parent(&source, &["prompt", "config_path"])));
        }
        if output_folder.is_none() {
            return Err(ConfigError::new(path, "missing: where to write the results")
                .key("data.output_folder")
                .at(find_key_or_parent(&source, &["data", "output_folder"])));
        }
        if task.data.input_folder.is_none() && task.data.input_file.is_none() {
            return Err(ConfigError::new(path, "missing: what to read (data.input_folder or data.input_file)")
                .key("data.input_folder")
                .at(find_key_or_parent(&source, &["data", "input_folder"])));
        }
    }

    Ok(LoadedTask {
        source_path: path.to_path_buf(),
        task,
        json,
        model,
        prompt,
        ignored_keys: ignored,
        output_folder,
        stat_folder,
        task_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fx {
        dir: tempfile::TempDir,
    }

    impl Fx {
        fn new() -> Fx {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("model.yaml"), "client_config:\n  base_url: sim://\n  api_key: \"${MC_TEST_KEY:-none}\"\nchat_config:\n  model: m\n").unwrap();
            std::fs::write(dir.path().join("prompt.yaml"), "prompt_template:\n  system_text: s\n  prompt_text: \"{text}\"\noutput_config:\n  require_json: true\n  json_keys: [score]\n").unwrap();
            Fx { dir }
        }
        fn task(&self, body: &str) -> Result<LoadedTask, ConfigError> {
            let p = self.dir.path().join("task.yaml");
            let d = self.dir.path().display();
            let text = body.replace("$DIR", &d.to_string());
            std::fs::write(&p, text).unwrap();
            load_task(&p, &Overrides::default())
        }
    }

    const FULL: &str = "task_name: \"repomix_quality_rating\"
task_type: \"data_scoring\"
description: \"Rate repos\"
data:
  input_folder: \"$DIR/in\"
  output_folder: \"$DIR/out/{task_name}\"
  stat_folder: \"$DIR/stats/{task_name}\"
  input_key: \"content_truncate_32k\"
  prompt_format_key: \"content_truncate_32k\"
model:
  config_path: \"$DIR/model.yaml\"
prompt:
  config_path: \"$DIR/prompt.yaml\"
environment:
  config_path: \"$DIR/keys.env\"
  timeout: 1200
concurrency:
  max_concurrent_files: 1
  max_concurrent_requests: 64
  chunk_size: 32
  parquet_save_interval: 100
distributed:
  enabled: false
  world_size: 1
  num_runs: 1
debug:
  enabled: false
  max_files: -1
  max_items_per_file: -1
retry:
  enable_format_validation_retry: true
  max_retries: 3
options:
  main_resume: true
  resume: true
  delete_existing: false
  preprocess_resume: true
logging: { level: INFO, batch_size: 20, progress_report_interval: 3 }
";

    #[test]
    fn a_full_reference_task_loads_and_reports_ignored_keys() {
        let fx = Fx::new();
        std::fs::write(fx.dir.path().join("keys.env"), "MC_TEST_KEY=sk-from-env-file-1234\n").unwrap();
        let t = fx.task(FULL).unwrap();
        assert_eq!(t.task.task_type, TaskType::DataScoring);
        assert_eq!(t.task.concurrency.max_concurrent_requests, Some(64));
        assert_eq!(t.task.data.input_key.as_deref(), Some("content_truncate_32k"));
        assert!(t.output_folder.unwrap().ends_with("out/repomix_quality_rating"));
        assert_eq!(t.model.as_ref().unwrap().api_key.as_deref(), Some("sk-from-env-file-1234"));
        let ignored: Vec<&str> = t.ignored_keys.iter().map(|k| k.key.as_str()).collect();
        for k in ["concurrency.chunk_size", "concurrency.parquet_save_interval", "options.preprocess_resume", "distributed.enabled"] {
            assert!(ignored.contains(&k), "{k} not in {ignored:?}");
        }
        let chunk = t.ignored_keys.iter().find(|k| k.key == "concurrency.chunk_size").unwrap();
        assert_eq!(chunk.line, Some(20));
    }

    #[test]
    fn unknown_keys_name_line_and_suggest() {
        let fx = Fx::new();
        let e = fx.task(&FULL.replace("  max_concurrent_requests: 64", "  max_concurent_requests: 64")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("task.yaml:19:3"), "{s}");
        assert!(s.contains("concurrency.max_concurent_requests"), "{s}");
        assert!(s.contains("did you mean `concurrency.max_concurrent_requests`"), "{s}");
        let e = fx.task(&format!("{FULL}retyr:\n  max_retries: 1\n")).unwrap_err();
        assert!(e.to_string().contains("`retyr`") && e.to_string().contains("did you mean `retry`"), "{e}");
    }

    #[test]
    fn type_errors_name_key_and_line() {
        let fx = Fx::new();
        std::fs::write(fx.dir.path().join("keys.env"), "").unwrap();
        let e = fx.task(&FULL.replace("max_concurrent_requests: 64", "max_concurrent_requests: lots")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains(":19:") && s.contains("concurrency.max_concurrent_requests"), "{s}");
        let e = fx.task(&FULL.replace("task_type: \"data_scoring\"", "task_type: \"data_scorng\"")).unwrap_err();
        assert!(e.to_string().contains("did you mean `data_scoring`"), "{e}");
    }

    #[test]
    fn missing_variables_and_files_are_named() {
        let fx = Fx::new();
        let e = fx.task(&FULL.replace("\"$DIR/in\"", "\"${MC_SURELY_UNSET_VAR}/in\"").replace("  config_path: \"$DIR/keys.env\"\n", "")).unwrap_err();
        assert!(e.to_string().contains("MC_SURELY_UNSET_VAR") && e.to_string().contains(":5:"), "{e}");
        let e = fx.task(&FULL.replace("$DIR/prompt.yaml", "$DIR/nope.yaml").replace("  config_path: \"$DIR/keys.env\"\n", "")).unwrap_err();
        assert!(e.to_string().contains("prompt.config_path") && e.to_string().contains("nope.yaml"), "{e}");
    }

    #[test]
    fn plugins_block() {
        let fx = Fx::new();
        let body = FULL.replace("  config_path: \"$DIR/keys.env\"\n", "")
            + "plugins:\n  parse:\n    role: score-parser\n    path: builtin:json-score\n    config: {score_key: score}\n    limits: {timeout_ms: 500}\n";
        let t = fx.task(&body).unwrap();
        let p = &t.task.plugins["parse"];
        assert_eq!((p.name.as_str(), p.role.as_str(), p.path.as_str()), ("parse", "score-parser", "builtin:json-score"));
        assert_eq!(p.limits["timeout_ms"], 500);
        let bad = FULL.replace("  config_path: \"$DIR/keys.env\"\n", "") + "plugins:\n  parse:\n    role: scorer\n    path: x.wasm\n";
        assert!(fx.task(&bad).unwrap_err().to_string().contains("plugins.parse.role"));
    }
}
