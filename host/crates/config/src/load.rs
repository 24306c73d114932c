//! `load_task`: from a task file to a checked [`LoadedTask`].
//!
//! Order: parse → task type → key check (unknown keys are errors; never-read keys are reported)
//! → env file → `${VAR}` interpolation → typed sections → per-type checks and linked configs
//! (model, prompt, distillation step) → output folders (templating, resume).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::distill;
use crate::env::{read_env_file, Vars};
use crate::error::{closest, humanize_serde, unknown_key, ConfigError};
use crate::locate::find_key;
use crate::model::{ModelConfig, ModelDefaults};
use crate::paths;
use crate::prompt::{PromptChecks, PromptConfig};
use crate::schema::{ignored_reason, known_keys, refused_reason, IgnoredKey};
use crate::step::DistillationStep;
use crate::task::{LoadedTask, Overrides, ScriptType, TaskConfig, TaskType, PLUGIN_ROLES};
use crate::yaml::{describe, interpolate_tree, read_yaml, YamlFile};

/// Loads and checks a task file and the model and prompt configs it names, with `${VAR}` taken
/// from the process environment and the task's env file.
pub fn load_task(path: &Path, overrides: &Overrides) -> Result<LoadedTask, ConfigError> {
    load_task_with(path, overrides, Vars::process())
}

/// [`load_task`] for commands that only read local files (`status`, `merge`): a `${VAR}` with no
/// value (an API key's, typically) reads as "" instead of failing ([`Vars::unset_as_empty`]).
pub fn load_task_without_secrets(path: &Path, overrides: &Overrides) -> Result<LoadedTask, ConfigError> {
    load_task_with(path, overrides, Vars::process().unset_as_empty())
}

