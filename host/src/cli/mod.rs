//! The command line: `run-task`, `submit`, `status`, `merge`, `plugin`, `serve-sim`, the
//! Python modelcall's `api-call`, `preprocess` and `pipeline`, and the mapping of a run's end
//! to an exit code.

pub mod batch_cmd;
pub mod cache_cmd;
pub mod compat;
pub mod exit;
pub mod merge;
pub mod plugin_cmd;
pub mod reparse;
pub mod run_task;
pub mod run_task_args;
pub mod scheduler_cli;
pub mod status;
pub mod submit;

/// The heading the Python modelcall's spellings (commands and flags) are listed under.
pub const COMPAT_HEADING: &str = "Compatibility with the Python modelcall";

/// What the top-level `--help` ends with: examples, the compatibility commands (hidden from the
/// main list), logging and exit codes.
pub const TOP_LEVEL_AFTER_HELP: &str = "\
Examples:
  modelcall run-task configs/tasks/en_corpus_rating.yaml              # run (or resume) a task
  modelcall run-task task.yaml --dry-run                              # check it and print the plan, send nothing
  modelcall -v run-task task.yaml                                     # one log line per request attempt
  modelcall submit task.yaml --scheduler slurm --shards 8             # the same task as a Slurm job array

Compatibility with the Python modelcall (its scripts keep working):
  api-call     Its scoring without a task file, with its flags (--input_folder, --output_folder, …)
  preprocess   Its preprocessing alone: `preprocess github|repomix` with its flags
  pipeline     Its demo scorer: score = text length / 100 (at most 5) for every JSONL line
  Each writes the task file its flags describe and runs it as run-task does; see `modelcall <command> --help`.

Logging: -v shows one line per request attempt, -vv everything modelcall logs, -q errors only.
MODELCALL_LOG takes tracing directives: a bare level (`debug`) applies to modelcall's own lines;
the runtime's need a target (`MODELCALL_LOG=wasmtime=debug,hyper=debug`).
Exit codes: 0 done, 1 stopped, 2 bad configuration, 3 finished with failed records, 130 interrupted.";

