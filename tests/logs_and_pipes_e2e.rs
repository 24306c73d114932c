//! What a run says while it runs, and the command line around it (issue 20 items 1, 5, 7):
//! the debug log has one line per attempt (`-v`), the default level one line per distinct
//! problem and counts, the runtime's internals stay out unless asked for by target, the JSON
//! log carries the same events with stable fields; no command panics on a closed pipe; every
//! command's `--help` has examples.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{read_jsonl, write_records, Scratch};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

/// A 30 % 429 mix, answered at once (no Retry-After wait).
const FAULT_MIX: &str = "sim://?fault=429=0.3&retry_after_secs=0";

/// `modelcall ARGS` with no terminal and no MODELCALL_LOG from the environment.
fn modelcall(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env_remove("MODELCALL_LOG").env_remove("NO_COLOR").stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running modelcall")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_success(out: &Output) {
    assert!(out.status.success(), "modelcall failed: {}\nstdout:\n{}\nstderr:\n{}", out.status, text(&out.stdout), text(&out.stderr));
}

/// A scoring task over 150 records at the fault mix, with `extra` YAML appended.
fn fault_task(s: &Scratch, extra: &str) -> PathBuf {
    write_records(&s.path("input/a.jsonl"), 150);
    s.scoring_task(FAULT_MIX, 8, "", extra)
}

/// The run's retries, as its summary counts them.
fn summary_retries(s: &Scratch) -> u64 {
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    summary["retries_by_cause"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or_else(|| summary["cumulative"]["retries"].as_u64().unwrap())
}

#[test]
fn verbose_run_logs_one_line_per_retry_with_its_cause_and_no_runtime_internals() {
    let s = Scratch::new();
    let task = fault_task(&s, "");
    let out = modelcall(&["-v", "run-task", task.to_str().unwrap(), "--no-progress"], &[]);
    assert_success(&out);
    let stderr = text(&out.stderr);
    let retries: Vec<&str> = stderr.lines().filter(|l| l.contains("event=\"retry\"")).collect();
    let expected = summary_retries(&s);
    assert!(expected > 10, "a 30 % 429 mix retries: {expected}\n{stderr}");
    assert_eq!(retries.len() as u64, expected, "one debug line per retry\n{stderr}");
    for l in &retries {
        assert!(l.contains("DEBUG"), "{l}");
        assert!(l.contains("cause=\"rate_limited\""), "{l}");
        assert!(l.contains("status=429"), "{l}");
        assert!(l.contains(" key=r0"), "{l}");
        assert!(l.contains("latency_ms="), "{l}");
        assert!(l.contains("endpoint=http://127.0.0.1:"), "{l}");
    }
    // One line per attempt: the answered ones too, each with its record's key.
    let answered = stderr.lines().filter(|l| l.contains("event=\"attempt\"")).count();
    assert!(answered >= 140, "{answered} answered attempts logged\n{stderr}");
    assert!(stderr.lines().any(|l| l.contains("event=\"attempt\"") && l.contains(" key=r0")), "{stderr}");
    for internal in ["wasmtime", "cranelift", "hyper", "h2::", "rustls"] {
        assert!(!stderr.contains(internal), "runtime internals ({internal}) without being asked for\n{stderr}");
    }
    // The key never shows.
    assert!(!stderr.contains("sk-test-secret-1234"), "{stderr}");
}

#[test]
fn a_bare_debug_level_is_modelcalls_own_and_runtime_lines_need_their_target() {
    let s = Scratch::new();
    let task = fault_task(&s, "");
    let out = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"], &[("MODELCALL_LOG", "debug")]);
    assert_success(&out);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.contains("event=\"retry\"")).count() as u64, summary_retries(&s), "{stderr}");
    assert!(!stderr.contains("wasmtime") && !stderr.contains("cranelift"), "{stderr}");
    // Asked for by target, the runtime's lines come (the plugins are compiled or loaded).
    let s2 = Scratch::new();
    let task = fault_task(&s2, "");
    let out = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"], &[("MODELCALL_LOG", "wasmtime=debug")]);
    assert_success(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("wasmtime"), "{stderr}");
    assert!(!stderr.contains("event=\"retry\""), "modelcall stays at its default level\n{stderr}");
}

