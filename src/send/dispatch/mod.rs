//! The dispatch stage: the rows that are left go out, each journaled before its request leaves.
//! Its units run at once, joined by channels: the [`reader`] (a thread: reading the CSV and
//! rendering are blocking work) hands rows over in batches, the lookup stage
//! ([`lookup`]) resolves rows addressed by e-mail or external id, the [`dispatcher`]
//! paces rows out (limiter, pause gate, in-flight limit) and journals them before a task per
//! request sends each ([`attempt`]), and the [`writer`] records every outcome and judges
//! the run's health. [`stop`] is how any of them ends the run, and why.
mod attempt;
mod dispatcher;
mod lookup;
mod reader;
mod stop;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::manifest::Manifest;
use super::plan::{self, SendPlan};
use super::progress::Progress;
use crate::check::{recipient_hash, Loaded};
use crate::input::hours::SendHours;
use crate::intercom::pace;
use crate::results::{self, Journal, JournalHeader, ResultRow, ResultsWriter, RowStatus};
use crate::target::Target;
pub(super) use lookup::lookup_plan;
pub(super) use stop::{Stop, StopReason};

/// Batches queued between the reader, the lookup stage and the dispatcher.
const QUEUED_BATCHES: usize = 16;

/// A row ready to send.
pub(super) struct Job {
    pub row: u64,
    /// What the row addressed: the contact id, or the e-mail or external id it was found by.
    pub recipient: String,
    pub body: Bytes,
    /// The contact found for a looked-up row (`contact_id` in the results); empty otherwise.
    pub contact_id: String,
    /// When the search that found that contact (and its unsubscribe status) was made.
    pub looked_up: Option<tokio::time::Instant>,
    /// The values of the columns copied into the results file.
    pub extra: Vec<String>,
}

pub(super) enum Item {
    Job(Job),
    /// An invalid row under --skip-invalid: recorded, not sent.
    Skip(Box<ResultRow>),
    /// A row whose lookup decided its outcome (not found, ambiguous, unsubscribed, a search
    /// that failed, ...): recorded, not sent.
    Settled {
        row: Box<ResultRow>,
        says: Says,
    },
}

/// A row's outcome on its way to the writer, and what it says of the run.
pub(super) struct RowEnd {
    pub row: ResultRow,
    pub says: Says,
}

/// What a row's outcome says of the run: the writer stops the run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Says {
    /// How the API answers: the outcome of the row's requests, or of a search for its contact
    /// that kept failing. The run's health counts it.
    Health,
    /// Nothing of the API: a row decided without a request of its own (an invalid row skipped,
    /// no contact found, several, a duplicate, an unsubscribed one, a search refused for its key).
    Nothing,
    /// That every later request would fail the same way (401 or 403): the run stops.
    Refused,
}

/// The run's counts the summary and the run log report (429 answers are the pace's).
#[derive(Default)]
pub(super) struct Counters {
    /// `POST /contacts/search` requests made (lookups), answered or not.
    pub searches: AtomicU64,
    /// Rows skipped for the `[send] suppress` list.
    pub suppressed: AtomicU64,
    /// The opening (unix milliseconds) the last "outside the send hours" line named: every row
    /// that waits for it would say it again.
    pub hours_said: std::sync::atomic::AtomicI64,
}

/// When a row's transient failures stop being retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retries {
    pub max_attempts: u32,
    /// How long a recipient's 404 is retried (a new contact can 404 for a while).
    pub retry_not_found_for: Duration,
}

/// What the stages of a dispatch share.
pub(super) struct Shared {
    /// The run's one way for requests: searches and messages count against the same limit.
    pub pace: pace::Pace,
    pub stop: Stop,
    /// `[send] hours`: when messages may leave, checked at the moment each would.
    pub hours: Option<SendHours>,
    pub counters: Counters,
    pub retries: Retries,
    /// The rows whose request is journaled and not answered yet, with their recipients.
    pub rows_in_flight: Mutex<HashMap<u64, String>>,
    /// The longest a journal write and its sync took, in microseconds: no request leaves
    /// before its line is on disk, so a disk that stalls holds the run back by as much.
    pub slowest_sync_us: AtomicU64,
}

impl Shared {
    /// The run's client (to `target`), pacing and bounds, from the plan.
    fn new(plan: &SendPlan, target: &Target) -> anyhow::Result<Shared> {
        let s = &plan.settings;
        let client = target.client(s.send.request_timeout, pace::AUTO_MAX)?;
        let stop = Stop::default();
        Ok(Shared {
            pace: pace::Pace::new(client, s.send.rate, s.send.concurrency, stop.token()),
            stop,
            hours: s.send.hours.clone(),
            counters: Counters::default(),
            retries: Retries {
                max_attempts: s.send.max_attempts,
                retry_not_found_for: s.send.retry_not_found_for,
            },
            rows_in_flight: Mutex::new(HashMap::new()),
            slowest_sync_us: AtomicU64::new(0),
        })
    }

