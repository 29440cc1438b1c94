//! `campaign send`: preflight, then one reader thread rendering rows, one dispatcher pacing them
//! through the limiter and the in-flight limit, a task per request, and one writer recording every
//! outcome. The journal line for a row is written before its request leaves.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::Xxh3;

use crate::check::{self, recipient_hash, Loaded, RowRenderer};
use crate::cli::SendArgs;
use crate::client::{Attempt, Client, Token};
use crate::config::{self, Campaign};
use crate::pace::{self, Gate, InFlight};
use crate::policy::{self, Decision, Final, Tries};
use crate::problem::{Problem, Severity};
use crate::progress::Progress;
use crate::recipients::Recipients;
use crate::results::{self, Journal, JournalHeader, ResultRow, ResultsWriter, RowStatus};
use crate::sandbox;
use crate::Status;

/// Why a run stopped before its end.
#[derive(Debug, Clone)]
enum StopReason {
    Auth {
        status: u16,
        code: String,
        message: String,
    },
    Failures(String),
    Interrupted,
    Io(String),
}

/// A row ready to send.
struct Job {
    row: u64,
    recipient: String,
    body: Bytes,
}

enum Item {
    Job(Job),
    /// An invalid row under --skip-invalid: recorded, not sent.
    Skip(Box<ResultRow>),
}

struct Shared {
    client: Client,
    gate: Gate,
    limiter: governor::DefaultDirectRateLimiter,
    in_flight: InFlight,
    stop: CancellationToken,
    rows_in_flight: Mutex<HashMap<u64, String>>,
    max_attempts: u32,
    max_failures: u32,
    max_failure_share: f64,
    retry_not_found_for: Duration,
    request_timeout: Duration,
    /// 429 answers: each paused every sender until the window's reset.
    rate_limited: std::sync::atomic::AtomicU64,
}

/// The fingerprint of what the messages are made of, less the rows: templates and settings, and
/// where they go (a sandbox run must never count as sent to customers).
fn settings_fingerprint(c: &Campaign, target: &str) -> String {
    let mut h = Xxh3::new();
    for part in [
        c.message_type.as_api(),
        c.template.as_deref().unwrap_or(""),
        &c.from.to_string(),
        &c.to_type,
        &format!("{:?}", c.create_conversation_without_contact_reply),
        c.subject.as_ref().map(|s| s.source.as_str()).unwrap_or(""),
        &c.body.source,
        &format!("{:?}", c.body_format),
        &c.to_id.source,
    ] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    format!(
        "{:016x}@{}",
        h.digest(),
        target.replace(char::is_whitespace, "")
    )
}

fn read_token(args: &SendArgs) -> anyhow::Result<Token> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        return Token::new(text).with_context(|| format!("{}", path.display()));
    }
    match std::env::var("INTERCOM_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Token::new(t),
        _ => bail!(
            "no access token: set INTERCOM_TOKEN (or pass --token-file FILE), or rehearse with --sandbox or --dry-run"
        ),
    }
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

fn apply_overrides(c: &mut Campaign, args: &SendArgs) -> anyhow::Result<()> {
    if let Some(r) = args.rate {
        c.send.rate = r;
    }
    if let Some(n) = args.concurrency {
        c.send.concurrency = n;
    }
    if let Some(n) = args.max_attempts {
        c.send.max_attempts = n.max(1);
    }
    if let Some(n) = args.max_failures {
        c.send.max_failures = n.max(1);
    }
    if let Some(u) = &args.api_base {
        c.base_url = u.clone();
    }
    if let Some(v) = &args.intercom_version {
        config::check_version(v).map_err(anyhow::Error::msg)?;
        c.version = v.clone();
    }
    Ok(())
}

/// The command that continues this run, for the user to copy.
fn resume_command(args: &SendArgs, results: &Path) -> String {
    let mut cmd = format!(
        "campaign send {} --results {} --resume",
        args.campaign.display(),
        results.display()
    );
    if args.sandbox {
        cmd.push_str(" --sandbox");
    }
    cmd
}

