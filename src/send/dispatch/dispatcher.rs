//! The dispatcher: the one place messages are let out. Each row waits for a place in flight and
//! its turn (the pace's pause gate and limiter); the rows that may leave with it go too; then,
//! at that moment, the send hours are checked for when it will leave (closed: the group waits
//! for them and takes its turns again), and the group goes to the recorder
//! ([`record_and_launch`]), which writes it to the journal and syncs it to stable storage before
//! any of its requests leaves; then each request runs in its own task ([`send_row`]). With
//! places to spare, a message leaves a lead after its turn (`pace::LEAD`): the recorder gathers
//! the turns of a tenth of a second behind one write and sync, and a sync that stalls for less
//! than the rest of the lead delays nothing. Short of places, groups go as soon as they are
//! synced, unless requests already synced wait for the wire: then more rows share the next sync
//! (one sync where there were several, the disk's cost of a fast run). Either way they leave
//! through the pace's door (`Pace::send`): requests a longer stall held up leave a period apart,
//! so that no span gets more than its share. Rows that need no request (skipped, settled by
//! their lookup) go straight to the writer.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::attempt::send_row;
use super::lookup;
use super::reader::BATCH;
use super::{closed_in, within_send_hours, Freshness, Item, Job, RowEnd, Says, Shared, StopReason};
use crate::intercom::pace::Place;
use crate::lookup::{Rules, PAGE};
use crate::results::Journal;

/// What the dispatcher keeps the run's promise with.
pub(super) struct Recorder {
    /// Each row is recorded here, synced, before its request leaves (the journal checks the
    /// run's lock before each write).
    pub journal: Journal,
}

/// Where the dispatcher is in the incoming batches.
struct Queue {
    rx: mpsc::Receiver<Vec<Item>>,
    batch: std::vec::IntoIter<Item>,
    /// An item taken from the batch that could not leave at once: the next to go.
    pending: Option<Item>,
}

impl Queue {
    /// The next item, waiting for a batch if need be; `None` once the rows end or the run stops.
    async fn next(&mut self, stop: &CancellationToken) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.take().or_else(|| self.batch.next()) {
                return Some(item);
            }
            self.batch = tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                next = self.rx.recv() => next?.into_iter(),
            };
        }
    }

    /// The next item only if it is a job already in hand.
    fn next_job_at_hand(&mut self) -> Option<Job> {
        match self.pending.take().or_else(|| self.batch.next()) {
            Some(Item::Job(job)) => Some(job),
            other => {
                self.pending = other;
                None
            }
        }
    }
}

/// The most a looked-up contact's status may have aged when its message leaves: older, the
/// contact is looked up again first. At rates below one request per five minutes, two periods
/// and a minute instead: the search and the message each wait their turn.
pub(crate) const LOOKUP_WINDOW: Duration = Duration::from_secs(600);

/// Paces the rows out until they end or the run stops. `refresh`: the rules rows are looked up
/// by, for looking up again a row whose lookup has aged past the window.
pub(super) async fn dispatch(
    shared: Arc<Shared>,
    records: Recorder,
    refresh: Option<Arc<Rules>>,
    rx: mpsc::Receiver<Vec<Item>>,
    out_tx: mpsc::Sender<RowEnd>,
) {
    let fresh = Freshness {
        rules: refresh,
        window: LOOKUP_WINDOW.max(2 * shared.pace.period() + Duration::from_secs(60)),
    };
    let (group_tx, group_rx) = mpsc::channel::<Group>(GROUPS_AWAITING_SYNC);
    let recorder = record_and_launch(&shared, &fresh, records, group_rx, &out_tx);
    let turns = take_turns(&shared, fresh.clone(), rx, group_tx, &out_tx);
    tokio::join!(turns, recorder);
}

/// Groups whose turns came and that wait for the recorder: beyond this many (a disk whose syncs
/// take longer than this many turns), the dispatcher waits too.
const GROUPS_AWAITING_SYNC: usize = 256;

