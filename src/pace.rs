//! Pacing: one governor limiter for the whole run, a gate that pauses every sender at once (a 429,
//! or the server saying its window is nearly spent), and the in-flight limit, fixed or derived
//! from the rate and the observed latency (Little's law).
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::client::RateInfo;
use crate::config::Concurrency;
use crate::rate::Rate;

/// The window over which the configured rate is never exceeded (Intercom's is 10 seconds).
pub const WINDOW: Duration = Duration::from_secs(10);

/// A limiter that lets through at most `rate × 10 s` requests in any 10-second span.
///
/// A burst of 1 paces each request on its own timer tick and falls short of high rates; a small
/// burst absorbs timer lateness. The burst is paid for by replenishing slightly slower, so that
/// burst + replenished cells still fit the window's share.
pub struct Limiter {
    inner: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            inner: RateLimiter::direct(quota(rate)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes a cell if one is there now; never waits.
    pub fn try_ready(&self) -> bool {
        self.inner.check().is_ok()
    }

    /// Waits until one more request may go. Sleeps on tokio's timer: governor's own
    /// `until_ready` sleeps on a timer thread of its own, a wake-up and a thread hand-off for
    /// every request (measured: an eighth of the sender's CPU at 166/s).
    pub async fn ready(&self) {
        while let Err(not_until) = self.inner.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }
}

fn quota(rate: Rate) -> Quota {
    let share = rate.per_second() * WINDOW.as_secs_f64();
    // At least 2: with a burst of 1, every late wake-up is rate lost for good.
    let burst = (rate.per_second() / 100.0).clamp(2.0, 50.0).floor();
    let burst = burst.min((share / 2.0).floor()).max(1.0);
    // And a thousandth of the share is kept back: requests that leave on schedule can reach the
    // server a few milliseconds closer together, queued behind one another.
    let margin = share / 1000.0;
    let period = WINDOW.as_secs_f64() / (share - burst - margin).max(1.0);
    Quota::with_period(Duration::from_secs_f64(period))
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst as u32).expect("burst is at least 1"))
}

/// Pauses every sender until a moment; extended, never shortened, by whoever learns of a limit.
#[derive(Default)]
pub struct Gate {
    until: Mutex<Option<Instant>>,
    pauses: AtomicU64,
}

