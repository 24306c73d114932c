//! Where each input's results go: one naming scheme for every task type, so two inputs can
//! never share an output, an error file or a journal by accident.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::sink::OutputFormat;

/// The files one unit of work (an input file, a group) produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePaths {
    pub output: PathBuf,
    pub errors: PathBuf,
    pub journal: PathBuf,
}

/// How output files are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Scoring: `<stem>.parquet|jsonl` and `<stem>.errors.jsonl`.
    Scoring,
    /// Response generation (the reference's names): `<stem>.jsonl` and `<stem>_error.jsonl`.
    Distillation,
}

impl FilePaths {
    /// `<out>/<stem>.<ext>`, the error file beside it and `<out>/.modelcall/<stem>.journal.jsonl`.
    /// With shards, the stem gets [`shard_suffix`] so shards sharing a folder never write the
    /// same file, and a shard's output and error file go under [`shard_files_folder`], so the
    /// output folder holds one copy of each record once `merge` has written the merged files.
    pub fn named(stem: &str, output_folder: &Path, format: OutputFormat, shard: Option<(u32, u32)>, naming: Naming) -> Self {
        let stem = format!("{stem}{}", shard_suffix(shard));
        let ext = match format {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Jsonl => "jsonl",
        };
        let files = if shard_suffix(shard).is_empty() { output_folder.to_path_buf() } else { shard_files_folder(output_folder) };
        FilePaths {
            output: files.join(format!("{stem}.{ext}")),
            errors: files.join(match naming {
                Naming::Scoring => format!("{stem}.errors.jsonl"),
                Naming::Distillation => format!("{stem}_error.jsonl"),
            }),
            journal: journal_path(output_folder, &stem),
        }
    }

    /// For an output whose name the task fixes (a merge group, a converted split): the error
    /// file is `<output stem>.<errors_suffix>` beside it; the journal under `.modelcall/`.
    pub fn beside(output: &Path, errors_suffix: &str) -> Self {
        let name = output.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let stem = name.strip_suffix(".jsonl").unwrap_or(&name).to_string();
        let folder = output.parent().unwrap_or(Path::new("."));
        FilePaths { output: output.to_path_buf(), errors: folder.join(format!("{stem}.{errors_suffix}")), journal: journal_path(folder, &stem) }
    }
}

/// `<out>/.modelcall/shards/`: where the shards of a sharded run write their own outputs and
/// error files (folders written before this kept them beside the outputs; `merge` moves them).
pub fn shard_files_folder(output_folder: &Path) -> PathBuf {
    output_folder.join(".modelcall").join("shards")
}

/// `<folder>/.modelcall/<stem>.journal.jsonl`.
pub fn journal_path(folder: &Path, stem: &str) -> PathBuf {
    folder.join(".modelcall").join(format!("{stem}.journal.jsonl"))
}

/// `.shard-I-of-N` for a real shard (N > 1), else nothing.
pub fn shard_suffix(shard: Option<(u32, u32)>) -> String {
    match shard {
        Some((i, n)) if n > 1 => format!(".shard-{i}-of-{n}"),
        _ => String::new(),
    }
}

/// File name without directory and without data extensions (`a.jsonl.gz` → `a`).
pub fn input_stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    // A file in a sub-folder of a folder read recursively keeps its relative path: `a__b`.
    let prefix = recursive_prefix(path);
    let name = format!("{prefix}{name}");
    let mut stem = name.as_str();
    for ext in [".gz", ".zst", ".zstd"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
        }
    }
    for ext in [".jsonl", ".json", ".parquet", ".ndjson"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
            break;
        }
    }
    stem.to_string()
}

/// Folders read with `data.recursive: true` (see [`read_recursively`]).
static RECURSIVE_ROOTS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Marks `root` as read with its sub-folders: [`input_stem`] then names a file `in/a/b.jsonl`
/// under it `a__b` (the relative folders joined with `__`), so files of the same name in
/// different sub-folders write different outputs; files directly in `root` keep their name.
pub fn read_recursively(root: &Path) {
    let mut roots = RECURSIVE_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
    if !roots.iter().any(|r| r == root) {
        roots.push(root.to_path_buf());
    }
}

