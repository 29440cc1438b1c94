//! The writer: the one place outcomes are recorded (in the results file, and counted on the
//! progress line) and the run's health is judged: failures ([`Health`]), a server that holds
//! every sender back too long ([`Stall`]), and requests still in flight long after a stop.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{RowEnd, Says, Shared, StopReason};
use crate::input::config::SendSettings;
use crate::input::rate::format_duration;
use crate::results::{ResultRow, ResultsWriter, RowStatus};
use crate::send::health::Health;
use crate::send::progress::Progress;

/// Outcomes written to the results file in one write, at most.
const WRITE_BATCH: usize = 256;

/// When the writer stops the run.
pub(super) struct Bounds {
    max_failures: u32,
    max_failure_share: f64,
    stall_timeout: Duration,
    /// How long requests in flight may still take after a stop: their own timeout.
    request_timeout: Duration,
}

impl Bounds {
    pub fn of(send: &SendSettings) -> Bounds {
        Bounds {
            max_failures: send.max_failures,
            max_failure_share: send.max_failure_share,
            stall_timeout: send.stall_timeout,
            request_timeout: send.request_timeout,
        }
    }
}

/// What the writer recorded.
pub(super) struct Written {
    pub progress: Progress,
    pub unknown_rows: Vec<u64>,
    /// Outcomes counted in `progress` but not written: they came after the lock was lost.
    pub unrecorded: u64,
}

/// Records outcomes until every sender is done, or the requests in flight outlast a stop.
pub(super) async fn record(
    shared: &Arc<Shared>,
    writer: &mut ResultsWriter,
    mut out_rx: mpsc::Receiver<RowEnd>,
    to_send: u64,
    bounds: Bounds,
) -> Written {
    let mut rec = Written {
        progress: Progress::new(to_send),
        unknown_rows: Vec::new(),
        unrecorded: 0,
    };
    let mut health = Health::new(bounds.max_failures, bounds.max_failure_share);
    // In-flight requests end by their own timeout; past it and a margin, stop waiting.
    let drain_limit = bounds.request_timeout + Duration::from_secs(5);
    let stop = shared.stop.token();
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(drain_limit).await;
    };
    tokio::pin!(drain_deadline);
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut stall = Stall::new(bounds.stall_timeout);
    let mut stall_tick = tokio::time::interval(Duration::from_secs(1));
    let pace = &shared.pace;
    loop {
        let first = tokio::select! {
            o = out_rx.recv() => match o { Some(o) => o, None => break },
            _ = stall_tick.tick() => {
                if let Some(why) = stall.check(pace.paused()) {
                    shared.stop.set(StopReason::Stalled(why));
                }
                continue;
            }
            _ = &mut drain_deadline => {
                rec.give_up_in_flight(shared, writer);
                break;
            }
        };
        stall.progressed(pace.paused());
        // Outcomes that arrived meanwhile go to the OS in the same write, and each line still
        // leaves as soon as the writer is free.
        batch.clear();
        batch.push(first);
        while batch.len() < WRITE_BATCH {
            match out_rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        if let Err(e) = writer.write_all(batch.iter().map(|end| &end.row)) {
            match e.downcast_ref::<crate::results::LockLost>() {
                Some(lost) => {
                    shared.stop.set(StopReason::Io(lost.to_string()));
                    say_unrecorded(batch.iter().map(|end| &end.row));
                    rec.unrecorded += batch.len() as u64;
                }
                None => shared.stop.set(StopReason::Io(format!(
                    "cannot write the results file: {e}"
                ))),
            }
        }
        for end in batch.drain(..) {
            rec.count(&end.row);
            if let Some(why) = judge(&mut health, &end) {
                shared.stop.set(why);
            }
        }
        rec.progress.update();
    }
    rec.progress.finish();
    rec
}

impl Written {
    fn count(&mut self, row: &ResultRow) {
        self.progress.tally.add(row.status);
        if row.status == RowStatus::Unknown {
            self.unknown_rows.push(row.row);
        }
    }

