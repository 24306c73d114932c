//! The Slurm job array: `<output>/.modelcall/submit/slurm.sbatch`, submitted with
//! `sbatch --parsable --array=… --export=ALL,MODELCALL_SHARD_OFFSET=…`. Array task `a` runs
//! `modelcall run-task TASK --shard (a + offset)/N`.
//!
//! Slurm refuses array indices at or above its `MaxArraySize` (1001 by default), so a run of more
//! shards is submitted as several arrays of at most that many tasks, each with its own offset
//! (read from `scontrol show config`; 1001 when it cannot be read). With `--resume` only the
//! unfinished shards are in the arrays. Every array submitted is recorded in
//! `.modelcall/submit/jobs.jsonl` (job id, offset, shards), which `modelcall status` reads to
//! map Slurm's `JOBID_INDEX` and the logs (`logs/shard-%A_%a.{out,err}`, appended) to shards.
//! With `--merge` a merge job (`merge.sbatch`) follows with `--dependency=afterok:<arrays>`.

use std::path::Path;

use super::{parse_mem, run_command, utf8, write_file, SubmitArgs, Target};
use crate::cli::exit::BadConfig;
use crate::cli::scheduler_cli::find_on_path;

const DEFAULT_TIME: &str = "24:00:00";
/// Slurm's own default `MaxArraySize`, assumed when `scontrol show config` does not say.
pub(crate) const DEFAULT_MAX_ARRAY_SIZE: u32 = 1001;
/// The file of submitted jobs, one JSON object a line, under `.modelcall/submit/`.
pub(crate) const JOBS_FILE: &str = "jobs.jsonl";

/// One `sbatch` of the shard script: array indices `offset + i` for each `i` in `indices`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Array {
    pub offset: u32,
    /// Array task ids (shard − offset), ascending.
    pub indices: Vec<u32>,
}

/// `shards` (ascending) as arrays whose task ids stay below `max` (Slurm's `MaxArraySize`).
pub(crate) fn arrays(shards: &[u32], max: u32) -> Vec<Array> {
    let max = max.max(1);
    let mut out: Vec<Array> = Vec::new();
    for &shard in shards {
        let offset = shard / max * max;
        match out.last_mut() {
            Some(a) if a.offset == offset => a.indices.push(shard - offset),
            _ => out.push(Array { offset, indices: vec![shard - offset] }),
        }
    }
    out
}

/// `0-3,7,9-10`: Slurm's `--array` list of ascending ids.
pub(crate) fn ranges(ids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// This cluster's `MaxArraySize`, from `scontrol show config`.
fn max_array_size() -> Option<u32> {
    let scontrol = find_on_path("scontrol")?;
    let out = run_command(&scontrol, &["show", "config"]).ok()?;
    out.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok()).flatten()
    })
}

