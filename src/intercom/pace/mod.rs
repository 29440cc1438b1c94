//! Pacing: every request of a run goes one way, through one [`Pace`]: it waits for a place in
//! the in-flight limit ([`in_flight`]), the pause gate ([`gate`]) and its turn at the limiter
//! ([`limiter`], governor's GCRA on tokio's clock), then passes the same quota once more as it
//! leaves (what happened between its turn and its leaving, a message's journal sync, may have
//! held it up with others) and is sent and heard: its latency taken into the in-flight limit,
//! the server's rate headers read, and a 429 pausing every sender.
//! A stop ends every wait but a message's lead, the wire's and the door's (a request there has
//! had its turn, a message its journal line: it leaves, and its outcome is recorded); past them,
//! [`Pace::send_if`] lets the caller hold it back at the last moment (a message: the send hours,
//! a pause). Callers keep only their own policy (what to retry, what an answer means).
//!
//! A request that needs nothing between its turn and its leaving (a search, `GET /admins`) is
//! one call:
//!
//! ```ignore
//! let body = Bytes::from(query.to_string());
//! match pace.request(|client| client.search_at("conversations/search", body)).await {
//!     None => { /* the run stopped while it waited: nothing was sent */ }
//!     Some(Search::Found { body, .. }) => { /* the page */ }
//!     Some(other) => { /* its own policy: a 429 has already paused everyone */ }
//! }
//! ```
//!
//! A message is journaled between its turn and its leaving, so the dispatcher takes the steps
//! one by one: [`Pace::place`] (or [`Pace::try_place`]), [`Pace::turn`] (or
//! [`Pace::try_turn`]), its own checks and journal, [`Pace::depart`] (its turn plus the lead,
//! [`LEAD`], when places allow), then [`Pace::send_if`] (which holds it back at the last moment
//! if the send hours closed or every sender is paused since its turn).
mod gate;
mod in_flight;
mod limiter;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::input::config::Concurrency;
use crate::input::rate::Rate;
use crate::intercom::client::{Attempt, Client, Got, RateInfo, Search};

pub use gate::Gate;
pub use in_flight::{InFlight, AUTO_MAX};
pub use limiter::Limiter;

/// How long after its turn a message leaves when places allow. Its journal line is synced
/// meanwhile, together with those of every message whose turn came in the first part of it (one
/// sync for many), and a sync that stalls for less than the rest delays no request: requests
/// leave as their turns came, a lead behind them. The in-flight limit of `auto` makes room for
/// it; a run short of places (a fixed `--concurrency`, a server slower than the rate allows)
/// does not wait for it.
pub const LEAD: Duration = Duration::from_millis(300);

/// The most messages a lead may hold: above it (over 1,706/s) messages leave as soon as their
/// sync is done, since the places a lead needs would crowd out those of requests in flight
/// under `auto`'s bound.
const MOST_LEAD_ROWS: f64 = 512.0;

/// The lead at a rate: [`LEAD`], or none above [`MOST_LEAD_ROWS`] in it. Where the limiter
/// lets at least four groups go within it, it is rounded up to a whole number of the groups'
/// spacing: a message then leaves at the very deadline of a later group's turn, and one timer
/// wake-up serves both (at 166/s, 301.2 ms: 50 periods).
fn lead_for(rate: Rate, limiter: &Limiter) -> Duration {
    if rate.per_second() * LEAD.as_secs_f64() > MOST_LEAD_ROWS {
        return Duration::ZERO;
    }
    let spacing = limiter.period() * limiter.group();
    match LEAD.as_nanos().div_ceil(spacing.as_nanos().max(1)) {
        n @ 4.. => spacing * u32::try_from(n).unwrap_or(u32::MAX),
        _ => LEAD,
    }
}

/// What the pacing hears of an answer.
pub trait Answer {
    /// The server's rate headers, if it answered at all (latency is measured on answers only).
    fn heard(&self) -> Option<&RateInfo>;
    /// A 429's `Retry-After`: `Some(None)` for a 429 without one, `None` for any other answer.
    fn rate_limited(&self) -> Option<Option<Duration>>;
}

