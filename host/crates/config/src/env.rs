//! `${VAR}` / `${VAR:-default}` interpolation and env files.
//!
//! Precedence (checked against the reference, §2.1 step 3 and Appendix A): the scoring path of the
//! Python tool loaded `environment.config_path` into `os.environ` **with override**, so a value in
//! the task's env file beats the same variable in the shell. We keep that, so an existing task and
//! its env file resolve to the same endpoint and key as before. Unlike the reference we never
//! write to the process environment (the file's values are only used for interpolation) and never
//! print the values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Interpolates `${NAME}` and `${NAME:-default}` in `text` from `lookup`. `$$` is a literal `$`;
/// a `$` not followed by `{` is kept as is. As in POSIX shells, `:-` also replaces a value that is
/// set but empty, while a bare `${NAME}` set to "" yields "".
/// Fails with the first variable that has neither a value nor a default.
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, MissingVar> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        }
        if let Some(body) = after.strip_prefix('{') {
            if let Some(end) = body.find('}') {
                let inner = &body[..end];
                let value = match inner.split_once(":-") {
                    Some((name, default)) => Some(lookup(name.trim()).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())),
                    None => lookup(inner.trim()),
                };
                match value {
                    Some(v) => out.push_str(&v),
                    None => return Err(MissingVar(inner.split(":-").next().unwrap_or(inner).trim().to_string())),
                }
                rest = &body[end + 1..];
                continue;
            }
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// A `${NAME}` with neither a value nor a default; holds `NAME`. [`Vars::missing_message`] words
/// it for a config error (where the variable could have come from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{0}` is not set")]
pub struct MissingVar(pub String);

impl MissingVar {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Reads `KEY=VALUE` lines: blank lines and `#` comments skipped, a leading `export ` stripped,
/// split on the first `=`, one pair of matching quotes removed from the value, and a trailing
/// ` # comment` dropped from unquoted values.
pub fn read_env_file(path: &Path) -> std::io::Result<HashMap<String, String>> {
    Ok(parse_env(&std::fs::read_to_string(path)?))
}

/// The parser behind [`read_env_file`].
pub fn parse_env(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim();
        let quoted = v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
        let v = if quoted { &v[1..v.len() - 1] } else { v.find(" #").map(|i| v[..i].trim_end()).unwrap_or(v) };
        vars.insert(k.trim().to_string(), v.to_string());
    }
    vars
}

/// The variables `${VAR}` sees: the task's env file over the process environment.
#[derive(Clone, Default)]
pub struct Vars {
    file_vars: HashMap<String, String>,
    /// The env file named by the task, and whether it could be read (for "not set" hints).
    env_file: Option<(PathBuf, bool)>,
    /// Test hook: a fixed environment instead of the process's.
    fixed: Option<HashMap<String, String>>,
    /// A variable with no value reads as "" instead of failing (see [`Vars::unset_as_empty`]).
    unset_as_empty: bool,
}

impl std::fmt::Debug for Vars {
    // Values may be secrets: show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.file_vars.keys().collect();
        names.sort();
        f.debug_struct("Vars").field("env_file", &self.env_file).field("file_vars", &names).finish()
    }
}

impl Vars {
    /// The process environment only.
    pub fn process() -> Vars {
        Vars::default()
    }

    /// A fixed set of variables (tests, or callers that resolve the environment themselves).
    pub fn fixed(vars: impl IntoIterator<Item = (String, String)>) -> Vars {
        Vars { fixed: Some(vars.into_iter().collect()), ..Vars::default() }
    }

    /// Adds an env file's variables (they win over the environment); `found` false records a
    /// named file that does not exist, so "not set" errors can say so.
    pub fn with_env_file(mut self, path: PathBuf, vars: Option<HashMap<String, String>>) -> Vars {
        self.env_file = Some((path, vars.is_some()));
        self.file_vars.extend(vars.unwrap_or_default());
        self
    }

    /// For commands that only read local files (`status`, `merge`): a `${VAR}` with no value and
    /// no default becomes "" instead of an error, so a task loads without its secrets (an empty
    /// `api_key` is no key). Never for a command that sends requests.
    pub fn unset_as_empty(mut self) -> Vars {
        self.unset_as_empty = true;
        self
    }

    /// Whether this loads a task without its secrets ([`Vars::unset_as_empty`]): a missing
    /// `api_key_file` is then no key.
    pub fn secrets_optional(&self) -> bool {
        self.unset_as_empty
    }

    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.file_vars.get(name) {
            return Some(v.clone());
        }
        let found = match &self.fixed {
            Some(m) => m.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        found.or_else(|| self.unset_as_empty.then(String::new))
    }

    /// What to tell the user about a variable with no value and no default.
    pub fn missing_message(&self, var: &str) -> String {
        let hint = match &self.env_file {
            Some((p, true)) => format!("it is neither in the environment nor in the env file {}", p.display()),
            Some((p, false)) => format!("it is not in the environment, and the env file {} does not exist", p.display()),
            None => "it is not in the environment (an env file can be named by environment.config_path)".into(),
        };
        format!("environment variable `{var}` is not set: {hint}; set it, or write ${{{var}:-default}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_forms() {
        assert_eq!(interpolate("x${A}y", &env), Ok("x1y".into()));
        assert_eq!(interpolate("${B:-http://h:8000/v1}", &env), Ok("http://h:8000/v1".into()));
        assert_eq!(interpolate("${EMPTY:-d}", &env), Ok("d".into()));
        assert_eq!(interpolate("<${EMPTY}>", &env), Ok("<>".into()));
        assert_eq!(interpolate("${B:-}", &env), Ok("".into()));
        assert_eq!(interpolate("cost $$5 and $HOME", &env), Ok("cost $5 and $HOME".into()));
        assert_eq!(interpolate("${A}${MISSING}", &env), Err(MissingVar("MISSING".into())));
        assert_eq!(interpolate("${MISSING:-}${OTHER}", &env), Err(MissingVar("OTHER".into())));
        assert_eq!(interpolate("unclosed ${A", &env), Ok("unclosed ${A".into()));
        let lenient = Vars::fixed([("A".to_string(), "1".to_string())]).unset_as_empty();
        assert_eq!(interpolate("${A}<${MISSING}>${M2:-d}", &|k| lenient.get(k)), Ok("1<>d".into()));
    }

    #[test]
    fn env_files() {
        let v = parse_env("# c\nexport API_KEY=\"sk-1\"\nBASE_URL='http://x'\n\nPLAIN=v=w\nexport  SPACED = y # note\nHASH=\"a # b\"\nnot a pair\n");
        assert_eq!(v["API_KEY"], "sk-1");
        assert_eq!(v["BASE_URL"], "http://x");
        assert_eq!(v["PLAIN"], "v=w");
        assert_eq!(v["SPACED"], "y");
        assert_eq!(v["HASH"], "a # b");
        assert_eq!(v.len(), 5);
    }

    #[test]
    fn env_file_values_win_over_the_environment_like_the_reference() {
        let vars =
            Vars::fixed([("K".to_string(), "shell".to_string()), ("ONLY_SHELL".into(), "s".into())]).with_env_file("x.env".into(), Some(parse_env("K=file\n")));
        assert_eq!(vars.get("K").as_deref(), Some("file"));
        assert_eq!(vars.get("ONLY_SHELL").as_deref(), Some("s"));
        assert_eq!(vars.get("NONE"), None);
        let missing = Vars::fixed([]).with_env_file("gone.env".into(), None);
        assert!(missing.missing_message("KEY").contains("gone.env does not exist"));
        assert!(!format!("{vars:?}").contains("file\""), "Debug must not show values");
    }
}