pub(super) fn submit(args: &SubmitArgs, target: &Target, shards: &[u32]) -> anyhow::Result<()> {
    let script_path = target.submit_file("slurm.sbatch");
    let merge_path = target.submit_file("merge.sbatch");
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("finding the modelcall binary: {e}"))?;
    let (max, max_known) = match max_array_size() {
        Some(m) => (m, true),
        None => (DEFAULT_MAX_ARRAY_SIZE, false),
    };
    if shards.is_empty() && !args.merge {
        return Ok(());
    }
    let script = render(args, target, &exe, max)?;
    let merge_script = if args.merge { Some(render_merge(args, target, &exe)?) } else { None };
    if args.dry_run {
        print!("{script}");
        if let Some(m) = &merge_script {
            print!("\n# ---- {} (submitted after the arrays, with --dependency=afterok:<their job ids>)\n{m}", merge_path.display());
        }
        return Ok(());
    }
    let logs = target.output.join(".modelcall").join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| anyhow::anyhow!("creating {}: {e}", logs.display()))?;
    write_file(&script_path, &script)?;
    executable(&script_path);
    if let Some(m) = &merge_script {
        write_file(&merge_path, m)?;
        executable(&merge_path);
    }
    let Some(sbatch) = find_on_path("sbatch") else {
        anyhow::bail!(
            "sbatch was not found on PATH; the job script is written to {path}: submit it from a Slurm login node with `sbatch {path}`",
            path = script_path.display()
        );
    };
    let script_arg = utf8(&script_path, "the job script")?;
    let arrays = arrays(shards, max);
    if arrays.len() > 1 {
        let source = if max_known { "MaxArraySize in `scontrol show config`" } else { "Slurm's default MaxArraySize; `scontrol show config` did not answer" };
        println!(
            "note: this cluster's array task ids stop below {max} ({source}), so the {} shard(s) go in {} arrays; array task a of each runs shard a + its MODELCALL_SHARD_OFFSET",
            shards.len(),
            arrays.len()
        );
        if args.parallel.is_some() {
            println!("note: --parallel {} holds per array; each array starts after the one before it ends (--dependency=afterany)", target.parallel);
        }
    }
    let mut jobs: Vec<String> = Vec::new();
    for array in &arrays {
        let spec = format!("--array={}%{}", ranges(&array.indices), target.parallel);
        let export = format!("--export=ALL,MODELCALL_SHARD_OFFSET={}", array.offset);
        let after = jobs.last().filter(|_| args.parallel.is_some()).map(|j| format!("--dependency=afterany:{j}"));
        let mut sbatch_args = vec!["--parsable"];
        // The defaults (every shard from 0, no offset) are left to the script's own lines.
        let whole = array.offset == 0 && array.indices.len() as u32 == target.shards && arrays.len() == 1;
        if !whole {
            sbatch_args.push(spec.as_str());
        }
        // Always set: an offset left in the submitting shell would shift every shard.
        sbatch_args.push(export.as_str());
        if let Some(a) = &after {
            sbatch_args.push(a);
        }
        sbatch_args.push(script_arg);
        let job_id = sbatch_job_id(&sbatch, &sbatch_args, &script_path, &jobs)?;
        let shard_ids: Vec<u32> = array.indices.iter().map(|i| i + array.offset).collect();
        record_job(target, serde_json::json!({"job": job_id, "kind": "shards", "offset": array.offset, "shards": shard_ids, "submitted_at": now()}))?;
        let what = if whole { format!("{} shards", target.shards) } else { format!("shard(s) {} of {}", ranges(&shard_ids), target.shards) };
        println!(
            "submitted Slurm job {job_id} ({what}, at most {p} at once); follow it with: modelcall status {task}",
            p = target.parallel.min(array.indices.len() as u32),
            task = args.task.display()
        );
        jobs.push(job_id);
    }
    if merge_script.is_some() {
        let merge_arg = utf8(&merge_path, "the merge job script")?;
        let dep = format!("--dependency=afterok:{}", jobs.join(":"));
        let mut merge_args = vec!["--parsable"];
        if !jobs.is_empty() {
            // A shard that fails makes the dependency impossible: the merge job is then
            // cancelled by Slurm rather than left pending for ever.
            merge_args.extend([dep.as_str(), "--kill-on-invalid-dep=yes"]);
        }
        merge_args.push(merge_arg);
        let merge_job = sbatch_job_id(&sbatch, &merge_args, &merge_path, &jobs)?;
        record_job(target, serde_json::json!({"job": merge_job, "kind": "merge", "after": jobs, "submitted_at": now()}))?;
        match jobs.is_empty() {
            true => println!("submitted Slurm merge job {merge_job} (every shard had completed)"),
            false => println!(
                "submitted Slurm merge job {merge_job}: it runs `modelcall merge` once job(s) {} end well; if a shard fails, Slurm cancels it: then `modelcall submit --resume --merge`",
                jobs.join(", ")
            ),
        }
    }
    println!("job script: {}; logs: {}/shard-<job>_<task>.out|err", script_path.display(), logs.display());
    println!(
        "shards that failed or were cancelled run again with: modelcall submit {} --scheduler slurm --shards {} --resume",
        args.task.display(),
        target.shards
    );
    Ok(())
}