pub async fn run(args: SendArgs) -> anyhow::Result<Status> {
    // The token first: a missing one is said before anything else happens.
    let token = match (args.dry_run, args.sandbox) {
        (true, _) => None,
        (false, true) => Some(Token::new(random_token())?),
        (false, false) => Some(read_token(&args)?),
    };
    let mut loaded = match check::load(&args.campaign)? {
        Ok(l) => l,
        Err(report) => {
            eprint!("{}", report.render());
            eprintln!(
                "{}: invalid templates; nothing was sent.",
                args.campaign.display()
            );
            return Ok(Status::Invalid);
        }
    };
    apply_overrides(&mut loaded.campaign, &args)?;
    if !args.sandbox {
        config::check_base_url(&loaded.campaign.base_url)?;
    }
    let target = if args.sandbox {
        "sandbox".to_string()
    } else {
        loaded.campaign.base_url.clone()
    };
    let results_path = args.results.clone().unwrap_or_else(|| {
        let stem = loaded.campaign.stem();
        PathBuf::from(if args.sandbox {
            format!("{stem}.sandbox.results.csv")
        } else {
            format!("{stem}.results.csv")
        })
    });

    // What an earlier run left.
    let prior = if results::has_history(&results_path) {
        if !args.resume {
            bail!(
                "{} already holds results: add --resume to continue that run (rows recorded `sent` are not sent again), or choose another --results file",
                results_path.display()
            );
        }
        let to_type = loaded.campaign.to_type.clone();
        Some(results::reconcile(&results_path, &|r| {
            recipient_hash(&to_type, r)
        })?)
    } else {
        None
    };

    // Preflight: every row rendered; on resume, every recorded row's recipient compared.
    let mut changed_reported = false;
    let recipients_file = loaded.campaign.recipients.display().to_string();
    let pre = check::preflight(&loaded, args.allow_duplicates, &mut |row, request| {
        let prior = prior.as_ref()?;
        let recorded = prior.recipient_hash(row)?;
        if changed_reported || recorded == recipient_hash(&request.to.kind, &request.to.id) {
            return None;
        }
        changed_reported = true;
        Some(Problem {
            record: Some(row),
            ..Problem::error(
                "changed",
                &recipients_file,
                format!(
                    "the recipient is now `{}`, but the results file {} recorded another one for this row: the CSV changed since the first run, so resuming it could skip or double customers",
                    request.to.id,
                    results_path.display()
                ),
            )
        })
    });
    if let Some(p) = &prior {
        if p.rows() > pre.rows {
            eprintln!(
                "error: {}: the results file has rows beyond the CSV's {} rows: the CSV changed since the first run",
                results_path.display(),
                pre.rows
            );
            return Ok(Status::Invalid);
        }
    }
    eprint!("{}", pre.report.render());
    let blocking = pre
        .report
        .counts
        .iter()
        .filter(|((sev, kind), _)| {
            *sev == Severity::Error && !matches!(*kind, "value" | "csv" | "template")
        })
        .map(|(_, n)| *n)
        .sum::<u64>();
    let file_level = pre
        .report
        .kept
        .iter()
        .any(|p| p.severity == Severity::Error && p.record.is_none());
    if pre.report.has_errors() && (!args.skip_invalid || blocking > 0 || file_level) {
        eprintln!(
            "{}: {} errors, {} warnings; nothing was sent{}.",
            check::summary_line(&loaded.campaign, &pre),
            pre.report.errors,
            pre.report.warnings,
            if args.skip_invalid || pre.invalid_rows == 0 {
                ""
            } else {
                " (--skip-invalid sends the valid rows and records the others as skipped)"
            }
        );
        return Ok(Status::Invalid);
    }

    // The same campaign, not a changed one.
    let settings = settings_fingerprint(&loaded.campaign, &target);
    let content = format!("{:016x}", pre.content_hash);
    if let Some(header) = prior.as_ref().and_then(|p| p.header.as_ref()) {
        let old_target = header
            .settings
            .split_once('@')
            .map(|(_, t)| t)
            .unwrap_or("");
        let new_target = settings.split_once('@').map(|(_, t)| t).unwrap_or("");
        if old_target != new_target {
            bail!(
                "{} records a run against {old_target}, and this run would go to {new_target}: rows it records as sent did not reach these customers. Use another --results file",
                results_path.display()
            );
        }
        if header.settings != settings && !args.allow_changed {
            bail!("the templates or message settings changed since the first run of {}; resuming would send a different message to the remaining rows. Add --allow-changed if that is intended", results_path.display());
        }
        if header.content != content && !args.allow_changed {
            bail!("the recipients CSV's content changed since the first run of {} (the recipients are the same); add --allow-changed if that is intended", results_path.display());
        }
    }

    if let Some(p) = &prior {
        eprintln!(
            "resuming {}: {} sent, {} failed, {} unknown, {} skipped{}",
            results_path.display(),
            p.sent,
            p.failed,
            p.unknown,
            p.skipped,
            if p.recovered_unknown > 0 {
                format!(
                    " ({} were in flight when the last run stopped)",
                    p.recovered_unknown
                )
            } else {
                String::new()
            }
        );
        if p.unknown > 0 && !args.retry_unknown {
            let rows: Vec<String> = p
                .rows_with(RowStatus::Unknown)
                .take(20)
                .map(|r| r.to_string())
                .collect();
            eprintln!(
                "{} rows are `unknown` (rows {}{}): they may have reached their recipients and are not sent again. Check them in Intercom (the contact's conversations; the results file has each row's recipient), then send them on purpose with --resume --retry-unknown.",
                p.unknown,
                rows.join(", "),
                if p.unknown > 20 { ", …" } else { "" }
            );
        }
    }
    let already = prior
        .as_ref()
        .map(|p| p.sent + if args.retry_unknown { 0 } else { p.unknown })
        .unwrap_or(0);
    let mut to_send = pre.rows.saturating_sub(already);
    if let Some(limit) = args.limit {
        to_send = to_send.min(limit);
    }
    let c = &loaded.campaign;
    if args.dry_run {
        println!(
            "dry run: {to_send} messages would be sent to {} (rate {}, concurrency {:?}); nothing was sent.",
            if args.sandbox { "the sandbox".to_string() } else { c.base_url.clone() },
            c.send.rate,
            c.send.concurrency
        );
        return Ok(Status::Ok);
    }
    let token = token.expect("a token unless --dry-run");

    let sandbox = if args.sandbox {
        let log = args
            .sandbox_log
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.sandbox.jsonl", c.stem())));
        let config = sandbox::SandboxConfig {
            token: Some(token.expose().to_string()),
            faults: args.faults.clone(),
            contacts: args.sandbox_contacts.clone(),
            log: Some(log.clone()),
        };
        let running = sandbox::start(config, "127.0.0.1:0".parse()?).await?;
        eprintln!(
            "sandbox: {} (every accepted message is logged to {})",
            running.base_url(),
            log.display()
        );
        Some((running, log))
    } else {
        None
    };
    let base_url = sandbox
        .as_ref()
        .map(|(s, _)| s.base_url())
        .unwrap_or_else(|| c.base_url.clone());
    let in_flight = InFlight::new(c.send.concurrency, c.send.rate);
    let client = Client::new(
        &base_url,
        &token,
        &c.version,
        c.send.request_timeout,
        pace::AUTO_MAX,
    )?;
    let shared = Arc::new(Shared {
        client,
        gate: Gate::default(),
        limiter: pace::limiter(c.send.rate),
        in_flight,
        stop: CancellationToken::new(),
        rows_in_flight: Mutex::new(HashMap::new()),
        max_attempts: c.send.max_attempts,
        max_failures: c.send.max_failures,
        max_failure_share: c.send.max_failure_share,
        retry_not_found_for: c.send.retry_not_found_for,
        request_timeout: c.send.request_timeout,
        rate_limited: Default::default(),
    });
    let mut writer = ResultsWriter::open(&results_path)?;
    let offset = std::fs::metadata(&results_path)
        .map(|m| m.len())
        .unwrap_or(0);
    let journal = Journal::start(
        &results::journal_path(&results_path),
        &JournalHeader {
            results_offset: offset,
            settings,
            content,
        },
    )?;
    eprintln!(
        "sending {to_send} messages to {base_url} at {} (in flight: {}); results: {}",
        c.send.rate,
        match c.send.concurrency {
            config::Concurrency::Auto => "auto".to_string(),
            config::Concurrency::Fixed(n) => n.to_string(),
        },
        results_path.display()
    );

    let retry_unknown = args.retry_unknown;
    let prior = Arc::new(prior.unwrap_or_default());
    let done: Arc<dyn Fn(u64) -> bool + Send + Sync> =
        Arc::new(move |row| match prior.status(row) {
            Some(RowStatus::Sent) => true,
            Some(RowStatus::Unknown) => !retry_unknown,
            _ => false,
        });
    let end = pipeline(
        loaded,
        Arc::clone(&shared),
        journal,
        &mut writer,
        to_send,
        &args,
        done,
    )
    .await;
    drop(writer);
    results::compact(&results_path)?;
    let tally = results::tally(&results_path)?;
    if let Some((running, log)) = sandbox {
        running.shutdown().await?;
        eprintln!("sandbox log: {}", log.display());
    }
    report_end(&args, &results_path, end, tally)
}

