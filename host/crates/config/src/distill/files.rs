//! The files the distillation steps name: the ChatML dataset config (§7.1) and the
//! merge-groups config (§7.2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{closest, ConfigError};
use crate::fields::Fields;
use crate::yaml::read_yaml;

/// The `format_style`s of §7.1 and the `column_mapping` keys each needs.
pub const FORMAT_STYLES: &[(&str, &[&str])] = &[
    ("prompt_response", &["prompt", "response"]),
    ("instruction_input", &["prompt", "input", "response"]),
    ("sharegpt", &["conversations"]),
    ("messages", &["messages"]),
    ("input_output_messages", &["input", "output"]),
    ("prompt_text_only", &["prompt_text"]),
];

/// One dataset of the ChatML dataset config.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// HF config names; `None` entries mean the default config. Defaults to `[None]`.
    pub configs: Vec<Option<String>>,
    pub format_style: String,
    /// Role (`prompt`, `response`, …) → source column.
    pub column_mapping: BTreeMap<String, String>,
}

/// `datasets_chatml.yaml`: dataset key (an HF repo id or a `.jsonl` file name) → its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetsConfig {
    pub path: PathBuf,
    pub datasets: BTreeMap<String, DatasetSpec>,
}

impl DatasetsConfig {
    pub fn load(path: &Path) -> Result<DatasetsConfig, ConfigError> {
        let yaml = read_yaml(path, "dataset config")?;
        let Value::Object(root) = &yaml.tree else {
            return Err(ConfigError::new(path, "a dataset config maps dataset keys to {configs, format_style, column_mapping}"));
        };
        let mut datasets = BTreeMap::new();
        for (key, spec) in root {
            let Value::Object(m) = spec else {
                return Err(ConfigError::new(path, "must be a mapping with format_style and column_mapping").key(key.clone()).at(yaml.locate(&[key])));
            };
            let f = Fields::new(path, &yaml, &[key], m);
            let style = f.required_string("format_style", "one of the format styles")?;
            let Some((_, needed)) = FORMAT_STYLES.iter().find(|(s, _)| *s == style) else {
                let names: Vec<&str> = FORMAT_STYLES.iter().map(|(s, _)| *s).collect();
                return Err(f
                    .error("format_style", format!("`{style}` is not a format style; expected one of {}", names.join(", ")))
                    .suggest(closest(&style, names)));
            };
            let mut column_mapping = BTreeMap::new();
            for (role, col) in f.mapping("column_mapping")?.into_iter().flatten() {
                match col {
                    Value::String(s) => column_mapping.insert(role.clone(), s.clone()),
                    _ => return Err(f.error("column_mapping", format!("`{role}` must name a column"))),
                };
            }
            if let Some(missing) = needed.iter().find(|n| !column_mapping.contains_key(**n)) {
                return Err(f.error("column_mapping", format!("format_style {style} needs column_mapping.{missing} (it needs {})", needed.join(", "))));
            }
            let configs = match m.get("configs") {
                None | Some(Value::Null) => vec![None],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|c| match c {
                        Value::Null => Ok(None),
                        Value::String(s) => Ok(Some(s.clone())),
                        _ => Err(f.error("configs", "must be a list of config names (or null)")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(f.error("configs", "must be a list of config names (or null)")),
            };
            datasets.insert(key.clone(), DatasetSpec { configs, format_style: style, column_mapping });
        }
        Ok(DatasetsConfig { path: path.to_path_buf(), datasets })
    }
}

/// One group of `merge_groups.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeGroup {
    pub name: String,
    pub output_file: String,
    pub input_files: Vec<String>,
}

/// A `distillation.merge_groups` name that the merge config does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("merge group `{name}` is not in {}{}", .config.display(), .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
pub struct UnknownMergeGroup {
    pub name: String,
    /// The merge config file.
    pub config: PathBuf,
    pub suggestion: Option<String>,
}

/// `merge_groups.yaml`: `merge_groups: [{name, output_file, input_files: […]}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeConfig {
    pub path: PathBuf,
    pub groups: Vec<MergeGroup>,
}

impl MergeConfig {
    pub fn load(path: &Path) -> Result<MergeConfig, ConfigError> {
        let yaml = read_yaml(path, "merge config")?;
        let err = |msg: String| ConfigError::new(path, msg).key("merge_groups").at(yaml.locate(&["merge_groups"]));
        let Some(Value::Array(items)) = yaml.tree.get("merge_groups") else {
            return Err(err("missing: a list of {name, output_file, input_files}".into()));
        };
        let mut groups = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Value::Object(m) = item else { return Err(err(format!("item {} must be a mapping", i + 1))) };
            let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(name), Some(output_file)) = (text("name"), text("output_file")) else {
                return Err(err(format!("item {} needs `name` and `output_file`", i + 1)));
            };
            let input_files: Vec<String> = match m.get("input_files") {
                Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                _ => return Err(err(format!("group `{name}` needs input_files: a non-empty list of file names"))),
            };
            if groups.iter().any(|g: &MergeGroup| g.name == name) {
                return Err(err(format!("group `{name}` is defined twice")));
            }
            groups.push(MergeGroup { name, output_file, input_files });
        }
        Ok(MergeConfig { path: path.to_path_buf(), groups })
    }

    /// The groups named (all when `names` is empty), and the names the config does not define
    /// (each with a suggestion). The reference warned about those and merged the others.
    pub fn select(&self, names: &[String]) -> (Vec<&MergeGroup>, Vec<UnknownMergeGroup>) {
        if names.is_empty() {
            return (self.groups.iter().collect(), Vec::new());
        }
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for n in names {
            match self.groups.iter().find(|g| &g.name == n) {
                Some(g) => found.push(g),
                None => unknown.push(UnknownMergeGroup {
                    name: n.clone(),
                    config: self.path.clone(),
                    suggestion: closest(n, self.groups.iter().map(|g| g.name.as_str())),
                }),
            }
        }
        (found, unknown)
    }
}