impl Answer for Attempt {
    fn heard(&self) -> Option<&RateInfo> {
        match self {
            Attempt::Sent { rate, .. } | Attempt::Rejected { rate, .. } => Some(rate),
            Attempt::NotReached(_) | Attempt::Unknown(_) => None,
        }
    }
    fn rate_limited(&self) -> Option<Option<Duration>> {
        match self {
            Attempt::Rejected {
                status: 429,
                retry_after,
                ..
            } => Some(*retry_after),
            _ => None,
        }
    }
}

impl Answer for Search {
    fn heard(&self) -> Option<&RateInfo> {
        match self {
            Search::Found { rate, .. } | Search::Rejected { rate, .. } => Some(rate),
            Search::NoAnswer(_) => None,
        }
    }
    fn rate_limited(&self) -> Option<Option<Duration>> {
        match self {
            Search::Rejected {
                status: 429,
                retry_after,
                ..
            } => Some(*retry_after),
            _ => None,
        }
    }
}

impl Answer for Got {
    fn heard(&self) -> Option<&RateInfo> {
        self.rate.as_ref()
    }
    fn rate_limited(&self) -> Option<Option<Duration>> {
        (self.status == Some(429)).then_some(self.retry_after)
    }
}

/// One client, one limiter, one pause, one in-flight limit and one stop for every request of a
/// run (searches and messages count against the same Intercom limit).
pub struct Pace {
    client: Client,
    gate: Gate,
    limiter: Limiter,
    /// The same quota again, at the moment requests leave: a message's turn comes before its
    /// journal line is synced, and a slow sync would otherwise let the turns that came during
    /// it leave at once behind it, more of them in some span than its share. Requests that
    /// leave as their turns came pass at once.
    leaving: Limiter,
    in_flight: InFlight,
    /// How long after its turn a message leaves when places allow ([`lead_for`]).
    lead: Duration,
    stop: CancellationToken,
    /// 429 answers: each paused every sender.
    rate_limited: AtomicU64,
    /// Requests sent and not yet answered (not the places held by messages waiting out their
    /// lead).
    sending: AtomicUsize,
    /// Requests waiting for the wire: their turn came, and every request it allows is out.
    at_wire: AtomicUsize,
    /// Told when the requests waiting for the wire fall to [`Pace::wire_low`].
    wire_moved: tokio::sync::Notify,
}

/// A request's place in the in-flight limit, held until its outcome is final.
pub struct Place {
    /// Given back when the place is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Pace {
    pub fn new(
        client: Client,
        rate: Rate,
        concurrency: Concurrency,
        stop: CancellationToken,
    ) -> Pace {
        let limiter = Limiter::new(rate);
        let lead = lead_for(rate, &limiter);
        let in_flight = InFlight::new(concurrency, rate, limiter.at_once(), lead);
        Pace {
            client,
            gate: Gate::default(),
            limiter,
            leaving: Limiter::new(rate),
            in_flight,
            lead,
            stop,
            rate_limited: AtomicU64::new(0),
            sending: AtomicUsize::new(0),
            at_wire: AtomicUsize::new(0),
            wire_moved: tokio::sync::Notify::new(),
        }
    }