/// Examples per command, by its path under `modelcall` (`after_help`, shown by `--help`).
pub const EXAMPLES: &[(&[&str], &str)] = &[
    (
        &["cache"],
        "Examples:
  modelcall cache stats                                         # answers held and their size
  modelcall cache prune --max-size 500MB                        # evict the least recently used
  modelcall cache clear --path /scratch/mc-cache.sqlite         # empty another cache file",
    ),
    (&["cache", "stats"], "Examples:\n  modelcall cache stats\n  modelcall cache stats --path /scratch/mc-cache.sqlite"),
    (&["cache", "prune"], "Examples:\n  modelcall cache prune --max-size 500MB\n  modelcall cache prune --max-size 2GiB --path /scratch/mc-cache.sqlite"),
    (&["cache", "clear"], "Examples:\n  modelcall cache clear\n  modelcall cache clear --path /scratch/mc-cache.sqlite"),
    (
        &["batch"],
        "Examples:
  modelcall batch export task.yaml --out requests.jsonl       # the requests left to do, OpenAI batch format
  vllm run-batch -i requests.jsonl -o results.jsonl --model MODEL
  modelcall batch import task.yaml results.jsonl              # answers into the journal and outputs, exactly once",
    ),
    (
        &["batch", "export"],
        "Examples:
  modelcall batch export task.yaml --out requests.jsonl                  # every request left to do
  modelcall batch export task.yaml --out shard-0.jsonl --shard 0/4       # one shard's",
    ),
    (
        &["batch", "import"],
        "Examples:
  modelcall batch import task.yaml results.jsonl                         # vllm run-batch's output file
  modelcall batch import task.yaml part-1.jsonl part-2.jsonl             # several, each answer once",
    ),
    (
        &["reparse"],
        "Examples:
  modelcall reparse task.yaml                                   # parse every stored reply again with the task's parser
  modelcall reparse task.yaml --parser my_parser.wasm --output-folder out_b   # another parser, into a new folder
  modelcall report out_a out_b                                  # then compare the two parsers' verdicts",
    ),
    (
        &["run-task"],
        "Examples:
  modelcall run-task task.yaml                          # run, or resume where an earlier run stopped
  modelcall run-task task.yaml --dry-run                # validate, load the plugins, print the plan; send nothing
  modelcall run-task task.yaml --shard 0/4 --retry-failed   # one quarter of the input, failed records sent again
  modelcall -v run-task task.yaml                       # one log line per request attempt (key, status, latency, cause)",
    ),
    (
        &["plugin"],
        "Examples:
  modelcall plugin list                                 # the built-in plugins
  modelcall plugin check my_parser.wasm                 # validate a plugin, print its metadata
  modelcall plugin new my-parser --role score-parser    # start a plugin project",
    ),
    (
        &["plugin", "list"],
        "Examples:
  modelcall plugin list
  modelcall plugin list | grep json",
    ),
    (
        &["plugin", "check"],
        "Examples:
  modelcall plugin check builtin:json-score
  modelcall plugin check my_parser.wasm --config cfg.yaml",
    ),
    (
        &["plugin", "run"],
        "Examples:
  modelcall plugin run builtin:json-score --input replies.jsonl
  modelcall plugin run my_pre.wasm --files raw/ --config cfg.yaml --limits limits.yaml",
    ),
    (
        &["plugin", "bench"],
        "Examples:
  modelcall plugin bench builtin:json-score --input replies.jsonl
  modelcall plugin bench my_parser.wasm --input replies.jsonl --config cfg.yaml --iterations 200",
    ),
    (
        &["plugin", "new"],
        "Examples:
  modelcall plugin new my-parser --role score-parser    # a Rust project in ./my-parser
  modelcall plugin new my-pre --role preprocessor --lang python
  modelcall plugin new pairs --task-type                # reader, prompt builder, parser: one Cargo workspace
  cd my-parser && cargo test && modelcall plugin build",
    ),
    (
        &["plugin", "build"],
        "Examples:
  modelcall plugin build                                # the project in the current folder
  modelcall plugin build my-parser                      # prints the path of my-parser's .wasm",
    ),
    (
        &["plugin", "dev"],
        "Examples:
  modelcall plugin dev task.yaml                        # rebuild changed plugins, chain 5 records (scratch output)
  modelcall plugin dev task.yaml --sample 20 --watch    # again on every plugin source change; Ctrl-C ends it
  modelcall plugin dev task.yaml --live                 # send the sample to the task's real endpoint",
    ),
    (
        &["submit"],
        "Examples:
  modelcall submit task.yaml --scheduler slurm --shards 8 --partition gpu
  modelcall submit task.yaml --scheduler k8s --shards 16 --image registry/modelcall:1 --pvc data
  modelcall submit task.yaml --scheduler slurm --shards 8 --dry-run   # print the job script, submit nothing",
    ),
    (
        &["status"],
        "Examples:
  modelcall status task.yaml                            # per unit and shard: done, failed, remaining, running
  modelcall status out/                                 # any output folder; no API key needed
  watch -n 10 modelcall status task.yaml",
    ),
    (
        &["merge"],
        "Examples:
  modelcall merge task.yaml                             # once every shard completed
  modelcall merge task.yaml --force                     # merge what the shards did so far",
    ),
    (
        &["serve-sim"],
        "Examples:
  modelcall serve-sim --port 8000                       # then base_url: http://127.0.0.1:8000/v1
  modelcall serve-sim --port 0 --fault 429=0.3 --retry-after-secs 0   # 30 % of requests rate-limited
  In a model config, base_url: \"sim://?fault=429=0.3\" starts one for the run instead.",
    ),
    (
        &["report"],
        "Examples:
  modelcall report out/                                 # writes out/report.html
  modelcall report out/ --open
  modelcall report out/ --out /tmp/run.html",
    ),
    (
        &["api-call"],
        "Examples:
  modelcall api-call --input_folder data/ --output_folder out/ --model_config_path model.yaml \\
      --prompt_config_path prompt.yaml
  modelcall api-call … --job_index 0 --world_size 4     # one of four shards
  modelcall api-call … --debug_files 1 --debug_items 10 # a small trial run

It writes the task file for its flags to OUTPUT_FOLDER/.modelcall/api_call.yaml and runs it: next
time, `modelcall run-task OUTPUT_FOLDER/.modelcall/api_call.yaml` does the same.",
    ),
    (
        &["preprocess"],
        "Examples:
  modelcall preprocess github --raw_path raw/ --output_dir pre/ --stat_dir stat/
  modelcall preprocess repomix --raw_path packs/ --output_dir pre/ --stat_dir stat/ --languages python rust",
    ),
    (
        &["preprocess", "github"],
        "Examples:
  modelcall preprocess github --raw_path raw/ --output_dir pre/ --stat_dir stat/
  modelcall preprocess github --raw_path raw/ --output_dir pre/ --stat_dir stat/ --max_tokens 8192 --num_files 2",
    ),
    (
        &["preprocess", "repomix"],
        "Examples:
  modelcall preprocess repomix --raw_path packs/ --output_dir pre/ --stat_dir stat/
  modelcall preprocess repomix --raw_path packs/ --output_dir pre/ --stat_dir stat/ --languages python rust",
    ),
    (
        &["pipeline"],
        "Examples:
  modelcall pipeline in.jsonl out.jsonl
  DATA_ROOT=/data modelcall pipeline in.jsonl scored/out.jsonl",
    ),
];

/// `cmd` with the examples of [`EXAMPLES`] on each (sub)command; a path not there is skipped.
pub fn with_examples(mut cmd: clap::Command) -> clap::Command {
    fn add(cmd: clap::Command, path: &[&str], text: &'static str) -> clap::Command {
        match path.split_first() {
            None => cmd.after_help(text),
            Some((first, rest)) => {
                if cmd.find_subcommand(first).is_none() {
                    return cmd;
                }
                cmd.mut_subcommand(*first, |sub| add(sub, rest, text))
            }
        }
    }
    for (path, text) in EXAMPLES {
        cmd = add(cmd, path, text);
    }
    cmd
}