/// Rows whose turns were taken together, on their way to the journal.
struct Group {
    rows: Vec<(Job, Place)>,
    /// When the turns were taken: from here to the requests' leaving is the run's overhead,
    /// which the in-flight limit makes room for.
    turned: tokio::time::Instant,
}

/// Takes the rows' places and turns, and hands each group that may leave to the recorder.
async fn take_turns(
    shared: &Arc<Shared>,
    fresh: Freshness,
    rx: mpsc::Receiver<Vec<Item>>,
    group_tx: mpsc::Sender<Group>,
    out_tx: &mpsc::Sender<RowEnd>,
) {
    let stop = shared.stop.token();
    let mut queue = Queue {
        rx,
        batch: Vec::new().into_iter(),
        pending: None,
    };
    let mut ready: Vec<(Job, Place)> = Vec::with_capacity(BATCH);
    while let Some(item) = queue.next(&stop).await {
        let job = match item {
            Item::Skip(row) => {
                let end = RowEnd {
                    row: *row,
                    says: Says::Nothing,
                };
                if out_tx.send(end).await.is_err() {
                    break;
                }
                continue;
            }
            Item::Settled { row, says } => {
                if out_tx.send(RowEnd { row: *row, says }).await.is_err() {
                    break;
                }
                continue;
            }
            Item::Job(job) => job,
        };
        let Some(place) = shared.pace.place().await else {
            break;
        };
        ready.push((job, place));
        let go = Leaving {
            shared,
            fresh: &fresh,
            out_tx,
        };
        let Some(turned) = go.together(&mut queue, &mut ready).await else {
            break;
        };
        if ready.is_empty() {
            continue;
        }
        let group = Group {
            rows: std::mem::replace(&mut ready, Vec::with_capacity(BATCH)),
            turned,
        };
        if group_tx.send(group).await.is_err() {
            break;
        }
    }
}

/// How long the recorder gathers turns behind one journal write and sync, from the first
/// turn waiting for it; the rest of the lead ([`crate::intercom::pace::LEAD`]) covers the sync.
const GATHER: Duration = Duration::from_millis(100);

/// The most rows the recorder gathers behind one sync while earlier ones wait for the wire.
const MOST_GATHERED: usize = 4 * BATCH;

/// The recorder: the groups whose turns came within [`GATHER`] of the first one waiting, and
/// every group that came while the last sync was on the disk, recorded behind one journal write
/// and sync, then launched, each request to leave a lead ([`crate::intercom::pace::LEAD`]) after
/// its turn. When places are short (or there is no lead), the groups go at once: waiting would
/// only hold places; unless more requests wait for the wire than may wait through a sync
/// (`Pace::wire_backlog`): then the rows gather until that queue runs low (at most [`GATHER`]
/// from the first turn, [`MOST_GATHERED`] rows), one sync for many. Ends when the dispatcher's
/// groups end, the run stops (groups not yet recorded never leave: their rows stay to send), or
/// the journal cannot be written (the run stops).
async fn record_and_launch(
    shared: &Arc<Shared>,
    fresh: &Freshness,
    records: Recorder,
    mut groups: mpsc::Receiver<Group>,
    out_tx: &mpsc::Sender<RowEnd>,
) {
    let Recorder { mut journal } = records;
    let stop = shared.stop.token();
    let mut ready: Vec<(Job, Place)> = Vec::with_capacity(BATCH);
    let mut turned = Vec::new();
    while let Some(first) = groups.recv().await {
        turned.clear();
        let until = first.turned + GATHER;
        let lead = shared.pace.lead();
        let mut at_once = lead.is_zero() || shared.pace.places_short();
        let mut next = Some(first);
        loop {
            while let Some(group) = next {
                turned.extend(std::iter::repeat_n(group.turned, group.rows.len()));
                ready.extend(group.rows);
                next = groups.try_recv().ok();
            }
            at_once |= shared.pace.places_short();
            if stop.is_cancelled() {
                break;
            }
            let wait = match at_once {
                // Rows synced now would wait behind those already waiting for the wire: more
                // rows share the sync instead, until the wire's queue runs low.
                true if shared.pace.wire_backlog() && ready.len() < MOST_GATHERED => until,
                true => break,
                false => until,
            };
            tokio::select! {
                group = tokio::time::timeout_at(wait, groups.recv()) => match group {
                    Ok(Some(group)) => next = Some(group),
                    Ok(None) | Err(_) => break,
                },
                () = shared.pace.wire_drained(), if at_once => {}
            }
        }
        if stop.is_cancelled() {
            break;
        }
        journal = match record(shared, journal, &ready).await {
            Some(j) => j,
            None => break,
        };
        let now = tokio::time::Instant::now();
        for t in turned.iter_mut() {
            let at = match at_once {
                true => now,
                false => now.max(*t + lead),
            };
            shared.pace.record_overhead(at - *t);
            *t = at;
        }
        launch(shared, fresh, &mut ready, &turned, out_tx);
    }
}

