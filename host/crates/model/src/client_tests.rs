//! Tests of `client.rs`.

use super::*;

#[test]
fn retry_after_forms() {
    assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
    assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon"), None);
}

#[test]
fn secrets_are_masked_in_debug() {
    let mut s = ClientSettings::new("http://x/v1", "m");
    s.api_key = Some("sk-verysecretkey-abcd".into());
    let shown = format!("{s:?}");
    assert!(!shown.contains("verysecret"), "{shown}");
    assert!(shown.contains("***abcd"), "{shown}");
}

#[test]
fn backoff_respects_retry_after_and_cap() {
    let mut s = ClientSettings::new("http://127.0.0.1:1/v1", "m");
    s.backoff_base = Duration::from_millis(100);
    s.backoff_max = Duration::from_secs(2);
    let c = ModelClient::new(s).unwrap();
    for attempt in 1..10 {
        let d = c.backoff(attempt, None);
        assert!(d <= Duration::from_secs(2));
        let d = c.backoff(attempt, Some(Duration::from_secs(1)));
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2), "{d:?}");
        let d = c.backoff(attempt, Some(Duration::from_secs(60)));
        assert_eq!(d, Duration::from_secs(2));
    }
    assert_eq!(c.endpoint(), "http://127.0.0.1:1/v1/chat/completions");
}
