//! The one place where a run's end becomes an exit code:
//! 0 every record done, 1 stopped, 2 bad configuration, 3 finished with failed records,
//! 130 interrupted.

use std::process::ExitCode;

use crate::engine::{RunOutcome, StopReason};

/// A task that cannot run as written; reported before the first request (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadConfig(pub String);

/// How a run that did not fail outright ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Every record done.
    Done,
    /// The run ended, with this many items in the error outputs.
    Failures(u64),
    Stopped(StopReason),
}

impl Finish {
    pub fn from_outcome(outcome: &RunOutcome) -> Finish {
        match &outcome.stopped {
            Some(r) => Finish::Stopped(r.clone()),
            None if outcome.failed_items() > 0 => Finish::Failures(outcome.failed_items()),
            None => Finish::Done,
        }
    }

    /// The later of two stages' ends: a stop wins over failures, failures over done.
    pub fn and(self, other: Finish) -> Finish {
        match (self, other) {
            (s @ Finish::Stopped(_), _) | (_, s @ Finish::Stopped(_)) => s,
            (Finish::Failures(a), Finish::Failures(b)) => Finish::Failures(a + b),
            (f @ Finish::Failures(_), Finish::Done) | (Finish::Done, f @ Finish::Failures(_)) => f,
            (Finish::Done, Finish::Done) => Finish::Done,
        }
    }
}

pub use crate::shown::{install_redactor, shown, shown_json};

/// Prints what the user needs to know about how the run ended and returns its exit code.
/// `allow_failures` (`options.allow_failures`) makes a run with failed records exit 0.
pub fn exit_code(result: anyhow::Result<Finish>, allow_failures: bool) -> ExitCode {
    // Interrupted after the last stage looked (while finalizing): the outputs are complete, but
    // the run was asked to stop, and says so.
    let result = match result {
        Ok(Finish::Done | Finish::Failures(_)) if crate::engine::stop::was_interrupted() => Ok(Finish::Stopped(StopReason::Interrupted)),
        other => other,
    };
    match result {
        Ok(Finish::Done) => ExitCode::SUCCESS,
        Ok(Finish::Failures(n)) => {
            eprintln!("note: {n} item(s) ended in the error output(s) listed above, with their causes; run the same command again to retry the transient ones");
            if allow_failures {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Ok(Finish::Stopped(StopReason::Interrupted)) => {
            eprintln!("interrupted: everything finished so far is kept; run the same command again to resume");
            ExitCode::from(130)
        }
        Ok(Finish::Stopped(StopReason::Fatal(reason))) => {
            eprintln!("error: the run stopped: {}", shown(&reason));
            eprintln!("nothing in flight was marked failed; run the same command again to resume");
            ExitCode::from(1)
        }
        Err(e) if e.is::<BadConfig>() => {
            eprintln!("error: {}", shown(&e.to_string()));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", shown(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}