fn now() -> String {
    chrono::Local::now().to_rfc3339()
}

fn executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}

/// Runs sbatch `--parsable …` and returns the job id; on failure the error says which jobs went
/// in already (so they can be cancelled or left to run).
fn sbatch_job_id(sbatch: &Path, args: &[&str], script: &Path, submitted: &[String]) -> anyhow::Result<String> {
    let stdout = run_command(sbatch, args).map_err(|e| match submitted.is_empty() {
        true => e,
        false => anyhow::anyhow!(
            "{e}\njob(s) {} were submitted before this failed; cancel them with `scancel {}` or let them run",
            submitted.join(", "),
            submitted.join(" ")
        ),
    })?;
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let job_id = stdout.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| l.split(';').next().unwrap_or(l).to_string());
    job_id.ok_or_else(|| anyhow::anyhow!("sbatch printed no job id (script {})", script.display()))
}

/// Appends one submitted job to `.modelcall/submit/jobs.jsonl`.
fn record_job(target: &Target, job: serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let path = target.submit_file(JOBS_FILE);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    writeln!(f, "{job}").map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// The `#SBATCH` lines both scripts share: resources, partition, account, extra lines, folder.
fn common_lines(args: &SubmitArgs, target: &Target) -> Result<String, BadConfig> {
    let (mem, unit) = parse_mem(&args.mem)?;
    let time = args.time.as_deref().unwrap_or(DEFAULT_TIME);
    if time.is_empty() || !time.bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b'-') {
        return Err(BadConfig(format!("--time `{time}` should be a Slurm time limit such as 24:00:00, 90 (minutes) or 2-00:00:00")));
    }
    for (flag, value) in [("--partition", &args.partition), ("--account", &args.account)] {
        if let Some(v) = value {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.,-".contains(&b)) {
                return Err(BadConfig(format!("{flag} `{v}` should be a Slurm name (letters, digits, `_ . , -`)")));
            }
        }
    }
    for extra in &args.sbatch_arg {
        if !extra.starts_with('-') || extra.contains(['\n', '\r']) {
            return Err(BadConfig(format!("--sbatch-arg `{}` should be one sbatch option such as --qos=high", extra.escape_debug())));
        }
    }
    let mut s = String::new();
    s += &format!("#SBATCH --cpus-per-task={}\n", args.cpus_per_task);
    s += &format!("#SBATCH --mem={mem}{unit}\n");
    s += &format!("#SBATCH --time={time}\n");
    if let Some(p) = &args.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    if let Some(a) = &args.account {
        s += &format!("#SBATCH --account={a}\n");
    }
    for extra in &args.sbatch_arg {
        s += &format!("#SBATCH {extra}\n");
    }
    s += &format!("#SBATCH --chdir={}\n", sbatch_word(sbatch_path(&target.cwd, "the current folder")?));
    Ok(s)
}

/// `--output`/`--error` lines for logs named `<prefix><pattern>.out|err` in the log folder,
/// appended to (a requeued task keeps what it said before).
fn log_lines(target: &Target, name: &str) -> Result<String, BadConfig> {
    let logs = target.output.join(".modelcall").join("logs");
    // `%` starts a Slurm file name pattern; the folder's own `%` are escaped.
    let dir = sbatch_path(&logs, "the log folder")?.replace('%', "%%");
    let log = |ext: &str| sbatch_word(&format!("{dir}/{name}.{ext}"));
    Ok(format!("#SBATCH --output={}\n#SBATCH --error={}\n#SBATCH --open-mode=append\n", log("out"), log("err")))
}

