//! How a dispatch ends early: one stop every unit watches, the first reason given for it, and
//! Ctrl-C (or SIGTERM) as one such reason.
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::exit::{self, Outcome};

/// Why a run stopped before its end.
#[derive(Debug, Clone)]
pub(in crate::send) enum StopReason {
    Auth {
        status: u16,
        code: String,
        message: String,
    },
    Failures(String),
    Interrupted,
    Io(String),
    /// The server held every sender back for longer than the stall bound.
    Stalled(String),
}

/// The run's stop: once set, no request starts, and the first reason is the one reported.
#[derive(Default)]
pub(in crate::send) struct Stop {
    token: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

impl Stop {
    /// Stops the run, for `reason` unless it stopped already.
    pub fn set(&self, reason: StopReason) {
        let mut s = self.reason.lock().unwrap();
        if s.is_none() {
            *s = Some(reason);
        }
        self.token.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A handle to wait on beside a borrow of the rest.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().unwrap().clone()
    }
}

/// Ctrl-C (or SIGTERM) once: stop starting requests, let those in flight finish. Twice: now.
pub(super) async fn on_interrupt(shared: Arc<Shared>) {
    interrupt().await;
    crate::say!("\ninterrupted: finishing the requests in flight (Ctrl-C again to quit at once; they would become `unknown`)");
    shared.stop.set(StopReason::Interrupted);
    interrupt().await;
    crate::say!("quitting now: requests in flight are recorded `unknown` when the run is resumed");
    exit::now(Outcome::Interrupted);
}

/// The next Ctrl-C, or SIGTERM (what `timeout`, systemd and CI runners send): either asks the run
/// to stop cleanly. A signal that cannot be listened for never fires.
async fn interrupt() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
