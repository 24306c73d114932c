//! `modelcall report`: the shipped quickstart task run against the simulator, its report
//! written and checked (sections, size, no network needed, one score column, latency consistent
//! with the slowest list, judge quality in words), then rendered by headless Chromium (installed
//! by the test with apt when `MODELCALL_REPORT_BROWSER_SETUP=1` and it is missing; otherwise
//! `SKIPPED: …`): a screenshot with the record browser open is kept as a test artifact
//! (`target/report-screenshot.png`), the page must show every section, log no console error,
//! and its search by id (from `#id=…`) must leave only the matching record shown. Also: a run
//! whose every record failed is not "completed", and `report A B` compares two runs of the same
//! input with scripted replies (agreement checked against the test's own computation).

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

const SECTIONS: &[&str] =
    &["records", "browser", "scores", "judge-quality", "over-time", "tokens", "history", "records-to-look-at", "settings", "plugins", "config"];

/// The text of the element with `id` (its first text node), in an HTML page.
fn text_of<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element {id}"));
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    &rest[start..end]
}

/// The `data-value` of the element with `id`.
fn value_of(page: &str, id: &str) -> f64 {
    let at = page.find(&format!("id=\"{id}\" data-value=\"")).unwrap_or_else(|| panic!("no value {id}")) + id.len() + 18;
    page[at..at + page[at..].find('"').unwrap()].parse().unwrap()
}