/// What a group's leaving checks.
struct Leaving<'a> {
    shared: &'a Shared,
    fresh: &'a Freshness,
    out_tx: &'a mpsc::Sender<RowEnd>,
}

impl Leaving<'_> {
    /// Looks the rows in `ready` whose lookup aged past the window up again (with the stale
    /// rows at hand in the queue, one search), then takes their turns (one at first), adds the
    /// rows that may leave right now (a place free, the gate open, the limiter willing without a
    /// wait, a fresh lookup), and checks the send hours at that moment: closed, the group waits
    /// for them and starts over, so that no message leaves outside the hours however long the
    /// limiter or a 429 held it, nor on a status older than the window. `ready` may end empty
    /// (its rows settled by the new lookup). `Some`: the group's turn time (the limiter's
    /// deadline when it waited for one: a lead after it falls on a later turn's deadline, one
    /// timer for both); `None`: the run stopped meanwhile.
    async fn together(
        &self,
        queue: &mut Queue,
        ready: &mut Vec<(Job, Place)>,
    ) -> Option<tokio::time::Instant> {
        let pace = &self.shared.pace;
        loop {
            if !self.refresh(queue, ready).await {
                return None;
            }
            let mut turned = tokio::time::Instant::now();
            for _ in 0..ready.len() {
                turned = pace.turn_at().await?;
            }
            take_ready(self.shared, self.fresh, queue, ready);
            if ready.iter().any(|(job, _)| self.fresh.stale(job)) {
                continue;
            }
            let Some(hours) = &self.shared.hours else {
                return Some(turned);
            };
            if closed_in(hours, self.shared.pace.lead()).is_none() {
                return Some(turned);
            }
            if !within_send_hours(self.shared, hours, self.shared.pace.lead()).await {
                return None;
            }
        }
    }

    /// The stale rows of `ready` and of the queue's batch at hand (up to a search's keys)
    /// looked up again; those it settles go to the writer. `false`: the writer is gone.
    async fn refresh(&self, queue: &mut Queue, ready: &mut Vec<(Job, Place)>) -> bool {
        let (Some(rules), true) = (
            &self.fresh.rules,
            ready.iter().any(|(job, _)| self.fresh.stale(job)),
        ) else {
            return true;
        };
        let mut stale: Vec<Job> = Vec::new();
        let mut places: Vec<Option<Place>> = Vec::new();
        let mut kept = Vec::with_capacity(ready.len());
        for (job, place) in ready.drain(..) {
            if self.fresh.stale(&job) {
                stale.push(job);
                places.push(Some(place));
            } else {
                kept.push((job, place));
            }
        }
        let mut rest: Vec<Option<Item>> = queue.pending.take().into_iter().map(Some).collect();
        rest.extend(queue.batch.by_ref().map(Some));
        let mut at_hand: Vec<usize> = Vec::new();
        for (i, item) in rest.iter_mut().enumerate() {
            if stale.len() >= PAGE {
                break;
            }
            if matches!(item, Some(Item::Job(job)) if self.fresh.stale(job)) {
                if let Some(Item::Job(job)) = item.take() {
                    stale.push(job);
                    places.push(None);
                    at_hand.push(i);
                }
            }
        }
        let refreshed = lookup::refresh(self.shared, rules, stale).await;
        *ready = kept;
        let mut later = at_hand.into_iter();
        for (item, place) in refreshed.into_iter().zip(places) {
            match (item, place) {
                (Item::Job(job), Some(place)) => ready.push((job, place)),
                (item, Some(_)) => {
                    if !self.settle(item).await {
                        return false;
                    }
                }
                (item, None) => {
                    if let Some(i) = later.next() {
                        rest[i] = Some(item);
                    }
                }
            }
        }
        queue.batch = rest.into_iter().flatten().collect::<Vec<_>>().into_iter();
        true
    }

    /// A row the new lookup settled, to the writer.
    async fn settle(&self, item: Item) -> bool {
        match item {
            Item::Settled { row, says } => {
                self.out_tx.send(RowEnd { row: *row, says }).await.is_ok()
            }
            _ => true,
        }
    }
}

