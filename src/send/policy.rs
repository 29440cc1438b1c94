//! What an attempt's outcome means for its row: final (`sent`, `failed`, `unknown`), retry after a
//! pause, or wait for the rate window. Intercom has no idempotency key for `POST /messages`, so a
//! retry of a request that may have created a message could message a customer twice: only an
//! outcome that proves nothing was created is retried (a connection that never opened, a 429, a
//! 404, a 503 shed before any work), and a server error without that proof is `unknown`, since a
//! gateway can answer 500, 502 or 504 after the service behind it made the message.
use std::time::Duration;

use crate::intercom::backoff::backoff;
use crate::intercom::client::{ApiError, Attempt};
use crate::results::RowStatus;

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The row is done with this outcome.
    Final(Final),
    /// Send again after this pause (counts as an attempt).
    Retry { after: Duration, last: Final },
    /// Over the rate: every sender waits, and this request goes again without counting an attempt.
    RateLimited {
        reset_unix: Option<u64>,
        retry_after: Option<Duration>,
        last: Final,
    },
}

/// A row's outcome, as the results file records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Final {
    pub status: RowStatus,
    pub message_id: String,
    pub http_status: Option<u16>,
    pub error: ApiError,
    /// 401 or 403: every later request would fail too, so the run stops.
    pub fatal: bool,
}

impl Final {
    fn from_error(status: RowStatus, http_status: Option<u16>, error: ApiError) -> Final {
        Final {
            status,
            message_id: String::new(),
            http_status,
            error,
            fatal: false,
        }
    }
}

/// How long a row has been tried, for the limits that need it.
#[derive(Debug, Clone, Copy)]
pub struct Tries {
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Time since the first 404 for this row, if there was one.
    pub not_found_for: Option<Duration>,
    pub retry_not_found_for: Duration,
}

/// What an attempt's outcome means for its row, given how long it has been tried.
pub fn decide(attempt: &Attempt, tries: Tries) -> Decision {
    let can_retry = tries.attempts < tries.max_attempts;
    match attempt {
        Attempt::Sent {
            message_id, status, ..
        } => Decision::Final(Final {
            status: RowStatus::Sent,
            message_id: message_id.clone(),
            http_status: Some(*status),
            error: ApiError::default(),
            fatal: false,
        }),
        Attempt::Rejected {
            status,
            error,
            rate,
            retry_after,
            body_empty,
        } => {
            let last = Final::from_error(RowStatus::Failed, Some(*status), error.clone());
            let shed = *status == 503 && retry_after.is_some() && *body_empty;
            rejected(*status, last, rate.reset, *retry_after, shed, tries)
        }
        Attempt::NotReached(why) => {
            let last = Final::from_error(
                RowStatus::Failed,
                None,
                ApiError {
                    code: "connection_failed".into(),
                    message: why.clone(),
                    request_id: String::new(),
                },
            );
            if can_retry {
                Decision::Retry {
                    after: backoff(tries.attempts),
                    last,
                }
            } else {
                Decision::Final(last)
            }
        }
        Attempt::Unknown(why) => Decision::Final(Final::from_error(
            RowStatus::Unknown,
            None,
            ApiError {
                code: "no_answer".into(),
                message: why.clone(),
                request_id: String::new(),
            },
        )),
    }
}

