//! End-to-end tests of `load_task` on reference-style task files (fixtures/).

mod common;

use common::Fx;
use modelcall_config::{dry_run_plan, load_task_with, ConfigError, DistillationStep, LoadedTask, Overrides, TaskType, Vars};
use std::path::{Path, PathBuf};

impl Fx {
    /// Loads `task` after writing `text` to it.
    fn load_text(&self, task: &str, text: &str, extra: &[(&str, &str)]) -> Result<LoadedTask, ConfigError> {
        std::fs::write(self.path(task), text).unwrap();
        load_task_with(&self.path(task), &Overrides::default(), self.vars(extra))
    }
}

const TASK: &str = "repomix_quality_rating.yaml";

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

#[test]
fn a_full_reference_scoring_task_loads() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    let t = fx.load_text(TASK, &text, &[]).unwrap();
    let task = &t.task;
    assert_eq!(task.task_type, TaskType::DataScoring);
    assert_eq!(task.concurrency.max_concurrent_requests, Some(64));
    assert_eq!(task.data.input_key.as_deref(), Some("content_truncate_32k"));
    assert_eq!(task.preprocess.languages.as_deref(), Some(&["Python".to_string(), "Rust".to_string()][..]));
    assert_eq!(task.preprocess.script_type, modelcall_config::task::ScriptType::RepoXml);
    assert_eq!(task.debug.max_files_limit(), None, "debug disabled");
    assert!(task.options.resume() && !task.options.delete_existing());
    // Model config found beside the task file; key and base URL from the env file.
    let m = t.model.as_ref().unwrap();
    assert_eq!(m.path, fx.path("model.yaml"));
    assert_eq!(m.api_key.as_deref(), Some("sk-fixture-secret-key-9f3a"));
    assert_eq!(m.base_url, "http://from-env-file:8000/v1");
    assert_eq!(m.timeout.as_secs(), 1200, "environment.timeout stands in for client_config.timeout");
    assert_eq!(m.reasoning_effort(), Some("high"));
    let p = t.prompt.as_ref().unwrap();
    assert_eq!(p.output.json_key_must_exists, vec!["overall_score", "overall_quality_summary"]);
    assert!(p.system_text.as_deref().unwrap().starts_with("You are an expert"));
    // Fresh timestamp (nothing to resume), the same in both folders, {task_name} filled.
    let ts = t.timestamp.clone().unwrap();
    assert!(!t.resumed_earlier_run);
    assert_eq!(t.output_folder.as_deref(), Some(fx.path(&format!("tagged/repomix_quality_rating/{ts}")).as_path()));
    assert_eq!(t.stat_folder.as_deref(), Some(fx.path(&format!("stats/repomix_quality_rating/{ts}")).as_path()));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn every_never_read_key_is_reported_with_its_line() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    let t = fx.load_text(TASK, &text, &[]).unwrap();
    let expected = [
        ("concurrency.chunk_size", "chunk_size: 32"),
        ("concurrency.parquet_save_interval", "parquet_save_interval"),
        ("options.preprocess_resume", "preprocess_resume"),
        ("logging.progress_report_interval", "progress_report_interval"),
        ("logging.show_progress", "show_progress"),
        ("logging.batch_size", "batch_size: 20"),
        ("environment.conda_env", "conda_env"),
        ("environment.api_provider", "api_provider"),
        ("distributed.enabled", "enabled: false\n  world_size"),
        ("preprocess.seed", "seed: 42"),
        ("preprocess.group_by_language", "group_by_language"),
        ("preprocess.num_proc", "num_proc"),
        ("preprocess.batch_size", "batch_size: 1000"),
    ];
    for (key, needle) in expected {
        let k = t.ignored_keys.iter().find(|k| k.key == key).unwrap_or_else(|| panic!("{key} not reported: {:?}", t.ignored_keys));
        let want = match needle.split_once('\n') {
            Some((_, next)) => line_of(&text, next) - 1,
            None => line_of(&text, needle),
        };
        assert_eq!(k.line, Some(want), "{key}");
        assert_eq!(k.path, fx.path(TASK));
    }
    // From the model config: chat_config.timeout, which the reference discarded.
    let mt = t.ignored_keys.iter().find(|k| k.key == "chat_config.timeout").unwrap();
    assert_eq!((mt.path.clone(), mt.line), (fx.path("model.yaml"), Some(10)));
    // Keys with an effect are not reported.
    for key in ["retry.max_retries", "environment.timeout", "concurrency.max_concurrent_requests", "debug.max_files", "environment.tos_config_path"] {
        assert!(!t.ignored_keys.iter().any(|k| k.key == key), "{key} wrongly reported");
    }
    assert_eq!(t.ignored_keys.len(), expected.len() + 1, "{:#?}", t.ignored_keys);
}

