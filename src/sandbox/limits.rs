//! The rate limit as Intercom enforces it: a per-window count in 10-second windows aligned to
//! wall-clock multiples of 10 s, and the `X-RateLimit-*` headers that report it.
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderValue};

use crate::input::rate::Rate;

use crate::intercom::RATE_WINDOW;

/// Counts authenticated requests in the current window.
#[derive(Debug)]
pub(super) struct WindowLimiter {
    limit: u32,
    /// (start of the current window in unix seconds, requests counted in it). A plain mutex: the
    /// critical section is a few instructions, far below the cost of the HTTP work around it.
    state: Mutex<(u64, u32)>,
}

/// The limiter's verdict on one request, and what the headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Admission {
    pub(super) allowed: bool,
    pub(super) limit: u32,
    pub(super) remaining: u32,
    /// Unix seconds when the current window ends.
    pub(super) reset: u64,
}

impl WindowLimiter {
    pub(super) fn new(rate: Rate) -> Self {
        WindowLimiter {
            limit: rate.per_window(RATE_WINDOW),
            state: Mutex::new((0, 0)),
        }
    }

    pub(super) fn admit(&self) -> Admission {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.admit_at(now.as_secs())
    }

    /// Counts one request arriving at `now` (unix seconds). Requests over the limit are counted
    /// too: they are refused, and a sender hammering past the limit stays refused until the reset.
    pub(super) fn admit_at(&self, now: u64) -> Admission {
        let window = RATE_WINDOW.as_secs();
        let start = now - now % window;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 != start {
            *state = (start, 0);
        }
        state.1 = state.1.saturating_add(1);
        let count = state.1;
        drop(state);
        Admission {
            allowed: count <= self.limit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(count),
            reset: start + window,
        }
    }
}

impl Admission {
    pub(super) fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: &str) -> WindowLimiter {
        WindowLimiter::new(rate.parse().unwrap())
    }

    #[test]
    fn limit_is_the_rates_share_of_ten_seconds() {
        assert_eq!(limiter("10000/min").limit, 1666);
        assert_eq!(limiter("3/10s").limit, 3);
        assert_eq!(limiter("1/s").limit, 10);
    }

    #[test]
    fn counts_down_then_refuses_within_a_window() {
        let l = limiter("3/10s");
        let got: Vec<(bool, u32)> = (0..5)
            .map(|_| l.admit_at(1_000_003))
            .map(|a| (a.allowed, a.remaining))
            .collect();
        assert_eq!(
            got,
            [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
        assert_eq!(l.admit_at(1_000_009).reset, 1_000_010);
    }

    #[test]
    fn windows_align_to_wall_clock_multiples_of_ten_seconds() {
        let l = limiter("2/10s");
        assert!(l.admit_at(1_000_008).allowed);
        assert!(l.admit_at(1_000_009).allowed);
        assert!(!l.admit_at(1_000_009).allowed);
        // 1_000_010 starts a new window although only 2 s passed since the first request.
        let a = l.admit_at(1_000_010);
        assert!(a.allowed);
        assert_eq!((a.remaining, a.reset), (1, 1_000_020));
    }
}
