//! Pacing: one limiter for the whole run, a gate that pauses every sender at once (a 429, or the
//! server saying its window is nearly spent), and the in-flight limit, fixed or derived from the
//! rate and the observed latency (Little's law).
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

use crate::input::config::Concurrency;
use crate::input::rate::Rate;
use crate::intercom::client::RateInfo;

use crate::intercom::WINDOW;

/// The limiter: requests leave in groups ("slots") of `group`, one slot every `period`, so that
/// no span of the rate's own unit (`30/min`: any 60 s) holds more than the rate's count and no
/// 10-second span more than its share ([`Rate::per_window`]), and the long-run rate is at least
/// 99.5 % of the configured one, from 1/h to 1,000,000/s.
///
/// Slots follow GCRA's virtual schedule: a slot may open `LATE` before its time, so that a timer
/// firing a little late costs no rate; the schedule moves on from the slot's time, not from when
/// it opened. A slot's requests leave within `SLACK` of its opening or not at all. So the slots
/// opened in any span of `L + SLACK` number at most `(L + SLACK + LATE) / period` rounded up, and
/// `plan` chooses the period so that this many groups fit each span's share.
///
/// Times are read from tokio's clock, so that tests drive this very code on paused time.
/// (A tolerance counted in whole requests cannot give both at low rates: at 50/s one request of
/// tolerance is 2 % of a second's share, and none makes every late timer cost rate.)
pub struct Limiter {
    start: tokio::time::Instant,
    plan: Plan,
    state: Mutex<Slot>,
}

/// How requests are paced: `group` requests every `period_ns`. Any span also holds its share if
/// each request reaches the server up to `jitter_ns` later than it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    group: u32,
    period_ns: u64,
    jitter_ns: u64,
}

/// The schedule, in nanoseconds from the limiter's start.
#[derive(Debug, Default)]
struct Slot {
    /// When the next slot is due; `None` before the first, which opens at once.
    next: Option<u64>,
    /// When the current slot opened, and how many of its requests are left.
    opened: u64,
    left: u32,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            start: tokio::time::Instant::now(),
            plan: plan(rate),
            state: Mutex::new(Slot::default()),
        }
    }

    fn now(&self) -> u64 {
        let since = tokio::time::Instant::now().duration_since(self.start);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes one request's place at `now`, or says when the next slot may open.
    fn take(&self, now: u64) -> Result<(), u64> {
        let mut slot = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if slot.left > 0 && now <= slot.opened.saturating_add(SLACK_NS) {
            slot.left -= 1;
            return Ok(());
        }
        let due = slot.next.unwrap_or(now);
        let earliest = due.saturating_sub(LATE_NS);
        if now < earliest {
            return Err(earliest);
        }
        slot.next = Some(due.max(now).saturating_add(self.plan.period_ns));
        slot.opened = now;
        slot.left = self.plan.group - 1;
        Ok(())
    }

    /// Takes a place if one is there now; never waits.
    pub fn try_ready(&self) -> bool {
        self.take(self.now()).is_ok()
    }

    /// Waits until one more request may go. Sleeps on tokio's timer, on the sending thread: a
    /// timer thread of its own would cost a wake-up and a thread hand-off for every request. The
    /// rest of the slot's group is there for `try_ready` when this returns.
    pub async fn ready(&self) {
        while let Err(at) = self.take(self.now()) {
            tokio::time::sleep_until(self.start + Duration::from_nanos(at)).await;
        }
    }
}

/// Requests that leave together when the limiter is what holds them back: those of about 50 ms,
/// at most 8. One timer wake-up, one journal write and (the answers coming back together) fewer
/// wake-ups for a group instead of one each: at low rates a message's CPU is mostly wake-ups.
const GROUP_SPAN: f64 = 0.050;
const MAX_GROUP: u32 = 8;
/// How late a timer may fire without costing rate: a slot may open this much before its time.
/// Tokio's timer fires on the millisecond after the deadline.
const LATE_NS: u64 = 2_000_000;
/// How long after its slot opened a request of the group may still leave: the dispatcher takes a
/// group in one go, within microseconds.
const SLACK_NS: u64 = 1_000_000;
/// The most of the rate the plan may give up: a thousandth of each span kept back (requests that
/// leave on schedule can reach the server a few milliseconds closer together), `LATE` and `SLACK`
/// in each span, and whole groups in a span's share. Groups shrink until it fits.
const MOST_COST: f64 = 0.005;
/// Allowances for requests that reach the server later than they left (a busy machine, a new
/// connection), largest first: each span also holds this much more time, where the rate's half
/// percent has room for it and it is at most a hundredth of the period. At 12/min, 25 ms: a
/// request 15 ms late would otherwise put a third request into one 10-second span at the server.
/// At high rates the period is milliseconds, a late request one of hundreds in its span, and the
/// thousandth of each span kept back is the allowance.
const JITTER_NS: [u64; 5] = [25_000_000, 10_000_000, 5_000_000, 2_000_000, 1_000_000];

