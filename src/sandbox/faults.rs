//! Misbehaviour on demand: latency, 5xx answers (before the message is made, or after it, as a
//! gateway in front of a slow backend answers) and dropped connections, drawn from one seeded RNG
//! so that a test can repeat a run.
use std::sync::Mutex;
use std::time::Duration;

use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::input::rate::{LatencySpec, Rate};

/// How the sandbox misbehaves on purpose: the rate limit it enforces, the faults it injects
/// (latency, 5xx, drops), and whether it validates bodies at all.
#[derive(Debug, Clone)]
pub struct FaultSettings {
    /// Enforced in Intercom's 10-second windows.
    pub rate_limit: Rate,
    /// Delay before each answer, fixed or drawn from a range.
    pub latency: Option<LatencySpec>,
    /// Share of requests answered 500, 502 or 503 (no message created; the 503 sheds the request
    /// as Intercom's API does, with `Retry-After` and no body).
    pub fail_rate: f64,
    /// Share of requests whose message is created, then answered 500, 502, 503 or 504 as a
    /// gateway does when the backend behind it was slow (an error page, no `Retry-After`).
    pub fail_after_rate: f64,
    /// Share of requests whose message is created but whose connection is closed unanswered.
    pub drop_rate: f64,
    /// Seed for the faults, so that a run can be repeated; `None` draws one.
    pub seed: Option<u64>,
    /// Accept any body without validating it.
    pub no_validate: bool,
    /// How contacts answer: replies, drops (the conversations `POST /conversations/search` finds).
    /// Boxed: a rehearsal's plan holds these settings beside nothing else of its size.
    pub conversations: Box<super::ConversationSettings>,
}

impl FaultSettings {
    /// A sandbox that answers at once and always, validating, at the default rate limit: for
    /// lookups that are not a rehearsal of faults.
    pub fn quiet() -> FaultSettings {
        FaultSettings {
            rate_limit: crate::input::config::DEFAULT_RATE
                .parse()
                .expect("the default rate parses"),
            latency: None,
            fail_rate: 0.0,
            fail_after_rate: 0.0,
            drop_rate: 0.0,
            seed: None,
            no_validate: false,
            conversations: Box::default(),
        }
    }
}

/// What happens to one otherwise valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Create the message and answer 200.
    Answer,
    /// Create nothing; answer this 5xx.
    Fail(StatusCode),
    /// Create the message, then answer this 5xx.
    FailAfter(StatusCode),
    /// Create the message, then close the connection unanswered.
    Drop,
}

/// What the sandbox does with one message request: how long it waits, then what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RequestFate {
    pub(super) latency: Duration,
    pub(super) outcome: Fate,
}

#[derive(Debug)]
pub(super) struct Faults {
    latency: Option<LatencySpec>,
    fail_rate: f64,
    fail_after_rate: f64,
    drop_rate: f64,
    rng: Mutex<StdRng>,
}

const FAIL_STATUSES: [StatusCode; 3] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
];

const FAIL_AFTER_STATUSES: [StatusCode; 4] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

impl Faults {
    pub(super) fn new(args: &FaultSettings) -> Self {
        let rng = match args.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Faults {
            latency: args.latency,
            fail_rate: args.fail_rate,
            fail_after_rate: args.fail_after_rate,
            drop_rate: args.drop_rate,
            rng: Mutex::new(rng),
        }
    }

    fn is_quiet(&self) -> bool {
        self.fail_rate <= 0.0
            && self.fail_after_rate <= 0.0
            && self.drop_rate <= 0.0
            && self.latency.is_none_or(|l| l.max.is_zero())
    }

    /// Draws the fate of one request. Without faults configured the RNG is not touched, so the
    /// benchmark path takes no lock.
    pub(super) fn plan(&self) -> RequestFate {
        if self.is_quiet() {
            return RequestFate {
                latency: Duration::ZERO,
                outcome: Fate::Answer,
            };
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let latency = match self.latency {
            None => Duration::ZERO,
            Some(l) if l.min == l.max => l.min,
            Some(l) => rng.random_range(l.min..=l.max),
        };
        // random::<f64>() is in [0, 1): a rate of 0 never fires and a rate of 1 always does.
        // A rate of 0 draws nothing, so that adding a fault flag at 0 repeats an older seed's run.
        let fires = |rng: &mut StdRng, rate: f64| rate > 0.0 && rng.random::<f64>() < rate;
        let outcome = if rng.random::<f64>() < self.fail_rate {
            Fate::Fail(FAIL_STATUSES[rng.random_range(0..FAIL_STATUSES.len())])
        } else if fires(&mut rng, self.fail_after_rate) {
            Fate::FailAfter(FAIL_AFTER_STATUSES[rng.random_range(0..FAIL_AFTER_STATUSES.len())])
        } else if rng.random::<f64>() < self.drop_rate {
            Fate::Drop
        } else {
            Fate::Answer
        };
        RequestFate { latency, outcome }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(fail: f64, drop: f64, latency: Option<&str>, seed: Option<u64>) -> FaultSettings {
        FaultSettings {
            rate_limit: "10000/min".parse().unwrap(),
            latency: latency.map(|l| l.parse().unwrap()),
            fail_rate: fail,
            fail_after_rate: 0.0,
            drop_rate: drop,
            seed,
            no_validate: false,
            conversations: Default::default(),
        }
    }

    #[test]
    fn no_faults_always_answers_at_once() {
        let f = Faults::new(&args(0.0, 0.0, None, None));
        for _ in 0..100 {
            assert_eq!(
                f.plan(),
                RequestFate {
                    latency: Duration::ZERO,
                    outcome: Fate::Answer
                }
            );
        }
    }

    #[test]
    fn rates_of_one_always_fire() {
        let f = Faults::new(&args(1.0, 0.0, None, None));
        assert!((0..100).all(|_| matches!(f.plan().outcome, Fate::Fail(s) if s.is_server_error())));
        let f = Faults::new(&args(0.0, 1.0, None, None));
        assert!((0..100).all(|_| f.plan().outcome == Fate::Drop));
        let f = Faults::new(&FaultSettings {
            fail_after_rate: 1.0,
            ..args(0.0, 0.0, None, Some(3))
        });
        let statuses: std::collections::BTreeSet<u16> = (0..100)
            .map(|_| match f.plan().outcome {
                Fate::FailAfter(s) => s.as_u16(),
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(
            statuses.into_iter().collect::<Vec<_>>(),
            [500, 502, 503, 504]
        );
    }

    #[test]
    fn a_seed_repeats_the_run_and_latency_stays_in_range() {
        let a = Faults::new(&args(0.3, 0.3, Some("20ms..200ms"), Some(7)));
        let b = Faults::new(&args(0.3, 0.3, Some("20ms..200ms"), Some(7)));
        let pa: Vec<RequestFate> = (0..200).map(|_| a.plan()).collect();
        let pb: Vec<RequestFate> = (0..200).map(|_| b.plan()).collect();
        assert_eq!(pa, pb);
        assert!(pa
            .iter()
            .all(|p| (20..=200).contains(&(p.latency.as_millis() as u64))));
        let fails = pa
            .iter()
            .filter(|p| matches!(p.outcome, Fate::Fail(_)))
            .count();
        assert!((30..100).contains(&fails), "{fails} failures of 200 at 0.3");
    }
}