#[test]
fn unknown_keys_name_file_line_and_a_suggestion() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    let bad = text.replace("  max_concurrent_requests: 64", "  max_concurent_requests: 64");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    let line = line_of(&bad, "max_concurent_requests");
    assert_eq!((e.line, e.column), (Some(line), Some(3)));
    assert_eq!(e.key.as_deref(), Some("concurrency.max_concurent_requests"));
    let s = e.to_string();
    assert!(s.starts_with(&format!("{}:{line}:3:", fx.path(TASK).display())), "{s}");
    assert!(s.contains("did you mean `concurrency.max_concurrent_requests`?"), "{s}");

    let bad = text.replace("retry:\n", "retyr:\n");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(line_of(&bad, "retyr:")), Some("retyr")));
    assert!(e.to_string().contains("unknown key at the top level") && e.to_string().contains("did you mean `retry`"), "{e}");

    // A key under the same name in two sections: the line must be the one in the right section.
    let bad = text.replace("  log_dir: \"logs\"", "  log_dir: \"logs\"\n  enabled: true");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("logging.enabled"));
    assert_eq!(e.line, Some(bad.lines().count()));

    // Deeper: inside a plugins entry.
    let bad = format!("{text}plugins:\n  parse:\n    role: score-parser\n    path: builtin:json-score\n    limts: {{timeout_ms: 5}}\n");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(bad.lines().count()), Some("plugins.parse.limts")));
    assert!(e.to_string().contains("did you mean `plugins.parse.limits`"), "{e}");
}

#[test]
fn output_row_group_rows_is_a_positive_integer_named_with_its_line() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    let with = |v: &str| format!("{text}\noutput:\n  row_group_rows: {v}\n  ordered: true\n");
    let t = fx.load_text(TASK, &with("5000"), &[]).unwrap();
    assert_eq!(t.task.output.row_group_rows.map(|n| n.get()), Some(5000));
    assert_eq!(t.task.output.ordered, Some(true));
    for bad in ["0", "-3", "lots", "1.5"] {
        let text = with(bad);
        let e = fx.load_text(TASK, &text, &[]).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(line_of(&text, "row_group_rows")), Some("output.row_group_rows")), "{bad}: {e}");
        assert!(e.to_string().contains("must be a positive whole number (1 or more)"), "{bad}: {e}");
    }
    let e = fx.load_text(TASK, &format!("{text}\noutput:\n  row_group_row: 10\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("did you mean `output.row_group_rows`"), "{e}");
}

#[test]
fn type_errors_name_the_key_and_line() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    let bad = text.replace("max_concurrent_requests: 64", "max_concurrent_requests: lots");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert_eq!(e.line, Some(line_of(&bad, "max_concurrent_requests")));
    let s = e.to_string();
    assert!(s.contains("`concurrency.max_concurrent_requests`: must be a whole number (0 or more), found \"lots\""), "{s}");

    // Quoted numbers (e.g. from `${VAR:-64}`) are numbers where numbers are wanted.
    let quoted = text.replace("max_concurrent_requests: 64", "max_concurrent_requests: \"${CONC:-48}\"");
    let t = fx.load_text(TASK, &quoted, &[]).unwrap();
    assert_eq!(t.task.concurrency.max_concurrent_requests, Some(48));
    let t = fx.load_text(TASK, &quoted, &[("CONC", "7")]).unwrap();
    assert_eq!(t.task.concurrency.max_concurrent_requests, Some(7));

    let bad = text.replace("  enabled: false\n  max_files: -1", "  enabled: sometimes\n  max_files: -1");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert_eq!((e.key.as_deref(), e.line), (Some("debug.enabled"), Some(line_of(&bad, "sometimes"))));

    let bad = text.replace("task_type: \"data_scoring\"", "task_type: \"data_scorng\"");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert!(e.to_string().contains(":3:") && e.to_string().contains("did you mean `data_scoring`"), "{e}");

    let bad = text.replace("script_type: \"repo_xml\"", "script_type: \"repo_xm\"");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert!(e.to_string().contains("preprocess.script_type") && e.to_string().contains("did you mean `repo_xml`"), "{e}");

    let bad = text.replace("task_name: \"repomix_quality_rating\"\n", "");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert!(e.to_string().contains("`task_name`: missing"), "{e}");

    let e = fx.load_text(TASK, "data: [unclosed\n", &[]).unwrap_err();
    assert!(e.line.is_some() && e.to_string().contains("not valid YAML"), "{e}");
}

