//! Tests of `lib.rs`.

use super::*;

const KEY: &str = "sk-live-0123456789abcd";

fn redactor() -> Redactor {
    Redactor::new([KEY.to_string()])
}

#[test]
fn mask_keeps_the_last_four_of_long_secrets_only() {
    assert_eq!(mask(KEY), "***abcd");
    assert_eq!(mask("sk-abcdefgh12345678"), "***5678");
    assert_eq!(mask("12345678"), "***");
    assert_eq!(mask("123456789"), "***6789");
    assert_eq!(mask("short"), "***");
    assert_eq!(mask(""), "***");
    assert_eq!(mask("ключ-секрет-длинный"), "***нный");
}

#[test]
fn configured_secret_is_replaced_everywhere() {
    let r = redactor();
    let text = format!("first {KEY} then {KEY}.");
    assert_eq!(r.redact(&text), "first ***abcd then ***abcd.");
}

#[test]
fn key_echoed_in_a_json_error_body() {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}. You can find your API key at https://platform.example/keys.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let shown = redactor().redact(&body);
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("Incorrect API key provided: ***abcd."), "{shown}");
    // Still JSON: nothing but the key was touched.
    let v: Vec<&str> = shown.split('"').collect();
    assert!(v.len() > 8);
}

#[test]
fn key_echoed_in_a_401_text_body() {
    let body = format!("401 Unauthorized\n\nthe key {KEY} is not valid for this deployment\n");
    let shown = redactor().redact(&body);
    assert!(!shown.contains(KEY), "{shown}");
    assert_eq!(shown, "401 Unauthorized\n\nthe key ***abcd is not valid for this deployment\n");
}

