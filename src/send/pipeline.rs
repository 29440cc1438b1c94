//! The run itself: a reader thread renders rows, one dispatcher paces them out (limiter, pause
//! gate, in-flight limit) and journals each before its request leaves, a task per request sends
//! it, and one writer records every outcome and judges the run's health.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::attempt::send_row;
use super::health::Health;
use crate::check::{self, Loaded, RowRenderer};
use crate::cli::SendArgs;
use crate::input::problem::Problem;
use crate::input::recipients::Recipients;
use crate::intercom::client::Client;
use crate::results::{self, Journal, ResultRow, ResultsWriter, RowStatus};
use crate::send::pace::{Gate, InFlight};
use crate::send::progress::Progress;
use crate::template::Rendered;
use crate::Status;

/// Outcomes written to the results file in one write, at most.
const WRITE_BATCH: usize = 256;

/// Rows handed from the reader to the dispatcher at once, and batches queued between them.
const BATCH: usize = 64;
const QUEUED_BATCHES: usize = 16;

/// Why a run stopped before its end.
#[derive(Debug, Clone)]
pub enum StopReason {
    Auth {
        status: u16,
        code: String,
        message: String,
    },
    Failures(String),
    Interrupted,
    Io(String),
    /// The server held every sender back for longer than the stall bound.
    Stalled(String),
}

/// A row ready to send.
pub struct Job {
    pub row: u64,
    /// What the row addressed: the contact id, or the e-mail or external id it was found by.
    pub recipient: String,
    pub body: Bytes,
    /// The contact found for a looked-up row (`contact_id` in the results); empty otherwise.
    pub contact_id: String,
    /// The values of the columns copied into the results file.
    pub extra: Vec<String>,
}

pub enum Item {
    Job(Job),
    /// An invalid row under --skip-invalid: recorded, not sent.
    Skip(Box<ResultRow>),
    /// A row whose lookup decided its outcome (not found, ambiguous, unsubscribed, ...):
    /// recorded, not sent; `fatal` when the search was refused for the token.
    Settled {
        row: Box<ResultRow>,
        fatal: bool,
    },
}

pub struct Shared {
    pub client: Client,
    pub gate: Gate,
    pub limiter: crate::send::pace::Limiter,
    pub in_flight: InFlight,
    pub stop: CancellationToken,
    pub rows_in_flight: Mutex<HashMap<u64, String>>,
    pub max_attempts: u32,
    pub max_failures: u32,
    pub max_failure_share: f64,
    pub retry_not_found_for: Duration,
    pub request_timeout: Duration,
    pub stall_timeout: Duration,
    pub hours: Option<crate::input::hours::SendHours>,
    pub lock: Arc<crate::results::RunLock>,
    /// 429 answers: each paused every sender until the window's reset.
    pub rate_limited: AtomicU64,
    /// `POST /contacts/search` requests made (resolution).
    pub searches: AtomicU64,
}

/// What the reader knows of the rows before the run starts.
pub struct Known {
    /// Whether a row is done already (an earlier run's results): it is passed over.
    pub done: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    /// The CSV columns (by index) copied into the results file after the fixed columns.
    pub copied_columns: Vec<usize>,
    /// Whether an earlier run recorded a row `skipped`: still invalid, its line is left as it is
    /// (a resume with nothing to do changes nothing); valid now, it is sent.
    pub skipped_before: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    /// Each row's `check::row_hash` as preflight rendered it, by record number (0: an invalid
    /// row): a row that no longer reads so stops the reading.
    pub expected: Vec<u32>,
    /// For a campaign addressed by e-mail or external id: its match rules, and what earlier
    /// runs messaged.
    pub resolution: Option<(Arc<crate::resolve::Rules>, super::lookup::Earlier)>,
}

pub struct RunEnd {
    pub progress: Progress,
    pub stop: Option<StopReason>,
    pub unknown_rows: Vec<u64>,
    pub left: u64,
    pub rate_limited: u64,
}

