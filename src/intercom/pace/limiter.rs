//! The limiter: governor's GCRA, on tokio's clock. The quota comes from the rate so that no span
//! of the rate's own unit (`30/min`: any 60 s) holds more than the rate's count, no 10-second
//! span more than its share ([`Rate::per_window`]), and the long-run rate is at least 99.4 % of
//! the configured one, from 1/h to 1,000,000/s.
//!
//! GCRA lets a request go at `t` if `t >= TAT - tau` (the theoretical arrival time less the
//! tolerance), and moves TAT to `max(TAT, t) + period`. So any closed span of length `L` holds at
//! most `floor((L + tau) / period) + 1` requests: [`plan`] picks `period` and `tau` so that this
//! is at most each span's share. The tolerance is what makes the rate: a timer fires on the
//! millisecond after its deadline, and without a tolerance each such late wake-up is lost rate
//! (5 % at 50/s). It is `LATE`, plus `group - 1` periods where the spans have room for a group:
//! then the wait ends when a group's requests may leave together (one wake-up).
//!
//! A tolerance of 2 ms is a fraction of a request at rates below 500/s, and governor's burst is
//! a whole number of cells: so a request is `cells` cells of `period / cells` each (taken with
//! `check_n`), which counts the tolerance in thousandths of a request. At low rates the burst
//! is one request's cells: `1/h` lets its second request go an hour and 3.6 s after its first.
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::input::rate::Rate;
use crate::intercom::RATE_WINDOW;

/// governor's clock, read from tokio's: the limiter's tests run this very code on paused time.
/// Its instants are nanoseconds since the clock was made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant of one of this clock's.
    fn instant(&self, at: Nanos) -> tokio::time::Instant {
        self.origin + Duration::from(at)
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// One limiter for every request of a run (see the module's header).
pub struct Limiter {
    gcra: Gcra,
    clock: TokioClock,
    plan: Spacing,
    cells: NonZeroU32,
}

/// How a rate's requests are spaced: the quota governor paces them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spacing {
    /// Time per request, a whole number of cells.
    pub(crate) period_ns: u64,
    /// governor's cell, and the cells a request takes.
    pub(crate) cell_ns: u64,
    pub(crate) cells: u32,
    /// governor's burst, in cells: a request's, and the tolerance's.
    pub(crate) burst_cells: u32,
    /// Requests that leave together when the limiter holds them back.
    pub(crate) group: u32,
    /// How much later than it left a request may reach the server with every span still
    /// within its share there.
    pub(crate) jitter_ns: u64,
}

impl Spacing {
    /// The tolerance: how far before its theoretical time a request may go.
    pub(crate) fn tolerance_ns(&self) -> u64 {
        u64::from(self.burst_cells - self.cells) * self.cell_ns
    }

    /// The share of the configured rate this plan gives up.
    pub(crate) fn cost(&self, rate: Rate) -> f64 {
        let nominal = rate.per.as_nanos() as f64 / f64::from(rate.count);
        1.0 - nominal / self.period_ns as f64
    }
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        let plan = plan(rate);
        let cell = Duration::from_nanos(plan.cell_ns);
        let burst = NonZeroU32::new(plan.burst_cells).expect("at least one request's cells");
        let quota = Quota::with_period(cell)
            .expect("a cell is at least 1 ns")
            .allow_burst(burst);
        let clock = TokioClock::new();
        Limiter {
            gcra: RateLimiter::direct_with_clock(quota, clock),
            clock,
            plan,
            cells: NonZeroU32::new(plan.cells).expect("a request is at least one cell"),
        }
    }

    /// Takes one request's place if it may go now; never waits.
    pub fn try_take(&self) -> bool {
        matches!(self.gcra.check_n(self.cells), Ok(Ok(())))
    }

    /// Waits until one more request may go, and takes its place. When it must wait, it waits
    /// until a group may go, so that the rest of the group is there for [`Limiter::try_take`].
    /// Sleeps on tokio's timer, on the caller's thread. Returns the turn's time: the deadline it
    /// slept until (a period after the last one's, while the limiter paces), else now.
    pub async fn take(&self) -> tokio::time::Instant {
        let mut turn = tokio::time::Instant::now();
        loop {
            let earliest = match self.gcra.check_n(self.cells) {
                Ok(Ok(())) => return turn,
                Ok(Err(not_until)) => not_until.earliest_possible(),
                // The burst holds at least one request's cells: never.
                Err(_) => self.clock.now() + Nanos::from(self.plan.period_ns),
            };
            let group = u64::from(self.plan.group - 1) * self.plan.period_ns;
            let at = self.clock.instant(earliest + Nanos::from(group));
            tokio::time::sleep_until(at).await;
            turn = at;
        }
    }

    /// Requests that leave together when the limiter holds them back.
    pub fn group(&self) -> u32 {
        self.plan.group
    }

    /// The most requests it lets go at once: enough in flight for these never holds it back.
    pub fn at_once(&self) -> usize {
        let tolerance = self.plan.tolerance_ns() / self.plan.period_ns;
        usize::try_from(tolerance)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    }

    /// The time per request.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.plan.period_ns)
    }

    #[cfg(test)]
    pub(crate) fn plan(&self) -> Spacing {
        self.plan
    }
}