    /// Whether `[send] hours` are closed at this moment.
    fn hours_closed_now(&self) -> bool {
        self.hours
            .as_ref()
            .is_some_and(|h| h.closed_until(crate::input::hours::now()).is_some())
    }

    /// Waits for the send hours if they are closed now; `false` if the run stops meanwhile.
    async fn hours_open(&self) -> bool {
        match &self.hours {
            Some(hours) if self.hours_closed_now() => {
                within_send_hours(self, hours, Duration::ZERO).await
            }
            _ => true,
        }
    }
}

/// How a dispatch ended.
pub(super) struct RunEnd {
    pub progress: Progress,
    pub stop: Option<StopReason>,
    pub unknown_rows: Vec<u64>,
    /// Outcomes counted but not written to the results file (the lock was lost).
    pub unrecorded: u64,
    pub left: u64,
    pub rate_limited: u64,
}

/// A dispatch's end, with the ledger settled after it.
pub(super) struct Ran {
    pub end: RunEnd,
    /// What the campaign has left to do, this run's rows and the earlier runs'.
    pub left: super::outcome::Left,
    /// How long the server held every sender back.
    pub paused_ms: u64,
    /// The longest a journal write and its sync took.
    pub slowest_sync: Duration,
    /// The ledger, still locked: the run log's line is written through it.
    pub ledger: results::Ledger,
}

/// Sends the rows that are left to `target` (a rehearsal's sandbox with its `log`, or
/// Intercom), and settles the ledger after.
pub(super) async fn run(
    plan: &SendPlan,
    manifest: Manifest,
    loaded: Loaded,
    target: Target,
    log: Option<std::path::PathBuf>,
) -> anyhow::Result<Ran> {
    let s = &plan.settings;
    let base_url = target.base_url.clone();
    let shared = Arc::new(Shared::new(plan, &target)?);
    let replied = match &s.send.skip_replied_to {
        Some(earlier) => Some(Arc::new(
            crate::track::replied_recipients(&shared.pace, earlier).await?,
        )),
        None => None,
    };
    let (writer, journal) = open_records(plan, &manifest, &loaded.campaign.recipients)?;
    announce(plan, &loaded, &manifest, &base_url);
    // The earlier run's rows move to the reader, not copied: at a million rows they are
    // megabytes.
    let Manifest {
        ledger,
        prior,
        expected,
        copied_columns,
        rules,
        to_type,
        to_send,
        duplicates,
        ..
    } = manifest;
    let (reading, lookup_start) =
        known_rows(plan, prior, rules.as_ref(), &ledger.results, expected)?;
    let units = Units {
        reading: reader::Reading {
            copied_columns,
            replied,
            duplicates,
            ..reading
        },
        lookup_start,
        journal,
        to_send,
    };
    let end = dispatch(plan, loaded, &shared, units, writer).await;
    // A run that lost its lock leaves the ledger to the next run: its journal (or the run that
    // took the lock since, which settled it) records the rows it had in flight as `unknown`.
    let settled = if ledger.lost() {
        None
    } else {
        Some(results::settle(&ledger, &|r| recipient_hash(&to_type, r))?)
    };
    target.close().await?;
    if let Some(log) = log {
        crate::say!("sandbox log: {}", log.display());
    }
    if let Some(rules) = &rules {
        crate::say!(
            "looked up contacts by {} in {} search requests",
            rules.address.key(),
            shared.counters.searches.load(Ordering::Relaxed)
        );
        let suppressed = shared.counters.suppressed.load(Ordering::Relaxed);
        if suppressed > 0 {
            crate::say!(
                "suppressed: {} on the [send] suppress list were not messaged (recorded `skipped`, `suppressed`)",
                crate::counted(suppressed, "row")
            );
        }
    }
    Ok(Ran {
        end,
        left: settled.as_ref().map_or_else(
            || super::outcome::Left {
                all: results::Tally::default(),
                resendable: 0,
                fails_again: Vec::new(),
                unknown: Vec::new(),
            },
            |settled| super::outcome::Left {
                all: settled.tally,
                // A row with Intercom's message id is sent again only on purpose (--allow-resend).
                resendable: settled
                    .rows_with(RowStatus::Failed)
                    .filter(|&row| !settled.has_message_id(row) && !settled.fails_again(row))
                    .count() as u64,
                fails_again: settled
                    .rows_with(RowStatus::Failed)
                    .filter(|&row| !settled.has_message_id(row) && settled.fails_again(row))
                    .collect(),
                unknown: settled.rows_with(RowStatus::Unknown).collect(),
            },
        ),
        paused_ms: shared.pace.paused().as_millis() as u64,
        slowest_sync: Duration::from_micros(shared.slowest_sync_us.load(Ordering::Relaxed)),
        ledger,
    })
}

