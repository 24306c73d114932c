//! `plugin dev`'s rebuilds and `--watch`: which plugin project a task's `.wasm` comes from,
//! whether its sources are newer than the `.wasm`, and waiting for a source to change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::bail;
use modelcall_config::{load_task_without_secrets, Overrides, PluginRef, RunPlan};

/// The project folders (the `plugin new` project beside the `.wasm`, see [`builds`]) of the
/// plan's plugins whose `.wasm` is missing or older than a source file of theirs.
pub(super) fn stale_projects(plugins: &[&PluginRef]) -> anyhow::Result<Vec<PathBuf>> {
    let mut by_root: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for r in plugins {
        if r.source.starts_with("builtin:") {
            continue;
        }
        let wasm = PathBuf::from(&r.source);
        let root = folder_of(&wasm);
        if builds(&root, &wasm) {
            by_root.entry(root).or_default().push(wasm);
        } else if !wasm.is_file() {
            bail!("{} (a plugin of the task) does not exist, and no plugin project (Cargo.toml, app.py) is beside it to build it from", wasm.display());
        }
    }
    let mut stale = Vec::new();
    for (root, wasms) in by_root {
        let built = wasms.iter().map(|w| std::fs::metadata(w).and_then(|m| m.modified()).ok()).collect::<Option<Vec<_>>>().and_then(|t| t.into_iter().min());
        let newest = newest_source(&root);
        if built.is_none() || newest.is_some_and(|n| Some(n) > built) {
            stale.push(root);
        }
    }
    Ok(stale)
}

/// Whether the project in `root` is the one `plugin build` makes `wasm` from: a package named
/// like the `.wasm` in its `Cargo.toml` (or a member's, one folder down) or `pyproject.toml`. A
/// `.wasm` merely lying beside some other project is used as it is, never rebuilt.
fn builds(root: &Path, wasm: &Path) -> bool {
    let Some(stem) = wasm.file_stem().map(|s| s.to_string_lossy().to_string()) else { return false };
    let names = |manifest: &Path, section: &str| {
        std::fs::read_to_string(manifest).ok().is_some_and(|t| super::embedded::toml_string(&t, section, "name") == Some(stem.as_str()))
    };
    if names(&root.join("pyproject.toml"), "project") && root.join("app.py").is_file() {
        return true;
    }
    if !root.join("Cargo.toml").is_file() {
        return false;
    }
    names(&root.join("Cargo.toml"), "package")
        || std::fs::read_dir(root).into_iter().flatten().flatten().any(|e| names(&e.path().join("Cargo.toml"), "package"))
}

/// The folder of a plugin's `.wasm` (`.` for a bare file name): where its project is, if any.
fn folder_of(wasm: &Path) -> PathBuf {
    match wasm.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The newest modification time among a plugin project's sources (`*.rs`, `*.py`, `*.wit`,
/// `Cargo.toml`, `pyproject.toml`), skipping build output, outputs and hidden folders.
fn newest_source(root: &Path) -> Option<SystemTime> {
    fn walk(dir: &Path, depth: usize, newest: &mut Option<SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if path.is_dir() {
                if depth < 8 && !name.starts_with('.') && !matches!(name.as_str(), "target" | "output" | "__pycache__" | "node_modules") {
                    walk(&path, depth + 1, newest);
                }
                continue;
            }
            let source = name.ends_with(".rs") || name.ends_with(".py") || name.ends_with(".wit") || name == "Cargo.toml" || name == "pyproject.toml";
            if let Some(t) = source.then(|| e.metadata().and_then(|m| m.modified()).ok()).flatten() {
                *newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    let mut newest = None;
    walk(root, 0, &mut newest);
    newest
}

/// What `--watch` watches: the plugin projects of the task (those of its plugins that `plugin
/// build` makes, see [`builds`]), and the files the task reads besides its input: the task
/// file, its model and prompt configs, the simulator's `replies=` file.
pub(super) struct Watched {
    pub roots: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
}

impl Watched {
    /// For the task file `task_path` (only that file when the task does not load now).
    pub fn of(task_path: &Path) -> Watched {
        let mut files = vec![task_path.to_path_buf()];
        let Ok(task) = load_task_without_secrets(task_path, &Overrides::default()) else { return Watched { roots: Vec::new(), files } };
        if let Some(model) = &task.model {
            files.push(model.path.clone());
            files.extend(model.sim_spec.as_ref().and_then(|s| s.options.replies.clone()));
        }
        files.extend(task.prompt.as_ref().map(|p| p.path.clone()));
        let Ok(plan) = RunPlan::from_task(&task) else { return Watched { roots: Vec::new(), files } };
        let mut roots: Vec<PathBuf> = plan
            .plugins()
            .iter()
            .filter(|r| !r.source.starts_with("builtin:"))
            .map(|r| (folder_of(Path::new(&r.source)), Path::new(&r.source)))
            .filter(|(root, wasm)| builds(root, wasm))
            .map(|(root, _)| root)
            .collect();
        roots.sort();
        roots.dedup();
        Watched { roots, files }
    }

    /// What is shown: the files' names and the projects' folders.
    pub fn describe(&self) -> String {
        let files = self.files.iter().map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
        let roots = self.roots.iter().map(|r| format!("the plugin sources in {}", r.display()));
        files.chain(roots).collect::<Vec<_>>().join(", ")
    }

    /// Blocks until one of the files, or a source of one of the projects, is newer than `since`,
    /// polling twice a second (a walk of each project's sources; build output and hidden folders
    /// left out).
    pub fn wait_for_change(&self, since: SystemTime) {
        let newer = |t: SystemTime| t > since;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let file = self.files.iter().any(|f| std::fs::metadata(f).and_then(|m| m.modified()).is_ok_and(newer));
            if file || self.roots.iter().any(|root| newest_source(root).is_some_and(newer)) {
                return;
            }
        }
    }
}
