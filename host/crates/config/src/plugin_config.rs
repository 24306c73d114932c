//! Placing a plugin's config errors in the YAML they were written in.
//!
//! The plugin runtime checks a plugin's `config:` block against the JSON Schema the plugin
//! publishes and reports each violation as a path inside the block (`["checks", "score",
//! "min"]`) and the schema's expectation. Here each becomes a [`ConfigError`] at the line and
//! column of that key in the task file (`prefix` is where the block sits, e.g. `["plugins",
//! "judge", "config"]`) or in a `--config` file (`prefix` empty), found the same way as the
//! config's own errors ([`crate::locate::find_key_or_parent`]): a key that cannot be found
//! (a list item, a flow mapping) is placed at its nearest enclosing key.

use std::path::Path;

use crate::error::ConfigError;
use crate::locate::find_key_or_parent;

/// One error per `(path, message)`, with the file's line and column of the key when the file
/// can be read. The dotted key is `prefix` then `path`.
pub fn place_config_errors(file: &Path, prefix: &[&str], violations: &[(Vec<String>, String)]) -> Vec<ConfigError> {
    let source = std::fs::read_to_string(file).ok();
    violations
        .iter()
        .map(|(path, message)| {
            let keys: Vec<&str> = prefix.iter().copied().chain(path.iter().map(String::as_str)).collect();
            let at = source.as_deref().and_then(|s| if keys.is_empty() { None } else { find_key_or_parent(s, &keys) });
            let e = ConfigError::new(file, message.clone()).at(at);
            if keys.is_empty() {
                e
            } else {
                e.key(keys.join("."))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_placed_at_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("task.yaml");
        std::fs::write(&file, "task_name: t\nplugins:\n  judge:\n    role: score-parser\n    config:\n      key: score\n      max: five\n      tags: [a, 3]\n")
            .unwrap();
        let v = vec![
            (vec!["max".to_string()], "expected integer, got string".to_string()),
            (vec!["tags".to_string(), "1".to_string()], "expected string, got integer".to_string()),
            (vec![], "missing required key `min`".to_string()),
        ];
        let placed: Vec<String> = place_config_errors(&file, &["plugins", "judge", "config"], &v).iter().map(ToString::to_string).collect();
        let f = file.display();
        assert_eq!(placed[0], format!("{f}:7:7: `plugins.judge.config.max`: expected integer, got string"));
        assert_eq!(placed[1], format!("{f}:8:7: `plugins.judge.config.tags.1`: expected string, got integer"));
        assert_eq!(placed[2], format!("{f}:5:5: `plugins.judge.config`: missing required key `min`"));

        let cfg = dir.path().join("cfg.yaml");
        std::fs::write(&cfg, "# a comment\nmax: five\n").unwrap();
        let placed = place_config_errors(&cfg, &[], &v[..1]);
        assert_eq!(placed[0].to_string(), format!("{}:2:1: `max`: expected integer, got string", cfg.display()));
    }
}
