//! One row's requests: attempts until its outcome is final, retrying only where the policy says
//! it is safe. Each attempt goes the run's one way ([`crate::intercom::pace::Pace`]: a 429
//! pauses every sender there); a retry takes its turn like any request, and leaves only within
//! the send hours and on a lookup younger than the window (older, the contact is looked up
//! again first). An attempt that would leave outside the hours or into a pause (its turn came
//! before them, the wire or the door held it since) is held back and waits the same way.
use tokio::time::Instant;

use super::{lookup, Freshness, Job, RowEnd, Says, Shared};
use crate::intercom::client::{ApiError, Attempt};
use crate::results::{self, ResultRow};
use crate::send::policy::{self, Decision, Final, Tries};

/// Sends one row until its outcome is final. Returns the results line, and what it says of the
/// run: the API's health, or that every later request would fail too (401, 403).
pub(super) async fn send_row(shared: &Shared, fresh: &Freshness, mut job: Job) -> RowEnd {
    let mut attempts = 0u32;
    let mut first_not_found: Option<Instant> = None;
    let mut last: Option<Final> = None;
    // Whether the row ends without any request of its own having left (held at the door).
    let mut never_left = false;
    let outcome: Final = loop {
        // Why it waits before its next attempt: held at the door (nothing left), or the
        // policy's retry after an attempt (`last`), with its backoff.
        let (held, pause) = match one_attempt(shared, &job).await {
            Err(held) => (Some(held), None),
            Ok(attempt) => {
                attempts += 1;
                if matches!(&attempt, Attempt::Rejected { status: 404, .. })
                    && first_not_found.is_none()
                {
                    first_not_found = Some(Instant::now());
                }
                let tries = Tries {
                    attempts,
                    max_attempts: shared.retries.max_attempts,
                    not_found_for: first_not_found.map(|t| t.elapsed()),
                    retry_not_found_for: shared.retries.retry_not_found_for,
                };
                match policy::decide(&attempt, tries) {
                    Decision::Final(f) => break f,
                    Decision::Retry { after, last: l } => {
                        last = Some(l);
                        (None, Some(after))
                    }
                    // The pace has paused every sender; not the row's fault: it does not count
                    // as an attempt.
                    Decision::RateLimited { last: l, .. } => {
                        attempts -= 1;
                        last = Some(l);
                        (None, None)
                    }
                }
            }
        };
        // The next attempt waits for its backoff and its turn like any request, and for the
        // send hours. A stop meanwhile ends the row with the outcome it has: nothing was created
        // by it.
        job = match wait_to_go(shared, fresh, job, pause).await {
            Next::Go(job) => job,
            Next::Stopped(j) => {
                job = j;
                break match (last, held) {
                    (Some(l), _) => stopped_before_retry(l),
                    (None, Some(held)) => {
                        never_left = true;
                        never_sent(held)
                    }
                    (None, None) => unreachable!("a retry waits only after an attempt's answer"),
                };
            }
            Next::Ended(mut end) => {
                end.row.attempts = attempts;
                return end;
            }
        };
    };
    let says = match (outcome.fatal, never_left) {
        (true, _) => Says::Refused,
        // Never sent: it says nothing of the API.
        (false, true) => Says::Nothing,
        (false, false) => Says::Health,
    };
    let row = ResultRow {
        row: job.row,
        recipient: job.recipient,
        status: outcome.status,
        message_id: outcome.message_id,
        http_status: outcome.http_status,
        error_code: outcome.error.code,
        error_message: outcome.error.message,
        request_id: outcome.error.request_id,
        // A row never sent (held at the door) had no attempt; a row ends with at least one
        // otherwise.
        attempts: match never_left {
            true => 0,
            false => attempts.max(1),
        },
        finished_at: results::now_rfc3339(),
        contact_id: job.contact_id,
        extra: job.extra,
    };
    RowEnd { row, says }
}

/// What a row does after an attempt that was not final, or a request the send hours held back.
enum Next {
    /// Its turn is taken, the hours are open: the next attempt, on a lookup younger than the
    /// window.
    Go(Job),
    /// The run stopped meanwhile.
    Stopped(Job),
    /// Looked up again, it needs no message (unsubscribed, gone): its line.
    Ended(RowEnd),
}

/// Waits for a backoff, then a turn within the send hours; a lookup that aged past the window
/// meanwhile (an hours wait, a long 429) is done again first, and the row takes another turn.
async fn wait_to_go(
    shared: &Shared,
    fresh: &Freshness,
    mut job: Job,
    mut pause: Option<std::time::Duration>,
) -> Next {
    loop {
        if !again(shared, pause.take()).await {
            return Next::Stopped(job);
        }
        let Some(rules) = fresh.rules.as_ref().filter(|_| fresh.stale(&job)) else {
            return Next::Go(job);
        };
        match lookup::renew(shared, rules, job).await {
            Ok(renewed) => job = renewed,
            Err(end) => return Next::Ended(end),
        }
    }
}

/// Why a message whose turn came did not leave, at the last moment.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// The send hours closed while it waited (for a request on the wire to end, at the door).
    Hours,
    /// Every sender is paused (a 429, or the server's rate headers): it would only collect one.
    Paused,
}

/// One request, the run's one way (its turn was taken). `Err`: held as it was about to leave,
/// and nothing was sent.
async fn one_attempt(shared: &Shared, job: &Job) -> Result<Attempt, Held> {
    let p = &shared.pace;
    let may_leave = || match (p.is_paused(), shared.hours_closed_now()) {
        (true, _) => Err(Held::Paused),
        (false, true) => Err(Held::Hours),
        (false, false) => Ok(()),
    };
    p.send_if(may_leave, p.client().send(job.body.clone()))
        .await
}

/// Waits for a retry's backoff, then its turn, with the send hours open at that moment (closed:
/// it waits for them and takes its turn again). `false`: the run stopped meanwhile.
async fn again(shared: &Shared, backoff: Option<std::time::Duration>) -> bool {
    let p = &shared.pace;
    if let Some(d) = backoff {
        if !p.sleep(d).await {
            return false;
        }
    }
    loop {
        if !p.turn().await {
            return false;
        }
        if !shared.hours_closed_now() {
            return true;
        }
        if !shared.hours_open().await {
            return false;
        }
    }
}

/// A row the run stopped before it was sent: held at the door, by the send hours or a pause,
/// and the run stopped before they let it go. `failed` without a message id: `--resume` sends it.
fn never_sent(held: Held) -> Final {
    let (code, why) = match held {
        Held::Hours => (
            "outside_send_hours",
            "the send hours closed as it was about to leave, and the run stopped before they opened again",
        ),
        Held::Paused => (
            "rate_limit_pause",
            "every sender was paused for Intercom's rate limit as it was about to leave, and the run stopped before the pause ended",
        ),
    };
    Final {
        status: results::RowStatus::Failed,
        message_id: String::new(),
        http_status: None,
        error: ApiError {
            code: code.into(),
            message: format!("not sent: {why}"),
            request_id: String::new(),
        },
        fatal: false,
    }
}

/// The last outcome of a row the run stopped before it was tried again.
fn stopped_before_retry(last: Final) -> Final {
    Final {
        error: ApiError {
            message: format!(
                "{} (the run stopped before another attempt)",
                last.error.message
            ),
            ..last.error
        },
        ..last
    }
}