struct RunEnd {
    progress: Progress,
    stop: Option<StopReason>,
    unknown_rows: Vec<u64>,
    left: u64,
    rate_limited: u64,
}

async fn pipeline(
    loaded: Loaded,
    shared: Arc<Shared>,
    mut journal: Journal,
    writer: &mut ResultsWriter,
    to_send: u64,
    args: &SendArgs,
    done_rows: Arc<dyn Fn(u64) -> bool + Send + Sync>,
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

    // Ctrl-C once: stop starting requests, let those in flight finish. Twice: now.
    let ctrlc = {
        let set_stop = set_stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: finishing the requests in flight (Ctrl-C again to quit at once; they would become `unknown`)");
                set_stop(StopReason::Interrupted);
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("quitting now: requests in flight are recorded `unknown` when the run is resumed");
                    std::process::exit(Status::Interrupted as i32);
                }
            }
        })
    };

    // Reader: a thread, since reading the CSV and rendering are blocking work.
    let (job_tx, mut job_rx) = mpsc::channel::<Item>(1024);
    let limit = args.limit;
    let skip_invalid = args.skip_invalid;
    let reader = std::thread::spawn(move || -> anyhow::Result<()> {
        let c = &loaded.campaign;
        let (mut recipients, _) =
            Recipients::open(&c.recipients, c.delimiter).map_err(|p| anyhow::anyhow!("{p}"))?;
        let renderer = RowRenderer::new(&loaded, &recipients);
        let mut queued = 0u64;
        while let Some(next) = recipients.next_row() {
            if limit.is_some_and(|l| queued >= l) {
                break;
            }
            let item = match next {
                Ok(row) => {
                    if done_rows(row.number) {
                        continue;
                    }
                    match renderer.render(&row) {
                        Ok((request, _)) => Item::Job(Job {
                            row: row.number,
                            body: Bytes::from(serde_json::to_vec(&request)?),
                            recipient: request.to.id,
                        }),
                        Err(problems) if skip_invalid => {
                            Item::Skip(Box::new(skipped(row.number, &problems)))
                        }
                        Err(problems) => anyhow::bail!("{}", problems[0]),
                    }
                }
                Err(p) if skip_invalid && p.record.is_some() => {
                    if done_rows(p.record.unwrap_or(0)) {
                        continue;
                    }
                    Item::Skip(Box::new(skipped(
                        p.record.unwrap_or(0),
                        std::slice::from_ref(&p),
                    )))
                }
                Err(p) => anyhow::bail!("{p}"),
            };
            queued += 1;
            if job_tx.blocking_send(item).is_err() {
                break; // the run stopped
            }
        }
        Ok(())
    });

    // Dispatcher: paces rows out; each request runs in its own task.
    let (out_tx, mut out_rx) = mpsc::channel::<(ResultRow, bool)>(1024);
    let journal_failed = Arc::new(AtomicBool::new(false));
    let dispatcher = {
        let shared = Arc::clone(&shared);
        let journal_failed = Arc::clone(&journal_failed);
        let set_stop = set_stop.clone();
        tokio::spawn(async move {
            let stop = shared.stop.clone();
            loop {
                let item = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    item = job_rx.recv() => match item { Some(i) => i, None => break },
                };
                let job = match item {
                    Item::Skip(r) => {
                        if out_tx.send((*r, false)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Item::Job(job) => job,
                };
                let permit = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    p = Arc::clone(&shared.in_flight.semaphore).acquire_owned() => p.expect("semaphore open"),
                };
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = async { shared.gate.wait().await; shared.limiter.until_ready().await; shared.gate.wait().await } => {}
                }
                // The record before the send: if this process dies from here on, the row is `unknown`.
                if let Err(e) = journal.in_flight(job.row, &job.recipient) {
                    journal_failed.store(true, Ordering::Relaxed);
                    set_stop(StopReason::Io(format!("cannot write the journal: {e}")));
                    break;
                }
                shared
                    .rows_in_flight
                    .lock()
                    .unwrap()
                    .insert(job.row, job.recipient.clone());
                let shared = Arc::clone(&shared);
                let out_tx = out_tx.clone();
                tokio::spawn(async move {
                    let (row, fatal) = send_row(&shared, job).await;
                    shared.rows_in_flight.lock().unwrap().remove(&row.row);
                    drop(permit);
                    let _ = out_tx.send((row, fatal)).await;
                });
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
    let mut consecutive = 0u32;
    let mut recent: VecDeque<Option<String>> = VecDeque::with_capacity(100);
    let mut unknown_rows = Vec::new();
    // In-flight requests end by their own timeout; past it and a margin, stop waiting.
    let drain_limit = shared.request_timeout + Duration::from_secs(5);
    let stop = shared.stop.clone();
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(drain_limit).await;
    };
    tokio::pin!(drain_deadline);
    loop {
        let (row, fatal) = tokio::select! {
            o = out_rx.recv() => match o { Some(o) => o, None => break },
            _ = &mut drain_deadline => {
                // Requests that did not finish in time: their fate is unknown.
                let left: Vec<(u64, String)> = shared.rows_in_flight.lock().unwrap().drain().collect();
                for (row, recipient) in left {
                    let r = ResultRow {
                        row,
                        recipient,
                        status: RowStatus::Unknown,
                        message_id: String::new(),
                        http_status: None,
                        error_code: "interrupted".into(),
                        error_message: "the run stopped before the answer came: it may have been delivered".into(),
                        request_id: String::new(),
                        attempts: 1,
                        finished_at: results::now_rfc3339(),
                    };
                    let _ = writer.write(&r);
                    progress.unknown += 1;
                    unknown_rows.push(row);
                }
                break;
            }
        };
        if let Err(e) = writer.write(&row) {
            set_stop(StopReason::Io(format!(
                "cannot write the results file: {e}"
            )));
        }
        match row.status {
            RowStatus::Sent => {
                progress.sent += 1;
                consecutive = 0;
            }
            RowStatus::Failed => progress.failed += 1,
            RowStatus::Unknown => {
                progress.unknown += 1;
                unknown_rows.push(row.row);
            }
            RowStatus::Skipped => progress.skipped += 1,
        }
        if row.status != RowStatus::Skipped {
            let failure = (row.status == RowStatus::Failed).then(|| describe_failure(&row));
            if failure.is_some() {
                consecutive += 1;
            }
            if recent.len() == 100 {
                recent.pop_front();
            }
            recent.push_back(failure);
        }
        if fatal {
            set_stop(StopReason::Auth {
                status: row.http_status.unwrap_or(0),
                code: row.error_code.clone(),
                message: row.error_message.clone(),
            });
        } else if consecutive > shared.max_failures {
            set_stop(StopReason::Failures(format!(
                "{consecutive} rows in a row failed; most often: {}",
                dominant(&recent)
            )));
        } else if recent.len() == 100 {
            let failed = recent.iter().filter(|f| f.is_some()).count();
            if failed as f64 / 100.0 > shared.max_failure_share {
                set_stop(StopReason::Failures(format!(
                    "{failed} of the last 100 rows failed; most often: {}",
                    dominant(&recent)
                )));
            }
        }
        progress.update();
    }
    progress.finish();
    adjuster.abort();
    ctrlc.abort();
    dispatcher.abort();
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

fn skipped(row: u64, problems: &[Problem]) -> ResultRow {
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
        recipient: String::new(),
        status: RowStatus::Skipped,
        message_id: String::new(),
        http_status: None,
        error_code: format!(
            "invalid_{}",
            problems.first().map(|p| p.kind).unwrap_or("row")
        ),
        error_message: message,
        request_id: String::new(),
        attempts: 0,
        finished_at: results::now_rfc3339(),
    }
}

fn describe_failure(r: &ResultRow) -> String {
    match (r.http_status, r.error_code.as_str()) {
        (Some(s), "") => format!("HTTP {s}"),
        (Some(s), code) => format!("HTTP {s} {code}"),
        (None, code) => code.to_string(),
    }
}

fn dominant(recent: &VecDeque<Option<String>>) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for f in recent.iter().flatten() {
        *counts.entry(f.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)))
        .map(|(k, n)| format!("{k} ({n} times)"))
        .unwrap_or_default()
}

