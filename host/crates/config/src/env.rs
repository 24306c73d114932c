//! `${VAR}` / `${VAR:-default}` interpolation and env files.

use std::collections::HashMap;
use std::path::Path;

/// Interpolates `${NAME}` and `${NAME:-default}` in `text` from `lookup`. `$$` is a literal `$`.
/// Returns the name of the first variable with neither a value nor a default.
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                match lookup(name).filter(|v| !v.is_empty()).or_else(|| default.map(str::to_string)) {
                    Some(v) => out.push_str(&v),
                    None => return Err(name.to_string()),
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

/// Reads `KEY=VALUE` lines (blank lines and `#` comments skipped, `export ` stripped, matching
/// quotes removed).
pub fn read_env_file(path: &Path) -> std::io::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)?;
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = if v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\''))) {
                &v[1..v.len() - 1]
            } else {
                v
            };
            vars.insert(k.trim().to_string(), v.to_string());
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_forms() {
        let env = |k: &str| match k {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(interpolate("x${A}y", &env), Ok("x1y".into()));
        assert_eq!(interpolate("${B:-http://h:8000/v1}", &env), Ok("http://h:8000/v1".into()));
        assert_eq!(interpolate("${EMPTY:-d}", &env), Ok("d".into()));
        assert_eq!(interpolate("cost $$5 and $HOME", &env), Ok("cost $5 and $HOME".into()));
        assert_eq!(interpolate("${MISSING}", &env), Err("MISSING".into()));
    }

    #[test]
    fn env_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.env");
        std::fs::write(&p, "# c\nexport API_KEY=\"sk-1\"\nBASE_URL='http://x'\n\nPLAIN=v=w\n").unwrap();
        let v = read_env_file(&p).unwrap();
        assert_eq!(v["API_KEY"], "sk-1");
        assert_eq!(v["BASE_URL"], "http://x");
        assert_eq!(v["PLAIN"], "v=w");
    }
}
