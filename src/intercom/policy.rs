//! What an attempt's outcome means for its row: final (`sent`, `failed`, `unknown`), retry after a
//! pause, or wait for the rate window. Only requests that surely created nothing are retried:
//! Intercom has no idempotency key for `POST /messages`, so a retry of a request that may have
//! arrived could message a customer twice.
use std::time::Duration;

use rand::RngExt;

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

/// Capped exponential backoff with jitter: 250 ms, 500 ms, 1 s … up to 10 s, each a random
/// point in its upper half so that senders that failed together do not retry together.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.saturating_sub(1).min(6));
    let cap = base.min(Duration::from_secs(10));
    let ms = cap.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
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
        } => {
            let last = Final::from_error(RowStatus::Failed, Some(*status), error.clone());
            rejected(*status, last, rate.reset, *retry_after, tries)
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

/// What an HTTP error answer means for its row.
fn rejected(
    status: u16,
    last: Final,
    reset_unix: Option<u64>,
    retry_after: Option<Duration>,
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
        // The gateway or the service said it did not take the request: safe to repeat.
        502..=504 if can_retry => Decision::Retry {
            after: backoff(tries.attempts),
            last,
        },
        502..=504 => Decision::Final(last),
        // Any other server error may have happened after the message was created.
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
        assert!(matches!(
            decide(&rejected(503), tries(1)),
            Decision::Retry { .. }
        ));
        assert_eq!(
            status_of(&decide(&rejected(503), tries(3))),
            Some(RowStatus::Failed)
        );
        assert_eq!(
            status_of(&decide(&rejected(500), tries(1))),
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
        };
        assert_eq!(
            status_of(&decide(&attempt, tries(1))),
            Some(RowStatus::Failed)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(250));
        assert!(backoff(3) >= Duration::from_millis(500));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