/// [`load_task`] with an explicit environment (tests; embedders).
pub fn load_task_with(path: &Path, overrides: &Overrides, env: Vars) -> Result<LoadedTask, ConfigError> {
    let yaml = read_yaml(path, "task file")?;
    let err = |keys: &[&str], msg: String| ConfigError::new(path, msg).key(keys.join(".")).at(yaml.locate(keys));
    if !yaml.tree.is_object() {
        return Err(ConfigError::new(path, "a task file must be a mapping (task_name, task_type, data, …)"));
    }
    let task_type = task_type(&yaml, path)?;
    let task_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut ignored = Vec::new();
    check_keys(&yaml.tree, &mut Vec::new(), &yaml, path, task_type.as_str(), &mut ignored)?;

    // The env file comes first: its values feed every ${VAR} below (its own path sees only the
    // process environment).
    let mut warnings = Vec::new();
    let vars = match yaml.tree.pointer("/environment/config_path") {
        None | Some(Value::Null) => env,
        Some(Value::String(raw)) => {
            let raw = crate::env::interpolate(raw, &|k| env.get(k)).map_err(|var| err(&["environment", "config_path"], env.missing_message(var.name())))?;
            let p = paths::resolve(&raw, &task_dir);
            match read_env_file(&p) {
                Ok(v) => env.with_env_file(p, Some(v)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // The reference only warned here; variables it would have provided get their
                    // own error below if they are actually needed.
                    let line = find_key(&yaml.source, &["environment", "config_path"]).map(|l| format!(":{}", l.0)).unwrap_or_default();
                    warnings.push(format!("{}{line}: the env file {} does not exist; using the environment only", path.display(), p.display()));
                    env.with_env_file(p, None)
                }
                Err(e) => return Err(err(&["environment", "config_path"], format!("cannot read the env file {}: {e}", p.display()))),
            }
        }
        Some(v) => return Err(err(&["environment", "config_path"], format!("must be a file path, found {}", describe(v)))),
    };
    let mut json = yaml.tree.clone();
    interpolate_tree(&mut json, path, &yaml.source, &vars)?;
    let storage_env = storage_env(&json, &yaml, path, &task_dir, &mut warnings)?;

    let mut task = typed(&json, &yaml, path)?;
    task.task_type = task_type;
    // `{task_name}` means the same in every path a task file writes (the output and stat folders
    // also take `{timestamp}`, resolved below).
    let name = task.task_name.clone();
    for p in [&mut task.data.input_folder, &mut task.data.input_file, &mut task.preprocess.input_folder, &mut task.preprocess.output_folder] {
        if let Some(v) = p.as_mut() {
            *v = v.replace("{task_name}", &name);
        }
    }
    check_plugins(&mut task, &yaml, path)?;
    if let Some(fmt) = &task.data.output_format {
        if fmt != "parquet" && fmt != "jsonl" {
            return Err(
                err(&["data", "output_format"], format!("`{fmt}` is not an output format; use parquet or jsonl")).suggest(closest(fmt, ["parquet", "jsonl"]))
            );
        }
    }

    let mut model = None;
    let mut prompt = None;
    let model_override = |keys: &[&str], written: &str, base: &Path| -> Result<PathBuf, ConfigError> {
        let p = match &overrides.model_config {
            Some(p) => p.clone(),
            None => paths::resolve(written, base),
        };
        if !p.exists() {
            let msg = match &overrides.model_config {
                Some(_) => format!("--model {} does not exist (it replaces this key)", p.display()),
                None => format!("the model config {} does not exist", p.display()),
            };
            return Err(err(keys, msg));
        }
        Ok(p)
    };
    match task_type {
        TaskType::DataScoring => {
            let written = task.model.config_path.clone().unwrap_or_default();
            if written.is_empty() && overrides.model_config.is_none() {
                return Err(err(&["model", "config_path"], "missing: a scoring task needs model.config_path (or --model)".into()));
            }
            let model_path = model_override(&["model", "config_path"], &written, &task_dir)?;
            let defaults = ModelDefaults { task_timeout: task.environment.timeout, ..ModelDefaults::scoring() };
            model = Some(ModelConfig::load(&model_path, &vars, &defaults)?);
            match &task.prompt.config_path {
                Some(p) => {
                    let prompt_path = paths::resolve(p, &task_dir);
                    if !prompt_path.exists() {
                        return Err(err(&["prompt", "config_path"], format!("the prompt config {} does not exist", prompt_path.display())));
                    }
                    prompt = Some(PromptConfig::load_checked(&prompt_path, prompt_checks(&task))?);
                }
                None if !task.plugins.values().any(|p| p.role == "prompt-builder") => {
                    return Err(err(&["prompt", "config_path"], "missing: a scoring task needs prompt.config_path or a prompt-builder plugin".into()))
                }
                None => {}
            }
            if task.data.output_folder.is_none() && overrides.output_folder.is_none() {
                return Err(err(&["data", "output_folder"], "missing: where to write the results".into()));
            }
            if task.data.input_folder.is_none() && task.data.input_file.is_none() {
                return Err(err(&["data", "input_folder"], "missing: what to read (data.input_folder or data.input_file)".into()));
            }
        }
        TaskType::DataDistillation | TaskType::GenerateResponse => {
            let (step, off_step) = distill::parse(task_type.as_str(), json.get("distillation"), path, &yaml, &task_dir)?;
            for o in off_step {
                let segs: Vec<&str> = o.key.split('.').collect();
                // The other schema's spelling of the model or of resume: ignoring it would answer
                // with another model, or resend (or skip) what the author meant otherwise.
                if let Some(right) = other_spelling(&o.key, task_type.as_str()) {
                    return Err(ConfigError::new(
                        path,
                        format!("{} (the reference ignored it too, so its value never applied); write `distillation.{right}` instead, or remove it", o.why),
                    )
                    .key(o.key.clone())
                    .at(find_key(&yaml.source, &segs).or_else(|| yaml.locate(&segs))));
                }
                ignored.push(IgnoredKey { path: path.to_path_buf(), line: find_key(&yaml.source, &segs).map(|l| l.0), key: o.key, why: o.why });
            }
            if let DistillationStep::GenerateResponse(g) = &step {
                let key = if task_type == TaskType::GenerateResponse { "model_config" } else { "response_config_path" };
                let p = model_override(&["distillation", key], &g.model_config_path.to_string_lossy(), Path::new("."))?;
                model = Some(ModelConfig::load(&p, &vars, &ModelDefaults { task_timeout: task.environment.timeout, ..ModelDefaults::generation() })?);
                // The reference reads generation's concurrency from the step, never from the
                // `concurrency` section; say so instead of letting the author believe it applies.
                if json.pointer("/concurrency/max_concurrent_requests").is_some_and(|v| !v.is_null()) {
                    let segs = ["concurrency", "max_concurrent_requests"];
                    ignored.push(IgnoredKey {
                        path: path.to_path_buf(),
                        line: find_key(&yaml.source, &segs).map(|l| l.0),
                        key: segs.join("."),
                        why: format!(
                            "generate_response sends `distillation.concurrency` ({}) requests at a time; set that key instead (the rest of `concurrency:`, mode and rate limits, applies)",
                            g.concurrency
                        ),
                    });
                }
            }
            task.distillation = Some(step);
        }
        TaskType::BatchSubmit => {
            let batch = crate::batch::parse_batch(&json, path, &yaml, &task_dir)?;
            if let Some(siflow) = &batch.siflow {
                warnings.push(format!("{}: batch_submit.siflow: {}", path.display(), crate::batch::siflow_note(siflow)));
            }
            task.distillation = Some(DistillationStep::BatchSubmit(batch));
        }
        TaskType::MergeResults => {
            task.distillation = Some(DistillationStep::MergeResults(crate::batch::parse_merge(&json, path, &yaml, &task_dir)?));
        }
    }
    if let Some(m) = &model {
        ignored.extend(m.ignored_keys.iter().cloned());
    }

    let (output_folder, stat_folder, timestamp, resumed) = output_folders(&task, overrides);
    Ok(LoadedTask {
        source_path: path.to_path_buf(),
        task,
        json,
        model,
        prompt,
        ignored_keys: ignored,
        warnings,
        storage_env,
        output_folder,
        stat_folder,
        timestamp,
        resumed_earlier_run: resumed,
        task_dir,
    })
}