/// The results file to append to, and the journal started for this run.
fn open_records(
    plan: &SendPlan,
    m: &Manifest,
    recipients: &std::path::Path,
) -> anyhow::Result<(ResultsWriter, Journal)> {
    let writer = m.ledger.writer(&plan.settings.results_columns)?;
    let journal = m.ledger.start_journal(&JournalHeader {
        results_offset: std::fs::metadata(&m.ledger.results)?.len(),
        settings: m.settings.clone(),
        content: m.content.clone(),
        rows: m.prior.as_ref().map_or(0, results::Prior::rows),
    })?;
    // So that a fresh ledger of the same campaign elsewhere finds this one (a warning only: the
    // results file's run log still names it). A rehearsal messages no one: its ledgers
    // are not registered, and may be started side by side.
    if plan.sandbox().is_some() {
        return Ok((writer, journal));
    }
    if let Err(e) = m.ledger.register(recipients, &m.settings) {
        crate::say!("warning: {e:#}");
    }
    Ok((writer, journal))
}

/// What is about to happen, on stderr.
fn announce(plan: &SendPlan, loaded: &Loaded, m: &Manifest, base_url: &str) {
    let c = &loaded.campaign;
    let send = &plan.settings.send;
    if m.to_send == 0 {
        crate::say!(
            "nothing left to send; results: {}",
            m.ledger.results.display()
        );
    } else {
        crate::say!(
            "sending {} messages to {base_url} from {} at {} (in flight: {}); results: {}",
            m.to_send,
            c.from_label(),
            send.rate,
            send.concurrency,
            m.ledger.results.display()
        );
    }
    if c.resolves() {
        crate::say!("{}", lookup_plan(c, m.to_send));
    }
}

/// A row predicate the reader's thread can hold.
pub(super) type RowTest = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// The lookup stage's match rules, and what earlier runs messaged.
type LookupStart = (Arc<crate::lookup::Rules>, lookup::Earlier);

/// What the units of a dispatch start with.
struct Units {
    reading: reader::Reading,
    lookup_start: Option<LookupStart>,
    journal: Journal,
    to_send: u64,
}

/// What the reader and the lookup stage know of the rows before the run starts: the reader's
/// view of the earlier runs (its columns and hashes to be filled in), and the lookup stage's, for
/// a campaign addressed by e-mail or external id.
fn known_rows(
    plan: &SendPlan,
    prior: Option<results::Prior>,
    rules: Option<&Arc<crate::lookup::Rules>>,
    results_file: &std::path::Path,
    expected: crate::send::expected::Expected,
) -> anyhow::Result<(reader::Reading, Option<LookupStart>)> {
    let again = plan.resume.again.clone();
    let earlier_rows = prior.as_ref().map_or(0, results::Prior::rows);
    let prior = Arc::new(prior.unwrap_or_default());
    let skipped = Arc::clone(&prior);
    let done: RowTest = Arc::new(move |row| plan::is_done(&prior, row, &again));
    let lookup_start = match rules {
        Some(rules) if earlier_rows > 0 => Some((
            Arc::clone(rules),
            lookup::Earlier::read(results_file, rules, &*done)?,
        )),
        Some(rules) => Some((Arc::clone(rules), lookup::Earlier::default())),
        None => None,
    };
    let skipped_before: RowTest =
        Arc::new(move |row| skipped.status(row) == Some(RowStatus::Skipped));
    let reading = reader::Reading {
        done,
        skipped_before,
        copied_columns: Vec::new(),
        expected,
        limit: plan.selection.limit,
        skip_invalid: plan.selection.skip_invalid,
        replied: None,
        duplicates: Vec::new(),
    };
    Ok((reading, lookup_start))
}

