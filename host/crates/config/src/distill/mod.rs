//! The `distillation:` section (reference §2.3, §2.4) and the files its steps name: the ChatML
//! dataset config (§7.1) and the merge-groups config (§7.2).
//!
//! The reference had two schemas for one engine: `data_distillation` + `step: generate_response`
//! (`response_config_path`, `flush_interval_secs`, `resume_mode`, defaults 20/20) and the
//! top-level `task_type: generate_response` (`model_config`, `flush_interval`, `resume`, defaults
//! 30/30). Both are accepted with their own names and defaults and land in one
//! [`GenerateResponse`], so the engine has one input.

use std::path::Path;

use serde_json::Value;

use crate::error::{closest, ConfigError};
use crate::fields::Fields;
use crate::step::{ChatmlConversion, DistillationStep, GenerateResponse, JsonlMerge, ReasoningMode};
use crate::yaml::YamlFile;

mod files;
pub use files::{DatasetSpec, DatasetsConfig, MergeConfig, MergeGroup, UnknownMergeGroup, FORMAT_STYLES};

const CHATML_KEYS: &[&str] = &[
    "dataset_config_path",
    "input_dir",
    "output_dir",
    "num_processes",
    "keep_raw_data",
    "add_system_prompt",
    "system_prompt",
    "continue_mode",
    "selected_datasets",
];
const MERGE_KEYS: &[&str] = &["merge_config_path", "base_input_dir", "base_output_dir", "chunk_size", "merge_groups", "dedup_key"];
const GENERATE_STEP_KEYS: &[&str] = &[
    "response_config_path",
    "input_path",
    "output_path",
    "concurrency",
    "batch_size",
    "flush_interval_secs",
    "retry_mode",
    "resume_mode",
    "send",
    "reasoning",
    "allow_truncated",
    "n",
    "ordered",
];
const GENERATE_TASK_KEYS: &[&str] = &[
    "input_path",
    "output_path",
    "model_config",
    "concurrency",
    "batch_size",
    "flush_interval",
    "retry_mode",
    "resume",
    "send",
    "reasoning",
    "allow_truncated",
    "n",
    "ordered",
];

/// Every key any form of the section may hold (the union; which apply depends on the step).
pub const ALL_KEYS: &[&str] = &[
    "step",
    "dataset_config_path",
    "input_dir",
    "output_dir",
    "num_processes",
    "keep_raw_data",
    "add_system_prompt",
    "system_prompt",
    "continue_mode",
    "selected_datasets",
    "merge_config_path",
    "base_input_dir",
    "base_output_dir",
    "chunk_size",
    "merge_groups",
    "response_config_path",
    "input_path",
    "output_path",
    "concurrency",
    "batch_size",
    "flush_interval_secs",
    "retry_mode",
    "resume_mode",
    "model_config",
    "flush_interval",
    "resume",
    "send",
    "reasoning",
    "allow_truncated",
    "n",
    "ordered",
    "dedup_key",
];

pub const STEP_NAMES: [&str; 3] = ["chatml_conversion", "jsonl_merge", "generate_response"];

/// The reference's default system prompt for `add_system_prompt`.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant and an expert coder.";

/// Where the two spellings of `generate_response` differ: key names and the default concurrency.
struct GenerateSpelling {
    model: &'static str,
    flush: &'static str,
    resume: &'static str,
    default_concurrency: u64,
}

fn generate_step(f: &Fields, base: &Path, k: GenerateSpelling) -> Result<DistillationStep, ConfigError> {
    let (first_user_only, reasoning, allow_truncated) = generate_extras(f)?;
    Ok(DistillationStep::GenerateResponse(GenerateResponse {
        model_config_path: f.path(k.model, "the model config that answers", base)?,
        input_path: f.path("input_path", "a JSONL file or a folder of them", base)?,
        output_path: f.path("output_path", "the output folder", base)?,
        concurrency: f.positive("concurrency", k.default_concurrency)? as usize,
        batch_size: f.positive("batch_size", k.default_concurrency)? as usize,
        flush_interval_secs: f.number(k.flush)?.unwrap_or(2.0),
        retry_mode: f.bool("retry_mode", false)?,
        resume: f.bool(k.resume, true)?,
        first_user_only,
        reasoning,
        allow_truncated,
        n: f.positive("n", 1)? as u32,
        ordered: f.bool("ordered", false)?,
    }))
}

fn generate_extras(f: &Fields) -> Result<(bool, ReasoningMode, bool), ConfigError> {
    let first_user_only = match f.string("send")?.as_deref() {
        None | Some("conversation") => false,
        Some("first_user") => true,
        Some(other) => {
            return Err(f
                .error("send", format!("`{other}` is not a send mode; expected conversation or first_user"))
                .suggest(closest(other, ["conversation", "first_user"])))
        }
    };
    let reasoning = match f.string("reasoning")?.as_deref() {
        None | Some("inline") => ReasoningMode::Inline,
        Some("separate") => ReasoningMode::Separate,
        Some("drop") => ReasoningMode::Drop,
        Some(other) => {
            return Err(f
                .error("reasoning", format!("`{other}` is not a reasoning mode; expected inline, separate or drop"))
                .suggest(closest(other, ["inline", "separate", "drop"])))
        }
    };
    Ok((first_user_only, reasoning, f.bool("allow_truncated", false)?))
}

