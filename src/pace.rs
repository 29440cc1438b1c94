//! Pacing: one governor limiter for the whole run, a gate that pauses every sender at once (a 429,
//! or the server saying its window is nearly spent), and the in-flight limit, fixed or derived
//! from the rate and the observed latency (Little's law).
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
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
    inner: RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<Instant>>,
    /// `std::time::Instant`: governor's default clock (quanta) calibrates itself against the
    /// system clock at start, a busy loop: 13% of the CPU of a 10-second run at 166/s.
    clock: MonotonicClock,
    /// How much longer than needed for one cell `ready` sleeps, so that a group of cells is
    /// there when it wakes: see `quota`.
    group_wait: Duration,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        let (quota, group) = quota(rate);
        Limiter {
            inner: RateLimiter::direct_with_clock(quota, MonotonicClock),
            clock: MonotonicClock,
            group_wait: quota.replenish_interval() * (group - 1),
        }
    }

    /// Takes a cell if one is there now; never waits.
    pub fn try_ready(&self) -> bool {
        self.inner.check().is_ok()
    }

    /// Waits until one more request may go. Sleeps on tokio's timer: governor's own
    /// `until_ready` sleeps on a timer thread of its own, a wake-up and a thread hand-off for
    /// every request (measured: an eighth of the sender's CPU at 166/s). When it has to wait,
    /// it waits until a group of cells is there, which the caller takes with `try_ready`.
    pub async fn ready(&self) {
        while let Err(not_until) = self.inner.check() {
            let wait = not_until.wait_time_from(self.clock.now()) + self.group_wait;
            tokio::time::sleep(wait).await;
        }
    }
}

/// Requests that leave together when the limiter is what holds them back: those of about 50 ms,
/// at most 8. One timer wake-up, one journal write and (the answers coming back together) fewer
/// wake-ups for a group instead of one each: at low rates a message's CPU is mostly wake-ups
/// (measured at 166/s: groups of 3 used 3.8 % of a core, groups of 8 2.1 %).
const GROUP_SPAN: f64 = 0.050;
const MAX_GROUP: f64 = 8.0;
/// How late a timer may fire without costing rate: the burst holds this much more than a group.
const LATE_SPAN: f64 = 0.008;
/// The most of the rate grouping may cost. The burst is paid for by replenishing slower (see
/// `quota`), so a group of g costs g / share of the rate for good: at 166/s a group of 8 costs
/// 0.5 %, and the latency target asks for 99 % of the rate.
const GROUP_COST: f64 = 0.0075;

/// The quota, and how many cells `ready` lets gather before it wakes.
fn quota(rate: Rate) -> (Quota, u32) {
    let share = rate.per_second() * WINDOW.as_secs_f64();
    // A thousandth of the share is kept back: requests that leave on schedule can reach the
    // server a few milliseconds closer together.
    let margin = share / 1000.0;
    let late = (rate.per_second() * LATE_SPAN).ceil().max(1.0);
    let mut group = (rate.per_second() * GROUP_SPAN)
        .floor()
        .clamp(1.0, MAX_GROUP);
    while group > 1.0 && group + late + margin > share * GROUP_COST {
        group -= 1.0;
    }
    // At least 2: with a burst of 1, every late wake-up is rate lost for good. A group and the
    // cells of a late timer; at high rates a hundredth of a second's requests, where it costs
    // little.
    let burst = (rate.per_second() / 100.0)
        .max(group + late)
        .clamp(2.0, 50.0)
        .floor();
    let burst = burst.min((share / 2.0).floor()).max(1.0);
    let group = group.min(burst - 1.0).max(1.0);
    // The burst is paid for by replenishing slightly slower, so that burst + replenished cells
    // still fit the window's share.
    let period = WINDOW.as_secs_f64() / (share - burst - margin).max(1.0);
    let quota = Quota::with_period(Duration::from_secs_f64(period))
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst as u32).expect("burst is at least 1"));
    (quota, group as u32)
}

/// Pauses every sender until a moment; extended, never shortened, by whoever learns of a limit.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    until: Option<Instant>,
    /// When the current (or last) pause began.
    since: Option<Instant>,
    /// The pauses before it, in all.
    before: Duration,
}

impl Gate {
    pub fn pause_until(&self, until: Instant) {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        match (s.since, s.until) {
            // Paused now: the pause is extended.
            (_, Some(cur)) if cur > now => s.until = Some(until.max(cur)),
            // Open: a new pause, the last one counted in full.
            (since, cur) => {
                if let (Some(a), Some(b)) = (since, cur) {
                    s.before += b.saturating_duration_since(a);
                }
                s.since = Some(now);
                s.until = Some(until);
            }
        }
    }