    /// Requests that did not finish in time after a stop: their fate is unknown.
    fn give_up_in_flight(&mut self, shared: &Shared, writer: &mut ResultsWriter) {
        let left: Vec<(u64, String)> = shared.rows_in_flight.lock().unwrap().drain().collect();
        for (row, recipient) in left {
            let r = ResultRow::interrupted(
                row,
                recipient,
                "the run stopped before the answer came: it may have been delivered",
            );
            if writer.write(&r).is_err() {
                say_unrecorded(std::iter::once(&r));
                self.unrecorded += 1;
            }
            self.count(&r);
        }
    }
}

/// Outcomes that came after the lock was lost: not written (the ledger may be another run's
/// now), said here so that the operator can `mark` them; the next run records them `unknown`.
fn say_unrecorded<'a>(rows: impl Iterator<Item = &'a ResultRow>) {
    for r in rows {
        crate::say!(
            "row {}: {}{} (not recorded: the lock was lost; the next run records it `unknown`)",
            r.row,
            r.status.as_str(),
            match r.message_id.as_str() {
                "" => String::new(),
                id => format!(", message {}", id.escape_debug()),
            }
        );
    }
}

/// Why the run stops on this outcome, if it does: it says every later request would fail too,
/// or the API's answers so far fail too often. A row decided without a request of its own says
/// nothing of the API.
fn judge(health: &mut Health, end: &RowEnd) -> Option<StopReason> {
    let row = &end.row;
    match end.says {
        Says::Refused => Some(StopReason::Auth {
            status: row.http_status.unwrap_or(0),
            code: row.error_code.clone(),
            message: row.error_message.clone(),
        }),
        Says::Health => health.record(row).map(StopReason::Failures),
        Says::Nothing => None,
    }
}

/// The stall bound: time the server held every sender back (the gate's pauses) since the last
/// outcome. The limiter's own waits do not count, so a rate of one an hour is no stall.
struct Stall {
    bound: Duration,
    paused_at_progress: Duration,
}

impl Stall {
    fn new(bound: Duration) -> Stall {
        Stall {
            bound,
            paused_at_progress: Duration::ZERO,
        }
    }

    fn progressed(&mut self, paused: Duration) {
        self.paused_at_progress = paused;
    }

    /// Why the run should stop, once the pauses since the last outcome pass the bound.
    fn check(&self, paused: Duration) -> Option<String> {
        let held = paused.saturating_sub(self.paused_at_progress);
        (held > self.bound).then(|| {
            format!(
                "no row has had an outcome while the server held every sender back for {} (429 answers, or rate-limit headers with a reset far ahead), past the stall bound of {} (--stall-timeout, [send] stall_timeout)",
                format_duration(Duration::from_secs(held.as_secs())),
                format_duration(self.bound)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(says: Says, status: RowStatus, http: Option<u16>, code: &str) -> RowEnd {
        RowEnd {
            row: ResultRow {
                row: 1,
                recipient: "x".into(),
                status,
                message_id: String::new(),
                http_status: http,
                error_code: code.into(),
                error_message: "why".into(),
                request_id: String::new(),
                attempts: u32::from(says != Says::Nothing),
                finished_at: String::new(),
                contact_id: String::new(),
                extra: Vec::new(),
            },
            says,
        }
    }

    #[test]
    fn only_the_apis_answers_count_toward_a_stop_and_a_refused_token_stops_at_once() {
        let mut health = Health::new(2, 1.0);
        // The spreadsheet's news, however many: no contact, an invalid row skipped.
        for _ in 0..50 {
            let missing = end(Says::Nothing, RowStatus::Failed, None, "contact_not_found");
            assert!(judge(&mut health, &missing).is_none());
            let invalid = end(Says::Nothing, RowStatus::Skipped, None, "invalid_value");
            assert!(judge(&mut health, &invalid).is_none());
        }
        // A search that kept failing is the API's: the third in a row stops the run.
        let failed = end(Says::Health, RowStatus::Failed, None, "lookup_failed");
        assert!(judge(&mut health, &failed).is_none());
        assert!(judge(&mut health, &failed).is_none());
        match judge(&mut health, &failed) {
            Some(StopReason::Failures(why)) => {
                assert!(why.starts_with("3 rows in a row failed"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let refused = end(Says::Refused, RowStatus::Failed, Some(401), "unauthorized");
        match judge(&mut Health::new(100, 1.0), &refused) {
            Some(StopReason::Auth { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (401, "unauthorized"))
            }
            other => panic!("{other:?}"),
        }
    }
}