/// Requests that leave together when the limiter is what holds them back: those of about 50 ms,
/// at most 8. One timer wake-up, one journal write and (the answers coming back together) fewer
/// wake-ups for a group instead of one each: at low rates a message's CPU is mostly wake-ups.
const GROUP_SPAN: f64 = 0.050;
const MAX_GROUP: u32 = 8;
/// How late a timer may fire without costing rate (tokio's fires on the millisecond after the
/// deadline, later on a busy machine).
pub(crate) const LATE_NS: u64 = 2_000_000;
/// The most of the rate the plan may give up: a thousandth of each span kept back (requests that
/// leave on schedule can reach the server a little closer together), the tolerance, the jitter
/// allowance, and the share's rounding down. Groups shrink until it fits.
pub(crate) const MOST_COST: f64 = 0.006;
/// Allowances for requests that reach the server later than they left (a busy machine, a new
/// connection), largest first: each span also holds this much more time, where the rate's cost
/// has room for it and it is at most a hundredth of the period. At 12/min, 25 ms: a request
/// 15 ms late would otherwise put a third request into one 10-second span at the server. At high
/// rates a late request is one of hundreds in its span, and the thousandth of each span kept back
/// is the allowance.
const JITTER_NS: [u64; 5] = [25_000_000, 10_000_000, 5_000_000, 2_000_000, 1_000_000];
/// governor's cell is at most this fraction of a request: the tolerance is counted finely.
const CELLS_PER_REQUEST: u64 = 4096;

/// The spans a rate is kept within, with their shares: its own unit and Intercom's window.
pub(crate) fn spans(rate: Rate) -> [(u64, u64); 2] {
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    [
        (ns(rate.per), u64::from(rate.count)),
        (ns(RATE_WINDOW), u64::from(rate.per_window(RATE_WINDOW))),
    ]
}

/// The largest group (about 50 ms of requests, at most 8) whose plan gives up at most
/// `MOST_COST` of the rate, else groups of 1; then the largest allowance for jitter that fits.
/// (A message's journal sync no longer follows its group: the dispatcher gathers the turns of
/// a tenth of a second behind one sync, so a group that costs rate buys little.)
pub(crate) fn plan(rate: Rate) -> Spacing {
    let most = (rate.per_second() * GROUP_SPAN).clamp(1.0, f64::from(MAX_GROUP)) as u32;
    let within = |g: u32| plan_for(rate, g, 0).is_some_and(|p| p.cost(rate) <= MOST_COST);
    let group = (2..=most).rev().find(|&g| within(g)).unwrap_or(1);
    let fits = |p: &Spacing| p.cost(rate) <= MOST_COST;
    let alone = plan_for(rate, group, 0).expect("a share is at least 1, so groups of 1 fit");
    JITTER_NS
        .iter()
        .filter(|&&jitter| jitter <= alone.period_ns / 100)
        .filter_map(|&jitter| plan_for(rate, group, jitter))
        .find(fits)
        .unwrap_or(alone)
}

/// The shortest period at which groups of `group` keep every span within its share: with the
/// tolerance `tau = (group - 1) × period + LATE`, a span of `L` (and a thousandth, and the jitter)
/// holds `floor((L' + tau) / period) + 1` requests, which is below `share + 1` when
/// `period > (L' + LATE) / (share - group + 1)`.
fn plan_for(rate: Rate, group: u32, jitter_ns: u64) -> Option<Spacing> {
    let mut period = 1u64;
    for (span, share) in spans(rate) {
        let room = share.checked_sub(u64::from(group) - 1).filter(|&r| r > 0)?;
        let reach = span + span / 1000 + jitter_ns + LATE_NS;
        period = period.max(reach / room + 1);
    }
    let cell = (period / CELLS_PER_REQUEST).max(1);
    let cells = period.div_ceil(cell);
    let period = cells * cell;
    let tolerance = u64::from(group - 1) * period + LATE_NS;
    Some(Spacing {
        period_ns: period,
        cell_ns: cell,
        cells: u32::try_from(cells).ok()?,
        burst_cells: u32::try_from(cells + tolerance / cell).ok()?,
        group,
        jitter_ns,
    })
}