/// A key present in the section that the chosen step does not read.
#[derive(Debug, Clone)]
pub struct OffStepKey {
    pub key: String,
    pub why: String,
}

/// Parses the section for `task_type` (`data_distillation` or `generate_response`).
pub fn parse(task_type: &str, section: Option<&Value>, file: &Path, yaml: &YamlFile, base: &Path) -> Result<(DistillationStep, Vec<OffStepKey>), ConfigError> {
    let empty = serde_json::Map::new();
    let map = match section {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(ConfigError::new(file, format!("must be a mapping, found {}", crate::yaml::describe(other)))
                .key("distillation")
                .at(yaml.locate(&["distillation"])))
        }
    };
    let f = Fields::new(file, yaml, &["distillation"], map);
    let step_name = if task_type == "generate_response" {
        "generate_response (task)".to_string()
    } else {
        let step = f.required_string("step", "which step to run: chatml_conversion, jsonl_merge or generate_response")?;
        if !STEP_NAMES.contains(&step.as_str()) {
            return Err(f.error("step", format!("`{step}` is not a step; expected one of {}", STEP_NAMES.join(", "))).suggest(closest(&step, STEP_NAMES)));
        }
        step
    };
    let (step, keys): (DistillationStep, &[&str]) = match step_name.as_str() {
        "chatml_conversion" => (
            DistillationStep::ChatmlConversion(ChatmlConversion {
                dataset_config_path: f.path("dataset_config_path", "the dataset config (datasets_chatml.yaml)", base)?,
                input_dir: f.path("input_dir", "the folder holding the datasets", base)?,
                output_dir: f.path("output_dir", "where to write the ChatML files", base)?,
                num_processes: f.uint("num_processes")?.map(|n| n.max(1) as usize),
                keep_raw_data: f.bool("keep_raw_data", true)?,
                add_system_prompt: f.bool("add_system_prompt", false)?,
                system_prompt: f.string("system_prompt")?.unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string()),
                continue_mode: f.bool("continue_mode", true)?,
                selected_datasets: f.string_list("selected_datasets")?,
            }),
            CHATML_KEYS,
        ),
        "jsonl_merge" => (
            DistillationStep::JsonlMerge(JsonlMerge {
                merge_config_path: f.path("merge_config_path", "the merge config (merge_groups.yaml)", base)?,
                base_input_dir: f.path("base_input_dir", "the folder holding the files to merge", base)?,
                base_output_dir: f.path("base_output_dir", "where to write the merged files", base)?,
                chunk_size: f.positive("chunk_size", 1000)? as usize,
                merge_groups: f.string_list("merge_groups")?.unwrap_or_default(),
                dedup_key: f.string("dedup_key")?,
            }),
            MERGE_KEYS,
        ),
        // The same step under two spellings: `data_distillation`'s step and the standalone
        // `generate_response` task type (the reference's key names and defaults for each).
        "generate_response" => (
            generate_step(
                &f,
                base,
                GenerateSpelling { model: "response_config_path", flush: "flush_interval_secs", resume: "resume_mode", default_concurrency: 20 },
            )?,
            GENERATE_STEP_KEYS,
        ),
        _ => (
            generate_step(&f, base, GenerateSpelling { model: "model_config", flush: "flush_interval", resume: "resume", default_concurrency: 30 })?,
            GENERATE_TASK_KEYS,
        ),
    };
    let off_step = map
        .keys()
        .filter(|k| k.as_str() != "step" && !keys.contains(&k.as_str()))
        .map(|k| OffStepKey { key: format!("distillation.{k}"), why: format!("not read by the {} step{}", step.name(), hint_for(k, task_type)) })
        .collect();
    Ok((step, off_step))
}

