//! The units of a record task, whole or sharded: unsharded, one unit per input file; with
//! `--shard I/N`, the pieces the folder's shard plan gives shard I (about 1/N of the bytes),
//! each with shard-suffixed output names.

use std::path::{Path, PathBuf};

use modelcall_io::{FilePaths, ShardPlan};

use super::inputs::{generate_inputs, preprocessed_inputs, scoring_inputs};
use crate::cli::exit::BadConfig;
use crate::engine::{SinkKind, Unit, UnitInputs};

/// Names a unit's files (output, errors, journal) from its stem and shard.
pub type PathsFor = dyn Fn(&str, Option<(u32, u32)>) -> FilePaths + Send + Sync;

/// Marks an output folder whose shards were merged: it then resumes like an unsharded run.
pub const MERGED_MARKER: &str = "merged.json";

/// One unit per input file, or this shard's pieces. `paths` names a unit's files from its
/// stem and shard.
pub fn record_units(output_folder: &Path, inputs: &[PathBuf], shard: Option<(u32, u32)>, sink: SinkKind, paths: &PathsFor) -> Result<Vec<Unit>, BadConfig> {
    let stem = |p: &Path| modelcall_io::input_stem(p);
    match shard {
        Some((i, n)) if n > 1 => {
            let plan = ShardPlan::load_or_create(output_folder, inputs, n).map_err(|e| BadConfig(e.to_string()))?;
            Ok(plan
                .pieces_of(i)
                .into_iter()
                .map(|(file, ordinal, slice)| Unit {
                    name: stem(&file.path),
                    paths: paths(&stem(&file.path), shard),
                    inputs: UnitInputs::RecordSlice { file: file.path.clone(), slice, ordinal },
                    sink: sink.clone(),
                })
                .collect())
        }
        _ => {
            if let Some(plan) = ShardPlan::load(output_folder).map_err(|e| BadConfig(e.to_string()))? {
                if !output_folder.join(".modelcall").join(MERGED_MARKER).exists() {
                    return Err(BadConfig(format!(
                        "{} holds a run split into {} shards that is not merged yet; run `modelcall merge` on the task first (or each shard with --shard I/{})",
                        output_folder.display(),
                        plan.shards,
                        plan.shards
                    )));
                }
            }
            Ok(inputs
                .iter()
                .map(|f| Unit { name: stem(f), paths: paths(&stem(f), None), inputs: UnitInputs::Records(vec![f.clone()]), sink: sink.clone() })
                .collect())
        }
    }
}

/// The lock file of a run: one per shard, so the shards of one folder run side by side.
pub fn lock_name(shard: Option<(u32, u32)>) -> String {
    format!("run{}.lock", modelcall_io::naming::shard_suffix(shard))
}

/// What `merge` and `status` need to know of a record task's outputs, from its plan.
pub struct RecordOutputs {
    pub folder: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub sink: SinkKind,
    /// How records are keyed, as the shards keyed them.
    pub read: crate::engine::ReadOptions,
    paths: Box<PathsFor>,
}

impl RecordOutputs {
    /// The outputs of a scoring or `generate_response` task; other task types are not sharded.
    pub fn of(task: &modelcall_config::LoadedTask, plan: &modelcall_config::RunPlan) -> Result<RecordOutputs, BadConfig> {
        use modelcall_config::Stages;
        use modelcall_io::{Naming, OutputFormat};
        let on_duplicate_id = task.task.options.on_duplicate_id.unwrap_or_default();
        let (folder, inputs, format, naming, ordered, read) = match &plan.stages {
            Stages::Scoring(p) => {
                let inputs = match &p.preprocess {
                    Some(pre) => preprocessed_inputs(task, &pre.output_folder)?,
                    None => scoring_inputs(task, p)?,
                };
                let format = match p.output_format {
                    modelcall_config::OutputFormat::Jsonl => OutputFormat::Jsonl,
                    modelcall_config::OutputFormat::Parquet => OutputFormat::Parquet,
                };
                let read = crate::engine::ReadOptions { key_fields: vec![p.id_field.clone()], samples_per_record: 1, on_duplicate_id, ..Default::default() };
                (p.output_folder.clone(), inputs, format, Naming::Scoring, false, read)
            }
            Stages::Generate(g) => {
                let read = crate::engine::ReadOptions {
                    key_fields: vec!["uid".into(), "id".into()],
                    samples_per_record: g.n.max(1),
                    on_duplicate_id,
                    ..Default::default()
                };
                (g.output_path.clone(), generate_inputs(task, g)?, OutputFormat::Jsonl, Naming::Distillation, g.ordered, read)
            }
            other => return Err(BadConfig(format!("{}: {} tasks are not split into shards", task.source_path.display(), other.name()))),
        };
        let out = folder.clone();
        Ok(RecordOutputs {
            folder,
            inputs,
            sink: SinkKind::Rows { format, ordered },
            read,
            paths: Box::new(move |stem: &str, shard| FilePaths::named(stem, &out, format, shard, naming)),
        })
    }

    /// A generate_response folder known only by its shard plan (`merge_distillation_results`
    /// names model folders, not the runs): the reference worker's settings (one answer per
    /// conversation, completion order).
    pub fn generated_folder(folder: &Path, inputs: Vec<PathBuf>) -> RecordOutputs {
        use modelcall_io::{Naming, OutputFormat};
        let out = folder.to_path_buf();
        RecordOutputs {
            folder: folder.to_path_buf(),
            inputs,
            sink: SinkKind::Rows { format: OutputFormat::Jsonl, ordered: false },
            read: crate::engine::ReadOptions { key_fields: vec!["uid".into(), "id".into()], samples_per_record: 1, ..Default::default() },
            paths: Box::new(move |stem: &str, shard| FilePaths::named(stem, &out, OutputFormat::Jsonl, shard, Naming::Distillation)),
        }
    }

    /// The files of `stem` (an input's stem) for `shard` (`None`: the merged, unsharded ones).
    pub fn paths(&self, stem: &str, shard: Option<(u32, u32)>) -> FilePaths {
        (self.paths)(stem, shard)
    }
}