#[test]
fn interpolation_defaults_missing_variables_and_env_file_precedence() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    // The env file wins over the environment (the reference loaded it with override).
    let t = fx.load_text(TASK, &text, &[("API_KEY", "sk-from-shell-0000"), ("BASE_URL", "http://shell/v1")]).unwrap();
    assert_eq!(t.model.unwrap().api_key.as_deref(), Some("sk-fixture-secret-key-9f3a"));

    // Without the env file: the environment, then the ${VAR:-default}.
    let no_env = text.replace("  config_path: \"keys.env\"\n", "");
    let t = fx.load_text(TASK, &no_env, &[("API_KEY", "sk-from-shell-0000")]).unwrap();
    let m = t.model.unwrap();
    assert_eq!((m.api_key.as_deref(), m.base_url.as_str()), (Some("sk-from-shell-0000"), "http://127.0.0.1:8000/v1"));

    // A variable with no value and no default: the file, line and variable are named.
    let e = fx.load_text(TASK, &no_env, &[]).unwrap_err();
    assert_eq!((e.file.clone(), e.line, e.key.as_deref()), (fx.path("model.yaml"), Some(3), Some("client_config.api_key")));
    assert!(e.to_string().contains("`API_KEY` is not set"), "{e}");
    let bad = no_env.replace("${OUT_DIR}/formatted", "${DATA_ROOT}/formatted");
    let e = fx.load_text(TASK, &bad, &[("API_KEY", "k")]).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(line_of(&bad, "DATA_ROOT")), Some("data.input_folder")));

    // A named env file that does not exist is a warning, and is cited if a variable is then missing.
    let gone = text.replace("config_path: \"keys.env\"", "config_path: \"gone.env\"");
    let t = fx.load_text(TASK, &gone, &[("API_KEY", "k")]).unwrap();
    assert!(t.warnings[0].contains("gone.env does not exist"), "{:?}", t.warnings);
    let e = fx.load_text(TASK, &gone, &[]).unwrap_err();
    assert!(e.to_string().contains("gone.env does not exist"), "{e}");
}

#[test]
fn secrets_are_masked_everywhere_we_print() {
    let fx = Fx::new("scoring");
    let t = fx.load_text(TASK, &fx.text(TASK), &[]).unwrap();
    let plan = dry_run_plan(&t);
    for shown in [plan.clone(), format!("{t:?}"), t.model.as_ref().unwrap().to_string()] {
        assert!(!shown.contains("sk-fixture-secret"), "secret leaked: {shown}");
    }
    assert!(plan.contains("***9f3a") && plan.contains("qwen3-coder-480b"), "{plan}");
    let notes = modelcall_config::schema::notes_block(&t.ignored_keys, true).unwrap();
    assert!(notes.contains("chunk_size") && notes.contains("no effect") && !notes.contains("sk-fixture-secret"), "{notes}");
}

#[test]
fn model_override_and_sim_urls() {
    let fx = Fx::new("scoring");
    std::fs::write(fx.path(TASK), fx.text(TASK)).unwrap();
    let o = Overrides { model_config: Some(fx.path("sim.yaml")), output_folder: Some(fx.path("elsewhere")) };
    let t = load_task_with(&fx.path(TASK), &o, fx.vars(&[])).unwrap();
    let m = t.model.as_ref().unwrap();
    assert!(m.is_simulated());
    let s = m.sim().unwrap();
    assert_eq!((s.options.latency.as_millis(), s.options.faults[0].kind.as_str(), s.options.faults[0].rate), (50, "429", 0.05));
    assert_eq!(t.output_folder, Some(fx.path("elsewhere")));
    let o = Overrides { model_config: Some(fx.path("nope.yaml")), output_folder: None };
    let e = load_task_with(&fx.path(TASK), &o, fx.vars(&[])).unwrap_err();
    assert!(e.to_string().contains("--model") && e.to_string().contains("model.config_path"), "{e}");
}

#[test]
fn missing_linked_configs_name_the_task_line() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK).replace("config_path: \"prompt.yaml\"", "config_path: \"prompts/nope.yaml\"");
    let e = fx.load_text(TASK, &text, &[]).unwrap_err();
    assert_eq!((e.file.clone(), e.line), (fx.path(TASK), Some(line_of(&text, "prompts/nope.yaml"))));
    assert!(e.to_string().contains("prompt.config_path") && e.to_string().contains("prompts/nope.yaml"), "{e}");
}

