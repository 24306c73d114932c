//! The run-wide stop signal: set once, by an authentication failure, a disabled plugin, a
//! journal that cannot be written, or Ctrl-C; every stage watches it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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

/// Set by [`install_early`]: SIGINT/SIGTERM are then caught from the start of the command.
static EARLY: AtomicBool = AtomicBool::new(false);
/// How many [`StopSignal::with_ctrl_c`] signals exist: once one does, a run is under way and an
/// interruption goes through it (what is written is finished); before, nothing is, and the
/// process ends at once.
static ARMED: AtomicUsize = AtomicUsize::new(0);

fn early_notify() -> &'static Notify {
    static NOTIFY: OnceLock<Notify> = OnceLock::new();
    NOTIFY.get_or_init(Notify::new)
}

/// Catches SIGINT and SIGTERM from now on (call it first thing, before plugins are loaded, so a
/// signal during the start-up no longer kills the process without a word): before any run has
/// started (no [`StopSignal::with_ctrl_c`] yet) the process says "interrupted" and exits with
/// 130 at once; after, the run's stop signal is set; a second signal always exits at once.
pub fn install_early() {
    if EARLY.swap(true, Ordering::SeqCst) {
        return;
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    let spawned = std::thread::Builder::new().name("modelcall-signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            let _ = ready_tx.send(false);
            return;
        };
        rt.block_on(async move {
            let Some(mut signals) = Signals::new() else {
                let _ = ready_tx.send(false);
                return;
            };
            let _ = ready_tx.send(true);
            signals.recv().await;
            INTERRUPTED.store(true, Ordering::SeqCst);
            if ARMED.load(Ordering::SeqCst) == 0 {
                eprintln!("\ninterrupted before the run started: nothing was written; run the same command again to start");
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing what is written and stopping (Ctrl-C again to quit at once)");
            early_notify().notify_waiters();
            signals.recv().await;
            std::process::exit(130);
        });
    });
    let installed = spawned.is_ok() && ready_rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap_or(false);
    if !installed {
        // Fall back to the handler each run installs.
        EARLY.store(false, Ordering::SeqCst);
    }
}

/// SIGINT and SIGTERM, registered once.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Some(Signals { int: signal(SignalKind::interrupt()).ok()?, term: signal(SignalKind::terminate()).ok()? })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Clone, Default)]
pub struct StopSignal {
    stopped: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<StopReason>>>,
    notify: Arc<Notify>,
    /// Requests already sent are awaited rather than abandoned (see [`StopSignal::after_in_flight`]).
    drain: Arc<AtomicBool>,
}

impl StopSignal {
    /// A signal that Ctrl-C (SIGINT) or SIGTERM (a scheduler cancelling the job) sets; a second
    /// one exits at once with 130.
    pub fn with_ctrl_c() -> Self {
        let stop = StopSignal::default();
        let s = stop.clone();
        if EARLY.load(Ordering::SeqCst) {
            // The handler installed at start-up (`install_early`) prints the line and handles
            // a second signal; this run only watches for the first.
            ARMED.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                loop {
                    let notified = early_notify().notified();
                    if was_interrupted() {
                        break;
                    }
                    notified.await;
                }
                s.stop(StopReason::Interrupted);
            });
            return stop;
        }
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

    /// Stops sending, but lets the requests already sent come back and be journaled: they are
    /// paid for (a spent budget), so a rerun must not buy them again.
    pub fn after_in_flight(&self, message: impl Into<String>) {
        self.drain.store(true, Ordering::SeqCst);
        self.fatal(message);
    }

    /// Whether the stop waits for the requests in flight (see [`StopSignal::after_in_flight`]).
    pub fn drains(&self) -> bool {
        self.drain.load(Ordering::SeqCst)
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