/// `distillation.<key>` written in the other generate_response schema's spelling for a key
/// that changes what is sent or written: the spelling this task reads.
fn other_spelling(key: &str, task_type: &str) -> Option<&'static str> {
    let key = key.strip_prefix("distillation.")?;
    let pairs = [("model_config", "response_config_path"), ("resume", "resume_mode")];
    pairs.iter().find_map(|&(task_name, step_name)| match task_type {
        "generate_response" if key == step_name => Some(task_name),
        "data_distillation" if key == task_name => Some(step_name),
        _ => None,
    })
}

/// `environment.tos_config_path`: an env file with the object-storage credentials (the
/// reference loaded it into the environment, over existing values, when the file existed). Its
/// `TOS_*` and `AWS_*` variables are returned for the caller to put in the process environment,
/// where the `s3://`/`tos://` store reads them; the reference's `REGION` is taken as `TOS_REGION`.
fn storage_env(json: &Value, yaml: &YamlFile, path: &Path, task_dir: &Path, warnings: &mut Vec<String>) -> Result<crate::task::StorageEnv, ConfigError> {
    let keys = ["environment", "tos_config_path"];
    let raw = match json.pointer("/environment/tos_config_path") {
        None | Some(Value::Null) => return Ok(Default::default()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Default::default()),
        Some(Value::String(s)) => s,
        Some(v) => return Err(ConfigError::new(path, format!("must be a file path, found {}", describe(v))).key(keys.join(".")).at(yaml.locate(&keys))),
    };
    let p = paths::resolve(raw, task_dir);
    let line = find_key(&yaml.source, &keys).map(|l| format!(":{}", l.0)).unwrap_or_default();
    let vars = match read_env_file(&p) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The reference skipped a missing file silently; say so only where it matters.
            if json.to_string().contains("tos://") {
                warnings.push(format!(
                    "{}{line}: environment.tos_config_path: {} does not exist; object storage uses the environment only",
                    path.display(),
                    p.display()
                ));
            }
            return Ok(Default::default());
        }
        Err(e) => return Err(ConfigError::new(path, format!("cannot read the TOS config {}: {e}", p.display())).key(keys.join(".")).at(yaml.locate(&keys))),
    };
    let mut out = std::collections::BTreeMap::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut region = None;
    for (k, v) in vars {
        if k.starts_with("TOS_") || k.starts_with("AWS_") {
            out.insert(k, v);
        } else if k == "REGION" {
            region = Some(v);
        } else {
            skipped.push(k);
        }
    }
    // An explicit TOS_REGION wins over the reference's REGION.
    if let Some(r) = region {
        out.entry("TOS_REGION".to_string()).or_insert(r);
    }
    if !skipped.is_empty() {
        skipped.sort();
        warnings.push(format!(
            "{}{line}: environment.tos_config_path: {} set(s) {} too; only object-storage variables (TOS_*, AWS_*, REGION) are taken from it, put the others in environment.config_path",
            path.display(),
            p.display(),
            skipped.join(", ")
        ));
    }
    Ok(crate::task::StorageEnv(out.into_iter().collect()))
}