    pub async fn wait(&self) {
        loop {
            let until = self.state.lock().unwrap().until;
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }

    /// Whether senders may go now.
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .unwrap()
            .until
            .is_none_or(|t| t <= Instant::now())
    }

    /// How long every sender has been paused so far, in all: what the run's stall bound and its
    /// report count.
    pub fn paused(&self) -> Duration {
        let s = self.state.lock().unwrap();
        let current = match (s.since, s.until) {
            (Some(a), Some(b)) => b.min(Instant::now()).saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        s.before + current
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
    /// The lowest latency since the last `adjust`, in microseconds (`u64::MAX`: none yet).
    period_min_us: AtomicU64,
    /// The lowest latency of each of the last `BASE_PERIODS` adjustments: their minimum is the
    /// server's own latency, without the queueing that requests in flight add.
    period_mins: Mutex<std::collections::VecDeque<u64>>,
}

/// The most requests in flight `auto` will allow, and the most it starts with before any latency
/// is measured.
pub const AUTO_MAX: usize = 1024;
const AUTO_START_MAX: usize = 64;
/// Adjustments (4 a second) over which the lowest latency is kept: 10 seconds.
const BASE_PERIODS: usize = 40;
/// The latency the target uses is the mean, but at most this many times the lowest seen.
const QUEUEING_CAP: f64 = 4.0;

impl InFlight {
    pub fn new(mode: Concurrency, rate: Rate) -> InFlight {
        let start = match mode {
            Concurrency::Fixed(n) => n,
            // Until latency is measured, assume 200 ms; but not so many at once.
            Concurrency::Auto => Self::target(rate.per_second(), 0.2).min(AUTO_START_MAX),
        };
        InFlight {
            semaphore: Arc::new(Semaphore::new(start)),
            size: AtomicUsize::new(start),
            mode,
            rate_per_sec: rate.per_second(),
            latency_us: AtomicU64::new(200_000),
            period_min_us: AtomicU64::new(u64::MAX),
            period_mins: Mutex::new(std::collections::VecDeque::with_capacity(BASE_PERIODS)),
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
        let us = d.as_micros().min(u64::MAX as u128 - 1) as u64;
        let old = self.latency_us.load(Ordering::Relaxed);
        self.latency_us.store((old * 7 + us) / 8, Ordering::Relaxed);
        self.period_min_us.fetch_min(us, Ordering::Relaxed);
    }

    /// The latency to plan with: the mean, capped at `QUEUEING_CAP` times the lowest of the last
    /// 10 seconds. Requests in flight beyond what the server (or this process) can work on only
    /// wait in a queue, which raises the mean, which by Little's law would ask for more in
    /// flight: without the cap, a rate above what the server can take drives `auto` to
    /// `AUTO_MAX` (measured: 1,024 in flight gave two thirds of the throughput of 64, at nearly
    /// twice the CPU per message). A server whose latency is merely spread out stays under the
    /// cap.
    fn planning_latency_us(&self) -> u64 {
        let mean = self.latency_us.load(Ordering::Relaxed);
        let period_min = self.period_min_us.swap(u64::MAX, Ordering::Relaxed);
        let mut mins = self.period_mins.lock().unwrap_or_else(|e| e.into_inner());
        if period_min != u64::MAX {
            if mins.len() == BASE_PERIODS {
                mins.pop_front();
            }
            mins.push_back(period_min);
        }
        match mins.iter().min() {
            Some(&base) => mean.min((base as f64 * QUEUEING_CAP) as u64),
            None => mean,
        }
    }

    /// Moves the semaphore toward the target; called a few times a second in `auto` mode.
    pub fn adjust(&self) {
        if self.mode != Concurrency::Auto {
            return;
        }
        let latency = self.planning_latency_us() as f64 / 1e6;
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
    fn the_gate_counts_the_time_it_was_paused_not_the_time_it_was_told() {
        let gate = Gate::default();
        gate.pause_until(Instant::now() + Duration::from_secs(3600));
        assert!(
            gate.paused() < Duration::from_secs(60),
            "{:?}",
            gate.paused()
        );
        assert!(!gate.is_open());
    }

    #[test]
    fn auto_follows_littles_law() {
        assert_eq!(InFlight::target(166.0, 0.1), 27);
        assert_eq!(InFlight::target(166.0, 0.3), 77);
        assert_eq!(InFlight::target(1.0, 0.001), 3);
        assert_eq!(InFlight::target(1e6, 10.0), AUTO_MAX);
    }

    fn auto(rate: &str) -> InFlight {
        InFlight::new(Concurrency::Auto, rate.parse().unwrap())
    }

    #[test]
    fn auto_starts_small_and_follows_a_slow_server() {
        let f = auto("1000/s");
        assert_eq!(
            f.size(),
            AUTO_START_MAX,
            "not 302 before any latency is known"
        );
        // A server at 100-300 ms, spread out: the mean is planned for in full.
        for i in 0..200u64 {
            f.record_latency(Duration::from_millis(100 + (i * 37) % 200));
        }
        f.adjust();
        let mean = f.latency_us.load(Ordering::Relaxed) as f64 / 1e6;
        assert_eq!(f.size(), InFlight::target(1000.0, mean));
        assert!(f.size() > 250, "{}", f.size());
    }

    #[test]
    fn queueing_it_causes_itself_does_not_grow_auto() {
        // A fast server (1 ms) and a rate above what it takes: the requests queue, and latency
        // rises to 40 ms; the plan stays at 4 times the server's own latency.
        let f = auto("40000/s");
        for _ in 0..50 {
            f.record_latency(Duration::from_millis(1));
        }
        f.adjust();
        for _ in 0..20 {
            for _ in 0..100 {
                f.record_latency(Duration::from_millis(40));
            }
            f.adjust();
        }
        assert_eq!(f.size(), InFlight::target(40000.0, 0.004));
        assert!(f.size() < 300, "{}", f.size());
    }

    /// Drives the limiter on a fake clock in 1 ms steps for `secs`, and returns the most cells
    /// let through in any 10-second span and the total.
    fn simulate(rate: &str, secs: u64) -> (usize, usize) {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let lim = RateLimiter::direct_with_clock(quota(rate.parse().unwrap()).0, clock.clone());
        let mut times = Vec::new();
        for ms in 0..secs * 1000 {
            while lim.check().is_ok() {
                times.push(ms);
            }
            clock.advance(Duration::from_millis(1));
        }
        (worst_window(&times), times.len())
    }

    /// The dispatcher's loop on a fake clock: take every cell there is, then sleep as `ready`
    /// does (tokio's timer wakes on the millisecond after). Returns the busiest 10 s, the total
    /// and the number of wake-ups.
    fn simulate_ready(rate: &str, secs: u64) -> (usize, usize, usize) {
        use governor::clock::FakeRelativeClock;
        let (quota, group) = quota(rate.parse().unwrap());
        let group_wait = quota.replenish_interval() * (group - 1);
        let clock = FakeRelativeClock::default();
        let lim = RateLimiter::direct_with_clock(quota, clock.clone());
        let (mut times, mut wakeups, mut now_ms) = (Vec::new(), 0, 0u64);
        while now_ms < secs * 1000 {
            loop {
                match lim.check() {
                    Ok(()) => times.push(now_ms),
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(clock.now()) + group_wait;
                        let ms = wait.as_millis() as u64 + 1;
                        clock.advance(Duration::from_millis(ms));
                        now_ms += ms;
                        wakeups += 1;
                        break;
                    }
                }
            }
        }
        (worst_window(&times), times.len(), wakeups)
    }

    fn worst_window(times: &[u64]) -> usize {
        let mut worst = 0;
        let mut start = 0;
        for (i, t) in times.iter().enumerate() {
            while times[start] + 10_000 <= *t {
                start += 1;
            }
            worst = worst.max(i + 1 - start);
        }
        worst
    }

    #[test]
    fn ready_lets_requests_go_in_groups_within_the_share() {
        for (rate, share, group) in [
            ("1000/s", 10_000, 8),
            ("166/s", 1660, 8),
            ("10000/min", 1666, 8),
            ("100/s", 1000, 5),
            ("50/s", 500, 2),
        ] {
            let (worst, total, wakeups) = simulate_ready(rate, 30);
            assert!(worst <= share, "{rate}: {worst} in 10 s, share {share}");
            let expected = share as f64 * 3.0;
            assert!(
                total as f64 >= expected * 0.99,
                "{rate}: {total} in 30 s, expected about {expected}"
            );
            // One wake-up per group, not per request.
            let most = total.div_ceil(group) + total / 50;
            assert!(
                wakeups <= most,
                "{rate}: {wakeups} wake-ups for {total} requests, groups of {group}"
            );
        }
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
