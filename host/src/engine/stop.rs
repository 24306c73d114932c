//! The run-wide stop signal: set once, by an authentication failure, a disabled plugin, a
//! journal that cannot be written, or Ctrl-C; every stage watches it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Ctrl-C (exit 130).
    Interrupted,
    /// Anything else that makes going on pointless (exit 1).
    Fatal(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Interrupted => f.write_str("interrupted (Ctrl-C); run the same command again to resume"),
            StopReason::Fatal(m) => f.write_str(m),
        }
    }
}

/// Waits for SIGINT or SIGTERM; `false` when no handler could be installed.
async fn interrupted() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            _ = int.recv() => true,
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// Set once SIGINT or SIGTERM has been received by any [`StopSignal::with_ctrl_c`] handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether this process was interrupted (SIGINT/SIGTERM) at any point, even after its last
/// stage had looked at the stop signal (e.g. while it wrote its outputs): such a run still
/// ends with exit 130 once what it was writing is in place.
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[derive(Clone, Default)]
pub struct StopSignal {
    stopped: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<StopReason>>>,
    notify: Arc<Notify>,
}

impl StopSignal {
    /// A signal that Ctrl-C (SIGINT) or SIGTERM (a scheduler cancelling the job) sets; a second
    /// one exits at once with 130.
    pub fn with_ctrl_c() -> Self {
        let stop = StopSignal::default();
        let s = stop.clone();
        tokio::spawn(async move {
            if interrupted().await {
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupted: finishing what is written and stopping (Ctrl-C again to quit at once)");
                s.stop(StopReason::Interrupted);
                if interrupted().await {
                    std::process::exit(130);
                }
            }
        });
        stop
    }

    pub fn stop(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap();
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn fatal(&self, message: impl Into<String>) {
        self.stop(StopReason::Fatal(message.into()));
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().unwrap().clone()
    }

    pub async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}
