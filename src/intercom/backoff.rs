//! The pause before a request goes again: every retry loop (messages, contact searches,
//! conversation searches) waits by the same curve.
use std::time::Duration;

use rand::RngExt;

/// Capped exponential backoff with jitter: 250 ms, 500 ms, 1 s … up to 10 s, each a random
/// point in its upper half so that senders that failed together do not retry together.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.saturating_sub(1).min(6));
    let cap = base.min(Duration::from_secs(10));
    let ms = cap.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(250));
        assert!(backoff(3) >= Duration::from_millis(500));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