/// A section of the prompt config is checked when a built-in plugin reads it: the task names no
/// plugin for the role, names the built-in, or gives its plugin a `config` of its own (so the
/// prompt file's section goes to no plugin, only to the typed views).
fn prompt_checks(task: &TaskConfig) -> PromptChecks {
    let builtin_reads = |role: &str, builtin: &str| match task.plugins.values().find(|p| p.role == role) {
        None => true,
        Some(p) => p.path.trim() == builtin || !p.config.is_null(),
    };
    PromptChecks {
        template_prompt: builtin_reads("prompt-builder", "builtin:template-prompt"),
        json_score: builtin_reads("score-parser", "builtin:json-score"),
    }
}

fn task_type(yaml: &YamlFile, path: &Path) -> Result<TaskType, ConfigError> {
    let err = |msg: String| ConfigError::new(path, msg).key("task_type").at(yaml.locate(&["task_type"]));
    match yaml.tree.get("task_type") {
        // The reference ran anything without a known type as scoring.
        None | Some(Value::Null) => Ok(TaskType::DataScoring),
        Some(Value::String(t)) => TaskType::parse(t)
            .ok_or_else(|| err(format!("unknown task type `{t}`; expected one of {}", TaskType::NAMES.join(", "))).suggest(closest(t, TaskType::NAMES))),
        Some(other) => Err(err(format!("must be a string, found {}", describe(other)))),
    }
}

fn check_keys(v: &Value, path: &mut Vec<String>, yaml: &YamlFile, file: &Path, task_type: &str, ignored: &mut Vec<IgnoredKey>) -> Result<(), ConfigError> {
    let Value::Object(map) = v else { return Ok(()) };
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let known = known_keys(&segs);
    let mut children = Vec::new();
    for (k, child) in map {
        let mut full = segs.clone();
        full.push(k);
        if let Some(known) = known {
            if !known.contains(&k.as_str()) {
                return Err(unknown_key(file, &segs, k, known, find_key(&yaml.source, &full).or_else(|| yaml.locate(&segs))));
            }
        }
        if let Some(why) = refused_reason(&full, child, task_type) {
            return Err(ConfigError::new(file, format!("the reference gave this key an effect that is not implemented here: {why}"))
                .key(full.join("."))
                .at(find_key(&yaml.source, &full).or_else(|| yaml.locate(&full))));
        }
        if let Some(why) = ignored_reason(&full, task_type) {
            ignored.push(IgnoredKey { path: file.to_path_buf(), key: full.join("."), line: find_key(&yaml.source, &full).map(|l| l.0), why: why.to_string() });
        }
        // Descend only where keys are checked (below `plugins.<name>` the config is free-form).
        if known.is_some() || segs == ["plugins"] {
            children.push((k.clone(), child));
        }
    }
    for (k, child) in children {
        path.push(k);
        check_keys(child, path, yaml, file, task_type, ignored)?;
        path.pop();
    }
    Ok(())
}

/// The serde-typed sections; type errors name the key and line in the config's own words.
fn typed(json: &Value, yaml: &YamlFile, path: &Path) -> Result<TaskConfig, ConfigError> {
    let mut typed = json.clone();
    if let Some(m) = typed.as_object_mut() {
        m.remove("task_type");
        m.remove("distillation");
        m.retain(|_, v| !v.is_null()); // `debug:` with nothing under it means "defaults"
        if let Some(Value::String(s)) = m.get("preprocess").and_then(|p| p.get("script_type")) {
            if !ScriptType::NAMES.contains(&s.as_str()) {
                return Err(ConfigError::new(path, format!("`{s}` is not a script type; expected one of {}", ScriptType::NAMES.join(", ")))
                    .key("preprocess.script_type")
                    .at(yaml.locate(&["preprocess", "script_type"]))
                    .suggest(closest(s, ScriptType::NAMES)));
            }
        }
    }
    // A quoted number or boolean (`"64"`, or `${CONCURRENCY:-64}` after interpolation) is taken
    // as the number where a number is wanted: retry with that one value converted.
    for _ in 0..64 {
        let e = match serde_path_to_error::deserialize::<_, TaskConfig>(typed.clone()) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        let key = e.path().to_string();
        let msg = e.inner().to_string();
        if msg.starts_with("invalid type: string") {
            let pointer: String = key.split('.').map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect();
            if let Some(slot) = typed.pointer_mut(&pointer) {
                if let Some(v) = slot.as_str().and_then(scalar_from_text) {
                    *slot = v;
                    continue;
                }
            }
        }
        return Err(type_error(&key, &msg, yaml, path));
    }
    Err(ConfigError::new(path, "too many quoted numbers to convert"))
}

