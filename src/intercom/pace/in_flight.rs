//! The in-flight limit: a semaphore, fixed or (`auto`) sized by Little's law from the rate and
//! the latency measured on tokio's clock, never below what the limiter lets go at once. Its
//! places are held from a request's turn to its answer, through a message's lead; a second
//! semaphore, the wire, bounds the requests sent and not answered (a fixed `--concurrency`; for
//! `auto`, by the latency alone), so that the places a lead or a journal sync needs never become
//! requests piled on a server that slows down.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::input::config::Concurrency;
use crate::input::rate::Rate;

/// The in-flight limit: a semaphore whose size follows the target.
pub struct InFlight {
    pub semaphore: Arc<Semaphore>,
    size: AtomicUsize,
    /// Permits for requests on the wire (from the door to the answer): `auto` sizes it by the
    /// latency, without the lead.
    pub wire: Arc<Semaphore>,
    wire_size: AtomicUsize,
    mode: Concurrency,
    rate_per_sec: f64,
    /// Requests the limiter lets go at once, and one waiting its turn: `auto` never goes below
    /// it, so that the limiter, not the in-flight limit, is what paces a fast server.
    pub(super) floor: usize,
    /// Exponentially weighted mean latency, in microseconds.
    pub(super) latency_us: AtomicU64,
    /// Exponentially weighted mean time a request holds its place beside its answer (from its
    /// turn to its leaving: the journal's sync, a busy machine's scheduling), in microseconds.
    overhead_us: AtomicU64,
    /// How long after its turn a message leaves when places allow ([`super::LEAD`]): `auto`
    /// makes room for the time from turn to leaving measured, but at least twice the lead
    /// (whatever was measured while places were short), so that turns keep coming through a
    /// journal sync that stalls for a lead.
    lead_us: u64,
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
    /// `at_once`: the most requests the limiter lets go together ([`super::Limiter::at_once`]);
    /// `lead`: how long after its turn a message leaves when places allow.
    pub fn new(mode: Concurrency, rate: Rate, at_once: usize, lead: Duration) -> InFlight {
        let floor = at_once.saturating_add(1);
        // Until latency is measured, assume 200 ms; but not so many at once.
        let start = |beside_latency: f64| match mode {
            Concurrency::Fixed(n) => n,
            Concurrency::Auto => Self::target(rate.per_second(), 0.2 + beside_latency, floor)
                .min(AUTO_START_MAX.max(floor.min(AUTO_MAX))),
        };
        let wire = start(0.0);
        let places = match mode {
            // Without a lead (above 1,706/s) a message leaves when its journal line is synced:
            // twice the requests on the wire, so that the next rows are synced while `n` are
            // out rather than in places the wire could use. With a lead, the lead does that.
            Concurrency::Fixed(n) if lead.is_zero() => n.saturating_mul(2),
            Concurrency::Fixed(n) => n,
            Concurrency::Auto => start(2.0 * lead.as_secs_f64()),
        };
        InFlight {
            semaphore: Arc::new(Semaphore::new(places)),
            size: AtomicUsize::new(places),
            wire: Arc::new(Semaphore::new(wire)),
            wire_size: AtomicUsize::new(wire),
            mode,
            rate_per_sec: rate.per_second(),
            floor,
            latency_us: AtomicU64::new(200_000),
            overhead_us: AtomicU64::new(0),
            lead_us: lead.as_micros().min(u64::MAX as u128) as u64,
            period_min_us: AtomicU64::new(u64::MAX),
            period_mins: Mutex::new(std::collections::VecDeque::with_capacity(BASE_PERIODS)),
        }
    }

    /// Little's law: in flight = rate × latency; with headroom for latency's spread, and on top
    /// of `floor` (a group leaving at once, one waiting for its turn, a journal sync): at any
    /// latency the limiter, not this limit, holds requests back.
    pub(crate) fn target(rate_per_sec: f64, latency_secs: f64, floor: usize) -> usize {
        let littles = (rate_per_sec * latency_secs * 1.5).ceil() as usize;
        (littles + floor + 1).clamp(2, AUTO_MAX)
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// The time from a request's turn to its leaving: places are held through it too.
    pub fn record_overhead(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128 / 8) as u64;
        let old = self.overhead_us.load(Ordering::Relaxed);
        self.overhead_us
            .store((old * 7 + us) / 8, Ordering::Relaxed);
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

    /// Moves the semaphores toward their targets; called a few times a second in `auto` mode.
    pub fn adjust(&self) {
        if self.mode != Concurrency::Auto {
            return;
        }
        let planning = self.planning_latency_us();
        let overhead = self
            .overhead_us
            .load(Ordering::Relaxed)
            .max(self.lead_us.saturating_mul(2));
        let latency = (planning + overhead) as f64 / 1e6;
        let target = Self::target(self.rate_per_sec, latency, self.floor);
        resize(&self.semaphore, &self.size, target);
        let wire = Self::target(self.rate_per_sec, planning as f64 / 1e6, self.floor);
        resize(&self.wire, &self.wire_size, wire);
    }

    /// The most requests on the wire at once, now.
    pub(super) fn wire_size(&self) -> usize {
        self.wire_size.load(Ordering::Relaxed)
    }
}

/// Moves a semaphore of `size` permits toward `target`: growing at once, shrinking as permits
/// come back, never below the target.
fn resize(semaphore: &Arc<Semaphore>, size: &AtomicUsize, target: usize) {
    let now = size.load(Ordering::Relaxed);
    if target > now {
        semaphore.add_permits(target - now);
        size.store(target, Ordering::Relaxed);
    } else if target < now {
        let shrink = (now - target) as u32;
        if let Ok(p) = Arc::clone(semaphore).try_acquire_many_owned(shrink) {
            p.forget();
            size.store(target, Ordering::Relaxed);
        }
    }
}