#[test]
fn default_level_reports_429s_once_then_as_counts_not_per_retry() {
    let s = Scratch::new();
    let task = fault_task(&s, "");
    let out = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"], &[]);
    assert_success(&out);
    let stderr = text(&out.stderr);
    let retries = summary_retries(&s);
    assert!(retries > 10, "{retries}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("429 from http://127.0.0.1:")).collect();
    assert!(!lines.is_empty(), "the first 429 is reported\n{stderr}");
    assert!(lines[0].contains("retrying with backoff"), "{}", lines[0]);
    // The first occurrence, then counts (every 10 s and what is left at the end): a few
    // lines, not one per retry, and the counts add up to the retries after the first.
    assert!((lines.len() as u64) < retries / 2, "{} lines for {retries} retries\n{stderr}", lines.len());
    let counted: u64 = lines[1..]
        .iter()
        .map(|l| {
            let after = l.split("/chat/completions: ").nth(1).unwrap_or_else(|| panic!("{l}"));
            after.split(' ').next().unwrap().parse::<u64>().unwrap_or_else(|_| panic!("a count: {l}"))
        })
        .sum();
    assert_eq!(counted + 1, retries, "{stderr}");
    assert!(lines[1..].iter().all(|l| l.contains(" in the last ") && l.contains("backing off")), "{stderr}");
    assert!(!stderr.contains("event=\"retry\""), "no per-retry lines at the default level\n{stderr}");
    // -q: errors only.
    let s2 = Scratch::new();
    let task = fault_task(&s2, "");
    let out = modelcall(&["-q", "run-task", task.to_str().unwrap(), "--no-progress"], &[]);
    assert_success(&out);
    assert!(!text(&out.stderr).contains("429 from"), "{}", text(&out.stderr));
}

/// The JSON lines of the one log file under `dir`.
fn json_log(dir: &Path) -> Vec<Value> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir.join("e2e")).unwrap() {
        files.push(e.unwrap().path());
    }
    assert_eq!(files.len(), 1, "{files:?}");
    read_jsonl(&files[0])
}

