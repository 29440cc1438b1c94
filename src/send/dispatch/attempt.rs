//! One row's requests: attempts until its outcome is final, retrying only where the policy says
//! it is safe. Each attempt goes the run's one way ([`crate::intercom::pace::Pace`]: a 429
//! pauses every sender there); a retry takes its turn like any request, and leaves only within
//! the send hours and on a lookup younger than the window (older, the contact is looked up
//! again first).
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
    let outcome: Final = loop {
        attempts += 1;
        let attempt = one_attempt(shared, &job).await;
        if matches!(&attempt, Attempt::Rejected { status: 404, .. }) && first_not_found.is_none() {
            first_not_found = Some(Instant::now());
        }
        let tries = Tries {
            attempts,
            max_attempts: shared.retries.max_attempts,
            not_found_for: first_not_found.map(|t| t.elapsed()),
            retry_not_found_for: shared.retries.retry_not_found_for,
        };
        let (last, pause) = match policy::decide(&attempt, tries) {
            Decision::Final(f) => break f,
            Decision::Retry { after, last } => (last, Some(after)),
            // The pace has paused every sender; not the row's fault: it does not count as an
            // attempt.
            Decision::RateLimited { last, .. } => {
                attempts -= 1;
                (last, None)
            }
        };
        // The next attempt waits for its backoff and its turn like any request, and for the
        // send hours; a lookup that aged past the window meanwhile (an hours wait, a long 429)
        // is done again first, and the retry takes another turn. A stop meanwhile ends the row
        // with the outcome it has: nothing was created by it.
        let mut pause = pause;
        let go = loop {
            if !again(shared, pause.take()).await {
                break false;
            }
            let Some(rules) = fresh.rules.as_ref().filter(|_| fresh.stale(&job)) else {
                break true;
            };
            match lookup::renew(shared, rules, job).await {
                Ok(renewed) => job = renewed,
                Err(mut end) => {
                    end.row.attempts = attempts;
                    return end;
                }
            }
        };
        if !go {
            break stopped_before_retry(last);
        }
    };
    let says = match outcome.fatal {
        true => Says::Refused,
        false => Says::Health,
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
        attempts: attempts.max(1),
        finished_at: results::now_rfc3339(),
        contact_id: job.contact_id,
        extra: job.extra,
    };
    RowEnd { row, says }
}

/// One request, the run's one way (its turn was taken).
async fn one_attempt(shared: &Shared, job: &Job) -> Attempt {
    let p = &shared.pace;
    p.send(p.client().send(job.body.clone())).await
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
        let Some(hours) = &shared.hours else {
            return true;
        };
        if hours.closed_until(crate::input::hours::now()).is_none() {
            return true;
        }
        if !super::within_send_hours(hours, p.stop(), std::time::Duration::ZERO).await {
            return false;
        }
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
