//! The Slurm job array: `<output>/.modelcall/submit/slurm.sbatch`, submitted with
//! `sbatch --parsable`. Array task `i` runs `modelcall run-task TASK --shard i/N`.

use std::path::Path;

use super::{find_on_path, parse_mem, run_command, utf8, write_file, SubmitArgs, Target};
use crate::cli::exit::BadConfig;

const DEFAULT_TIME: &str = "24:00:00";

pub(super) fn submit(args: &SubmitArgs, target: &Target) -> anyhow::Result<()> {
    let script_path = target.submit_file("slurm.sbatch");
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("finding the modelcall binary: {e}"))?;
    let script = render(args, target, &exe)?;
    if args.dry_run {
        print!("{script}");
        return Ok(());
    }
    let logs = target.output.join(".modelcall").join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| anyhow::anyhow!("creating {}: {e}", logs.display()))?;
    write_file(&script_path, &script)?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755));
    }
    let Some(sbatch) = find_on_path("sbatch") else {
        anyhow::bail!(
            "sbatch was not found on PATH; the job script is written to {path}: submit it from a Slurm login node with `sbatch {path}`",
            path = script_path.display()
        );
    };
    let script_arg = utf8(&script_path, "the job script")?;
    let stdout = run_command(&sbatch, &["--parsable", script_arg])?;
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let job_id = stdout.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| l.split(';').next().unwrap_or(l).to_string());
    let Some(job_id) = job_id else {
        anyhow::bail!("sbatch printed no job id (script {})", script_path.display());
    };
    println!(
        "submitted Slurm job {job_id} ({n} shards, at most {p} at once); follow it with: modelcall status {task}",
        n = target.shards,
        p = target.parallel,
        task = args.task.display()
    );
    println!("job script: {}; logs: {}/shard-<i>.out|err", script_path.display(), logs.display());
    println!("a shard that failed runs again with: sbatch --array=<i> {}", script_path.display());
    Ok(())
}

/// The job script.
pub(super) fn render(args: &SubmitArgs, target: &Target, exe: &Path) -> Result<String, BadConfig> {
    let n = target.shards;
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
    let logs = target.output.join(".modelcall").join("logs");
    let log = |ext: &str| -> Result<String, BadConfig> {
        // `%` starts a Slurm file name pattern; `%a` is the array index.
        let dir = sbatch_path(&logs, "the log folder")?.replace('%', "%%");
        Ok(sbatch_word(&format!("{dir}/shard-%a.{ext}")))
    };
    let name: String = target.task_name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();

    let mut s = String::from("#!/bin/bash\n");
    s += &format!("# Written by `modelcall submit`: task {name}, {n} shards, one per array task.\n");
    s += "# Run one failed shard again with: sbatch --array=<i> <this file>\n";
    s += &format!("#SBATCH --job-name=modelcall-{name}\n");
    s += &format!("#SBATCH --array=0-{}%{}\n", n - 1, target.parallel);
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
    s += &format!("#SBATCH --output={}\n", log("out")?);
    s += &format!("#SBATCH --error={}\n", log("err")?);
    s += "\nset -euo pipefail\n";
    let out = match target.pin_output {
        true => format!(" --output-folder {}", bash_word(utf8(&target.output, "the output folder")?)),
        false => String::new(),
    };
    s += &format!(
        "exec {exe} run-task {task} --shard \"$SLURM_ARRAY_TASK_ID/{n}\"{out} --no-progress\n",
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