#[test]
fn json_log_has_attempt_retry_unit_and_run_events_with_stable_fields() {
    let s = Scratch::new();
    let logs = s.path("logs");
    let task = fault_task(&s, &format!("logging:\n  log_dir: \"{}\"\n  level: debug\n", logs.display()));
    let out = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"], &[]);
    assert_success(&out);
    let lines = json_log(&logs);
    let events = |name: &str| -> Vec<&Value> { lines.iter().filter(|l| l["fields"]["event"] == name).collect() };
    let retries = events("retry");
    assert_eq!(retries.len() as u64, summary_retries(&s), "one retry event per retry");
    for r in &retries {
        let f = &r["fields"];
        assert_eq!(r["level"], "DEBUG", "{r}");
        assert!(f["key"].as_str().is_some_and(|k| k.starts_with("r0")), "{r}");
        assert!(f["endpoint"].as_str().is_some_and(|e| e.starts_with("http://127.0.0.1:")), "{r}");
        assert_eq!(f["status"], 429, "{r}");
        assert!(f["latency_ms"].is_number(), "{r}");
        assert_eq!(f["cause"], "rate_limited", "{r}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
    }
    let attempts = events("attempt");
    assert!(attempts.len() >= 140, "{}", attempts.len());
    assert!(attempts.iter().all(|a| a["fields"]["status"] == 200 && a["fields"]["latency_ms"].is_number() && a["fields"]["key"].is_string()));
    let units = events("unit_done");
    assert_eq!(units.len(), 1, "{units:?}");
    assert!(units[0]["fields"]["scored"].as_u64().unwrap() + units[0]["fields"]["failed"].as_u64().unwrap() == 150, "{}", units[0]);
    let done = events("run_done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["level"], "INFO");
    assert_eq!(done[0]["fields"]["status"], "completed", "{}", done[0]);
    assert_eq!(done[0]["fields"]["retries"].as_u64(), Some(summary_retries(&s)), "{}", done[0]);
    // The first 429 as a problem line, at info.
    assert!(events("problem").iter().any(|p| p["fields"]["problem"] == "429"), "{lines:?}");
    // No runtime internals in the file either.
    assert!(lines.iter().all(|l| !l["target"].as_str().unwrap_or("").starts_with("wasmtime")));
}

#[test]
fn json_log_at_info_has_the_run_and_unit_events_but_no_attempts() {
    let s = Scratch::new();
    let logs = s.path("logs");
    let task = fault_task(&s, &format!("logging:\n  log_dir: \"{}\"\n", logs.display()));
    let out = modelcall(&["run-task", task.to_str().unwrap(), "--no-progress"], &[]);
    assert_success(&out);
    let lines = json_log(&logs);
    let count = |name: &str| lines.iter().filter(|l| l["fields"]["event"] == name).count();
    assert_eq!(count("run_done"), 1);
    assert_eq!(count("unit_done"), 1);
    assert_eq!(count("attempt") + count("retry"), 0);
    assert!(count("problem") >= 1);
}

/// A pipe whose reading end is already closed: whatever is written to it gets EPIPE.
fn closed_pipe() -> Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    Stdio::from(unsafe { OwnedFd::from_raw_fd(fds[1]) })
}

/// Runs `modelcall ARGS` with stdout a closed pipe (`modelcall … | head -0`).
fn into_closed_pipe(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("MODELCALL_LOG")
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("running modelcall")
}

fn assert_quiet_stop(what: &str, out: &Output) {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: panicked on a closed pipe\n{stderr}");
    assert_ne!(out.status.code(), Some(101), "{what}: {}\n{stderr}", out.status);
}

#[test]
fn no_command_panics_on_a_closed_pipe() {
    let s = Scratch::new();
    write_records(&s.path("input/a.jsonl"), 20);
    let task = s.scoring_task("sim://", 4, "", "");
    let task = task.to_str().unwrap();
    // A sharded run first, so that `status` and `merge` have something to print.
    for shard in ["0/2", "1/2"] {
        assert_success(&modelcall(&["run-task", task, "--shard", shard, "--no-progress"], &[]));
    }
    let out_dir = s.path("out");
    let out_dir = out_dir.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run-task", task, "--dry-run"],
        vec!["run-task", task, "--shard", "0/2", "--no-progress"],
        vec!["status", task],
        vec!["submit", task, "--scheduler", "slurm", "--shards", "2", "--dry-run"],
        vec!["submit", task, "--scheduler", "k8s", "--shards", "2", "--dry-run"],
        vec!["plugin", "list"],
        vec!["plugin", "check", "builtin:json-score"],
        vec!["merge", task],
        vec!["report", out_dir],
        vec!["serve-sim", "--port", "0", "--exit-after-secs", "1"],
        vec!["--help"],
        vec!["run-task", "--help"],
        vec!["--version"],
    ];
    for args in cases {
        let out = into_closed_pipe(&args);
        assert_quiet_stop(&args.join(" "), &out);
    }
    // The plain run, unsharded, into a closed pipe still does its work.
    let out = into_closed_pipe(&["run-task", task, "--no-progress"]);
    assert_quiet_stop("run-task", &out);
    assert_eq!(read_jsonl(&s.path("out/a.jsonl")).len(), 20);
}