#[test]
fn resume_goes_into_the_newest_earlier_run_with_state() {
    let fx = Fx::new("scoring");
    let base = fx.path("tagged/repomix_quality_rating");
    std::fs::create_dir_all(base.join("20250101_000000")).unwrap();
    std::fs::write(base.join("20250101_000000/a.parquet"), "x").unwrap();
    std::fs::create_dir_all(base.join("20250102_000000/.modelcall")).unwrap();
    std::fs::create_dir_all(base.join("20250103_000000")).unwrap();
    let text = fx.text(TASK);
    let t = fx.load_text(TASK, &text, &[]).unwrap();
    assert!(t.resumed_earlier_run);
    assert_eq!(t.output_folder, Some(base.join("20250102_000000")));
    // The stat folder gets the same timestamp and its {task_name} (the reference left it unreplaced).
    assert_eq!(t.stat_folder, Some(fx.path("stats/repomix_quality_rating/20250102_000000")));
    // Resume off: a fresh folder.
    let t = fx.load_text(TASK, &text.replace("main_resume: true", "main_resume: false"), &[]).unwrap();
    assert!(!t.resumed_earlier_run);
    assert_ne!(t.output_folder, Some(base.join("20250102_000000")));
}

#[test]
fn distillation_tasks_parse_their_steps_and_configs() {
    let fx = Fx::new("distillation");
    let t = load_task_with(&fx.path("chatml_conversion.yaml"), &Overrides::default(), Vars::fixed([])).unwrap();
    let Some(DistillationStep::ChatmlConversion(c)) = &t.task.distillation else { panic!("{:?}", t.task.distillation) };
    assert_eq!(c.num_processes, Some(8));
    assert_eq!(c.dataset_config_path, fx.path("datasets_chatml.yaml"));
    let datasets = modelcall_config::DatasetsConfig::load(&c.dataset_config_path).unwrap();
    assert_eq!(datasets.datasets.len(), 2);
    assert!(t.ignored_keys.iter().any(|k| k.key == "debug.max_files"), "debug is not read by distillation");
    assert!(t.model.is_none());

    let t = load_task_with(&fx.path("generate_response.yaml"), &Overrides::default(), Vars::fixed([])).unwrap();
    assert_eq!(t.task.task_type, TaskType::GenerateResponse);
    let Some(DistillationStep::GenerateResponse(g)) = &t.task.distillation else { panic!() };
    assert_eq!((g.concurrency, g.batch_size, g.flush_interval_secs), (1024, 64, 5.0));
    let m = t.model.as_ref().unwrap();
    assert_eq!((m.model.as_str(), m.stream, m.timeout.as_secs()), ("gpt-oss-120b", true, 600));
    assert!(t.ignored_keys.iter().any(|k| k.key == "distillation.step"));
    assert!(dry_run_plan(&t).contains("generate_response"));

    // The reference's batch task is read (sharded generation per model); what it lacks is named.
    let e = fx.load_text("x.yaml", "task_name: s\ntask_type: batch_distillation_submit\n", &[]).unwrap_err();
    assert!(e.to_string().contains("data_split.input_file") && e.to_string().contains("missing"), "{e}");
}

#[test]
fn plugins_block() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK) + "plugins:\n  repo:\n    role: prompt-builder\n    path: plugins/repo.wasm\n    sha256: \"ABCDEF\"\n    config: {template: x}\n";
    let e = fx.load_text(TASK, &text, &[]).unwrap_err();
    assert!(e.to_string().contains("plugins.repo.sha256") && e.to_string().contains("64 hex"), "{e}");
    let text = text.replace("ABCDEF", &"ab".repeat(32)) + "  parse:\n    role: score-parser\n    path: builtin:json-score\n    limits: {timeout_ms: 500}\n";
    let t = fx.load_text(TASK, &text, &[]).unwrap();
    let p = &t.task.plugins["parse"];
    assert_eq!((p.name.as_str(), p.role.as_str(), p.path.as_str()), ("parse", "score-parser", "builtin:json-score"));
    assert_eq!(p.limits["timeout_ms"], 500);
    assert_eq!(t.task.plugins["repo"].config["template"], "x");
    let bad = text.replace("role: score-parser", "role: scorer");
    let e = fx.load_text(TASK, &bad, &[]).unwrap_err();
    assert_eq!((e.key.as_deref(), e.line), (Some("plugins.parse.role"), Some(line_of(&bad, "role: scorer"))));
    let twice = text.replace("role: score-parser", "role: prompt-builder");
    assert!(fx.load_text(TASK, &twice, &[]).unwrap_err().to_string().contains("both have role prompt-builder"));
}

