//! One row's requests: attempts until its outcome is final, retrying only where the policy says
//! it is safe, and pausing every sender on a 429.
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Job, Shared};
use crate::intercom::client::{ApiError, Attempt};
use crate::intercom::pace;
use crate::intercom::policy::{self, Decision, Final, Tries};
use crate::results::{self, ResultRow};

/// Sends one row until its outcome is final. Returns the results line, and whether the outcome
/// means every later request would fail too (401, 403).
pub(super) async fn send_row(shared: &Shared, job: Job) -> (ResultRow, bool) {
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
            Decision::RateLimited {
                reset_unix,
                retry_after,
                last,
            } => {
                // Not the row's fault: it does not count as an attempt.
                attempts -= 1;
                shared.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let until = pace::rate_limited_until(retry_after, reset_unix);
                shared.pace.gate.pause_until(until);
                (last, None)
            }
        };
        // The next attempt waits for its backoff, the gate and the limiter like any request. A
        // stop meanwhile ends the row with the outcome it has: nothing was created by it.
        let ready = async {
            if let Some(d) = pause {
                tokio::time::sleep(d).await;
            }
            pace::turn(&shared.pace.gate, &shared.pace.limiter).await;
        };
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break stopped_before_retry(last),
            _ = ready => {}
        }
    };
    let fatal = outcome.fatal;
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
    (row, fatal)
}

/// One request, its latency and the server's rate headers taken into the pacing.
async fn one_attempt(shared: &Shared, job: &Job) -> Attempt {
    let p = &shared.pace;
    let started = Instant::now();
    let attempt = p.client.send(job.body.clone()).await;
    if let Attempt::Sent { rate, .. } | Attempt::Rejected { rate, .. } = &attempt {
        p.in_flight.record_latency(started.elapsed());
        pace::heed_server(&p.gate, rate, p.in_flight.busy());
    }
    attempt
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
