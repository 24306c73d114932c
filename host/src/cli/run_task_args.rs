//! Command-line options of `modelcall run-task`.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct RunTaskArgs {
    /// The task YAML file.
    pub task: PathBuf,

    /// Process one deterministic share of the input: `I/N` (0-based I). Also read from Slurm array
    /// and Kubernetes Indexed Job variables when not given.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// The Python modelcall's spelling of the shard index: `--job_index I --world_size N` is
    /// `--shard I/N`.
    #[arg(long = "job_index", alias = "job-index", value_name = "I", help_heading = super::COMPAT_HEADING)]
    pub job_index: Option<u32>,

    /// The Python modelcall's spelling of the shard count (with --job_index).
    #[arg(long = "world_size", alias = "world-size", value_name = "N", help_heading = super::COMPAT_HEADING)]
    pub world_size: Option<u32>,

    /// Validate the task, load the plugins and print the plan without sending a request.
    #[arg(long)]
    pub dry_run: bool,

    /// Use this model config instead of the task's `model.config_path`.
    #[arg(long, value_name = "MODEL_YAML")]
    pub model: Option<PathBuf>,

    /// Write outputs here instead of the task's `data.output_folder`.
    #[arg(long, value_name = "DIR")]
    pub output_folder: Option<PathBuf>,

    /// Which stages to run: `all` (default), or `preprocess` alone.
    #[arg(long, default_value = "all", value_parser = ["all", "preprocess"])]
    pub stage: String,

    /// Also send again the records that failed permanently before (a rejected request, an
    /// invalid record): a plain rerun leaves them in the error output.
    #[arg(long)]
    pub retry_failed: bool,

    /// Results made with other settings than the task's now (prompt, plugins, model, request
    /// settings) are sent again. Without this or --keep-existing such a run stops before its
    /// first request and says how many results it concerns.
    #[arg(long, conflicts_with = "keep_existing")]
    pub redo_changed: bool,

    /// Keep results made with other settings than the task's now as they are (remembered for
    /// the output folder: later runs keep them too).
    #[arg(long)]
    pub keep_existing: bool,

    /// Do not adopt results found in the output folder without a journal (e.g. written by the
    /// Python modelcall): send their records again and replace those files.
    #[arg(long)]
    pub no_adopt: bool,

    /// Write the run's counters in the Prometheus text format to this file every 10 s (for a
    /// node exporter's textfile collector or a cluster job's monitoring).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Also serve them at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Neither read nor write the task's response cache (`cache:`): every request is sent.
    #[arg(long)]
    pub no_cache: bool,

    /// Set by `modelcall reparse`: send nothing, parse the stored replies again.
    #[arg(skip)]
    pub offline: bool,

    /// Set by `modelcall reparse --parser`: another score parser (`builtin:NAME` or a path)
    /// and, optionally, its config.
    #[arg(skip)]
    pub parser_override: Option<(String, Option<serde_json::Value>)>,

    /// No progress bar or periodic progress lines.
    #[arg(long)]
    pub no_progress: bool,

    /// Batch mode (`concurrency.mode: batch`): submit the batches and exit without waiting for
    /// them; the same command run again collects what finished (nothing is submitted twice).
    #[arg(long)]
    pub detach: bool,

    /// Set by `modelcall batch export|import`: the requests written to a file, or answers read
    /// from one, instead of the provider's Batch API.
    #[arg(skip)]
    pub batch_file: Option<crate::tasks::batch_mode::Mode>,
}

impl RunTaskArgs {
    /// What results made with other settings get (`--redo-changed` / `--keep-existing`).
    pub fn on_changed(&self) -> crate::engine::settings::OnChanged {
        use crate::engine::settings::OnChanged;
        match (self.redo_changed, self.keep_existing) {
            (true, _) => OnChanged::Redo,
            (_, true) => OnChanged::Keep,
            _ => OnChanged::Ask,
        }
    }
}
