//! What may be shown: the one redaction step of everything printed or written at the end of a
//! run (messages, summaries, reports). The task's own key (and any password in its endpoint
//! URL) is installed once at start, besides the credential shapes every redactor removes.
//! Kept apart from the command line so the engine, the summary and the report can use it
//! without depending on the commands.

use std::sync::OnceLock;

use modelcall_secrets::Redactor;

static REDACTOR: OnceLock<Redactor> = OnceLock::new();

/// Sets the redaction of everything printed at the end of the run: the task's own key (and
/// any password in its endpoint URL), besides the credential shapes every redactor removes.
pub fn install_redactor(redactor: Redactor) {
    let _ = REDACTOR.set(redactor);
}

/// `text` as it may be shown: the one redaction step for messages this module prints.
pub fn shown(text: &str) -> String {
    REDACTOR.get_or_init(Redactor::default).redact_string(text)
}

/// `doc` as it may be written: every string in it redacted (the document stays valid JSON,
/// whatever the redaction replaces).
pub fn shown_json(doc: &mut serde_json::Value) {
    match doc {
        serde_json::Value::String(s) => {
            let r = shown(s);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(shown_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(shown_json),
        _ => {}
    }
}
