//! Duplicate keys in task, model and prompt files, and unknown keys in a task's prompt config:
//! errors at the right file, line and dotted key.

mod common;

use common::Fx;
use modelcall_config::{load_task_with, ConfigError, LoadedTask, Overrides};

const TASK: &str = "repomix_quality_rating.yaml";

impl Fx {
    fn load(&self) -> Result<LoadedTask, ConfigError> {
        load_task_with(&self.path(TASK), &Overrides::default(), self.vars(&[]))
    }
}

/// 1-based line of the `n`-th (0-based) line equal to `needle` after trimming its end.
fn nth_line(text: &str, needle: &str, n: usize) -> usize {
    text.lines().enumerate().filter(|(_, l)| l.trim_end() == needle).nth(n).unwrap_or_else(|| panic!("{needle} #{n}")).0 + 1
}

#[test]
fn a_section_written_twice_in_a_task_file() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK) + "\nconcurrency:\n  max_concurrent_requests: 8\n";
    fx.write(TASK, &text);
    let e = fx.load().unwrap_err();
    let (first, second) = (nth_line(&text, "concurrency:", 0), nth_line(&text, "concurrency:", 1));
    assert_eq!((e.file.clone(), e.line, e.column), (fx.path(TASK), Some(second), Some(1)), "{e}");
    assert_eq!(e.key.as_deref(), Some("concurrency"));
    assert!(e.message.contains(&format!("already set at line {first}")), "{e}");
}

#[test]
fn a_key_written_twice_inside_a_section_of_a_task_file() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK).replace("  max_retries: 3\n", "  max_retries: 3\n  max_retries: 5\n");
    fx.write(TASK, &text);
    let e = fx.load().unwrap_err();
    let (first, second) = (nth_line(&text, "  max_retries: 3", 0), nth_line(&text, "  max_retries: 5", 0));
    assert_eq!((e.line, e.column, e.key.as_deref()), (Some(second), Some(3), Some("retry.max_retries")), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:{second}:3: `retry.max_retries`: duplicate key: already set at line {first}; a mapping holds each key once, keep one",
            fx.path(TASK).display()
        )
    );
}

#[test]
fn a_key_written_twice_in_the_model_config() {
    let fx = Fx::new("scoring");
    let model = fx.text("model.yaml").replace("  temperature: 0.7\n", "  temperature: 0.7\n  max_tokens: 10\n  temperature: 0.1\n");
    fx.write("model.yaml", &model);
    let e = fx.load().unwrap_err();
    assert_eq!(e.file, fx.path("model.yaml"));
    assert_eq!((e.line, e.key.as_deref()), (Some(nth_line(&model, "  temperature: 0.1", 0)), Some("chat_config.temperature")), "{e}");
    assert!(e.message.contains(&format!("already set at line {}", nth_line(&model, "  temperature: 0.7", 0))), "{e}");
}

#[test]
fn a_key_written_twice_in_the_prompt_config() {
    let fx = Fx::new("scoring");
    let prompt = fx.text("prompt.yaml") + "  require_json: false\n";
    fx.write("prompt.yaml", &prompt);
    let e = fx.load().unwrap_err();
    assert_eq!(e.file, fx.path("prompt.yaml"));
    assert_eq!((e.line, e.key.as_deref()), (Some(prompt.lines().count()), Some("output_config.require_json")), "{e}");
    assert!(e.message.contains(&format!("already set at line {}", nth_line(&prompt, "  require_json: true", 0))), "{e}");
}

#[test]
fn an_unknown_key_in_the_prompt_config_names_that_file() {
    let fx = Fx::new("scoring");
    let prompt = fx.text("prompt.yaml").replace("  system_text:", "  sytem_text:");
    fx.write("prompt.yaml", &prompt);
    let e = fx.load().unwrap_err();
    assert_eq!(e.file, fx.path("prompt.yaml"), "{e}");
    assert_eq!((e.line, e.column), (Some(nth_line_starting(&prompt, "  sytem_text:")), Some(3)), "{e}");
    assert_eq!(e.key.as_deref(), Some("prompt_template.sytem_text"));
    assert!(e.to_string().contains("did you mean `prompt_template.system_text`?"), "{e}");

    let prompt = fx.text("prompt.yaml").replace("sytem_text", "system_text").replace("  json_keys:", "  json_key:");
    fx.write("prompt.yaml", &prompt);
    let e = fx.load().unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(nth_line_starting(&prompt, "  json_key:")), Some("output_config.json_key")), "{e}");
    assert_eq!(e.suggestion.as_deref(), Some("output_config.json_keys"));
}

#[test]
fn a_task_s_own_plugin_may_read_keys_of_its_own() {
    let fx = Fx::new("scoring");
    let prompt = fx.text("prompt.yaml") + "  rubric: strict\n" + "style: terse\n";
    fx.write("prompt.yaml", &prompt);
    // Both built-ins read the file: the top level is checked first.
    let e = fx.load().unwrap_err();
    assert_eq!(e.key.as_deref(), Some("style"), "{e}");
    // A custom prompt-builder (no config of its own) gets the whole file: top-level keys are its own,
    // but output_config still goes to builtin:json-score.
    let task = fx.text(TASK) + "plugins:\n  mine:\n    role: prompt-builder\n    path: mine.wasm\n";
    fx.write(TASK, &task);
    let e = fx.load().unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output_config.rubric"), "{e}");
    // And a custom score-parser gets output_config.
    fx.write(TASK, &(task + "  parse:\n    role: score-parser\n    path: parse.wasm\n"));
    fx.load().unwrap();
}

fn nth_line_starting(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).expect(prefix) + 1
}