/// The spans a rate is kept within, with their shares: its own unit and Intercom's window.
fn spans(rate: Rate) -> [(u64, u64); 2] {
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    [
        (ns(rate.per), u64::from(rate.count)),
        (ns(WINDOW), u64::from(rate.per_window(WINDOW))),
    ]
}

/// The largest group (up to about 50 ms of requests, at most 8) whose plan gives up at most
/// `MOST_COST` of the rate, groups of 1 if none does; then the largest allowance for jitter that
/// still fits.
fn plan(rate: Rate) -> Plan {
    let most = (rate.per_second() * GROUP_SPAN).clamp(1.0, MAX_GROUP as f64) as u32;
    let fits = |plan: &Plan| plan.cost(rate) <= MOST_COST;
    let group = (2..=most)
        .rev()
        .find(|&group| plan_for(rate, group, 0).is_some_and(|p| fits(&p)))
        .unwrap_or(1);
    let period = plan_for(rate, group, 0).map_or(0, |p| p.period_ns);
    JITTER_NS
        .iter()
        .filter(|&&jitter| jitter <= period / 100)
        .filter_map(|&jitter| plan_for(rate, group, jitter))
        .find(fits)
        .or_else(|| plan_for(rate, group, 0))
        // A share is at least 1, so groups of 1 always have a period; this is never used.
        .unwrap_or(Plan {
            group: 1,
            period_ns: u64::MAX,
            jitter_ns: 0,
        })
}

/// The shortest period at which groups of `group` keep every span within its share: the slots
/// in `span + SLACK + LATE + jitter` (and a thousandth of the span) are at most share / group.
fn plan_for(rate: Rate, group: u32, jitter_ns: u64) -> Option<Plan> {
    let mut period_ns = 1;
    for (span, share) in spans(rate) {
        let slots = share / u64::from(group);
        if slots == 0 {
            return None;
        }
        let reach = span + span / 1000 + SLACK_NS + LATE_NS + jitter_ns;
        period_ns = period_ns.max(reach.div_ceil(slots));
    }
    Some(Plan {
        group,
        period_ns,
        jitter_ns,
    })
}

impl Plan {
    /// The share of the configured rate this plan gives up.
    fn cost(&self, rate: Rate) -> f64 {
        let per_ns = rate.per.as_nanos() as f64;
        let achieved = self.group as f64 * per_ns / (self.period_ns as f64 * rate.count as f64);
        1.0 - achieved
    }
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

/// Waits for a request's turn: the gate open, the limiter's slot, and the gate again, since a
/// pause that began during the limiter's wait holds this request too. Every request of a run
/// (messages, their retries, searches) waits here.
pub async fn turn(gate: &Gate, limiter: &Limiter) {
    gate.wait().await;
    limiter.ready().await;
    gate.wait().await;
}

/// Until when every sender waits after a 429: its `Retry-After` (at most a minute), else the
/// window's reset, else two seconds.
pub fn rate_limited_until(retry_after: Option<Duration>, reset_unix: Option<u64>) -> Instant {
    match (retry_after, reset_unix) {
        (Some(d), _) => Instant::now() + d.min(Duration::from_secs(60)),
        (None, Some(reset)) => reset_instant(reset),
        (None, None) => Instant::now() + Duration::from_secs(2),
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

pub use crate::input::config::AUTO_MAX;
/// The most requests in flight `auto` starts with, before any latency is measured.
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
    /// `AUTO_MAX`, where requests only queue: less throughput, more CPU per message. A server
    /// whose latency is merely spread out stays under the cap.
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
mod tests;