impl Gate {
    pub fn pause_until(&self, until: Instant) {
        let mut u = self.until.lock().unwrap();
        if u.is_none_or(|cur| until > cur) {
            *u = Some(until);
            self.pauses.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub async fn wait(&self) {
        loop {
            let until = *self.until.lock().unwrap();
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }

    /// Whether senders may go now.
    pub fn is_open(&self) -> bool {
        self.until
            .lock()
            .unwrap()
            .is_none_or(|t| t <= Instant::now())
    }

    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }
}

/// The instant the server's window resets, from `X-RateLimit-Reset` (unix seconds). The clocks may
/// differ, so a reset in the past means "about now", and none is more than a minute away.
pub fn reset_instant(reset_unix: u64) -> Instant {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let reset = Duration::from_secs(reset_unix);
    let wait = reset.saturating_sub(now_unix).min(Duration::from_secs(60));
    // The window turns over on a whole second; a little past it, the new window is surely there.
    Instant::now() + wait.max(Duration::from_millis(50)) + Duration::from_millis(20)
}

/// Reads the server's rate headers: when the window's remaining calls would not cover the
/// requests already in flight, everyone waits for the reset instead of collecting 429s.
pub fn heed_server(gate: &Gate, rate: &RateInfo, in_flight: usize) {
    if let (Some(remaining), Some(reset)) = (rate.remaining, rate.reset) {
        if remaining <= in_flight as u64 {
            gate.pause_until(reset_instant(reset));
        }
    }
}

/// The in-flight limit: a semaphore whose size follows the target.
pub struct InFlight {
    pub semaphore: Arc<Semaphore>,
    size: AtomicUsize,
    mode: Concurrency,
    rate_per_sec: f64,
    /// Exponentially weighted mean latency, in microseconds.
    latency_us: AtomicU64,
}

/// The most requests in flight `auto` will allow.
pub const AUTO_MAX: usize = 1024;

impl InFlight {
    pub fn new(mode: Concurrency, rate: Rate) -> InFlight {
        let start = match mode {
            Concurrency::Fixed(n) => n,
            // Until latency is measured, assume 200 ms.
            Concurrency::Auto => Self::target(rate.per_second(), 0.2),
        };
        InFlight {
            semaphore: Arc::new(Semaphore::new(start)),
            size: AtomicUsize::new(start),
            mode,
            rate_per_sec: rate.per_second(),
            latency_us: AtomicU64::new(200_000),
        }
    }

    /// Little's law: in flight = rate × latency; with headroom for latency's spread.
    fn target(rate_per_sec: f64, latency_secs: f64) -> usize {
        ((rate_per_sec * latency_secs * 1.5).ceil() as usize + 2).clamp(2, AUTO_MAX)
    }

    pub fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Requests in flight now.
    pub fn busy(&self) -> usize {
        self.size()
            .saturating_sub(self.semaphore.available_permits())
    }

    pub fn record_latency(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let old = self.latency_us.load(Ordering::Relaxed);
        self.latency_us.store((old * 7 + us) / 8, Ordering::Relaxed);
    }

    /// Moves the semaphore toward the target; called a few times a second in `auto` mode.
    pub fn adjust(&self) {
        if self.mode != Concurrency::Auto {
            return;
        }
        let latency = self.latency_us.load(Ordering::Relaxed) as f64 / 1e6;
        let target = Self::target(self.rate_per_sec, latency);
        let size = self.size();
        if target > size {
            self.semaphore.add_permits(target - size);
            self.size.store(target, Ordering::Relaxed);
        } else if target < size {
            // Shrinking takes permits as they come back; never below the target.
            let shrink = (size - target) as u32;
            if let Ok(p) = self.semaphore.clone().try_acquire_many_owned(shrink) {
                p.forget();
                self.size.store(target, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_littles_law() {
        assert_eq!(InFlight::target(166.0, 0.1), 27);
        assert_eq!(InFlight::target(166.0, 0.3), 77);
        assert_eq!(InFlight::target(1.0, 0.001), 3);
        assert_eq!(InFlight::target(1e6, 10.0), AUTO_MAX);
    }

    /// Drives the limiter on a fake clock in 1 ms steps for `secs`, and returns the most cells
    /// let through in any 10-second span and the total.
    fn simulate(rate: &str, secs: u64) -> (usize, usize) {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let lim = RateLimiter::direct_with_clock(quota(rate.parse().unwrap()), clock.clone());
        let mut times = Vec::new();
        for ms in 0..secs * 1000 {
            while lim.check().is_ok() {
                times.push(ms);
            }
            clock.advance(Duration::from_millis(1));
        }
        let mut worst = 0;
        let mut start = 0;
        for (i, t) in times.iter().enumerate() {
            while times[start] + 10_000 <= *t {
                start += 1;
            }
            worst = worst.max(i + 1 - start);
        }
        (worst, times.len())
    }

    #[test]
    fn limiter_keeps_every_window_within_its_share_and_close_to_the_rate() {
        for (rate, share) in [
            ("1000/s", 10_000),
            ("10000/min", 1666),
            ("50/s", 500),
            ("6/min", 1),
        ] {
            let (worst, total) = simulate(rate, 30);
            assert!(
                worst <= share,
                "{rate}: {worst} in a 10 s window, share {share}"
            );
            let expected = share as f64 * 3.0;
            assert!(
                total as f64 >= expected * 0.99 - 2.0,
                "{rate}: {total} in 30 s, expected about {expected}"
            );
        }
    }
}
