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
/// - every occurrence of a configured secret becomes its [`mask`], and every encoding of it a
///   server may echo back becomes `***`: URL-encoded (percent-encoded, either hex case) or
///   URL-decoded (a password taken from a URL), JSON-escaped, and base64 (standard or URL-safe)
///   of the secret alone *or inside anything* (the `Authorization: Basic` value of `user:KEY`):
///   see [`encoded_forms`];
/// - the value of an `Authorization` / `Proxy-Authorization` header (after its scheme, e.g.
///   `Bearer`), of `api-key`, `x-api-key`, `api_key` and `apikey` (as `name: value`,
///   `name=value` or the JSON `"name": "value"`), case-insensitively, becomes its [`mask`];
/// - URL userinfo becomes `***`: `https://user:pass@host` → `https://***@host`.
///
/// Built once per client (from its configured key) and cheap to apply: text with nothing to
/// remove is returned borrowed.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secrets as given (kept so [`Redactor::with`] can add more).
    secrets: Vec<String>,
    /// What is searched for and what replaces it: each secret (by its [`mask`]) and its
    /// [`encoded_forms`] (by `***`), longest first, so a secret that contains another is
    /// replaced whole.
    patterns: Vec<(String, String)>,
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
        let mut secrets: Vec<String> = secrets.into_iter().map(|s| s.trim().to_string()).filter(|s| s.chars().count() >= MIN_SECRET_LEN).collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        let mut patterns: Vec<(String, String)> = Vec::new();
        for secret in &secrets {
            patterns.push((secret.clone(), mask(secret)));
            patterns.extend(encoded_forms(secret).into_iter().map(|f| (f, MASK.to_string())));
        }
        patterns.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        patterns.dedup_by(|a, b| a.0 == b.0);
        Redactor { secrets, patterns }
    }

    /// This redactor and `more` secrets (the same rules as [`Redactor::new`]).
    pub fn with(self, more: impl IntoIterator<Item = String>) -> Self {
        Redactor::new(self.secrets.into_iter().chain(more))
    }

    /// This redactor and the credential in the userinfo of each of `urls` (the password of
    /// `scheme://user:password@host`, or the whole userinfo when it has no `:`, as a token
    /// alone is sent), with its encodings: a client turns userinfo into
    /// `Authorization: Basic base64(user:password)`, which a server may echo back.
    pub fn with_url_credentials<'u>(self, urls: impl IntoIterator<Item = &'u str>) -> Self {
        let found: Vec<String> = urls.into_iter().filter_map(url_credential).collect();
        self.with(found)
    }

    /// How many secrets it searches for (those kept by [`Redactor::new`]).
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// `text` without the secrets, credential header values and URL userinfo it holds.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (pattern, replacement) in &self.patterns {
            if out.contains(pattern.as_str()) {
                out = Cow::Owned(out.replace(pattern.as_str(), replacement));
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

/// The API key held in the file at `path` (`client_config.api_key_file`), trimmed; an error (a
/// sentence naming the file) when it cannot be read, is empty, or can be read or written by
/// anyone but its owner: the mode must be 0600 or stricter (`chmod 600 FILE`). With `optional`
/// (commands that never send a request: `status`, `submit`), a missing file is no key.
pub fn read_key_file(path: &std::path::Path, optional: bool) -> Result<Option<String>, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the key file {shown}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!("the key file {shown} is not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the key file {shown} has mode {mode:04o}: others than its owner may read it; it must be 0600 or stricter (chmod 600 {shown})"
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file {shown}: {e}"))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(format!("the key file {shown} is empty"));
    }
    if key.contains(['\n', '\r']) {
        return Err(format!("the key file {shown} holds more than one line: it must hold the key alone"));
    }
    Ok(Some(key.to_string()))
}

/// Base64 runs shorter than this (in characters) are not searched for: 8 characters are 6 bytes
/// of the secret, and a shorter run could match ordinary text.
const MIN_BASE64_RUN: usize = 8;

/// The forms `secret` takes when a client or a server encodes it, each different from `secret`:
///
/// - percent-encoded as in a URL (every byte but `A-Z a-z 0-9 - . _ ~`, upper- and lower-case
///   hex), and percent-decoded when `secret` holds `%XX` (a password as written in a URL);
/// - JSON-escaped (`/` as `\/`, `"` and `\` escaped);
/// - base64, standard and URL-safe alphabets, of the secret (and of its decoded form) at each
///   of the three byte alignments: the run of whole 3-byte groups inside the secret encodes the
///   same wherever the secret starts, so `base64("user:" + secret)` (Basic auth) or any other
///   text around it is caught; runs shorter than [`MIN_BASE64_RUN`] are left out.
pub fn encoded_forms(secret: &str) -> Vec<String> {
    let mut raw: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec()];
    let mut forms: Vec<String> = Vec::new();
    if let Some(decoded) = percent_decode(secret) {
        if let Ok(text) = String::from_utf8(decoded.clone()) {
            forms.push(text);
        }
        raw.push(decoded);
    }
    for bytes in &raw {
        forms.push(percent_encode(bytes, b"0123456789ABCDEF"));
        forms.push(percent_encode(bytes, b"0123456789abcdef"));
        if let Ok(text) = std::str::from_utf8(bytes) {
            forms.push(json_escape(text));
        }
        for skip in 0..3.min(bytes.len()) {
            let whole = &bytes[skip..];
            let whole = &whole[..whole.len() / 3 * 3];
            for alphabet in [BASE64_STANDARD, BASE64_URL_SAFE] {
                let run = base64(whole, alphabet);
                if run.len() >= MIN_BASE64_RUN {
                    forms.push(run);
                }
            }
        }
    }
    forms.retain(|f| f != secret && f.chars().count() >= MIN_SECRET_LEN);
    forms.sort();
    forms.dedup();
    forms
}

const BASE64_STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of `bytes` without padding (whole groups only are ever asked for).
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn percent_encode(bytes: &[u8], hex: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(hex[usize::from(b >> 4)] as char);
            out.push(hex[usize::from(b & 15)] as char);
        }
    }
    out
}

/// `text` with its `%XX` escapes decoded; `None` when it has none.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut any = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                any = true;
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    any.then_some(out)
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c => out.push(c),
        }
    }
    out
}

/// The credential in `url`'s userinfo: the password of `user:password@`, or the whole userinfo
/// when it has no `:`; `None` without userinfo.
fn url_credential(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let secret = match userinfo.split_once(':') {
        Some((_, password)) => password,
        None => userinfo,
    };
    (!secret.is_empty()).then(|| secret.to_string())
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
            .then(|| CREDENTIAL_NAMES.iter().find(|n| lower[i..].starts_with(n.as_bytes()) && lower.get(i + n.len()).is_none_or(|b| !is_ident_byte(*b))))
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
        if let Some(scheme) = SCHEMES.iter().find(|s| lower[j..].starts_with(s.as_bytes()) && lower.get(j + s.len()).is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
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