/// `"64"` → 64, `"0.5"` → 0.5, `"true"` → true.
fn scalar_from_text(s: &str) -> Option<Value> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(f) = t.parse::<f64>() {
        return serde_json::Number::from_f64(f).map(Value::Number);
    }
    match t {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => None,
    }
}

fn type_error(key: &str, msg: &str, yaml: &YamlFile, path: &Path) -> ConfigError {
    let mut key = key.to_string();
    if let Some(field) = msg.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        key = if key == "." || key.is_empty() { field.to_string() } else { format!("{key}.{field}") };
    }
    let segs: Vec<&str> = key.split('.').filter(|s| !s.is_empty() && *s != "?").collect();
    ConfigError::new(path, humanize_serde(msg)).key(segs.join(".")).at(yaml.locate(&segs))
}

fn check_plugins(task: &mut TaskConfig, yaml: &YamlFile, path: &Path) -> Result<(), ConfigError> {
    let mut roles: HashMap<String, String> = HashMap::new();
    for (name, entry) in task.plugins.iter_mut() {
        entry.name = name.clone();
        let err = |key: &str, msg: String| ConfigError::new(path, msg).key(format!("plugins.{name}.{key}")).at(yaml.locate(&["plugins", name, key]));
        if !PLUGIN_ROLES.contains(&entry.role.as_str()) {
            return Err(
                err("role", format!("`{}` is not a role; expected one of {}", entry.role, PLUGIN_ROLES.join(", "))).suggest(closest(&entry.role, PLUGIN_ROLES))
            );
        }
        if let Some(other) = roles.insert(entry.role.clone(), name.clone()) {
            return Err(err("role", format!("plugins `{other}` and `{name}` both have role {}; a task uses one per role", entry.role)));
        }
        if entry.path.trim().is_empty() {
            return Err(err("path", "missing: a .wasm file or builtin:<name>".into()));
        }
        if let Some(h) = &entry.sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err("sha256", format!("must be 64 hex digits (sha256sum of the .wasm), found \"{h}\"")));
            }
        }
    }
    Ok(())
}

/// `data.output_folder` / `stat_folder` with `{timestamp}` and `{task_name}` filled, resuming
/// into an earlier run's timestamp when `options` say so (see [`paths::resume_timestamp`]).
fn output_folders(task: &TaskConfig, overrides: &Overrides) -> (Option<PathBuf>, Option<PathBuf>, Option<String>, bool) {
    let out = task.data.output_folder.as_deref();
    let stat = task.data.stat_folder.as_deref();
    let templated = |s: Option<&str>| s.is_some_and(|s| s.contains("{timestamp}"));
    if !templated(out) && !templated(stat) && overrides.output_folder.is_none() {
        let fill = |s: Option<&str>| s.map(|s| PathBuf::from(paths::template(s, "", &task.task_name)));
        return (fill(out), fill(stat), None, false);
    }
    let earlier = match (&overrides.output_folder, out) {
        (None, Some(o)) if task.options.resume() => paths::resume_timestamp(o, &task.task_name),
        _ => None,
    };
    let resumed = earlier.is_some();
    let ts = earlier.unwrap_or_else(paths::timestamp_now);
    let fill = |s: Option<&str>| s.map(|s| PathBuf::from(paths::template(s, &ts, &task.task_name)));
    let output = overrides.output_folder.clone().or_else(|| fill(out));
    (output, fill(stat), Some(ts), resumed)
}