/// One row: attempts until an outcome is final.
async fn send_row(shared: &Shared, job: Job) -> (ResultRow, bool) {
    let mut attempts = 0u32;
    let mut first_not_found: Option<Instant> = None;
    let outcome: Final = loop {
        attempts += 1;
        let started = Instant::now();
        let attempt = shared.client.send(job.body.clone()).await;
        let in_flight = shared
            .in_flight
            .size()
            .saturating_sub(shared.in_flight.semaphore.available_permits());
        match &attempt {
            Attempt::Sent { rate, .. } | Attempt::Rejected { rate, .. } => {
                shared.in_flight.record_latency(started.elapsed());
                pace::heed_server(&shared.gate, rate, in_flight);
            }
            _ => {}
        }
        if matches!(&attempt, Attempt::Rejected { status: 404, .. }) && first_not_found.is_none() {
            first_not_found = Some(Instant::now());
        }
        let tries = Tries {
            attempts,
            max_attempts: shared.max_attempts,
            not_found_for: first_not_found.map(|t| t.elapsed()),
            retry_not_found_for: shared.retry_not_found_for,
        };
        match policy::decide(&attempt, tries) {
            Decision::Final(f) => break f,
            Decision::Retry { after, last } => {
                if shared.stop.is_cancelled() {
                    break last;
                }
                tokio::select! {
                    _ = shared.stop.cancelled() => break last,
                    _ = tokio::time::sleep(after) => {}
                }
            }
            Decision::RateLimited {
                reset_unix,
                retry_after,
                last,
            } => {
                // Not the row's fault: it does not count as an attempt.
                attempts -= 1;
                shared.rate_limited.fetch_add(1, Ordering::Relaxed);
                let until = match (retry_after, reset_unix) {
                    (Some(d), _) => Instant::now() + d.min(Duration::from_secs(60)),
                    (None, Some(reset)) => pace::reset_instant(reset),
                    (None, None) => Instant::now() + Duration::from_secs(2),
                };
                shared.gate.pause_until(until);
                if shared.stop.is_cancelled() {
                    break Final {
                        error: crate::client::ApiError {
                            message: format!(
                                "{} (the run stopped before a retry)",
                                last.error.message
                            ),
                            ..last.error
                        },
                        ..last
                    };
                }
            }
        }
        tokio::select! {
            _ = shared.stop.cancelled() => {}
            _ = async { shared.gate.wait().await; shared.limiter.until_ready().await; } => {}
        }
    };
    let fatal = outcome.fatal;
    let row = ResultRow {
        row: job.row,
        recipient: job.recipient,
        status: outcome.status,
        message_id: outcome.message_id,
        http_status: outcome.http_status,
        error_code: outcome.error.code,
        error_message: outcome.error.message,
        request_id: outcome.error.request_id,
        attempts: attempts.max(1),
        finished_at: results::now_rfc3339(),
    };
    (row, fatal)
}

