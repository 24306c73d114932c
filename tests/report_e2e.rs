//! `modelcall report`: the shipped quickstart task run against the simulator, its report
//! written and checked (sections, size, no network needed), then rendered by headless
//! Chromium (installed by the test with apt when `MODELCALL_REPORT_BROWSER_SETUP=1` and it is
//! missing; otherwise `SKIPPED: …`): a screenshot is kept as a test artifact
//! (`target/report-screenshot.png`), the page must show every section and log no console error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_modelcall")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

const SECTIONS: &[&str] = &["records", "scores", "judge-quality", "over-time", "tokens", "records-to-look-at", "plugins", "config"];

/// Runs the quickstart in a scratch copy of `configs/` and writes its report; returns the
/// output folder and the report.
fn quickstart_report(root: &Path) -> (PathBuf, String) {
    common::copy_dir(&repo().join("configs"), &root.join("configs"));
    let o = Command::new(bin()).current_dir(root).args(["run-task", "configs/tasks/quickstart/en_corpus_quality_sim.yaml", "--no-progress"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let folder = root.join("output/quickstart/en_corpus_quality_sim");
    assert!(err.contains(&format!("modelcall report {}", "output/quickstart/en_corpus_quality_sim")), "the end of the run points to the report: {err}");
    let o = Command::new(bin()).current_dir(root).arg("report").arg(&folder).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(folder.join("report.html")).unwrap();
    (folder, page)
}

#[test]
fn the_report_has_every_section_offline_and_the_summary_has_judge_quality() {
    let root = tempfile::tempdir().unwrap();
    let (folder, page) = quickstart_report(root.path());
    for id in SECTIONS {
        assert!(page.contains(&format!("<section id=\"{id}\">")), "section {id} missing");
    }
    assert!(page.len() < 2 * 1024 * 1024, "under 2 MB: {}", page.len());
    // Self-contained: nothing fetched, nothing run.
    for fetches in ["<script", "<link", "<img", "src=\"http", "href=\"http", "url(http"] {
        assert!(!page.contains(fetches), "the report must not contain `{fetches}`");
    }
    assert!(page.contains("SIMULATED endpoint"), "a simulated run says so");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(folder.join("run_summary.json")).unwrap()).unwrap();
    let q = &summary["judge_quality"];
    assert_eq!(q["rows"], 40, "{q}");
    let score = &q["fields"]["score"];
    assert_eq!(score["scale"], serde_json::json!([1.0, 5.0]), "the scale comes from the prompt's checks: {q}");
    assert!(score["share_at_extremes"].as_f64().is_some_and(|s| (0.0..=1.0).contains(&s)), "{q}");
    assert!(q["drift_first_vs_last_tenth"]["total_variation"].is_number(), "{q}");
    assert!(summary["timeline"]["done"].as_array().is_some_and(|d| d.iter().map(|v| v.as_u64().unwrap()).sum::<u64>() == 40), "{}", summary["timeline"]);
}

fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: report_e2e (browser): {why}");
}

fn find_browser() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"].iter().find_map(|b| {
        Command::new("which").arg(b).output().ok().filter(|o| o.status.success()).map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
}

/// Debian's `chromium`, installed with apt when allowed (bounded by a timeout).
fn browser() -> Option<PathBuf> {
    if let Some(b) = find_browser() {
        return Some(b);
    }
    if std::env::var("MODELCALL_REPORT_BROWSER_SETUP").is_ok_and(|v| v == "1") {
        let _ = Command::new("timeout").args(["900", "apt-get", "install", "-y", "-q", "chromium"]).env("DEBIAN_FRONTEND", "noninteractive").stdout(Stdio::null()).status();
        return find_browser();
    }
    None
}

#[test]
fn headless_chromium_renders_the_report_without_console_errors() {
    let Some(browser) = browser() else { return skipped("no chromium (set MODELCALL_REPORT_BROWSER_SETUP=1 to let the test install Debian's)") };
    let root = tempfile::tempdir().unwrap();
    let (folder, _) = quickstart_report(root.path());
    let url = format!("file://{}", folder.join("report.html").display());
    let shot = repo().join("target/report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let common_flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--enable-logging=stderr", "--v=0"];
    let o = Command::new("timeout")
        .arg("120")
        .arg(&browser)
        .args(common_flags)
        .arg("--window-size=1280,4000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(shot.is_file() && std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot: {log}");
    let console_errors: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") && (l.contains("Error") || l.contains("Uncaught"))).collect();
    assert!(console_errors.is_empty(), "console errors: {console_errors:?}");
    let dom = Command::new("timeout").arg("120").arg(&browser).args(common_flags).arg("--dump-dom").arg(&url).output().unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in SECTIONS {
        assert!(dom.contains(&format!("id=\"{id}\"")), "the rendered page has section {id}");
    }
    eprintln!("report screenshot: {}", shot.display());
}

/// `options.audit_sample`: a share of the records is judged twice (chosen by key, the same on
/// every run); the report and the summary show the test-retest agreement.
#[test]
fn an_audit_sample_measures_test_retest_agreement() {
    let s = common::Scratch::new();
    common::write_records(&s.path("input/data.jsonl"), 200);
    let task = s.scoring_task("sim://", 8, "", "options:\n  audit_sample: 0.1\n");
    let o = Command::new(bin()).arg("run-task").arg(&task).arg("--no-progress").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(s.path("out/run_summary.json")).unwrap()).unwrap();
    let retest = &summary["judge_quality"]["test_retest"];
    let pairs = retest["pairs"].as_u64().unwrap_or(0);
    assert!((5..=40).contains(&pairs), "about 10 % of 200: {retest}");
    assert_eq!(summary["requests"].as_u64().unwrap(), 200 + pairs, "one more request per audited record");
    // The simulator answers the same question the same way.
    assert_eq!(retest["exact_agreement"], 1.0, "{retest}");
    let bad = s.scoring_task("sim://", 8, "", "options:\n  audit_sample: 5\n");
    let o = Command::new(bin()).arg("run-task").arg(&bad).arg("--no-progress").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("options.audit_sample"), "{}", String::from_utf8_lossy(&o.stderr));
}