fn job_name(target: &Target) -> String {
    target.task_name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

/// The job script.
pub(super) fn render(args: &SubmitArgs, target: &Target, exe: &Path, max_array_size: u32) -> Result<String, BadConfig> {
    let n = target.shards;
    let common = common_lines(args, target)?;
    let name = job_name(target);
    let first_array = n.min(max_array_size.max(1));

    let mut s = String::from("#!/bin/bash\n");
    s += &format!("# Written by `modelcall submit`: task {name}, {n} shards, one per array task.\n");
    s += "# Array task a runs shard a + MODELCALL_SHARD_OFFSET (0 unless submit set it: more shards\n";
    s += "# than the cluster's MaxArraySize go in several arrays). Run unfinished shards again with\n";
    s += "# `modelcall submit TASK --scheduler slurm --shards N --resume`.\n";
    s += &format!("#SBATCH --job-name=modelcall-{name}\n");
    s += &format!("#SBATCH --array=0-{}%{}\n", first_array - 1, target.parallel);
    s += &common;
    s += &log_lines(target, "shard-%A_%a")?;
    s += "\nset -euo pipefail\n";
    s += "shard=$(( SLURM_ARRAY_TASK_ID + ${MODELCALL_SHARD_OFFSET:-0} ))\n";
    s += &format!("echo \"modelcall: shard $shard/{n}, Slurm job ${{SLURM_ARRAY_JOB_ID:-?}}_${{SLURM_ARRAY_TASK_ID}}, $(date -u +%FT%TZ)\" >&2\n");
    let out = match target.pin_output {
        true => format!(" --output-folder {}", bash_word(utf8(&target.output, "the output folder")?)),
        false => String::new(),
    };
    s += &format!(
        "exec {exe} run-task {task} --shard \"$shard/{n}\"{out} --no-progress\n",
        exe = bash_word(utf8(exe, "the modelcall binary")?),
        task = bash_word(utf8(&target.task_file, "the task file")?),
    );
    Ok(s)
}

/// The merge job's script: `modelcall merge TASK`, one task, logs `merge-%j.out|err`.
pub(super) fn render_merge(args: &SubmitArgs, target: &Target, exe: &Path) -> Result<String, BadConfig> {
    let name = job_name(target);
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("# Written by `modelcall submit --merge`: merges the {} shards of task {name} once they end well.\n", target.shards);
    s += &format!("#SBATCH --job-name=modelcall-{name}-merge\n");
    s += &common_lines(args, target)?;
    s += &log_lines(target, "merge-%j")?;
    s += "\nset -euo pipefail\n";
    s += &format!(
        "exec {exe} merge {task}\n",
        exe = bash_word(utf8(exe, "the modelcall binary")?),
        task = bash_word(utf8(&target.task_file, "the task file")?),
    );
    Ok(s)
}

fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)
}

/// `word` as one bash word: as is when it is plain, else single-quoted.
pub(super) fn bash_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A path for an `#SBATCH` line, which cannot hold a line break.
fn sbatch_path<'a>(path: &'a Path, what: &str) -> Result<&'a str, BadConfig> {
    let s = utf8(path, what)?;
    if s.contains(['\n', '\r']) {
        return Err(BadConfig(format!("{what} {} holds a line break, which a Slurm script cannot carry", s.escape_debug())));
    }
    Ok(s)
}

/// `word` as one argument of an `#SBATCH` line: sbatch splits those lines itself (spaces
/// separate, `#` starts a comment, quotes group, a backslash escapes the next character).
fn sbatch_word(word: &str) -> String {
    word.chars().fold(String::new(), |mut s, c| {
        if !plain(c) {
            s.push('\\');
        }
        s.push(c);
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_into_arrays_below_the_limit() {
        let all: Vec<u32> = (0..1200).collect();
        let a = arrays(&all, 1001);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].offset, a[0].indices.len(), *a[0].indices.last().unwrap()), (0, 1001, 1000));
        assert_eq!((a[1].offset, a[1].indices.len(), *a[1].indices.last().unwrap()), (1001, 199, 198));
        let some = arrays(&[3, 1500, 1501, 1503], 1001);
        assert_eq!(some, vec![Array { offset: 0, indices: vec![3] }, Array { offset: 1001, indices: vec![499, 500, 502] }]);
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(ranges(&[5]), "5");
    }
}