/// The units started, joined, and ended: returns once the writer has recorded the last outcome
/// (or given up on the requests still in flight).
async fn dispatch(
    plan: &SendPlan,
    loaded: Loaded,
    shared: &Arc<Shared>,
    units: Units,
    writer: ResultsWriter,
) -> RunEnd {
    let ctrlc = tokio::spawn(stop::on_interrupt(Arc::clone(shared)));
    let (job_tx, job_rx) = mpsc::channel::<Vec<Item>>(QUEUED_BATCHES);
    let reading = units.reading;
    let reader = std::thread::spawn(move || reader::read_rows(&loaded, &reading, &job_tx));
    // Rows addressed by e-mail or external id pass through the lookup stage on their way.
    let refresh = units
        .lookup_start
        .as_ref()
        .map(|(rules, _)| Arc::clone(rules));
    let (resolver, job_rx) = match units.lookup_start {
        Some((rules, earlier)) => {
            let (tx, rx) = mpsc::channel::<Vec<Item>>(QUEUED_BATCHES);
            let skip = plan.selection.duplicates == crate::input::config::Duplicates::Skip;
            let stage = lookup::stage(Arc::clone(shared), rules, earlier, skip, job_rx, tx);
            (Some(tokio::spawn(stage)), rx)
        }
        None => (None, job_rx),
    };
    let (out_tx, out_rx) = mpsc::channel::<RowEnd>(1024);
    let dispatcher = tokio::spawn(dispatcher::dispatch(
        Arc::clone(shared),
        dispatcher::Recorder {
            journal: units.journal,
        },
        refresh,
        job_rx,
        out_tx,
    ));
    let adjuster = tokio::spawn(adjust_concurrency(Arc::clone(shared)));
    let bounds = writer::Bounds::of(&plan.settings.send);
    // A task of its own, not part of this function's future: waking it for each outcome is then
    // a task scheduled, not the runtime's main future woken (an eventfd write and an extra poll
    // of the driver per answer).
    let recorder = tokio::spawn({
        let shared = Arc::clone(shared);
        async move {
            let mut writer = writer;
            writer::record(&shared, &mut writer, out_rx, units.to_send, bounds).await
        }
    });
    let recorded = match recorder.await {
        Ok(recorded) => recorded,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    adjuster.abort();
    ctrlc.abort();
    dispatcher.abort();
    if let Some(r) = resolver {
        r.abort();
    }
    let reader_result = if shared.stop.is_stopped() {
        Ok(Ok(()))
    } else {
        tokio::task::spawn_blocking(move || reader.join())
            .await
            .unwrap_or(Ok(Ok(())))
    };
    if let Ok(Err(e)) = reader_result {
        shared.stop.set(StopReason::Io(format!("{e:#}")));
    }
    let left = units.to_send.saturating_sub(recorded.progress.done());
    RunEnd {
        progress: recorded.progress,
        stop: shared.stop.reason(),
        unknown_rows: recorded.unknown_rows,
        unrecorded: recorded.unrecorded,
        left,
        rate_limited: shared.pace.rate_limited(),
    }
}

/// Auto concurrency: the in-flight limit follows the observed latency.
async fn adjust_concurrency(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        shared.pace.adjust();
    }
}

/// What a job's lookup may have aged at the moment it leaves (a retry's too).
#[derive(Clone)]
pub(super) struct Freshness {
    pub(super) rules: Option<Arc<crate::lookup::Rules>>,
    pub(super) window: Duration,
}

impl Freshness {
    pub(super) fn stale(&self, job: &Job) -> bool {
        self.rules.is_some() && job.looked_up.is_some_and(|t| t.elapsed() > self.window)
    }
}

/// When the send hours open, if they are closed now or `lead` from now: a request whose turn
/// comes now leaves within that lead (at once when places are short, at its end when not).
fn closed_in(hours: &SendHours, lead: Duration) -> Option<jiff::Timestamp> {
    let now = crate::input::hours::now();
    let later = jiff::SignedDuration::try_from(lead)
        .ok()
        .and_then(|lead| now.checked_add(lead).ok())
        .unwrap_or(now);
    hours
        .closed_until(now)
        .or_else(|| hours.closed_until(later))
}

/// Waits until the send hours are open now and `lead` from now; `false` if the run is stopped
/// meanwhile. Each opening waited for is said once, however many rows wait for it.
async fn within_send_hours(shared: &Shared, hours: &SendHours, lead: Duration) -> bool {
    while let Some(until) = closed_in(hours, lead) {
        let opening = until.as_millisecond();
        if shared.counters.hours_said.swap(opening, Ordering::Relaxed) != opening {
            crate::say!(
                "outside the send hours ({hours}): waiting until {} (Ctrl-C stops cleanly; --resume continues later)",
                hours.local(until)
            );
        }
        let ms = opening - crate::input::hours::now().as_millisecond();
        let wait = Duration::from_millis(ms.max(0) as u64);
        tokio::select! {
            _ = shared.pace.stop().cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    true
}