/// The opening tag of the record `key` in the browser.
fn record_tag<'a>(dom: &'a str, key: &str) -> &'a str {
    let at = dom.find(&format!("data-id=\"{key}\"")).unwrap_or_else(|| panic!("record {key} not in the browser"));
    let start = dom[..at].rfind('<').unwrap();
    &dom[start..at + dom[at..].find('>').unwrap() + 1]
}

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
    // Self-contained: nothing fetched; the one script is inline.
    for fetches in ["<script src", "<script type=\"module\"", "<link", "<img", "src=\"http", "href=\"http", "url(http", "import(", "fetch("] {
        assert!(!page.contains(fetches), "the report must not contain `{fetches}`");
    }
    assert_eq!(page.matches("<script").count(), 1, "one inline script (the record browser's search)");
    assert!(page.contains("SIMULATED endpoint"), "a simulated run says so");
    assert_eq!(text_of(&page, "run-status"), "completed");
    // The record browser: a 40-record run shows every record, each with its reply and verdict.
    assert_eq!(page.matches("<div class=\"rec\" data-id=\"en-").count(), 40, "every record in the browser");
    assert!(page.contains("id=\"browser-search\""), "a search box");
    assert!(page.contains("→ reply") && page.contains("→ parsed verdict"));
    // One score column: `score_value` (the parser's copy of `score`) is not charted or judged again.
    assert!(!page.contains("score_value: records per value") && !page.contains("<code>score_value</code>"), "score_value shown as a second score");
    assert!(page.contains("score: the headline score"), "the headline is `score`");
    // Judge quality in words, no raw JSON or null.
    let quality = &page[page.find("<section id=\"judge-quality\">").unwrap()..page.find("<section id=\"over-time\">").unwrap()];
    assert!(quality.contains("of replies at the scale's ends (1 to 5, from the prompt's checks)"), "{quality}");
    assert!(!quality.contains("null") && !quality.contains("{\""), "judge quality as raw JSON: {quality}");
    // Every chart has both axes labelled.
    let charts = page.matches("<svg").count();
    assert!(charts >= 1, "{charts} charts");
    assert_eq!(page.matches("class=\"x-label\"").count(), charts, "an x-axis label on every chart");
    assert_eq!(page.matches("class=\"y-label\"").count(), charts, "a y-axis label on every chart");
    // The latency's max is the slowest record's.
    let over_time = &page[page.find("<section id=\"over-time\">").unwrap()..];
    let max = over_time.split("retries included</th><td>").nth(1).unwrap().split('<').next().unwrap().rsplit(" / ").next().unwrap().to_string();
    let slowest = &page[page.find("<section id=\"records-to-look-at\">").unwrap()..];
    let first = slowest.split("</code></a></td><td>").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(max, first, "max latency and the slowest record agree");
    // Run history and settings.
    assert!(page.contains("1 run records in <code>.modelcall/runs</code>"), "the run history");
    assert!(page.contains("results made with them") && page.contains("You assess English text"), "the settings and the prompt");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(folder.join("run_summary.json")).unwrap()).unwrap();
    let q = &summary["judge_quality"];
    assert_eq!(q["rows"], 40, "{q}");
    assert_eq!(q["headline"], "score", "{q}");
    assert!(q["fields"].get("score_value").is_none(), "score_value is not a second field: {q}");
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
        let _ = Command::new("timeout")
            .args(["900", "apt-get", "install", "-y", "-q", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
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
    // The screenshot with the record browser open: a search from the address opens the matches.
    let o = Command::new("timeout")
        .arg("120")
        .arg(&browser)
        .args(common_flags)
        .arg("--window-size=1280,5000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("{url}#id=en-00"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(shot.is_file() && std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot: {log}");
    let console_errors: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") && (l.contains("Error") || l.contains("Uncaught"))).collect();
    assert!(console_errors.is_empty(), "console errors: {console_errors:?}");
    let dump = |fragment: &str| {
        let o = Command::new("timeout").arg("120").arg(&browser).args(common_flags).arg("--dump-dom").arg(format!("{url}{fragment}")).output().unwrap();
        let log = String::from_utf8_lossy(&o.stderr).to_string();
        let console_errors: Vec<String> =
            log.lines().filter(|l| l.contains("CONSOLE") && (l.contains("Error") || l.contains("Uncaught"))).map(str::to_string).collect();
        assert!(console_errors.is_empty(), "console errors: {console_errors:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let dom = dump("");
    for id in SECTIONS {
        assert!(dom.contains(&format!("id=\"{id}\"")), "the rendered page has section {id}");
    }
    assert!(dom.contains("data-matches=\"40\""), "the script ran: every record shown without a search");
    // The search, run by the page's script from the address: one record left, opened.
    let dom = dump("#id=en-003");
    assert!(dom.contains("data-matches=\"1\"") && dom.contains("1 of 40 records match"), "one match for en-003");
    let hit = record_tag(&dom, "en-003");
    assert!(!hit.contains("hidden"), "the match is shown: {hit}");
    assert!(dom[dom.find("data-id=\"en-003\"").unwrap()..].split("</details>").next().unwrap().contains("<details open"), "the match is opened");
    for other in ["en-004", "en-030"] {
        assert!(record_tag(&dom, other).contains("hidden"), "{other} is hidden: {}", record_tag(&dom, other));
    }
    // A prefix finds several; an unknown id says so.
    let dom = dump("#id=en-00");
    assert!(dom.contains("data-matches=\"10\""), "en-000 … en-009");
    let dom = dump("#id=nope");
    assert!(dom.contains("data-matches=\"0\""));
    let none = record_tag(&dom, "en-000");
    assert!(none.contains("hidden"));
    assert!(!dom[dom.find("id=\"browser-none\"").unwrap() - 40..].split('>').next().unwrap().contains("hidden"), "the no-match note is shown");
    eprintln!("report screenshot: {}", shot.display());
}

/// A model config for the simulator at `base_url` without HTTP retries.
fn model_without_retries(s: &common::Scratch, base_url: &str) -> PathBuf {
    s.write("model0.yaml", format!("client_config:\n  base_url: \"{base_url}\"\n  api_key: \"sk-test\"\n  timeout: 5\n  max_retries: 0\nchat_config:\n  model: \"m\"\n  temperature: 0\n").as_bytes())
}

#[test]
fn a_run_whose_every_record_failed_is_not_completed() {
    let s = common::Scratch::new();
    common::write_records(&s.path("input/data.jsonl"), 12);
    let model = model_without_retries(&s, "sim://?fault=500:1");
    let task = s.scoring_task_for(&model, 4, "", "");
    let o = Command::new(bin()).arg("run-task").arg(&task).arg("--no-progress").output().unwrap();
    assert_eq!(o.status.code(), Some(3), "finished with failed records: {}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(bin()).arg("report").arg(s.path("out")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(s.path("out/report.html")).unwrap();
    assert_eq!(text_of(&page, "run-status"), "failed: every record failed (12)");
    // Every failure is in the browser, with its cause and message.
    let browser = &page[page.find("<section id=\"browser\">").unwrap()..page.find("<section id=\"scores\">").unwrap()];
    assert_eq!(browser.matches("class=\"rec failure\"").count(), 12, "every failure listed");
    assert!(browser.contains("Failures (12)") && browser.contains("model_server_error") && browser.contains("simulated server error"), "{browser}");
    assert!(record_tag(browser, "r000007").contains("failure"));
}

/// Writes scripted replies: record `i` (its text says "Record number i talks") gets `score(i)`.
fn replies(s: &common::Scratch, n: usize, score: impl Fn(usize) -> u32) -> PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| serde_json::json!({"match": format!("Record number {i} talks"), "reply": format!("```json\n{{\"score\": {}}}\n```", score(i))}).to_string())
        .collect();
    s.write("replies.jsonl", (lines.join("\n") + "\n").as_bytes())
}

/// Runs 60 records against the simulator answering `score(i)`; returns the output folder.
fn scripted_run(s: &common::Scratch, score: impl Fn(usize) -> u32) -> PathBuf {
    common::write_records(&s.path("input/data.jsonl"), 60);
    let file = replies(s, 60, score);
    let model = s.model(&format!("sim://?replies={}", file.display()));
    let task = s.scoring_task_for(&model, 8, "", "");
    let o = Command::new(bin()).arg("run-task").arg(&task).arg("--no-progress").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.path("out")
}

#[test]
fn report_a_b_compares_two_judges_of_the_same_input() {
    let judge_a = |i: usize| 1 + (i % 5) as u32;
    let judge_b = |i: usize| match i % 6 {
        0 | 1 => judge_a(i),
        2 => (judge_a(i) + 1).min(5),
        3 => judge_a(i).saturating_sub(1).max(1),
        4 => 6 - judge_a(i),
        _ => 5,
    };
    let (sa, sb) = (common::Scratch::new(), common::Scratch::new());
    let (a, b) = (scripted_run(&sa, judge_a), scripted_run(&sb, judge_b));
    let o = Command::new(bin()).arg("report").arg(&a).arg(&b).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let page = std::fs::read_to_string(a.join("compare.html")).unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).trim().ends_with("compare.html"));
    // The test's own computation.
    let n = 60;
    let pairs: Vec<(f64, f64)> = (0..n).map(|i| (judge_a(i) as f64, judge_b(i) as f64)).collect();
    let exact = pairs.iter().filter(|(x, y)| x == y).count() as f64 / n as f64;
    let within = pairs.iter().filter(|(x, y)| (x - y).abs() <= 1.0).count() as f64 / n as f64;
    let shift = pairs.iter().map(|(x, y)| y - x).sum::<f64>() / n as f64;
    let close = |x: f64, y: f64| (x - y).abs() < 1e-4;
    assert_eq!(value_of(&page, "cmp-pairs"), 60.0);
    assert_eq!(value_of(&page, "cmp-only-a") + value_of(&page, "cmp-only-b"), 0.0);
    assert!(close(value_of(&page, "cmp-exact"), exact), "exact {} vs {exact}", value_of(&page, "cmp-exact"));
    assert!(close(value_of(&page, "cmp-within1"), within), "within 1 {} vs {within}", value_of(&page, "cmp-within1"));
    assert!(close(value_of(&page, "cmp-shift"), shift), "shift {} vs {shift}", value_of(&page, "cmp-shift"));
    assert!(err.contains(&format!("exact agreement {:.1} %", exact * 100.0)), "{err}");
    // The confusion table: each cell counts the records with that pair of scores.
    for va in 1..=5u32 {
        for vb in 1..=5u32 {
            let count = (0..n).filter(|i| judge_a(*i) == va && judge_b(*i) == vb).count();
            let cell = format!("data-a=\"{va}\" data-b=\"{vb}\">{}<", if count > 0 { count.to_string() } else { String::new() });
            assert!(page.contains(&cell), "confusion cell {va},{vb} should hold {count}");
        }
    }
    // The records that moved most: the largest |B - A| first, with both replies.
    let biggest = pairs.iter().map(|(x, y)| (y - x).abs()).fold(0.0, f64::max);
    let first_moved = page.split("<tr class=\"moved\" data-id=\"").nth(1).unwrap().split('"').next().unwrap();
    let i: usize = first_moved.trim_start_matches('r').parse().unwrap();
    assert_eq!((judge_b(i) as f64 - judge_a(i) as f64).abs(), biggest, "{first_moved} moved most");
    for section in ["agreement", "shift", "confusion", "moved"] {
        assert!(page.contains(&format!("<section id=\"{section}\">")), "section {section}");
    }
    assert!(!page.contains("<script"), "the comparison needs no script");
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