/// `a__` for `<root>/a/b.jsonl` when `root` is read recursively; empty otherwise.
fn recursive_prefix(path: &Path) -> String {
    let roots = RECURSIVE_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(parent) = path.parent() else { return String::new() };
    // The deepest registered root holding the file.
    let Some(rel) = roots.iter().filter_map(|r| parent.strip_prefix(r).ok()).min_by_key(|rel| rel.components().count()) else {
        return String::new();
    };
    rel.components().map(|c| format!("{}__", c.as_os_str().to_string_lossy())).collect()
}

/// Two inputs whose outputs would share a name.
#[derive(Debug, thiserror::Error)]
#[error("{first} and {second} would both write `{stem}` outputs; rename one of them, or give them separate tasks (outputs are named after the input file without its extensions)", first = first.display(), second = second.display())]
pub struct StemClash {
    pub stem: String,
    pub first: PathBuf,
    pub second: PathBuf,
}

/// The output stem of every input, refusing two inputs that would write the same files
/// (`a.jsonl` beside `a.jsonl.gz`, or `x/a.jsonl` beside `y/a.jsonl`).
pub fn unique_stems(inputs: &[PathBuf]) -> Result<Vec<String>, StemClash> {
    let mut seen: HashMap<String, &PathBuf> = HashMap::new();
    let mut stems = Vec::with_capacity(inputs.len());
    for input in inputs {
        let stem = input_stem(input);
        if let Some(first) = seen.get(&stem) {
            return Err(StemClash { stem, first: first.to_path_buf(), second: input.clone() });
        }
        seen.insert(stem.clone(), input);
        stems.push(stem);
    }
    Ok(stems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_a_folder_read_recursively_keep_their_relative_path() {
        let root = Path::new("/tmp/recursive-stem-test/in");
        read_recursively(root);
        assert_eq!(input_stem(&root.join("a/b.jsonl")), "a__b");
        assert_eq!(input_stem(&root.join("a/c/d.jsonl.gz")), "a__c__d");
        assert_eq!(input_stem(&root.join("top.jsonl")), "top");
        assert_eq!(input_stem(Path::new("/elsewhere/a/b.jsonl")), "b");
    }

    #[test]
    fn stems_drop_data_extensions() {
        assert_eq!(input_stem(Path::new("/a/b/part-0.jsonl")), "part-0");
        assert_eq!(input_stem(Path::new("x.jsonl.gz")), "x");
        assert_eq!(input_stem(Path::new("x.jsonl.zst")), "x");
        assert_eq!(input_stem(Path::new("x.parquet")), "x");
        assert_eq!(input_stem(Path::new("v1.2.data.jsonl")), "v1.2.data");
    }

    #[test]
    fn shard_outputs_never_collide() {
        let a = FilePaths::named("x", Path::new("out"), OutputFormat::Parquet, Some((0, 4)), Naming::Scoring);
        let b = FilePaths::named("x", Path::new("out"), OutputFormat::Parquet, Some((1, 4)), Naming::Scoring);
        assert_ne!(a.output, b.output);
        assert_ne!(a.journal, b.journal);
        assert_eq!(a.output, Path::new("out/.modelcall/shards/x.shard-0-of-4.parquet"));
        assert_eq!(a.errors, Path::new("out/.modelcall/shards/x.shard-0-of-4.errors.jsonl"));
        let single = FilePaths::named("x", Path::new("out"), OutputFormat::Jsonl, None, Naming::Scoring);
        assert_eq!(single.output, Path::new("out/x.jsonl"));
        assert_eq!(single.errors, Path::new("out/x.errors.jsonl"));
        let d = FilePaths::named("x", Path::new("out"), OutputFormat::Jsonl, None, Naming::Distillation);
        assert_eq!(d.errors, Path::new("out/x_error.jsonl"));
    }

    #[test]
    fn inputs_sharing_a_stem_are_refused_with_both_paths() {
        let err = unique_stems(&["in/a.jsonl".into(), "in/a.jsonl.gz".into()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("in/a.jsonl ") && text.contains("in/a.jsonl.gz"), "{text}");
        assert_eq!(unique_stems(&["a.jsonl".into(), "b.jsonl".into()]).unwrap(), vec!["a", "b"]);
    }
}
