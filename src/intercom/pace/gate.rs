//! The pause gate: holds every sender until a moment, on tokio's clock. Whoever learns of a limit
//! (a 429, the server's window nearly spent) extends the pause; nothing shortens it.
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    until: Option<Instant>,
    /// When the current (or last) pause began.
    since: Option<Instant>,
    /// The pauses before it, in all.
    before: Duration,
}

impl Gate {
    pub fn pause_until(&self, until: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match (s.since, s.until) {
            // Paused now: the pause is extended.
            (_, Some(cur)) if cur > now => s.until = Some(until.max(cur)),
            // Open: a new pause, the last one counted in full.
            (since, cur) => {
                if let (Some(a), Some(b)) = (since, cur) {
                    s.before += b.saturating_duration_since(a);
                }
                s.since = Some(now);
                s.until = Some(until);
            }
        }
    }

    fn until(&self) -> Option<Instant> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).until
    }

    /// Waits until the gate is open (a pause extended meanwhile is waited for too); whether it
    /// had to.
    pub async fn wait(&self) -> bool {
        let mut waited = false;
        while let Some(t) = self.until().filter(|&t| t > Instant::now()) {
            tokio::time::sleep_until(t).await;
            waited = true;
        }
        waited
    }

    /// Whether senders may go now.
    pub fn is_open(&self) -> bool {
        self.until().is_none_or(|t| t <= Instant::now())
    }

    /// How long every sender has been paused so far, in all: what the run's stall bound and its
    /// report count.
    pub fn paused(&self) -> Duration {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let current = match (s.since, s.until) {
            (Some(a), Some(b)) => b.min(Instant::now()).saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        s.before + current
    }
}
