//! Secrets as they may be shown: [`mask`] for one known secret (an API key in a summary or a
//! `Debug` print), and [`Redactor`] for text that came from elsewhere (a server's error body, a
//! URL, a transport error) and may hold a secret the configuration knows, or a credential it does
//! not (an `Authorization` header echoed back, a password in a URL).
//!
//! No dependencies on purpose: every crate that prints text from a server or a config can use it.

use std::borrow::Cow;
use std::fmt;

/// Secrets shorter than this (in characters) are not searched for: replacing every occurrence of
/// `abc` would mangle ordinary text and protect nothing.
pub const MIN_SECRET_LEN: usize = 6;

/// What replaced text shows when nothing of it may be kept.
pub const MASK: &str = "***";

/// Whether a header with this name carries a credential (its value is then redacted like a key).
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "cookie", "password"].iter().any(|w| n.contains(w))
}

/// `sk-…abcd` → `***abcd`; secrets of 8 characters or fewer are fully masked (showing 4 of them
/// would give half away).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return MASK.into();
    }
    format!("{MASK}{}", chars[chars.len() - 4..].iter().collect::<String>())
}

/// Removes credentials from text before it is shown or stored:
///
/// - every occurrence of a configured secret becomes its [`mask`];
/// - the value of an `Authorization` / `Proxy-Authorization` header (after its scheme, e.g.
///   `Bearer`), of `api-key`, `x-api-key`, `api_key` and `apikey` (as `name: value`,
///   `name=value` or the JSON `"name": "value"`), case-insensitively, becomes its [`mask`];
/// - URL userinfo becomes `***`: `https://user:pass@host` → `https://***@host`.
///
/// Built once per client (from its configured key) and cheap to apply: text with nothing to
/// remove is returned borrowed.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

/// Header (or parameter) names whose value is a credential, lower case. Longer names that
/// end with a shorter one (`x-api-key`, `api-key`) both match: a name only counts at a word
/// boundary.
const CREDENTIAL_NAMES: &[&str] = &["proxy-authorization", "authorization", "x-api-key", "api-key", "api_key", "apikey"];

/// Authorization schemes kept in the output (`Authorization: Bearer ***abcd`).
const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "apikey"];

impl Redactor {
    /// A redactor for `secrets`; empty ones and ones shorter than [`MIN_SECRET_LEN`] characters
    /// (after trimming whitespace) are ignored. Header values and URL userinfo are redacted even
    /// with no secrets.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| s.chars().count() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// This redactor and `more` secrets (the same rules as [`Redactor::new`]).
    pub fn with(self, more: impl IntoIterator<Item = String>) -> Self {
        Redactor::new(self.secrets.into_iter().chain(more))
    }

    /// How many secrets it searches for (those kept by [`Redactor::new`]).
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// `text` without the secrets, credential header values and URL userinfo it holds.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), &mask(secret)));
            }
        }
        if let Some(s) = redact_credential_values(&out) {
            out = Cow::Owned(s);
        }
        if let Some(s) = redact_userinfo(&out) {
            out = Cow::Owned(s);
        }
        if let Some(s) = redact_key_shaped(&out) {
            out = Cow::Owned(s);
        }
        out
    }

    /// [`Redactor::redact`] into an owned string.
    pub fn redact_string(&self, text: &str) -> String {
        self.redact(text).into_owned()
    }
}

/// Prefixes of API keys as providers issue them (OpenAI/DeepSeek/Anthropic `sk-`, Groq `gsk_`,
/// xAI `xai-`, Hugging Face `hf_`, GitHub `ghp_`/`github_pat_`, AWS `AKIA`).
const KEY_PREFIXES: &[&str] = &["sk-", "sk_", "gsk_", "xai-", "hf_", "ghp_", "github_pat_", "AKIA"];

/// A token that looks like an API key even though no configuration names it (a key typed into
/// the wrong field and quoted back by an error): a known prefix followed by 16 or more key
/// characters. Masked like a known secret.
fn redact_key_shaped(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || !is_ident_byte(bytes[i - 1]);
        let prefix = if at_boundary { KEY_PREFIXES.iter().find(|p| bytes[i..].starts_with(p.as_bytes())) } else { None };
        if let Some(p) = prefix {
            let end = i + bytes[i..].iter().take_while(|b| is_ident_byte(**b)).count();
            if end - i >= p.len() + 16 {
                let o = out.get_or_insert_with(String::new);
                o.push_str(&text[last..i]);
                o.push_str(&mask(&text[i..end]));
                last = end;
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.map(|mut o| {
        o.push_str(&text[last..]);
        o
    })
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Where a credential value stops: whitespace, quotes, JSON and query-string punctuation.
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b',' | b';' | b'}' | b']' | b')' | b'<' | b'>' | b'\\' | b'&' | b'`')
}

/// `authorization: Bearer X`, `api-key=X`, `"x-api-key": "X"` … with X masked; `None` when
/// there is none.
fn redact_credential_values(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = bytes[i].is_ascii_alphabetic() && (i == 0 || !is_ident_byte(bytes[i - 1]));
        let name = at_boundary
            .then(|| {
                CREDENTIAL_NAMES.iter().find(|n| {
                    lower[i..].starts_with(n.as_bytes()) && lower.get(i + n.len()).is_none_or(|b| !is_ident_byte(*b))
                })
            })
            .flatten();
        let Some(name) = name else {
            i += 1;
            continue;
        };
        let mut j = i + name.len();
        let skip = |j: &mut usize, set: &[u8]| {
            while *j < bytes.len() && set.contains(&bytes[*j]) {
                *j += 1;
            }
        };
        skip(&mut j, b"\"'");
        skip(&mut j, b" \t");
        if j >= bytes.len() || !matches!(bytes[j], b':' | b'=') {
            i += name.len();
            continue;
        }
        j += 1;
        skip(&mut j, b" \t");
        skip(&mut j, b"\"'");
        // An authorization scheme stays: only what follows it is the credential.
        if let Some(scheme) = SCHEMES.iter().find(|s| {
            lower[j..].starts_with(s.as_bytes()) && lower.get(j + s.len()).is_some_and(|b| *b == b' ' || *b == b'\t')
        }) {
            j += scheme.len();
            skip(&mut j, b" \t");
        }
        let start = j;
        while j < bytes.len() && !ends_value(bytes[j]) {
            j += 1;
        }
        let value = &text[start..j];
        // `"api_key": null` (or a number, a boolean) in JSON holds no credential: masking it
        // would only break the document.
        let json_literal = matches!(value, "null" | "true" | "false") || value.parse::<f64>().is_ok();
        if !value.is_empty() && !value.starts_with(MASK) && !json_literal {
            out.push_str(&text[copied..start]);
            out.push_str(&mask(value));
            copied = j;
        }
        i = j.max(i + 1);
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// `scheme://user:pass@host` → `scheme://***@host`; `None` when no URL carries userinfo.
fn redact_userinfo(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let sep = from + found;
        let start = sep + 3;
        let has_scheme = sep > 0 && bytes[sep - 1].is_ascii_alphanumeric();
        let mut end = start;
        while end < bytes.len() && !matches!(bytes[end], b'/' | b'?' | b'#') && !ends_value(bytes[end]) {
            end += 1;
        }
        if has_scheme {
            if let Some(at) = text[start..end].rfind('@') {
                let userinfo = &text[start..start + at];
                if !userinfo.is_empty() && userinfo != MASK {
                    out.push_str(&text[copied..start]);
                    out.push_str(MASK);
                    copied = start + at;
                }
            }
        }
        from = end.max(start);
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
