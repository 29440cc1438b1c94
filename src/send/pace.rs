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

    // The limiter below is the real one, driven on tokio's paused clock: sleeps end at once, at
    // their deadline (on the millisecond after, as the real timer fires).

    fn paused<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A dispatcher as the send pipeline's is: wait for the limiter, take whatever else it allows
    /// at once, then idle for `idle()` before the next round. Returns when each request went (in
    /// nanoseconds from the start) during `run`.
    fn dispatch(rate: &str, run: Duration, mut idle: impl FnMut() -> Duration) -> Vec<u64> {
        paused(async {
            let lim = Limiter::new(rate.parse().unwrap());
            let start = tokio::time::Instant::now();
            let at = || (tokio::time::Instant::now() - start).as_nanos() as u64;
            let mut times = Vec::new();
            loop {
                lim.ready().await;
                if at() >= run.as_nanos() as u64 {
                    return times;
                }
                times.push(at());
                while lim.try_ready() {
                    times.push(at());
                }
                let pause = idle();
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        })
    }

    /// The most requests in any half-open span of `span_ns`.
    fn busiest(times: &[u64], span_ns: u64) -> u64 {
        let (mut most, mut first) = (0, 0);
        for (i, t) in times.iter().enumerate() {
            while times[first] + span_ns <= *t {
                first += 1;
            }
            most = most.max(i + 1 - first);
        }
        most as u64
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn every_rate_keeps_its_unit_and_ten_seconds_within_share_and_its_long_run_rate() {
        // (rate, its unit in seconds, the unit's share, a 10-second span's share)
        for (rate, unit, unit_share, ten_share) in [
            ("1/h", 3600, 1, 1),
            ("50/hour", 3600, 50, 1),
            ("1/min", 60, 1, 1),
            ("2/min", 60, 2, 1),
            ("7/min", 60, 7, 2),
            ("12/min", 60, 12, 2),
            ("30/min", 60, 30, 5),
            ("1000/min", 60, 1000, 167),
            ("10000/min", 60, 10000, 1666),
            ("1/s", 1, 1, 10),
            ("3/s", 1, 3, 30),
            ("50/s", 1, 50, 500),
            ("166/s", 1, 166, 1660),
            ("1000/s", 1, 1000, 10_000),
            ("1666/10s", 10, 1666, 1666),
            ("10000/s", 1, 10_000, 100_000),
        ] {
            let run = Duration::from_secs((4 * unit).max(40));
            let times = dispatch(rate, run, || Duration::ZERO);
            let in_unit = busiest(&times, unit * SEC);
            assert!(
                in_unit <= unit_share,
                "{rate}: {in_unit} in {unit} s, share {unit_share}"
            );
            let in_ten = busiest(&times, 10 * SEC);
            assert!(
                in_ten <= ten_share,
                "{rate}: {in_ten} in 10 s, share {ten_share}"
            );
            // As the server may see them: each up to the plan's jitter late.
            let jitter = plan(rate.parse().unwrap()).jitter_ns;
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
            let mut arrived: Vec<u64> = times
                .iter()
                .map(|t| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    t + (seed >> 33) % (jitter + 1)
                })
                .collect();
            arrived.sort_unstable();
            let (in_unit, in_ten) = (busiest(&arrived, unit * SEC), busiest(&arrived, 10 * SEC));
            assert!(
                in_unit <= unit_share && in_ten <= ten_share,
                "{rate}, up to {jitter} ns late: {in_unit} in {unit} s, {in_ten} in 10 s"
            );
            let expected = rate.parse::<Rate>().unwrap().per_second() * run.as_secs_f64();
            let n = times.len() as f64;
            assert!(
                n >= (expected * 0.99).min(expected - 1.0) && n <= expected + 8.0,
                "{rate}: {n} requests in {run:?}, expected {expected}"
            );
        }
    }

    #[test]
    fn requests_leave_in_groups_where_the_spans_allow_it() {
        for (rate, group) in [
            ("10000/min", 8),
            ("1000/s", 8),
            ("10000/s", 8),
            // 166 is 2 × 83: larger groups would not divide a second's share.
            ("166/s", 2),
            ("50/s", 2),
            ("30/min", 1),
        ] {
            assert_eq!(plan(rate.parse().unwrap()).group, group, "{rate}");
            let times = dispatch(rate, Duration::from_secs(30), || Duration::ZERO);
            let mut wakeups = times.clone();
            wakeups.dedup();
            // One wake-up per group, not per request.
            assert!(
                wakeups.len() <= times.len().div_ceil(group as usize),
                "{rate}: {} wake-ups for {} requests, groups of {group}",
                wakeups.len(),
                times.len()
            );
        }
    }

    #[test]
    fn low_rates_allow_for_requests_that_reach_the_server_late() {
        for (rate, jitter_ms) in [
            ("12/min", 25),
            ("1/h", 25),
            ("30/min", 10),
            ("10000/min", 0),
            ("1000/s", 0),
        ] {
            let p = plan(rate.parse().unwrap());
            assert_eq!(p.jitter_ns, jitter_ms * 1_000_000, "{rate}: {p:?}");
        }
    }

    /// A rate of `count` per `unit` seconds, any from 1/h to 1,000,000/s; small counts often.
    fn any_rate() -> impl proptest::strategy::Strategy<Value = Rate> {
        use proptest::prelude::*;
        prop_oneof![Just(1u64), Just(10), Just(60), Just(3600)].prop_flat_map(|unit| {
            let most = crate::input::rate::MAX_PER_SECOND * unit;
            prop_oneof![1..=100u64, 1..=most].prop_map(move |count| Rate {
                count: count as u32,
                per: Duration::from_secs(unit),
            })
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// The plan's arithmetic over the whole range: never faster than the rate, at least
        /// 99.5 % of it, and the slots that can open in any span (its groups, each within
        /// `SLACK` of its slot, slots up to `LATE` early) fit the span's share.
        #[test]
        fn the_plan_keeps_every_rate_and_every_span_within_its_share(rate in any_rate()) {
            let p = plan(rate);
            let (group, period) = (u128::from(p.group), u128::from(p.period_ns));
            proptest::prop_assert!(group >= 1 && period >= 1);
            let (count, per) = (u128::from(rate.count), rate.per.as_nanos());
            proptest::prop_assert!(group * per <= period * count, "faster than {}: {:?}", rate, p);
            proptest::prop_assert!(p.cost(rate) <= 0.005, "{}: {:?} gives up {}", rate, p, p.cost(rate));
            for (span, share) in spans(rate) {
                let reach = u128::from(span + SLACK_NS + LATE_NS + p.jitter_ns);
                let slots = reach.div_ceil(period);
                proptest::prop_assert!(
                    group * slots <= u128::from(share),
                    "{}: {} groups of {} in {} ns, share {}", rate, slots, group, span, share
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The real limiter under a dispatcher that waits, comes late and idles at random: no
        /// span of the rate's unit, nor any 10 seconds, holds more than its share.
        #[test]
        fn a_dispatcher_that_comes_and_goes_never_overfills_a_span(
            count in 1u32..=2000,
            unit in proptest::prelude::prop_oneof![
                proptest::strategy::Just(1u64),
                proptest::strategy::Just(10),
                proptest::strategy::Just(60),
                proptest::strategy::Just(3600),
            ],
            idles in proptest::collection::vec(0u64..3_000, 1..16),
        ) {
            let rate = Rate { count, per: Duration::from_secs(unit) };
            let text = rate.to_string();
            // Idle for up to 3 periods, cycling through the drawn pattern; many zeros.
            let period = unit * SEC / u64::from(count);
            let mut i = 0;
            let idle = || {
                i += 1;
                let x = idles[i % idles.len()];
                Duration::from_nanos(if x < 1_000 { 0 } else { period * (x - 1_000) / 1_000 })
            };
            let run = Duration::from_secs((3 * unit).max(30));
            let times = dispatch(&text, run, idle);
            for (span, share) in spans(rate) {
                let most = busiest(&times, span);
                proptest::prop_assert!(most <= share, "{}: {} in {} ns, share {}", text, most, span, share);
            }
        }
    }
}