/// The longest `Retry-After` honoured before a retry of a shed request: a server's header must not
/// hold a row (and its sender) for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What an HTTP error answer means for its row. `shed`: a 503 that proves the request was turned
/// away before any work (a `Retry-After` and an empty body, the way Intercom's API sheds load;
/// a gateway's or an application's 503 comes with a page or an `error.list`).
fn rejected(
    status: u16,
    last: Final,
    reset_unix: Option<u64>,
    retry_after: Option<Duration>,
    shed: bool,
    tries: Tries,
) -> Decision {
    let can_retry = tries.attempts < tries.max_attempts;
    match status {
        429 => Decision::RateLimited {
            reset_unix,
            retry_after,
            last,
        },
        401 | 403 => Decision::Final(Final {
            fatal: true,
            ..last
        }),
        // An unknown sender is not a contact still being indexed: it will not appear.
        404 if last.error.code == "admin_not_found" => Decision::Final(last),
        404 => {
            let after = backoff(tries.attempts);
            let waited = tries.not_found_for.unwrap_or_default();
            if waited + after <= tries.retry_not_found_for {
                Decision::Retry { after, last }
            } else {
                Decision::Final(last)
            }
        }
        // Turned away before any work: nothing was created, so it is safe to repeat, and after
        // the last attempt the row is `failed` (a resume sends it again).
        503 if shed && can_retry => Decision::Retry {
            after: backoff(tries.attempts)
                .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)),
            last,
        },
        503 if shed => Decision::Final(last),
        // Any other server error (500, a gateway's 502 or 504, a 503 without that proof) may
        // have come after the message was created.
        500..=599 => Decision::Final(Final {
            status: RowStatus::Unknown,
            ..last
        }),
        _ => Decision::Final(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intercom::client::RateInfo;

    fn tries(attempts: u32) -> Tries {
        Tries {
            attempts,
            max_attempts: 3,
            not_found_for: None,
            retry_not_found_for: Duration::from_secs(60),
        }
    }

    fn rejected(status: u16) -> Attempt {
        Attempt::Rejected {
            status,
            error: ApiError::default(),
            rate: RateInfo::default(),
            retry_after: None,
            body_empty: false,
        }
    }

    /// A 503 with a `Retry-After` of `secs` and an empty body, or a body when `body` says so.
    fn shed(secs: u64, body: bool) -> Attempt {
        Attempt::Rejected {
            status: 503,
            error: ApiError::default(),
            rate: RateInfo::default(),
            retry_after: Some(Duration::from_secs(secs)),
            body_empty: !body,
        }
    }

    fn status_of(d: &Decision) -> Option<RowStatus> {
        match d {
            Decision::Final(f) => Some(f.status),
            _ => None,
        }
    }

    #[test]
    fn only_requests_that_created_nothing_are_retried() {
        // A 503 shed with Retry-After and no body: retried, then `failed` (nothing was created).
        match decide(&shed(2, false), tries(1)) {
            Decision::Retry { after, .. } => assert!(after >= Duration::from_secs(2), "{after:?}"),
            d => panic!("{d:?}"),
        }
        match decide(&shed(86_400, false), tries(1)) {
            Decision::Retry { after, .. } => assert_eq!(after, MAX_RETRY_AFTER),
            d => panic!("{d:?}"),
        }
        assert_eq!(
            status_of(&decide(&shed(2, false), tries(3))),
            Some(RowStatus::Failed)
        );
        // Every other server error may have come after the message was made: `unknown` at once,
        // whatever attempts are left.
        for attempt in [
            rejected(500),
            rejected(502),
            rejected(503),
            rejected(504),
            rejected(599),
            shed(2, true),
        ] {
            assert_eq!(
                status_of(&decide(&attempt, tries(1))),
                Some(RowStatus::Unknown),
                "{attempt:?}"
            );
        }
        let no_retry_after = Attempt::Rejected {
            status: 503,
            error: ApiError::default(),
            rate: RateInfo::default(),
            retry_after: None,
            body_empty: true,
        };
        assert_eq!(
            status_of(&decide(&no_retry_after, tries(1))),
            Some(RowStatus::Unknown)
        );
        assert_eq!(
            status_of(&decide(&Attempt::Unknown("timeout".into()), tries(1))),
            Some(RowStatus::Unknown)
        );
        assert!(matches!(
            decide(&Attempt::NotReached("refused".into()), tries(1)),
            Decision::Retry { .. }
        ));
        assert_eq!(
            status_of(&decide(&rejected(422), tries(1))),
            Some(RowStatus::Failed)
        );
        assert_eq!(
            status_of(&decide(&rejected(400), tries(1))),
            Some(RowStatus::Failed)
        );
    }

    #[test]
    fn auth_errors_are_fatal_and_429_waits() {
        match decide(&rejected(401), tries(1)) {
            Decision::Final(f) => assert!(f.fatal),
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            decide(&rejected(429), tries(3)),
            Decision::RateLimited { .. }
        ));
    }

    #[test]
    fn not_found_is_retried_for_a_while() {
        let mut t = tries(1);
        assert!(matches!(decide(&rejected(404), t), Decision::Retry { .. }));
        t.not_found_for = Some(Duration::from_secs(60));
        assert_eq!(
            status_of(&decide(&rejected(404), t)),
            Some(RowStatus::Failed)
        );
    }

    #[test]
    fn an_unknown_admin_fails_at_once() {
        let attempt = Attempt::Rejected {
            status: 404,
            error: ApiError {
                code: "admin_not_found".into(),
                ..ApiError::default()
            },
            rate: RateInfo::default(),
            retry_after: None,
            body_empty: false,
        };
        assert_eq!(
            status_of(&decide(&attempt, tries(1))),
            Some(RowStatus::Failed)
        );
    }
}