/// The reference's two generate_response schemas differ in names: point at the right one.
fn hint_for(key: &str, task_type: &str) -> String {
    let pairs = [("model_config", "response_config_path"), ("flush_interval", "flush_interval_secs"), ("resume", "resume_mode")];
    for (task_name, step_name) in pairs {
        if task_type == "generate_response" && key == step_name {
            return format!(" (a generate_response task spells it `{task_name}`)");
        }
        if task_type != "generate_response" && key == task_name {
            return format!(" (this step spells it `{step_name}`)");
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn yaml(text: &str) -> YamlFile {
        YamlFile { source: text.to_string(), tree: crate::yaml::yaml_to_json(serde_yaml::from_str(text).unwrap()) }
    }

    fn parse_text(task_type: &str, text: &str) -> Result<(DistillationStep, Vec<OffStepKey>), ConfigError> {
        let y = yaml(text);
        parse(task_type, y.tree.get("distillation"), Path::new("t.yaml"), &y, Path::new("."))
    }

    #[test]
    fn chatml_step_with_defaults() {
        let (step, off) = parse_text(
            "data_distillation",
            "distillation:\n  step: chatml_conversion\n  dataset_config_path: d.yaml\n  input_dir: in\n  output_dir: out\n  selected_datasets: [a, b]\n",
        )
        .unwrap();
        let DistillationStep::ChatmlConversion(c) = step else { panic!("{step:?}") };
        assert!(c.keep_raw_data && c.continue_mode && !c.add_system_prompt);
        assert_eq!(c.system_prompt, DEFAULT_SYSTEM_PROMPT);
        assert_eq!(c.selected_datasets, Some(vec!["a".into(), "b".into()]));
        assert!(off.is_empty());
    }

    #[test]
    fn both_generate_response_schemas_land_in_one_struct() {
        let (step, _) = parse_text(
            "data_distillation",
            "distillation:\n  step: generate_response\n  response_config_path: m.yaml\n  input_path: i.jsonl\n  output_path: o\n  flush_interval_secs: 5\n  resume_mode: false\n",
        )
        .unwrap();
        let DistillationStep::GenerateResponse(g) = step else { panic!() };
        assert_eq!((g.concurrency, g.batch_size, g.flush_interval_secs, g.resume), (20, 20, 5.0, false));
        let (step, off) = parse_text(
            "generate_response",
            "distillation:\n  step: generate_response\n  model_config: m.yaml\n  input_path: i.jsonl\n  output_path: o\n  resume_mode: false\n",
        )
        .unwrap();
        let DistillationStep::GenerateResponse(g) = step else { panic!() };
        assert_eq!((g.concurrency, g.batch_size, g.resume), (30, 30, true));
        assert_eq!(g.model_config_path, PathBuf::from("m.yaml"));
        assert_eq!(off.len(), 1);
        assert!(off[0].why.contains("spells it `resume`"), "{:?}", off[0]);
    }

    #[test]
    fn step_errors_name_line_and_suggest() {
        let e = parse_text("data_distillation", "task_name: x\ndistillation:\n  step: jsonl_merg\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("did you mean `jsonl_merge`"), "{e}");
        let e = parse_text("data_distillation", "distillation:\n  step: jsonl_merge\n  merge_config_path: m.yaml\n  base_input_dir: i\n").unwrap_err();
        assert!(e.to_string().contains("distillation.base_output_dir"), "{e}");
        let e = parse_text(
            "data_distillation",
            "distillation:\n  step: jsonl_merge\n  merge_config_path: m\n  base_input_dir: i\n  base_output_dir: o\n  chunk_size: many\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(6));
        assert!(e.to_string().contains("must be a whole number"), "{e}");
    }

    #[test]
    fn dataset_and_merge_configs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("datasets.yaml");
        std::fs::write(&d, "OpenCoder-LLM/opc-sft-stage1:\n  configs: [realuser_instruct, null]\n  format_style: prompt_response\n  column_mapping: {prompt: instruction, response: output}\noo1.jsonl:\n  format_style: messages\n  column_mapping: {messages: messages}\n").unwrap();
        let c = DatasetsConfig::load(&d).unwrap();
        assert_eq!(c.datasets["OpenCoder-LLM/opc-sft-stage1"].configs, vec![Some("realuser_instruct".into()), None]);
        assert_eq!(c.datasets["oo1.jsonl"].configs, vec![None]);
        std::fs::write(&d, "x:\n  format_style: sharegtp\n").unwrap();
        let e = DatasetsConfig::load(&d).unwrap_err();
        assert!(e.to_string().contains(":2:") && e.to_string().contains("did you mean `sharegpt`"), "{e}");
        std::fs::write(&d, "x:\n  format_style: instruction_input\n  column_mapping: {prompt: q, response: a}\n").unwrap();
        assert!(DatasetsConfig::load(&d).unwrap_err().to_string().contains("column_mapping.input"));

        let m = dir.path().join("merge.yaml");
        std::fs::write(&m, "merge_groups:\n  - name: qa-train-data\n    output_file: qa.jsonl\n    input_files: [zh.jsonl, en.jsonl]\n").unwrap();
        let mc = MergeConfig::load(&m).unwrap();
        assert_eq!(mc.groups[0].input_files.len(), 2);
        assert_eq!(mc.select(&[]).0.len(), 1);
        let (found, unknown) = mc.select(&["qa-train-dta".into(), "qa-train-data".into()]);
        assert_eq!(found.len(), 1);
        let e = &unknown[0];
        assert_eq!(e.to_string(), format!("merge group `qa-train-dta` is not in {} (did you mean `qa-train-data`?)", m.display()));
        std::fs::write(&m, "merge_groups:\n  - name: qa\n    output_file: qa.jsonl\n").unwrap();
        assert!(MergeConfig::load(&m).unwrap_err().to_string().contains("input_files"));
    }
}