#[test]
fn authorization_headers_are_redacted_even_when_not_configured() {
    let r = Redactor::default();
    assert_eq!(r.redact("Authorization: Bearer sk-other-999999999wxyz"), "Authorization: Bearer ***wxyz");
    assert_eq!(r.redact("authorization:bearer tok"), "authorization:bearer ***");
    assert_eq!(r.redact("Authorization: Basic dXNlcjpwYXNzd29yZA=="), "Authorization: Basic ***ZA==");
    assert_eq!(r.redact("AUTHORIZATION: rawtoken123456\nHost: x"), "AUTHORIZATION: ***3456\nHost: x");
    assert_eq!(r.redact("Proxy-Authorization: Basic abc"), "Proxy-Authorization: Basic ***");
    let json = r#"{"headers": {"Authorization": "Bearer abcdefghijklmnop", "Accept": "*/*"}}"#;
    assert_eq!(r.redact(json), r#"{"headers": {"Authorization": "Bearer ***mnop", "Accept": "*/*"}}"#);
}

#[test]
fn configured_key_in_a_bearer_header_shows_its_mask_once() {
    let text = format!("sent Authorization: Bearer {KEY}");
    assert_eq!(redactor().redact(&text), "sent Authorization: Bearer ***abcd");
}

#[test]
fn api_key_headers_and_parameters() {
    let r = Redactor::default();
    assert_eq!(r.redact("api-key: 0123456789abcdef"), "api-key: ***cdef");
    assert_eq!(r.redact("X-Api-Key: 0123456789abcdef\r\n"), "X-Api-Key: ***cdef\r\n");
    assert_eq!(r.redact(r#"{"x-api-key":"0123456789abcdef"}"#), r#"{"x-api-key":"***cdef"}"#);
    assert_eq!(r.redact("GET /v1?api_key=0123456789abcdef&x=1"), "GET /v1?api_key=***cdef&x=1");
    // Words that merely contain a name, or a name without a value, are left alone.
    assert_eq!(r.redact("my-api-keyring: fine"), "my-api-keyring: fine");
    assert_eq!(r.redact("the api-key header is missing"), "the api-key header is missing");
    assert_eq!(r.redact("Authorization failed"), "Authorization failed");
}

#[test]
fn url_userinfo_is_removed() {
    let r = Redactor::default();
    assert_eq!(r.redact("https://user:pass@host/v1"), "https://***@host/v1");
    assert_eq!(
        r.redact("error sending request for url (http://alice:s3cr%40t@10.0.0.1:8000/v1/chat/completions)"),
        "error sending request for url (http://***@10.0.0.1:8000/v1/chat/completions)"
    );
    assert_eq!(r.redact("at https://token@gw.example?x=1 and https://u:p@other"), "at https://***@gw.example?x=1 and https://***@other");
    assert_eq!(r.redact("https://host/v1?email=a@b.c"), "https://host/v1?email=a@b.c");
    assert_eq!(r.redact("write to me@example.com or see ://x@y"), "write to me@example.com or see ://x@y");
    assert_eq!(r.redact("https://***@host"), "https://***@host");
}

#[test]
fn clean_text_is_borrowed() {
    let r = redactor();
    assert!(matches!(r.redact("nothing to hide at https://host/v1"), Cow::Borrowed(_)));
    assert!(matches!(r.redact(""), Cow::Borrowed(_)));
    assert!(matches!(r.redact("ünïcödé text with → arrows"), Cow::Borrowed(_)));
}

#[test]
fn short_and_empty_secrets_are_ignored_and_longest_wins() {
    let r = Redactor::new(["".to_string(), "abc".to_string(), "  ".to_string()]);
    assert_eq!(r.secret_count(), 0);
    assert_eq!(r.redact("abc abc"), "abc abc");
    let r = Redactor::new(["secret-1".to_string(), "secret-1-and-more".to_string(), "secret-1".to_string()]);
    assert_eq!(r.secret_count(), 2);
    assert_eq!(r.redact("a secret-1-and-more b secret-1"), "a ***more b ***");
}

#[test]
fn debug_does_not_show_secrets() {
    let shown = format!("{:?}", redactor());
    assert!(!shown.contains(KEY) && shown.contains("1"), "{shown}");
}

#[test]
fn non_ascii_text_around_credentials() {
    let r = redactor();
    let text = format!("clé invalide «{KEY}» — Authorization: Bearer ключ-длинный-токен");
    let shown = r.redact(&text);
    assert_eq!(shown, "clé invalide «***abcd» — Authorization: Bearer ***окен");
}

#[test]
fn key_shaped_tokens_are_masked_without_configuration() {
    let r = Redactor::default();
    let text = "base_url: `sk-proj-abcdefghijklmnop1234` is not a URL (did you mean api_key?)";
    let shown = r.redact(text);
    assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
    assert!(shown.contains("***1234"), "{shown}");
    assert_eq!(r.redact("ask-me-anything and sk-short stay"), "ask-me-anything and sk-short stay");
}

#[test]
fn json_literals_after_a_credential_name_stay_valid_json() {
    let r = Redactor::default();
    let doc = r#"{"api_key": null, "x-api-key": 12, "api-key": "abcdefgh1234"}"#;
    let shown = r.redact(doc);
    let v: serde_json_free::Probe = serde_json_free::parse(&shown);
    assert!(v.0, "{shown}");
    assert!(shown.contains("\"api_key\": null") && !shown.contains("abcdefgh1234"), "{shown}");
}

/// A tiny JSON validity probe without a dependency: balanced quotes and no bare `***`.
mod serde_json_free {
    pub struct Probe(pub bool);
    pub fn parse(text: &str) -> Probe {
        Probe(!text.contains(": ***,") && !text.contains(": ***}") && text.matches('"').count().is_multiple_of(2))
    }
}

/// Standard base64 with padding, written out here so the test does not use the code it checks.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[test]
fn basic_auth_of_user_and_key_is_caught_whatever_the_user() {
    let key = "sk-live-0123/456789+abcdefSECRET";
    let r = Redactor::new([key.to_string()]);
    assert_eq!(b64(b"user:password"), "dXNlcjpwYXNzd29yZA==");
    for user in ["", "u", "us", "use", "user", "someone-long"] {
        let basic = b64(format!("{user}:{key}").as_bytes());
        let text = format!(r#"{{"error":"denied for credentials {basic}"}}"#);
        let shown = r.redact(&text);
        assert!(!shown.contains(&basic[basic.len() / 2 - 4..basic.len() / 2 + 4]), "user {user:?}: {shown}");
        assert!(shown.contains("***"), "{shown}");
        // The user's part stays, and at most a group at either end of the key's run.
        let kept = shown.trim_start_matches(r#"{"error":"denied for credentials "#).trim_end_matches(r#""}"#).replace("***", "");
        assert!(kept.len() <= (user.len() + 1).div_ceil(3) * 4 + 8, "user {user:?}: {shown}");
    }
    let bare = b64(key.as_bytes());
    assert!(!r.redact(&bare).contains(&bare[4..bare.len() - 4]), "{}", r.redact(&bare));
    let url_safe = bare.replace('+', "-").replace('/', "_");
    assert!(!r.redact(&url_safe).contains(&url_safe[4..url_safe.len() - 4]));
}

#[test]
fn url_encoded_json_escaped_and_url_decoded_forms_are_caught() {
    let key = "sk-live-0123/456789+abcdef=SECRET";
    let r = Redactor::new([key.to_string()]);
    for form in ["sk-live-0123%2F456789%2Babcdef%3DSECRET", "sk-live-0123%2f456789%2babcdef%3dSECRET", r"sk-live-0123\/456789+abcdef=SECRET"] {
        let shown = r.redact_string(&format!("echo {form} end"));
        assert_eq!(shown, "echo *** end", "{form}");
    }
    // A password as written in a URL (percent-encoded) and echoed decoded.
    let r = Redactor::default().with_url_credentials(["http://user:sk-live-0123%2F456789%2Babcdef@127.0.0.1:9/v1"]);
    assert_eq!(r.redact("got sk-live-0123/456789+abcdef"), "got ***");
    assert_eq!(r.redact("got sk-live-0123%2F456789%2Babcdef"), "got ***cdef");
    let basic = b64(b"user:sk-live-0123/456789+abcdef");
    assert!(!r.redact(&basic).contains(&basic[8..basic.len() - 8]), "{}", r.redact(&basic));
    // A token alone as userinfo; no userinfo, nothing added.
    let r = Redactor::default().with_url_credentials(["https://tok-abcdefgh12345@example.com/v1", "https://example.com/x@y"]);
    assert_eq!(r.secret_count(), 1);
    assert_eq!(r.redact("tok-abcdefgh12345"), "***2345");
}

#[test]
fn ordinary_text_is_untouched_by_the_encoded_forms() {
    let r = redactor();
    let text = "The quick brown fox jumps over the lazy dog 0123 abcd; c2stbGl2ZQ is not enough.";
    assert_eq!(r.redact(text), text);
}