/// Every command and subcommand, by path.
const COMMANDS: &[&[&str]] = &[
    &["run-task"],
    &["plugin"],
    &["plugin", "list"],
    &["plugin", "check"],
    &["plugin", "run"],
    &["plugin", "bench"],
    &["plugin", "new"],
    &["plugin", "build"],
    &["plugin", "dev"],
    &["submit"],
    &["status"],
    &["merge"],
    &["serve-sim"],
    &["reparse"],
    &["batch"],
    &["batch", "export"],
    &["batch", "import"],
    &["cache"],
    &["report"],
    &["api-call"],
    &["preprocess"],
    &["preprocess", "github"],
    &["preprocess", "repomix"],
    &["pipeline"],
];

#[test]
fn every_commands_help_has_examples() {
    let top = modelcall(&["--help"], &[]);
    assert_success(&top);
    let top = text(&top.stdout);
    assert!(top.contains("Examples:"), "{top}");
    assert!(top.contains("Compatibility with the Python modelcall"), "{top}");
    // The compatibility commands are under their own heading, not in the main list.
    let main_list = top.split("Options:").next().unwrap();
    assert!(!main_list.contains("api-call"), "{main_list}");
    for global in ["-v, --verbose", "-q, --quiet", "--color <WHEN>"] {
        assert!(top.contains(global), "{global}\n{top}");
    }
    for path in COMMANDS {
        let mut args: Vec<&str> = path.to_vec();
        args.push("--help");
        let out = modelcall(&args, &[]);
        assert_success(&out);
        let help = text(&out.stdout);
        assert!(help.contains("Examples:"), "modelcall {} --help has no examples\n{help}", path.join(" "));
        assert!(help.contains("--verbose"), "-v on every command: {}\n{help}", path.join(" "));
    }
}

/// The flag lines of a help text with no description: `  -x, --name <V>  text` or, in the
/// long layout, the flag alone on its line and the text indented below it.
fn undescribed_flags(help: &str) -> Vec<String> {
    // The examples at the end are not flags.
    let lines: Vec<&str> = help.split("\nExamples:").next().unwrap().lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_flag = (2..=6).contains(&indent(l)) && (t.starts_with("--") || (t.starts_with('-') && t.chars().nth(2) == Some(',')));
        if !is_flag {
            continue;
        }
        let same_line = t.split_once("  ").map(|x| x.1).is_some_and(|d| !d.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|n| indent(n) > indent(l) + 2 && !n.trim().is_empty());
        if !same_line && !next_line {
            out.push(t.to_string());
        }
    }
    out
}

#[test]
fn every_flag_is_described_and_compatibility_flags_have_their_heading() {
    let mut undescribed = Vec::new();
    for path in COMMANDS {
        let mut args: Vec<&str> = path.to_vec();
        args.push("--help");
        let help = text(&modelcall(&args, &[]).stdout);
        for flag in undescribed_flags(&help) {
            undescribed.push(format!("modelcall {}: {flag}", path.join(" ")));
        }
    }
    assert_eq!(undescribed, Vec::<String>::new());
    let help = text(&modelcall(&["run-task", "--help"], &[]).stdout);
    let (main, compat) = help.split_once("Compatibility with the Python modelcall:").unwrap_or_else(|| panic!("{help}"));
    assert!(!main.contains("--job_index") && !main.contains("--world_size"), "{help}");
    assert!(compat.contains("--job_index") && compat.contains("--world_size"), "{help}");
    assert!(main.contains("--redo-changed") && main.contains("--keep-existing"), "{help}");
}

#[test]
fn color_flag_and_no_color() {
    let always = text(&modelcall(&["--color", "always", "--help"], &[]).stdout);
    assert!(always.contains('\u{1b}'), "--color always colours the help\n{always}");
    let never = text(&modelcall(&["--color=never", "run-task", "--help"], &[]).stdout);
    assert!(!never.contains('\u{1b}'), "{never}");
    let no_color = text(&modelcall(&["--help"], &[("NO_COLOR", "1")]).stdout);
    assert!(!no_color.contains('\u{1b}'), "{no_color}");
    let bad = modelcall(&["--color", "sometimes", "--help"], &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}