fn report_end(
    args: &SendArgs,
    results_path: &Path,
    end: RunEnd,
    all: results::Tally,
) -> anyhow::Result<Status> {
    let p = &end.progress;
    let secs = p.elapsed().as_secs_f64();
    println!(
        "sent {}, failed {}, unknown {}, skipped {} in {:.1}s ({:.1}/s); results: {}",
        p.sent,
        p.failed,
        p.unknown,
        p.skipped,
        secs,
        p.done() as f64 / secs.max(0.001),
        results_path.display()
    );
    if end.rate_limited > 0 {
        eprintln!(
            "rate limited: {} answers were 429; every sender waited for the window to reset, and those rows went again",
            end.rate_limited
        );
    }
    if !end.unknown_rows.is_empty() {
        let mut rows = end.unknown_rows.clone();
        rows.sort_unstable();
        let shown: Vec<String> = rows.iter().take(20).map(|r| r.to_string()).collect();
        eprintln!(
            "{} rows are `unknown` (rows {}{}): the request may have reached Intercom. Check those contacts' conversations before sending again with --resume --retry-unknown.",
            rows.len(),
            shown.join(", "),
            if rows.len() > 20 { ", …" } else { "" }
        );
    }
    let resume = resume_command(args, results_path);
    match end.stop {
        Some(StopReason::Interrupted) => {
            eprintln!(
                "interrupted; {} rows not sent. To continue: {resume}",
                end.left
            );
            Ok(Status::Interrupted)
        }
        Some(StopReason::Auth {
            status,
            code,
            message,
        }) => {
            eprintln!(
                "stopped: HTTP {status} {code} ({message}): the access token or the workspace's plan is the problem, and every later request would fail the same way. Fix it, then continue: {resume}"
            );
            Ok(Status::Stopped)
        }
        Some(StopReason::Failures(why)) => {
            eprintln!("stopped: {why}. Fix the cause, then continue: {resume}");
            Ok(Status::Stopped)
        }
        Some(StopReason::Io(why)) => {
            eprintln!("stopped: {why}. Then continue: {resume}");
            Ok(Status::Stopped)
        }
        // The campaign's state, not just this run's: rows left `unknown` or `failed` by an earlier
        // run mean it is not done.
        None if all.failed + all.unknown + all.skipped > 0 => {
            eprintln!(
                "the results file holds {} sent, {} failed, {} unknown, {} skipped rows; `failed` rows are sent again by: {resume}",
                all.sent, all.failed, all.unknown, all.skipped
            );
            Ok(Status::Failed)
        }
        None => {
            if end.left > 0 {
                eprintln!(
                    "{} rows not sent yet (--limit). To continue: {resume}",
                    end.left
                );
            }
            Ok(Status::Ok)
        }
    }
}
