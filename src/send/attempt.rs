//! One row's requests: attempts until its outcome is final, retrying only where the policy says
//! it is safe, and pausing every sender on a 429.
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pipeline::{Job, Shared};
use crate::intercom::client::{ApiError, Attempt};
use crate::results::{self, ResultRow};
use crate::send::pace;
use crate::send::policy::{self, Decision, Final, Tries};

/// Sends one row until its outcome is final. Returns the results line, and whether the outcome
/// means every later request would fail too (401, 403).
pub async fn send_row(shared: &Shared, job: Job) -> (ResultRow, bool) {
    let mut attempts = 0u32;
    let mut first_not_found: Option<Instant> = None;
    let outcome: Final = loop {
        attempts += 1;
        let started = Instant::now();
        let attempt = shared.client.send(job.body.clone()).await;
        if let Attempt::Sent { rate, .. } | Attempt::Rejected { rate, .. } = &attempt {
            shared.in_flight.record_latency(started.elapsed());
            pace::heed_server(&shared.gate, rate, shared.in_flight.busy());
        }
        if matches!(&attempt, Attempt::Rejected { status: 404, .. }) && first_not_found.is_none() {
            first_not_found = Some(Instant::now());
        }
        let tries = Tries {
            attempts,
            max_attempts: shared.max_attempts,
            not_found_for: first_not_found.map(|t| t.elapsed()),
            retry_not_found_for: shared.retry_not_found_for,
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
                shared.rate_limited.fetch_add(1, Ordering::Relaxed);
                let until = match (retry_after, reset_unix) {
                    (Some(d), _) => Instant::now() + d.min(Duration::from_secs(60)),
                    (None, Some(reset)) => pace::reset_instant(reset),
                    (None, None) => Instant::now() + Duration::from_secs(2),
                };
                shared.gate.pause_until(until);
                (last, None)
            }
        };
        // The next attempt waits for its backoff, the gate and the limiter like any request. A
        // stop meanwhile ends the row with the outcome it has: nothing was created by it.
        let ready = async {
            if let Some(d) = pause {
                tokio::time::sleep(d).await;
            }
            shared.gate.wait().await;
            shared.limiter.ready().await;
            shared.gate.wait().await;
        };
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => {
                break Final {
                    error: ApiError {
                        message: format!("{} (the run stopped before another attempt)", last.error.message),
                        ..last.error
                    },
                    ..last
                };
            }
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