/// Every task, model and prompt file shipped in `configs/` loads (a missing environment
/// variable is the only acceptable error: it is the user's to set).
#[test]
fn shipped_configs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../configs");
    fn yamls(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                yamls(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    let acceptable = |e: &ConfigError| e.message.contains("is not set");
    let mut tasks = Vec::new();
    yamls(&root.join("tasks"), &mut tasks);
    tasks.retain(|p| !p.components().any(|c| c.as_os_str() == "templates"));
    let mut loaded = 0;
    for t in &tasks {
        match load_task_with(t, &Overrides::default(), Vars::fixed([])) {
            Ok(task) => {
                loaded += 1;
                assert!(task.model.is_some() || task.task.task_type != TaskType::DataScoring, "{}", t.display());
            }
            Err(e) if acceptable(&e) => {}
            Err(e) => panic!("shipped task does not load: {e}"),
        }
    }
    assert!(loaded > 0 || tasks.is_empty(), "no shipped task loaded");
    let mut models = Vec::new();
    yamls(&root.join("models"), &mut models);
    for m in &models {
        match modelcall_config::ModelConfig::load(m, &Vars::fixed([]), &modelcall_config::ModelDefaults::scoring()) {
            Ok(_) => {}
            Err(e) if acceptable(&e) => {}
            Err(e) => panic!("shipped model config does not load: {e}"),
        }
    }
    let mut prompts = Vec::new();
    yamls(&root.join("prompts"), &mut prompts);
    for p in &prompts {
        modelcall_config::PromptConfig::load(p).unwrap_or_else(|e| panic!("shipped prompt config does not load: {e}"));
    }
}

#[test]
fn tos_config_path_loads_the_object_storage_credentials_it_names() {
    let fx = Fx::new("scoring");
    std::fs::create_dir_all(fx.path("env")).unwrap();
    std::fs::write(
        fx.path("env/add_tos_key.env"),
        "export TOS_ACCESS_KEY=ak-1\nTOS_SECRET_KEY=\"sk-tos-secret\"\nREGION=cn-shanghai\nTOS_ENDPOINT=https://tos.example\nOTHER=x\n",
    )
    .unwrap();
    let text = fx.text(TASK).replace("\"env/add_tos_key.env\"", &format!("\"{}\"", fx.path("env/add_tos_key.env").display()));
    let t = fx.load_text(TASK, &text, &[]).unwrap();
    let env: std::collections::HashMap<_, _> = t.storage_env.0.iter().cloned().collect();
    assert_eq!(env.get("TOS_ACCESS_KEY").map(String::as_str), Some("ak-1"));
    assert_eq!(env.get("TOS_SECRET_KEY").map(String::as_str), Some("sk-tos-secret"));
    assert_eq!(env.get("TOS_REGION").map(String::as_str), Some("cn-shanghai"), "the reference's REGION");
    assert!(!env.contains_key("OTHER"));
    assert!(t.warnings.iter().any(|w| w.contains("OTHER")), "{:?}", t.warnings);
    assert!(!format!("{t:?}").contains("sk-tos-secret"), "Debug shows names only");
    assert!(!t.ignored_keys.iter().any(|k| k.key == "environment.tos_config_path"));
}

#[test]
fn execution_dry_run_is_read_and_unimplemented_effects_are_refused() {
    let fx = Fx::new("scoring");
    let text = fx.text(TASK);
    let t = fx.load_text(TASK, &format!("{text}\nexecution:\n  dry_run: true\n"), &[]).unwrap();
    assert!(t.task.dry_run());
    assert!(!t.ignored_keys.iter().any(|k| k.key.starts_with("execution")), "{:?}", t.ignored_keys);
    let t = fx.load_text(TASK, &format!("{text}\nexecution:\n  dry_run: \"false\"\n"), &[]).unwrap();
    assert!(!t.task.dry_run());

    let fx = Fx::new("distillation");
    let gen = fx.text("generate_response.yaml");
    let bad = format!("{gen}\ndebug:\n  enabled: true\n  max_items_per_file: 5\n");
    let e = fx.load_text("generate_response.yaml", &bad, &[]).unwrap_err();
    assert_eq!((e.key.as_deref(), e.line), (Some("debug.enabled"), Some(line_of(&bad, "enabled: true"))), "{e}");
    assert!(e.to_string().contains("scoring tasks only"), "{e}");
}
