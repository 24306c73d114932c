//! What a stage's results are made with, besides their input: the plugins (by sha256) with
//! their config, the model and the request settings that change answers. Each result is
//! journaled with a hash of it ([`modelcall_io::MadeFrom`]), so a rerun can tell results made
//! the way this run would make them from results made otherwise.
//!
//! Beside each unit's journal, `<journal>.settings.json` keeps the description of every settings
//! hash seen (so a mismatch can be explained: "model m → m2") and the ones the user chose to keep
//! (`--keep-existing`).
//!
//! A stage that costs nothing (preprocessing, conversion) simply redoes results made otherwise.
//! A stage that pays for requests stops before the first one when earlier results were made
//! otherwise, and the user decides: `--redo-changed` or `--keep-existing` ([`check_before_run`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::unit::Unit;

/// The settings of a stage: a description (shown when they changed) and its hash.
#[derive(Debug, Clone)]
pub struct Settings {
    pub description: Value,
    pub hash: u64,
}

impl Settings {
    pub fn new(description: Value) -> Settings {
        let hash = xxhash_rust::xxh3::xxh3_64(description.to_string().as_bytes());
        Settings { description, hash }
    }

    /// A plugin as it shapes results: its component's sha256 and its config.
    pub fn plugin(plugin: &modelcall_plugin_host::Plugin, config: &Value) -> Value {
        json!({"sha256": plugin.info().sha256, "name": plugin.info().name, "config": config})
    }
}

/// The request settings that change an answer: every `chat_config` key except how the answer
/// travels (`stream`, `stream_options`).
pub fn answer_settings(model: &modelcall_config::ModelConfig) -> Value {
    let mut chat = model.chat_config.clone();
    chat.remove("stream");
    chat.remove("stream_options");
    json!({"model": model.model, "chat_config": chat})
}

/// What the user said to do with results made under other settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChanged {
    /// Stop before the first request and ask (the default for paid stages).
    #[default]
    Ask,
    /// `--redo-changed`: send them again.
    Redo,
    /// `--keep-existing`: keep them, and remember that choice for this folder.
    Keep,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    /// Settings hash (hex) → what it stood for.
    #[serde(default)]
    known: BTreeMap<String, Value>,
    /// Current settings hash → the settings whose results the user kept under them
    /// (`--keep-existing`): a later change of settings asks again.
    #[serde(default)]
    accepted: BTreeMap<String, Vec<String>>,
}

fn sidecar_path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".settings.json");
    journal.with_file_name(name)
}

