//! The `configs:` block of a Hugging Face dataset card (`README.md` front matter), which names
//! each config's splits and their files. The reference got split names from it (through
//! `datasets.get_dataset_split_names`), so `SFT/code/code_v1.jsonl` listed as split `code` of
//! config `SFT` is converted to `…-SFT-code.jsonl`, not `…-SFT-code_v1.jsonl`.
//!
//! ```yaml
//! configs:
//! - config_name: SFT
//!   data_files:
//!   - split: code
//!     path: SFT/code/*.jsonl
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// The splits of `config` (`None`: the card's `default` config) with their files, from the
/// card of the dataset folder `dataset`; `None` when the card names no such config (the
/// caller then reads the folders).
pub fn splits(dataset: &Path, config: Option<&str>) -> Option<BTreeMap<String, Vec<PathBuf>>> {
    let card = std::fs::read_to_string(dataset.join("README.md")).ok()?;
    let front = front_matter(&card)?;
    let doc: Value = serde_yaml::from_str(front).ok()?;
    let configs = doc.get("configs")?.as_sequence()?;
    let wanted = config.unwrap_or("default");
    let entry = configs.iter().find(|c| c.get("config_name").and_then(Value::as_str) == Some(wanted)).or_else(|| {
        // No config named `default`: the one marked `default: true`.
        config.is_none().then(|| configs.iter().find(|c| c.get("default").and_then(Value::as_bool) == Some(true))).flatten()
    })?;
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    match entry.get("data_files")? {
        // A pattern or a list of patterns: one `train` split.
        Value::String(p) => out.insert("train".into(), matching(dataset, &[p.as_str()])),
        Value::Sequence(items) if items.iter().all(|i| i.is_string()) => {
            let patterns: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            out.insert("train".into(), matching(dataset, &patterns))
        }
        Value::Sequence(items) => {
            for item in items {
                let split = item.get("split").and_then(Value::as_str).unwrap_or("train").to_string();
                let patterns: Vec<&str> = match item.get("path") {
                    Some(Value::String(p)) => vec![p.as_str()],
                    Some(Value::Sequence(ps)) => ps.iter().filter_map(Value::as_str).collect(),
                    _ => continue,
                };
                out.entry(split).or_default().extend(matching(dataset, &patterns));
            }
            None
        }
        _ => return None,
    };
    out.retain(|_, files| !files.is_empty());
    (!out.is_empty()).then_some(out)
}

/// The YAML between the opening `---` line and the next one.
fn front_matter(card: &str) -> Option<&str> {
    let rest = card.strip_prefix("---")?.trim_start_matches(['\r', ' ']).strip_prefix('\n')?;
    let end = rest.find("\n---")?;
    Some(&rest[..end])
}

/// The input files matching any of `patterns` (relative to `dataset`), sorted.
fn matching(dataset: &Path, patterns: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = patterns
        .iter()
        .filter_map(|p| glob::glob(&dataset.join(p).to_string_lossy()).ok())
        .flat_map(|paths| paths.filter_map(Result::ok))
        .filter(|p| p.is_file() && modelcall_io::is_supported_input(p))
        .collect();
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_come_from_the_card() {
        let d = tempfile::tempdir().unwrap();
        for f in ["SFT/code/code_v1.jsonl", "SFT/code/code_v2.jsonl", "SFT/math/math_v1.jsonl", "data/train-0.jsonl"] {
            std::fs::create_dir_all(d.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(d.path().join(f), "{}\n").unwrap();
        }
        std::fs::write(
            d.path().join("README.md"),
            "---\nlicense: mit\nconfigs:\n- config_name: SFT\n  data_files:\n  - split: code\n    path: SFT/code/*.jsonl\n  - split: math\n    path: [\"SFT/math/*.jsonl\"]\n- config_name: pretrain\n  default: true\n  data_files: data/*.jsonl\n---\n# Card\n",
        )
        .unwrap();
        let sft = splits(d.path(), Some("SFT")).unwrap();
        assert_eq!(sft.keys().collect::<Vec<_>>(), ["code", "math"]);
        assert_eq!(sft["code"].len(), 2);
        let default = splits(d.path(), None).unwrap();
        assert_eq!(default.keys().collect::<Vec<_>>(), ["train"]);
        assert!(splits(d.path(), Some("other")).is_none());
        std::fs::write(d.path().join("README.md"), "# no front matter\n").unwrap();
        assert!(splits(d.path(), Some("SFT")).is_none());
    }
}