    /// The whole path of one request that needs nothing between its turn and its leaving: a
    /// place, its turn, then `call` sent and heard. `None`: the run stopped while it waited,
    /// and nothing was sent.
    pub async fn request<'a, A, F, Fut>(&'a self, call: F) -> Option<A>
    where
        A: Answer,
        F: FnOnce(&'a Client) -> Fut,
        Fut: Future<Output = A>,
    {
        let _place = self.place().await?;
        if !self.turn().await {
            return None;
        }
        Some(self.send(call(&self.client)).await)
    }

    /// Waits for a place in the in-flight limit; `None` if the run stops meanwhile.
    pub async fn place(&self) -> Option<Place> {
        let semaphore = Arc::clone(&self.in_flight.semaphore);
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            p = semaphore.acquire_owned() => p.ok().map(|p| Place { _permit: p }),
        }
    }

    /// A place in the in-flight limit if one is free now.
    pub fn try_place(&self) -> Option<Place> {
        Arc::clone(&self.in_flight.semaphore)
            .try_acquire_owned()
            .ok()
            .map(|p| Place { _permit: p })
    }

    /// Waits for the request's turn: the gate open, the limiter's turn taken, and the gate again
    /// (a pause that began during the limiter's wait holds this request too). `false`: the run
    /// stopped meanwhile.
    pub async fn turn(&self) -> bool {
        self.turn_at().await.is_some()
    }

    /// As [`Pace::turn`]: `Some` the turn's time (the limiter's deadline, when it waited for
    /// one; else now), `None` if the run stopped meanwhile.
    pub async fn turn_at(&self) -> Option<Instant> {
        let turn = async {
            self.gate.wait().await;
            let at = self.limiter.take().await;
            match self.gate.wait().await {
                // The gate held it: its turn is now.
                true => Instant::now(),
                false => at,
            }
        };
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            at = turn => Some(at),
        }
    }

    /// Takes a turn if the gate is open and the limiter lets one more go now; never waits.
    pub fn try_turn(&self) -> bool {
        !self.stop.is_cancelled() && self.gate.is_open() && self.limiter.try_take()
    }

    /// Waits until `at` (a message's turn plus its lead). The message is journaled, so a stop
    /// does not end this wait (at most a lead), and neither does a pause that began since its
    /// turn: it goes on to the door, where a pause (or closed send hours) holds it back, to
    /// wait as a retry does (a new turn, the send hours checked again).
    pub async fn depart(&self, at: Instant) {
        // Short of places, messages leave as soon as they are synced: no timer for them.
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Whether every place in the in-flight limit is taken: requests wait for answers, and
    /// holding a journaled message back for its lead would only slow the run.
    pub fn places_short(&self) -> bool {
        self.in_flight.semaphore.available_permits() == 0
    }

    /// Sends a request whose turn was taken, and hears its answer: the latency, the rate
    /// headers, a 429 (every sender waits until its `Retry-After`, else the window's reset).
    /// It leaves when the limiter at the door lets it (at once, unless requests whose turns
    /// came earlier were held up and now leave together). A request sent is not cancelled by a
    /// stop: its outcome is recorded.
    pub async fn send<A: Answer>(&self, call: impl Future<Output = A>) -> A {
        match self.send_if(|| Ok::<(), Infallible>(()), call).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        }
    }

    /// As [`Pace::send`], asking `may_leave` at the last moment, past the wire and the door
    /// (either may have held the request for as long as a slow server's answers take): an
    /// `Err`, and nothing is sent.
    pub async fn send_if<A: Answer, H>(
        &self,
        may_leave: impl FnOnce() -> Result<(), H>,
        call: impl Future<Output = A>,
    ) -> Result<A, H> {
        // The wire's permit: never more requests sent and unanswered than the latency needs,
        // whatever the places held by messages waiting out their lead. It is never closed.
        let _wire = {
            let _waiting = AtWire::new(self);
            self.in_flight.wire.acquire().await.ok()
        };
        self.leaving.take().await;
        may_leave()?;
        let started = Instant::now();
        self.sending.fetch_add(1, Ordering::Relaxed);
        let answer = call.await;
        // This request among them: the window's remaining calls are to cover the others and
        // one more, as they did when the limit counted places.
        let sending = self.sending.fetch_sub(1, Ordering::Relaxed);
        if let Some(rate) = answer.heard() {
            self.in_flight.record_latency(started.elapsed());
            heed_server(&self.gate, rate, sending);
            if let Some(retry_after) = answer.rate_limited() {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.gate
                    .pause_until(rate_limited_until(retry_after, rate.reset));
            }
        }
        Ok(answer)
    }

    /// Whether more requests wait for the wire than [`Pace::wire_low`]: rows synced now would
    /// only wait behind them.
    pub fn wire_backlog(&self) -> bool {
        self.at_wire.load(Ordering::Relaxed) > self.wire_low()
    }

    /// Waits until the requests waiting for the wire fall to [`Pace::wire_low`] (or did since
    /// the last such wait: at worst it returns early).
    pub async fn wire_drained(&self) {
        self.wire_moved.notified().await;
    }

    /// A quarter of the wire: as many requests as may wait for it while the next rows' journal
    /// sync runs, so that the wire does not go idle meanwhile.
    fn wire_low(&self) -> usize {
        self.in_flight.wire_size() / 4
    }

    /// Whether every sender is paused now (a 429, or the server's rate headers).
    pub fn is_paused(&self) -> bool {
        !self.gate.is_open()
    }

    /// Waits out a backoff; `false` if the run stops meanwhile.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// How long after its turn a message leaves when places allow: [`LEAD`], or none at rates
    /// above 1,706/s.
    pub fn lead(&self) -> Duration {
        self.lead
    }

    /// The limiter's time per request.
    pub fn period(&self) -> Duration {
        self.limiter.period()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// How long requests whose turn came waited to leave (their journal line's sync): their
    /// places are held meanwhile, so `auto` counts it beside the answers' latency.
    pub fn record_overhead(&self, d: Duration) {
        self.in_flight.record_overhead(d);
    }

    /// `auto`: moves the in-flight limit toward its target; called a few times a second.
    pub fn adjust(&self) {
        self.in_flight.adjust();
    }

    /// How long every sender has been held back by the server so far.
    pub fn paused(&self) -> Duration {
        self.gate.paused()
    }

    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

/// A request counted among those waiting for the wire while it lives (a request dropped while
/// it waits, by a run that ends, is counted out too).
struct AtWire<'a>(&'a Pace);

