//! What a run would do, counted without doing it: every input line read and decided exactly as
//! the run's reader decides it, against the journals as they stand (read, never repaired), so
//! `--dry-run` on a folder with earlier results says what would be sent and why.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::read_item::{ReadItem, ReadOptions};
use super::reader::read_unit;
use super::resume::Finished;
use super::stop::StopSignal;
use super::unit::Unit;

/// The decisions of a would-be run, over its units.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Results that match their input and settings: not sent.
    pub done: u64,
    /// Done before, but their input (or, with `--redo-changed`, their settings) changed: sent.
    pub changed: u64,
    /// Failed before and would be sent again (a transient cause).
    pub failed_retryable: u64,
    /// Failed before and left in the error output (sent only with `--retry-failed`).
    pub failed_permanent: u64,
    /// Adopted from another tool's output: not sent.
    pub adopted: u64,
    /// Never tried: sent.
    pub new: u64,
    /// Stored replies a changed score parser reads again: no request.
    pub reparse: u64,
    /// Not records (bad lines), left out by a debug limit, or not listed for `retry_mode`.
    pub not_sent: u64,
}

impl Survey {
    /// Work items the run would send.
    pub fn to_send(&self) -> u64 {
        self.changed + self.failed_retryable + self.new
    }

    pub fn render(&self) -> String {
        format!(
            "resume      done {} · changed {} · failed {} retryable / {} permanent · adopted {} · new {} → to send {}{}{}",
            self.done,
            self.changed,
            self.failed_retryable,
            self.failed_permanent,
            self.adopted,
            self.new,
            self.to_send(),
            if self.reparse > 0 { format!(" · re-parse {} stored replies (parser changed; no request)", self.reparse) } else { String::new() },
            if self.not_sent > 0 { format!(" ({} other line(s) not sent: bad lines, debug limits, retry mode)", self.not_sent) } else { String::new() }
        )
    }
}

/// Reads every unit as a run with `options` would, and counts what it would do.
pub async fn survey(units: &[Unit], options: &ReadOptions) -> anyhow::Result<Survey> {
    let mut total = Survey::default();
    for unit in units {
        let state = modelcall_io::journal::read_state(&unit.paths.journal)?;
        let finished = Finished::for_unit(state, &unit.paths, options);
        let finished = Arc::new(finished);
        let (tx, mut rx) = mpsc::channel::<ReadItem>(1024);
        let reader = {
            let (inputs, opts, finished) = (unit.inputs.clone(), options.clone(), finished.clone());
            tokio::task::spawn_blocking(move || read_unit(inputs, opts, &finished, &StopSignal::default(), modelcall_io::ByteCounter::default(), tx))
        };
        while let Some(item) = rx.recv().await {
            match item {
                ReadItem::Work { input: super::job::JobInput::Reparse { .. }, .. } => total.reparse += 1,
                ReadItem::Work { key, retire, .. } => match retire {
                    Some(_) => total.changed += 1,
                    None if finished.failed.contains(&key) => total.failed_retryable += 1,
                    None => total.new += 1,
                },
                ReadItem::AlreadyDone => total.done += 1,
                ReadItem::Adopted => total.adopted += 1,
                ReadItem::FailedBefore => total.failed_permanent += 1,
                ReadItem::DuplicateId { .. } => {}
                ReadItem::Bad { .. } | ReadItem::DebugLimited | ReadItem::NotRetried | ReadItem::SourceFailed { .. } => total.not_sent += 1,
            }
        }
        reader.await?;
    }
    Ok(total)
}