/// Adds the rows that may leave right now (a place free, their turn without a wait, a fresh
/// lookup), so that they go behind one journal write.
fn take_ready(
    shared: &Shared,
    fresh: &Freshness,
    queue: &mut Queue,
    ready: &mut Vec<(Job, Place)>,
) {
    while ready.len() < BATCH {
        let Some(job) = queue.next_job_at_hand() else {
            break;
        };
        let place = match shared.pace.try_place() {
            Some(place) if !fresh.stale(&job) && shared.pace.try_turn() => place,
            _ => {
                queue.pending = Some(Item::Job(job));
                break;
            }
        };
        ready.push((job, place));
    }
}

/// The rows recorded before their send, on stable storage: if this process dies (or the
/// machine loses power) from here on, these rows are `unknown`. The journal checks the lock is
/// still held before it writes. Synced on a blocking thread (the journal goes there and comes
/// back), so that answers keep being recorded meanwhile. `None`: the run stopped.
async fn record(shared: &Shared, mut journal: Journal, ready: &[(Job, Place)]) -> Option<Journal> {
    let rows: Vec<(u64, String)> = ready
        .iter()
        .map(|(job, _)| (job.row, job.recipient.clone()))
        .collect();
    let synced = tokio::task::spawn_blocking(move || {
        // Timed where it runs: the disk's time, not the wait for a thread or for this task.
        let began = std::time::Instant::now();
        let r = journal.in_flight(&rows);
        let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        (journal, r, took)
    })
    .await;
    if let Ok((_, _, took)) = &synced {
        shared
            .slowest_sync_us
            .fetch_max(*took, std::sync::atomic::Ordering::Relaxed);
    }
    match synced {
        Ok((j, Ok(()), _)) => Some(j),
        Ok((_, Err(e), _)) => {
            shared.stop.set(StopReason::Io(format!("{e:#}")));
            None
        }
        Err(e) => {
            shared
                .stop
                .set(StopReason::Io(format!("cannot write the journal: {e}")));
            None
        }
    }
}

/// The journaled rows' requests, each in its own task leaving at its time, its outcome sent to
/// the writer.
fn launch(
    shared: &Arc<Shared>,
    fresh: &Freshness,
    ready: &mut Vec<(Job, Place)>,
    departs: &[tokio::time::Instant],
    out_tx: &mpsc::Sender<RowEnd>,
) {
    {
        let mut in_flight = shared.rows_in_flight.lock().unwrap();
        for (job, _) in ready.iter() {
            in_flight.insert(job.row, job.recipient.clone());
        }
    }
    for ((job, place), &at) in ready.drain(..).zip(departs) {
        let shared = Arc::clone(shared);
        let fresh = fresh.clone();
        let out_tx = out_tx.clone();
        // Boxed: the request's future is about 5 KB, and a task moves what it holds when it is
        // made, finishes and is dropped; a box is moved as a pointer.
        tokio::spawn(Box::pin(async move {
            shared.pace.depart(at).await;
            let end = send_row(&shared, &fresh, job).await;
            shared.rows_in_flight.lock().unwrap().remove(&end.row.row);
            drop(place);
            let _ = out_tx.send(end).await;
        }));
    }
}