impl<'a> AtWire<'a> {
    fn new(pace: &'a Pace) -> AtWire<'a> {
        pace.at_wire.fetch_add(1, Ordering::Relaxed);
        AtWire(pace)
    }
}

impl Drop for AtWire<'_> {
    fn drop(&mut self) {
        let pace = self.0;
        let left = pace.at_wire.fetch_sub(1, Ordering::Relaxed) - 1;
        if left <= pace.wire_low() {
            pace.wire_moved.notify_one();
        }
    }
}

/// Until when every sender waits after a 429: its `Retry-After` (at most a minute), else the
/// window's reset, else two seconds.
fn rate_limited_until(retry_after: Option<Duration>, reset_unix: Option<u64>) -> Instant {
    match (retry_after, reset_unix) {
        (Some(d), _) => Instant::now() + d.min(Duration::from_secs(60)),
        (None, Some(reset)) => reset_instant(reset),
        (None, None) => Instant::now() + Duration::from_secs(2),
    }
}

/// The instant the server's window resets, from `X-RateLimit-Reset` (unix seconds). The clocks may
/// differ, so a reset in the past means "about now", and none is more than a minute away.
fn reset_instant(reset_unix: u64) -> Instant {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let reset = Duration::from_secs(reset_unix);
    let wait = reset.saturating_sub(now_unix).min(Duration::from_secs(60));
    // The window turns over on a whole second; a little past it, the new window is surely there.
    Instant::now() + wait.max(Duration::from_millis(50)) + Duration::from_millis(20)
}

/// Reads the server's rate headers: when the window's remaining calls would not cover the
/// requests already sent and not answered, everyone waits for the reset instead of collecting
/// 429s. Messages waiting out their lead are not counted: the pause holds their turns' takers,
/// and counting them paused every sender near the end of each window.
fn heed_server(gate: &Gate, rate: &RateInfo, in_flight: usize) {
    if let (Some(remaining), Some(reset)) = (rate.remaining, rate.reset) {
        if remaining <= in_flight as u64 {
            gate.pause_until(reset_instant(reset));
        }
    }
}

#[cfg(test)]
mod tests;