fn read_sidecar(journal: &Path) -> Sidecar {
    std::fs::read_to_string(sidecar_path(journal)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn write_sidecar(journal: &Path, sidecar: &Sidecar) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(sidecar)? + "\n";
    modelcall_io::write_atomically(&sidecar_path(journal), text.as_bytes())?;
    Ok(())
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// Records `settings` beside the unit's journal (before its first result is journaled).
pub fn remember(journal: &Path, settings: &Settings) -> anyhow::Result<()> {
    let mut sidecar = read_sidecar(journal);
    if sidecar.known.contains_key(&hex(settings.hash)) {
        return Ok(());
    }
    sidecar.known.insert(hex(settings.hash), settings.description.clone());
    write_sidecar(journal, &sidecar)
}

/// The settings whose results the user chose to keep under `current`.
pub fn accepted(journal: &Path, current: u64) -> Vec<u64> {
    read_sidecar(journal).kept_under(current)
}

impl Sidecar {
    fn kept_under(&self, current: u64) -> Vec<u64> {
        self.accepted.get(&hex(current)).into_iter().flatten().filter_map(|h| u64::from_str_radix(h, 16).ok()).collect()
    }
}

/// Results of one unit made under settings other than the current ones.
#[derive(Debug)]
pub struct Mismatch {
    pub journal: PathBuf,
    pub results: u64,
    /// The other settings, with their description when known.
    pub others: Vec<(u64, Option<Value>)>,
}

/// Counts, per unit, the done results made under settings other than `current` (and not kept
/// by an earlier `--keep-existing`). Journals are read, not repaired.
pub fn mismatches(units: &[Unit], current: &Settings) -> Vec<Mismatch> {
    let mut found = Vec::new();
    for unit in units {
        let journal = &unit.paths.journal;
        let Ok(state) = modelcall_io::journal::read_state(journal) else { continue };
        let sidecar = read_sidecar(journal);
        let kept = sidecar.kept_under(current.hash);
        let mut by_settings: BTreeMap<u64, u64> = BTreeMap::new();
        for made in state.made.values() {
            if made.settings != current.hash && !kept.contains(&made.settings) {
                *by_settings.entry(made.settings).or_default() += 1;
            }
        }
        if by_settings.is_empty() {
            continue;
        }
        found.push(Mismatch {
            journal: journal.clone(),
            results: by_settings.values().sum(),
            others: by_settings.keys().map(|h| (*h, sidecar.known.get(&hex(*h)).cloned())).collect(),
        });
    }
    found
}

/// Before a paid stage's first request: results made under other settings stop the run (exit
/// 2) unless the user chose what to do; `--keep-existing` is remembered per unit.
/// The error is the message a stop before the first request prints (exit 2).
pub fn check_before_run(units: &[Unit], current: &Settings, on_changed: OnChanged, task_file: &Path) -> Result<(), String> {
    let found = mismatches(units, current);
    if found.is_empty() {
        return Ok(());
    }
    match on_changed {
        OnChanged::Redo => Ok(()),
        OnChanged::Keep => {
            for m in &found {
                let mut sidecar = read_sidecar(&m.journal);
                let kept = sidecar.accepted.entry(hex(current.hash)).or_default();
                for (h, _) in &m.others {
                    if !kept.contains(&hex(*h)) {
                        kept.push(hex(*h));
                    }
                }
                write_sidecar(&m.journal, &sidecar).map_err(|e| format!("{e:#}"))?;
            }
            let n: u64 = found.iter().map(|m| m.results).sum();
            eprintln!("note: keeping {n} result(s) made with earlier settings (--keep-existing); later runs keep them too");
            Ok(())
        }
        OnChanged::Ask => Err(explain(&found, current, task_file)),
    }
}

/// The message of a stop for changed settings: how many, what changed, the ways on.
pub fn explain(found: &[Mismatch], current: &Settings, task_file: &Path) -> String {
    let n: u64 = found.iter().map(|m| m.results).sum();
    let mut text = format!(
        "{n} result(s) in the output folder were made with other settings than {} now asks for (prompt, plugins, model or request settings); nothing was sent.",
        task_file.display()
    );
    let mut shown = 0;
    for m in found {
        for (_, before) in &m.others {
            if shown == 3 {
                break;
            }
            shown += 1;
            match before {
                Some(before) => text.push_str(&format!("\n  {}: {}", m.journal.display(), describe_change(before, &current.description))),
                None => text.push_str(&format!("\n  {}: made with settings not recorded", m.journal.display())),
            }
        }
    }
    text.push_str(&format!(
        "\nRun again with --redo-changed to send those {n} record(s) again with the new settings (see the cost with --dry-run --redo-changed), \
         or --keep-existing to keep their results as they are (later runs keep them too)."
    ));
    text
}

/// "model: m → m2; chat_config.temperature: 0 → 0.7" for two settings descriptions.
pub fn describe_change(before: &Value, now: &Value) -> String {
    let mut changes = Vec::new();
    diff("", before, now, &mut changes);
    if changes.is_empty() {
        "changed".into()
    } else {
        changes.into_iter().take(4).collect::<Vec<_>>().join("; ")
    }
}

fn diff(path: &str, before: &Value, now: &Value, out: &mut Vec<String>) {
    match (before, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff(&p, a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (a, b) if a != b => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 40 {
                    format!("{}…", s.chars().take(40).collect::<String>())
                } else {
                    s
                }
            };
            out.push(format!("{path}: {} → {}", short(a), short(b)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_described_by_its_paths() {
        let before = json!({"model": "m", "chat_config": {"temperature": 0}, "prompt": {"sha256": "aa"}});
        let now = json!({"model": "m2", "chat_config": {"temperature": 0.7}, "prompt": {"sha256": "aa"}});
        assert_eq!(describe_change(&before, &now), "chat_config.temperature: 0 → 0.7; model: \"m\" → \"m2\"");
        assert_eq!(Settings::new(before.clone()).hash, Settings::new(before).hash);
    }

    #[test]
    fn kept_settings_are_remembered_beside_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("a.journal.jsonl");
        let s = Settings::new(json!({"model": "m"}));
        remember(&journal, &s).unwrap();
        assert!(accepted(&journal, s.hash).is_empty());
        let mut sidecar = read_sidecar(&journal);
        assert_eq!(sidecar.known.len(), 1);
        sidecar.accepted.insert(hex(s.hash), vec![hex(7)]);
        write_sidecar(&journal, &sidecar).unwrap();
        assert_eq!(accepted(&journal, s.hash), vec![7]);
        assert!(accepted(&journal, 8).is_empty(), "kept under other settings only");
    }
}
