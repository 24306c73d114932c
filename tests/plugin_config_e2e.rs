//! A plugin's config against the JSON Schema it publishes, what a plugin prints, and the source
//! line of a multi-record preprocessor's item errors, through the real binary and a real
//! component: the `csv-reader` fixture (tests/plugins/csv-reader, built with the SDK only),
//! which splits raw CSV files into records, reports a bad row at its line, publishes a schema
//! (`delimiter`: string, `max_rows`: integer, nothing else) and prints a line per file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{preprocess_task, read_jsonl};
use modelcall_test_plugins as fx;

fn modelcall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelcall")).args(args).output().expect("running modelcall")
}

fn modelcall_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_modelcall"));
    c.args(args).env_remove("MODELCALL_LOG").env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running modelcall")
}

fn text(o: &Output) -> String {
    format!("status {}\nstdout:\n{}\nstderr:\n{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A folder `in/` holding `data.csv`: a header, two good rows, a row with a field missing at
/// line 4, and a good row.
fn csv_input(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("data.csv"), "id,text\nr1,the first row of text\nr2,the second row of text\nr3\nr4,the fourth row of text\n").unwrap();
    input
}

/// 1-based line and column of the first line of `text` that (trimmed) starts with `key`.
fn line_col(text: &str, key: &str) -> (usize, usize) {
    let (i, l) = text.lines().enumerate().find(|(_, l)| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("no `{key}` in\n{text}"));
    (i + 1, l.len() - l.trim_start().len() + 1)
}

#[test]
fn a_config_the_schema_rejects_stops_the_task_at_its_yaml_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = csv_input(dir.path());
    // `max_rows` is a string; `delimter` is a typo the schema does not allow.
    let task = preprocess_task(dir.path(), &input, fx::CSV_READER, "    config:\n      delimter: \";\"\n      max_rows: \"ten\"\n");
    let yaml = std::fs::read_to_string(&task).unwrap();
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(2), "a bad plugin config is a config error: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let (l, c) = line_col(&yaml, "max_rows:");
    assert!(
        err.contains(&format!("{}:{l}:{c}: `plugins.pre.config.max_rows`: expected integer, got string", task.display())),
        "the YAML line of the key and the schema's expectation: {err}"
    );
    let (l, c) = line_col(&yaml, "delimter:");
    assert!(err.contains(&format!("{}:{l}:{c}: `plugins.pre.config.delimter`: unknown key (did you mean `delimiter`?)", task.display())), "{err}");
    assert!(!err.contains("line 1 column"), "no position in an internal JSON copy: {err}");
    // Nothing ran: no preprocessed records, no scored rows.
    assert!(!dir.path().join("pre").exists() || std::fs::read_dir(dir.path().join("pre")).unwrap().next().is_none(), "{}", text(&o));
    assert!(!dir.path().join("out/data.jsonl").exists());

    // A refusal of the plugin's own (a rule the schema cannot say) is placed at the block.
    let task = preprocess_task(dir.path(), &input, fx::CSV_READER, "    config:\n      delimiter: \"a\"\n");
    let yaml = std::fs::read_to_string(&task).unwrap();
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let (l, c) = line_col(&yaml, "config:");
    assert!(err.contains(&format!("{}:{l}:{c}: `plugins.pre.config`: plugin ", task.display())), "{err}");
    assert!(err.contains("rejected its config: `delimiter` must not be a letter or a digit, not 'a'"), "{err}");
    assert!(!err.contains("config schema:"), "the schema is plugin check's to show: {err}");

    // The same block fixed runs.
    let task = preprocess_task(dir.path(), &input, fx::CSV_READER, "    config:\n      delimiter: \",\"\n      max_rows: 10\n");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn plugin_check_names_the_config_file_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yaml");
    std::fs::write(&cfg, "# the csv reader's config\ndelimiter: \";\"\nmax_rows: many\n").unwrap();
    let o = modelcall(&["plugin", "check", fx::CSV_READER, "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:3:1: `max_rows`: expected integer, got string", cfg.display())), "{}", text(&o));
    // The schema is printed, so the config can be fixed from this output.
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"max_rows\""), "{}", text(&o));

    std::fs::write(&cfg, "delimiter: \";\"\nmax_rows: 5\n").unwrap();
    let o = modelcall(&["plugin", "check", fx::CSV_READER, "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("name:        csv-reader"), "{}", text(&o));

    // A config the plugin's own check refuses (the schema allows it) names the file too.
    std::fs::write(&cfg, "delimiter: \"a\"\n").unwrap();
    let o = modelcall(&["plugin", "check", fx::CSV_READER, "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}: plugin ", cfg.display())) && err.contains("`delimiter` must not be a letter or a digit"), "{err}");
}