pub async fn pipeline(
    loaded: Loaded,
    shared: Arc<Shared>,
    mut journal: Journal,
    writer: &mut ResultsWriter,
    to_send: u64,
    args: &SendArgs,
    mut known: Known,
) -> RunEnd {
    let stop_reason: Arc<Mutex<Option<StopReason>>> = Arc::new(Mutex::new(None));
    let set_stop = {
        let stop_reason = Arc::clone(&stop_reason);
        let shared = Arc::clone(&shared);
        move |r: StopReason| {
            let mut s = stop_reason.lock().unwrap();
            if s.is_none() {
                *s = Some(r);
            }
            shared.stop.cancel();
        }
    };

    // Ctrl-C (or SIGTERM) once: stop starting requests, let those in flight finish. Twice: now.
    let ctrlc = {
        let set_stop = set_stop.clone();
        tokio::spawn(async move {
            interrupt().await;
            crate::say!("\ninterrupted: finishing the requests in flight (Ctrl-C again to quit at once; they would become `unknown`)");
            set_stop(StopReason::Interrupted);
            interrupt().await;
            crate::say!(
                "quitting now: requests in flight are recorded `unknown` when the run is resumed"
            );
            std::process::exit(Status::Interrupted as i32);
        })
    };

    // Reader: a thread, since reading the CSV and rendering are blocking work. Rows go over in
    // batches: one wake-up of the reader per batch, not per row.
    let (job_tx, job_rx) = mpsc::channel::<Vec<Item>>(QUEUED_BATCHES);
    let limit = args.limit.or(args.canary);
    let skip_invalid = args.skip_invalid;
    let resolution = known.resolution.take();
    let reader =
        std::thread::spawn(move || read_rows(&loaded, &known, (limit, skip_invalid), &job_tx));
    // Rows addressed by e-mail or external id pass through resolution on their way.
    let (resolver, mut job_rx) = match resolution {
        Some((rules, earlier)) => {
            let (tx, rx) = mpsc::channel::<Vec<Item>>(QUEUED_BATCHES);
            let stage = super::lookup::stage(Arc::clone(&shared), rules, earlier, job_rx, tx);
            (Some(tokio::spawn(stage)), rx)
        }
        None => (None, job_rx),
    };

    // Dispatcher: paces rows out; each request runs in its own task.
    let (out_tx, mut out_rx) = mpsc::channel::<(ResultRow, bool)>(1024);
    let dispatcher = {
        let shared = Arc::clone(&shared);
        let set_stop = set_stop.clone();
        tokio::spawn(async move {
            let stop = shared.stop.clone();
            let mut batch = Vec::new().into_iter();
            // An item taken from the batch that could not leave at once: the next to go.
            let mut pending: Option<Item> = None;
            let mut ready: Vec<(Job, tokio::sync::OwnedSemaphorePermit)> =
                Vec::with_capacity(BATCH);
            loop {
                let Some(item) = pending.take().or_else(|| batch.next()) else {
                    batch = tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        next = job_rx.recv() => match next { Some(b) => b.into_iter(), None => break },
                    };
                    continue;
                };
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
                if let Some(hours) = &shared.hours {
                    if !within_send_hours(hours, &stop).await {
                        break;
                    }
                }
                let permit = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    p = Arc::clone(&shared.in_flight.semaphore).acquire_owned() => p.expect("semaphore open"),
                };
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = async { shared.gate.wait().await; shared.limiter.ready().await; shared.gate.wait().await } => {}
                }
                ready.push((job, permit));
                // Rows that may leave right now (gate open, a slot free, the limiter willing
                // without a wait) go with this one, behind one journal write.
                while ready.len() < BATCH {
                    let job = match pending.take().or_else(|| batch.next()) {
                        Some(Item::Job(job)) => job,
                        other => {
                            pending = other;
                            break;
                        }
                    };
                    let permit = match Arc::clone(&shared.in_flight.semaphore).try_acquire_owned() {
                        Ok(p) if shared.gate.is_open() && shared.limiter.try_ready() => p,
                        _ => {
                            pending = Some(Item::Job(job));
                            break;
                        }
                    };
                    ready.push((job, permit));
                }
                if !shared.lock.still_held() {
                    set_stop(StopReason::Io(
                        "the lock file was removed or replaced during the run, so another run could start beside this one".into(),
                    ));
                    break;
                }
                // The record before the send, on stable storage: if this process dies (or the
                // machine loses power) from here on, these rows are `unknown`. Synced on a
                // blocking thread, so that answers keep being recorded meanwhile.
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
                    Ok((j, Ok(()))) => journal = j,
                    Ok((_, Err(e))) => {
                        set_stop(StopReason::Io(format!("{e:#}")));
                        break;
                    }
                    Err(e) => {
                        set_stop(StopReason::Io(format!("cannot write the journal: {e}")));
                        break;
                    }
                }
                {
                    let mut in_flight = shared.rows_in_flight.lock().unwrap();
                    for (job, _) in &ready {
                        in_flight.insert(job.row, job.recipient.clone());
                    }
                }
                for (job, permit) in ready.drain(..) {
                    let shared = Arc::clone(&shared);
                    let out_tx = out_tx.clone();
                    tokio::spawn(async move {
                        let (row, fatal) = send_row(&shared, job).await;
                        shared.rows_in_flight.lock().unwrap().remove(&row.row);
                        drop(permit);
                        let _ = out_tx.send((row, fatal)).await;
                    });
                }
            }
        })
    };

    // Auto concurrency: follow the observed latency.
    let adjuster = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                shared.in_flight.adjust();
            }
        })
    };

    // Writer: the one place outcomes are recorded and the run's health is judged.
    let mut progress = Progress::new(to_send);
    let mut health = Health::new(shared.max_failures, shared.max_failure_share);
    let mut unknown_rows = Vec::new();
    // In-flight requests end by their own timeout; past it and a margin, stop waiting.
    let drain_limit = shared.request_timeout + Duration::from_secs(5);
    let stop = shared.stop.clone();
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(drain_limit).await;
    };
    tokio::pin!(drain_deadline);
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut stall = Stall::new(shared.stall_timeout);
    let mut stall_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let first = tokio::select! {
            o = out_rx.recv() => match o { Some(o) => o, None => break },
            _ = stall_tick.tick() => {
                if let Some(why) = stall.check(shared.gate.paused()) {
                    set_stop(StopReason::Stalled(why));
                }
                continue;
            }
            _ = &mut drain_deadline => {
                // Requests that did not finish in time: their fate is unknown.
                let left: Vec<(u64, String)> = shared.rows_in_flight.lock().unwrap().drain().collect();
                for (row, recipient) in left {
                    let r = ResultRow::interrupted(
                        row,
                        recipient,
                        "the run stopped before the answer came: it may have been delivered",
                    );
                    let _ = writer.write(&r);
                    progress.unknown += 1;
                    unknown_rows.push(row);
                }
                break;
            }
        };
        // Outcomes that arrived meanwhile go to the OS in the same write: at high rates one write
        // per row was a good part of the sender's CPU, and each line still leaves as soon as the
        // writer is free.
        stall.progressed(shared.gate.paused());
        batch.clear();
        batch.push(first);
        while batch.len() < WRITE_BATCH {
            match out_rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        if let Err(e) = writer.write_all(batch.iter().map(|(row, _)| row)) {
            set_stop(StopReason::Io(format!(
                "cannot write the results file: {e}"
            )));
        }
        for (row, fatal) in batch.drain(..) {
            match row.status {
                RowStatus::Sent => progress.sent += 1,
                RowStatus::Failed => progress.failed += 1,
                RowStatus::Unknown => {
                    progress.unknown += 1;
                    unknown_rows.push(row.row);
                }
                RowStatus::Skipped => progress.skipped += 1,
            }
            if fatal {
                set_stop(StopReason::Auth {
                    status: row.http_status.unwrap_or(0),
                    code: row.error_code.clone(),
                    message: row.error_message.clone(),
                });
            } else if let Some(why) = health.record(&row) {
                set_stop(StopReason::Failures(why));
            }
        }
        progress.update();
    }
    progress.finish();
    adjuster.abort();
    ctrlc.abort();
    dispatcher.abort();
    if let Some(r) = resolver {
        r.abort();
    }
    let reader_result = if shared.stop.is_cancelled() {
        Ok(Ok(()))
    } else {
        tokio::task::spawn_blocking(move || reader.join())
            .await
            .unwrap_or(Ok(Ok(())))
    };
    if let Ok(Err(e)) = reader_result {
        set_stop(StopReason::Io(format!("{e:#}")));
    }
    let stop = stop_reason.lock().unwrap().clone();
    let left = to_send.saturating_sub(progress.done());
    RunEnd {
        progress,
        stop,
        unknown_rows,
        left,
        rate_limited: shared.rate_limited.load(Ordering::Relaxed),
    }
}

