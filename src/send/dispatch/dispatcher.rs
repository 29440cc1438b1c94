//! The dispatcher: the one place messages are let out. Each row waits for a place in flight and
//! its turn (the pace's pause gate and limiter); the rows that may leave with it go too; then,
//! at that moment, the send hours are checked (closed: the group waits for them and takes its
//! turns again), and the group is recorded behind one journal write synced to stable storage
//! before any of its requests leaves; then each request runs in its own task ([`send_row`]).
//! Rows that need no request (skipped, settled by their lookup) go straight to the writer.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::attempt::send_row;
use super::reader::BATCH;
use super::{Item, Job, Shared, StopReason};
use crate::input::hours::SendHours;
use crate::intercom::pace::Place;
use crate::results::{Journal, ResultRow, RunLock};

/// What the dispatcher keeps the run's promise with.
pub(super) struct Ledger {
    /// Each row is recorded here, synced, before its request leaves.
    pub journal: Journal,
    /// Checked before each journal write: a lock removed or replaced means another run could be
    /// writing beside this one.
    pub lock: Arc<RunLock>,
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

/// Paces the rows out until they end or the run stops.
pub(super) async fn dispatch(
    shared: Arc<Shared>,
    ledger: Ledger,
    rx: mpsc::Receiver<Vec<Item>>,
    out_tx: mpsc::Sender<(ResultRow, bool)>,
) {
    let Ledger { mut journal, lock } = ledger;
    let stop = shared.stop.token();
    let mut queue = Queue {
        rx,
        batch: Vec::new().into_iter(),
        pending: None,
    };
    let mut ready: Vec<(Job, Place)> = Vec::with_capacity(BATCH);
    while let Some(item) = queue.next(&stop).await {
        let job = match item {
            Item::Skip(r) => {
                if out_tx.send((*r, false)).await.is_err() {
                    break;
                }
                continue;
            }
            Item::Settled { row, fatal } => {
                if out_tx.send((*row, fatal)).await.is_err() {
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
        if !leave_together(&shared, &mut queue, &mut ready, &stop).await {
            break;
        }
        let turned = tokio::time::Instant::now();
        journal = match record(&shared, &lock, journal, &ready).await {
            Some(j) => j,
            None => break,
        };
        shared.pace.record_overhead(turned.elapsed());
        launch(&shared, &mut ready, &out_tx);
    }
}

/// Takes the turns of the rows in `ready` (one at first), adds the rows that may leave right
/// now (a place free, the gate open, the limiter willing without a wait), and checks the send
/// hours at that moment: closed, the group waits for them and takes its turns again, so that no
/// message leaves outside the hours however long the limiter or a 429 held it. `false`: the run
/// stopped meanwhile.
async fn leave_together(
    shared: &Shared,
    queue: &mut Queue,
    ready: &mut Vec<(Job, Place)>,
    stop: &CancellationToken,
) -> bool {
    loop {
        for _ in 0..ready.len() {
            if !shared.pace.turn().await {
                return false;
            }
        }
        take_ready(shared, queue, ready);
        let Some(hours) = &shared.hours else {
            return true;
        };
        if hours.closed_until(jiff::Timestamp::now()).is_none() {
            return true;
        }
        if !within_send_hours(hours, stop).await {
            return false;
        }
    }
}

/// Adds the rows that may leave right now (a place free, their turn without a wait), so that
/// they go behind one journal write.
fn take_ready(shared: &Shared, queue: &mut Queue, ready: &mut Vec<(Job, Place)>) {
    while ready.len() < BATCH {
        let Some(job) = queue.next_job_at_hand() else {
            break;
        };
        let place = match shared.pace.try_place() {
            Some(place) if shared.pace.try_turn() => place,
            _ => {
                queue.pending = Some(Item::Job(job));
                break;
            }
        };
        ready.push((job, place));
    }
}

/// The lock still held, then the rows recorded before their send, on stable storage: if this
/// process dies (or the machine loses power) from here on, these rows are `unknown`. Synced on a
/// blocking thread (the journal goes there and comes back), so that answers keep being recorded
/// meanwhile. `None`: the run stopped.
async fn record(
    shared: &Shared,
    lock: &RunLock,
    mut journal: Journal,
    ready: &[(Job, Place)],
) -> Option<Journal> {
    if !lock.still_held() {
        shared.stop.set(StopReason::Io(
            "the lock file was removed or replaced during the run, so another run could start beside this one".into(),
        ));
        return None;
    }
    let rows: Vec<(u64, String)> = ready
        .iter()
        .map(|(job, _)| (job.row, job.recipient.clone()))
        .collect();
    let synced = tokio::task::spawn_blocking(move || {
        let r = journal.in_flight(&rows);
        (journal, r)
    })
    .await;
    match synced {
        Ok((j, Ok(()))) => Some(j),
        Ok((_, Err(e))) => {
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

/// The journaled rows' requests, each in its own task, its outcome sent to the writer.
fn launch(
    shared: &Arc<Shared>,
    ready: &mut Vec<(Job, Place)>,
    out_tx: &mpsc::Sender<(ResultRow, bool)>,
) {
    {
        let mut in_flight = shared.rows_in_flight.lock().unwrap();
        for (job, _) in ready.iter() {
            in_flight.insert(job.row, job.recipient.clone());
        }
    }
    for (job, place) in ready.drain(..) {
        let shared = Arc::clone(shared);
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            let (row, fatal) = send_row(&shared, job).await;
            shared.rows_in_flight.lock().unwrap().remove(&row.row);
            drop(place);
            let _ = out_tx.send((row, fatal)).await;
        });
    }
}

/// Waits until the send hours are open; `false` if the run is stopped meanwhile.
pub(super) async fn within_send_hours(hours: &SendHours, stop: &CancellationToken) -> bool {
    while let Some(until) = hours.closed_until(jiff::Timestamp::now()) {
        crate::say!(
            "outside the send hours ({hours}): waiting until {} (Ctrl-C stops cleanly; --resume continues later)",
            hours.local(until)
        );
        let ms = until.as_millisecond() - jiff::Timestamp::now().as_millisecond();
        let wait = Duration::from_millis(ms.max(0) as u64);
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    true
}