#[test]
fn item_errors_of_a_csv_reader_carry_their_source_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = csv_input(dir.path());
    let task = preprocess_task(dir.path(), &input, fx::CSV_READER, "");
    let o = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(3), "one bad row is a failure, the rest is scored: {}", text(&o));
    let errors = read_jsonl(&dir.path().join("pre/preprocessed.preprocess.errors.jsonl"));
    assert_eq!(errors.len(), 1, "{errors:?}\n{}", text(&o));
    let e = &errors[0];
    assert_eq!(e["line"], 4, "the CSV line of the bad row, not 0: {e}");
    assert_eq!(e["location"], "line 4", "{e}");
    assert!(e["file"].as_str().is_some_and(|f| f.ends_with("data.csv")), "{e}");
    assert_eq!(e["cause"], "plugin_invalid_input", "{e}");
    assert_eq!(e["message"], "1 fields, the header has 2", "{e}");
    let mut ids: Vec<String> = read_jsonl(&dir.path().join("out/preprocessed.jsonl")).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["r1", "r2", "r4"], "{}", text(&o));

    // `plugin run --files` shows the same line.
    let o = modelcall(&["plugin", "run", fx::CSV_READER, "--role", "preprocessor", "--files", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let line: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["item_errors"][0]["line"], 4, "{line}");
    assert_eq!(line["item_errors"][0]["location"], "line 4", "{line}");
}

#[test]
fn what_a_plugin_prints_shows_in_plugin_run_and_in_the_log_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let input = csv_input(dir.path());
    let o = modelcall(&["plugin", "run", fx::CSV_READER, "--role", "preprocessor", "--files", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let line: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["outcome"], "keep", "{line}");
    assert_eq!(line["output"], "csv-reader: data.csv: 4 row(s), 1 bad\n", "the plugin's stdout with its call: {line}");
    // What `init` printed (to stderr) is on plugin run's stderr.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("plugin output during init: csv-reader: ready (delimiter ',')"), "{}", text(&o));

    // A run logs it at debug only, attributed to the plugin and the input.
    let printed = "csv-reader: data.csv: 4 row(s), 1 bad";
    let run = |plugin_extra: &str, env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let task = preprocess_task(dir.path(), &csv_input(dir.path()), fx::CSV_READER, plugin_extra);
        modelcall_env(&["run-task", task.to_str().unwrap(), "--no-progress"], env)
    };
    let o = run("", &[]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains(printed), "not at the default level: {}", text(&o));
    let o = run("", &[("MODELCALL_LOG", "warn,modelcall::plugin=debug")]);
    let err = String::from_utf8_lossy(&o.stderr);
    let logged = err.lines().find(|l| l.contains(printed)).unwrap_or_else(|| panic!("logged at debug: {}", text(&o)));
    assert!(logged.contains("DEBUG") && logged.contains("modelcall::plugin") && logged.contains("record_id=\"data.csv\""), "{logged}");
    assert!(logged.contains("output=true"), "{logged}");
    // What `init` printed (on a thread of the async runtime's caller: this must not panic).
    assert!(err.lines().any(|l| l.contains("DEBUG") && l.contains("csv-reader: ready (delimiter ',')")), "{}", text(&o));

    // Within the per-call log budget, as `host.log` lines are.
    let o = run("    limits:\n      max_log_bytes: 8\n", &[("MODELCALL_LOG", "warn,modelcall::plugin=debug")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains(printed), "over the budget: {}", text(&o));
    assert!(err.contains("bytes of plugin log over limits.max_log_bytes = 8"), "{}", text(&o));
}