/// Waits until the send hours are open; `false` if the run is stopped meanwhile.
async fn within_send_hours(
    hours: &crate::input::hours::SendHours,
    stop: &CancellationToken,
) -> bool {
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

/// The stall bound: time the server held every sender back (the gate's pauses) since the last
/// outcome. The limiter's own waits do not count, so a rate of one an hour is no stall.
struct Stall {
    bound: Duration,
    paused_at_progress: Duration,
}

impl Stall {
    fn new(bound: Duration) -> Stall {
        Stall {
            bound,
            paused_at_progress: Duration::ZERO,
        }
    }

    fn progressed(&mut self, paused: Duration) {
        self.paused_at_progress = paused;
    }

    /// Why the run should stop, once the pauses since the last outcome pass the bound.
    fn check(&self, paused: Duration) -> Option<String> {
        let held = paused.saturating_sub(self.paused_at_progress);
        (held > self.bound).then(|| {
            format!(
                "no row has had an outcome while the server held every sender back for {} (429 answers, or rate-limit headers with a reset far ahead), past the stall bound of {} (--stall-timeout, [send] stall_timeout)",
                humantime::format_duration(Duration::from_secs(held.as_secs())),
                humantime::format_duration(self.bound)
            )
        })
    }
}

/// The reader: rows become items, handed over `BATCH` at a time; rows already done are passed
/// over. A row that does not read as preflight read it (`expected`: each row's `row_hash`, 0 for
/// an invalid row) ends the reading with an error that says so, once the rows before it are
/// handed over: the file changed since it was checked, and nothing more is sent from it.
fn read_rows(
    loaded: &Loaded,
    known: &Known,
    (limit, skip_invalid): (Option<u64>, bool),
    job_tx: &mpsc::Sender<Vec<Item>>,
) -> anyhow::Result<()> {
    let (expected, done_rows, skipped_before) =
        (&known.expected, &*known.done, &*known.skipped_before);
    let copied = |fields: &[&str]| -> Vec<String> {
        known
            .copied_columns
            .iter()
            .map(|&i| fields.get(i).copied().unwrap_or_default().to_string())
            .collect()
    };
    let c = &loaded.campaign;
    let (mut recipients, _) =
        Recipients::open(&c.recipients, c.delimiter).map_err(|p| anyhow::anyhow!("{p}"))?;
    let renderer = RowRenderer::new(loaded, &recipients);
    let was = |row: u64| expected.get(row as usize - 1).copied().unwrap_or(0);
    // The last body's size: the next is serialized into a buffer that likely holds it, instead
    // of one grown (and copied) three or four times from serde_json's 128 bytes.
    let body_size = std::cell::Cell::new(256);
    let changed = |row: u64, line: u64| {
        anyhow::anyhow!(
            "{} changed during the run: record {row} (line {line}) does not read as it did when it was checked, so nothing from it on was sent; check the file again",
            c.recipients.display()
        )
    };
    // The item for a row; `None` for a row already done.
    let item =
        |next: Result<crate::input::recipients::Row<'_>, Problem>| -> anyhow::Result<Option<Item>> {
            Ok(Some(match next {
                Ok(row) if done_rows(row.number) => return Ok(None),
                Ok(row) => {
                    let mut rendered = Rendered::default();
                    match renderer.check_into(row.number, row.line, &row.fields, &mut rendered) {
                        Ok(_) => {
                            let request = rendered.into_request(c);
                            if check::request_hash(&request) != was(row.number) {
                                return Err(changed(row.number, row.line));
                            }
                            let mut body = Vec::with_capacity(body_size.get() + 64);
                            serde_json::to_writer(&mut body, &request)?;
                            body_size.set(body.len());
                            Item::Job(Job {
                                row: row.number,
                                body: Bytes::from(body),
                                recipient: request.to.id,
                                contact_id: String::new(),
                                extra: copied(&row.fields),
                            })
                        }
                        Err(_) if was(row.number) != 0 => {
                            return Err(changed(row.number, row.line))
                        }
                        Err(_) if skipped_before(row.number) => return Ok(None),
                        Err(problems) if skip_invalid => Item::Skip(Box::new(ResultRow {
                            extra: copied(&row.fields),
                            ..skipped(row.number, &rendered.to_id, &problems)
                        })),
                        Err(problems) => anyhow::bail!("{}", problems[0]),
                    }
                }
                Err(p) if p.record.is_some_and(|n| was(n) != 0) => {
                    return Err(changed(p.record.unwrap_or(0), p.line.unwrap_or(0)));
                }
                Err(p) if p.record.is_some_and(done_rows) => return Ok(None),
                Err(p) if p.record.is_some_and(skipped_before) => return Ok(None),
                Err(p) if skip_invalid && p.record.is_some() => Item::Skip(Box::new(skipped(
                    p.record.unwrap_or(0),
                    "",
                    std::slice::from_ref(&p),
                ))),
                Err(p) => anyhow::bail!("{p}"),
            }))
        };
    let mut queued = 0u64;
    let mut last = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let result = loop {
        if limit.is_some_and(|l| queued >= l) {
            break Ok(());
        }
        let Some(next) = recipients.next_row() else {
            break if (last as usize) < expected.len() {
                Err(anyhow::anyhow!(
                    "{} changed during the run: it ends at record {last}, and had {} rows when it was checked, so the rows after it were not sent; check the file again",
                    c.recipients.display(),
                    expected.len()
                ))
            } else {
                Ok(())
            };
        };
        last = match &next {
            Ok(row) => row.number,
            Err(p) => p.record.unwrap_or(last),
        };
        match item(next) {
            Ok(Some(item)) => batch.push(item),
            Ok(None) => continue,
            Err(e) => break Err(e),
        }
        queued += 1;
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if job_tx.blocking_send(full).is_err() {
                return Ok(()); // the run stopped
            }
        }
    };
    if !batch.is_empty() {
        let _ = job_tx.blocking_send(batch);
    }
    result
}

/// The results line of an invalid row under --skip-invalid, with its recipient when the
/// recipient template rendered (a row whose subject is empty still names whom it was for).
fn skipped(row: u64, recipient: &str, problems: &[Problem]) -> ResultRow {
    let message = problems
        .iter()
        .map(|p| {
            let mut m = p.message.clone();
            if let Some(c) = &p.column {
                m = format!("{c}: {m}");
            }
            m
        })
        .collect::<Vec<_>>()
        .join("; ");
    ResultRow {
        row,
        recipient: recipient.to_string(),
        status: RowStatus::Skipped,
        message_id: String::new(),
        http_status: None,
        error_code: format!(
            "invalid_{}",
            problems.first().map_or("row", |p| p.kind.as_str())
        ),
        error_message: message,
        request_id: String::new(),
        attempts: 0,
        finished_at: results::now_rfc3339(),
        contact_id: String::new(),
        extra: Vec::new(),
    }
}

/// The next Ctrl-C, or SIGTERM (what `timeout`, systemd and CI runners send): either asks the run
/// to stop cleanly. A signal that cannot be listened for never fires.
async fn interrupt() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
