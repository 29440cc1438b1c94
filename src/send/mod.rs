//! `campaign send`: everything before the first request (token, preflight, the earlier run's
//! results, the campaign's fingerprint), then the run ([`pipeline`]), then the summary
//! ([`report`]). Nothing is sent unless every check before it passed.
mod attempt;
mod health;
mod lookup;
pub mod pace;
mod pipeline;
pub mod policy;
pub mod progress;
mod report;
mod test_send;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _};
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::Xxh3;

use crate::check::{self, recipient_hash};
use crate::cli::rows::RowSet;
use crate::cli::SendArgs;
use crate::input::config::{self, Campaign};
use crate::input::problem::{Problem, ProblemKind, Severity};
use crate::intercom::client::{Client, Token};
use crate::results::{
    self, Journal, JournalHeader, Ledger, Prior, ResultsWriter, RowStatus, RunLock,
};
use crate::sandbox;
use crate::{Status, Stopped};
use pace::{Gate, InFlight};

use pipeline::{pipeline, Known, Shared};
use report::report_end;

/// The fingerprint of what the messages are made of, less the rows: templates and settings, and
/// where they go (a sandbox run must never count as sent to customers).
fn settings_fingerprint(c: &Campaign, target: &str) -> String {
    let mut h = Xxh3::new();
    for part in [
        c.message_type.as_api(),
        c.template.as_deref().unwrap_or(""),
        &c.from_key(),
        &c.to_type,
        &format!("{:?}", c.create_conversation_without_contact_reply),
        c.subject.as_ref().map(|s| s.source.as_str()).unwrap_or(""),
        &c.body.source,
        &format!("{:?}", c.body_format),
        &c.to_id.source,
        c.address.key(),
        if c.verify { "verify" } else { "" },
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
    // `--token`, or INTERCOM_TOKEN, which clap reads into it.
    match args.token.clone().map(|t| t.into_inner()) {
        Some(t) if !t.trim().is_empty() => Token::new(t),
        _ => bail!(
            "no access token: set INTERCOM_TOKEN (or pass --token-file FILE), or rehearse with --sandbox or --dry-run"
        ),
    }
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
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
    if let Some(columns) = &args.results_columns {
        c.results_columns = columns.clone();
    }
    if let Some(d) = args.stall_timeout {
        c.send.stall_timeout = d;
    }
    if let Some(s) = args.max_failure_share {
        c.send.max_failure_share = s;
    }
    if let Some(d) = args.retry_not_found_for {
        c.send.retry_not_found_for = d;
    }
    if let Some(d) = args.request_timeout {
        c.send.request_timeout = d;
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

pub async fn run(args: SendArgs) -> anyhow::Result<Status> {
    // The token first: a missing one is said before anything else happens.
    let token = match (args.dry_run, args.sandbox) {
        (true, _) => None,
        (false, true) => Some(Token::new(random_token())?),
        (false, false) => Some(read_token(&args)?),
    };
    let mut loaded = match check::load(&args.campaign) {
        Ok(l) => l,
        Err(check::LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            crate::say!(
                "{}: invalid templates; nothing was sent.",
                args.campaign.display()
            );
            return Ok(Status::Invalid);
        }
        Err(check::LoadError::Campaign(e)) => return Err(e),
    };
    apply_overrides(&mut loaded.campaign, &args)?;
    if !args.sandbox {
        config::check_base_url(&loaded.campaign.base_url).with_context(|| match args.api_base {
            Some(_) => "--api-base".to_string(),
            None => format!("{} [intercom] base_url", args.campaign.display()),
        })?;
    }
    crate::intercom::admins::resolve_for_send(&mut loaded.campaign, &args, token.as_ref()).await?;
    if args.test_to.is_some() {
        return test_send::run(&args, loaded, token).await;
    }
    let target = if args.sandbox {
        "sandbox".to_string()
    } else {
        loaded.campaign.base_url.clone()
    };
    // The do-not-contact list is read before anything else of the run: a missing one is said
    // while nothing was sent.
    let rules = if loaded.campaign.resolves() {
        Some(Arc::new(crate::resolve::Rules::of(&loaded.campaign)?))
    } else {
        None
    };
    let results_path = results_path(&args, &loaded.campaign)?;
    let ledger = Ledger::new(results_path.clone());
    ledger.check_files()?;
    // Before anything of the ledger is read: one run at a time.
    let lock = Arc::new(RunLock::acquire(&ledger.lock, &ledger.results)?);
    // The same target and templates before the journal's rows are settled into the results file:
    // a journal of another campaign must not write its rows there.
    let settings = settings_fingerprint(&loaded.campaign, &target);
    if let Some(header) = results::journal_header(&ledger.journal)? {
        same_settings(&header, &settings, &args, &results_path)?;
    }
    let copied_columns = copied_columns(&loaded.campaign)?;
    let mut prior = earlier_runs(&ledger, &args, &loaded.campaign.to_type)?;
    if prior.is_some() {
        same_results_columns(&ledger, &loaded.campaign.results_columns)?;
    }
    // A looked-up campaign's journal names the e-mail, the log the contact id: they cannot be
    // matched, so its `unknown` rows stay `unknown` (never sent twice) rather than be guessed.
    if let (true, Some(p), false) = (args.sandbox, &prior, loaded.campaign.address.looked_up()) {
        let log = sandbox_log_path(&args, &loaded.campaign.path);
        if settle_from_sandbox_log(&ledger, p, &log, &loaded.campaign.to_type)? {
            prior = earlier_runs(&ledger, &args, &loaded.campaign.to_type)?;
        }
    }

    // Preflight: every row rendered; on resume, every recorded row's recipient compared.
    let mut changed_reported = false;
    let recipients_file = loaded.campaign.recipients.display().to_string();
    let to_type = &loaded.campaign.to_type;
    // Each row's request hash, by record number (0: not a valid row), for the send pass to
    // compare with: 4 bytes a row, sized up front on resume (growing it would hold the old
    // and the new buffer at once, beside the earlier run's rows).
    let mut expected: Vec<u32> =
        Vec::with_capacity(prior.as_ref().map_or(0, |p| p.rows() as usize));
    let campaign = &loaded.campaign;
    let pre = check::preflight(&loaded, args.allow_duplicates, &mut |row, rendered| {
        expected.resize(row as usize - 1, 0);
        expected.push(check::row_hash(campaign, rendered));
        let id = rendered.to_id.as_str();
        let prior = prior.as_ref()?;
        let recorded = prior.recipient_hash(row)?;
        if changed_reported || recorded == recipient_hash(to_type, id) {
            return None;
        }
        // A row skipped without a recipient (its id did not render, or an earlier version left
        // it out) has nothing to compare: it was never sent, and fixing it is why one resumes.
        if prior.status(row) == Some(RowStatus::Skipped) && recorded == recipient_hash(to_type, "")
        {
            return None;
        }
        changed_reported = true;
        Some(Problem {
            record: Some(row),
            ..Problem::error(
                ProblemKind::Changed,
                &recipients_file,
                format!(
                    "the recipient is now `{}`, but the results file {} recorded another one for this row: the CSV changed since the first run, so resuming it could skip or double customers",
                    id,
                    results_path.display()
                ),
            )
        })
    });
    expected.resize(pre.rows as usize, 0);
    if let Some(p) = &prior {
        if p.rows() > pre.rows {
            crate::say!(
                "error: {}: the results file has rows beyond the CSV's {} rows: the CSV changed since the first run",
                results_path.display(),
                pre.rows
            );
            return Ok(Status::Invalid);
        }
    }
    crate::say_part!("{}", pre.report.render());
    if refuses(&pre, &args) {
        crate::say!(
            "{}: {}, {}; nothing was sent{}.",
            check::summary_line(&loaded.campaign, &pre),
            check::counted(pre.report.errors, "error"),
            check::counted(pre.report.warnings, "warning"),
            // Not when no row is valid: there would be nothing to send.
            if !args.skip_invalid && only_row_errors(&pre) && pre.rows > pre.invalid_rows {
                " (--skip-invalid sends the valid rows and records the others as skipped)"
            } else {
                ""
            }
        );
        return Ok(Status::Invalid);
    }

    // The same rows' content, not a changed one.
    let content = format!("{:016x}", pre.content_hash);
    if let Some(header) = prior.as_ref().and_then(|p| p.header.as_ref()) {
        if header.content != content && !args.allow_changed {
            bail!("the recipients CSV's content changed since the first run of {} (the recipients are the same); add --allow-changed if that is intended", results_path.display());
        }
    }
    if let Some(p) = &prior {
        announce_resume(p, &args, &results_path);
    }
    let already = prior.as_ref().map_or(0, |p| {
        p.recorded()
            .filter(|&(row, s)| is_done(s, row, args.retry_unknown.as_ref()))
            .count() as u64
    });
    // Rows skipped before and invalid still are passed over, not sent: not left to do either.
    let still_skipped = prior.as_ref().map_or(0, |p| {
        p.rows_with(RowStatus::Skipped)
            .filter(|&row| expected.get(row as usize - 1) == Some(&0))
            .count() as u64
    });
    let remaining = pre.rows.saturating_sub(already + still_skipped);
    let to_send = args
        .limit
        .or(args.canary)
        .map_or(remaining, |limit| remaining.min(limit));
    let c = &loaded.campaign;
    let loaded_rate = c.send.rate.to_string();
    if args.dry_run {
        // With --skip-invalid the invalid rows are recorded, not sent: counted apart.
        let skipped = if args.skip_invalid {
            pre.invalid_rows
        } else {
            0
        };
        let to_send = args
            .limit
            .or(args.canary)
            .map_or(remaining.saturating_sub(skipped), |limit| {
                remaining.saturating_sub(skipped).min(limit)
            });
        crate::out!(
            "dry run: {to_send} messages would be sent to {} (rate {}, concurrency {}){}; nothing was sent.",
            if args.sandbox { "the sandbox".to_string() } else { c.base_url.clone() },
            c.send.rate,
            c.send.concurrency,
            match skipped {
                0 => String::new(),
                n => format!(", {} would be recorded `skipped`", check::counted(n, "invalid row")),
            }
        );
        if c.resolves() {
            crate::out!("{}", lookup_plan(c, to_send));
        }
        return Ok(Status::Ok);
    }
    if !args.sandbox && !args.yes && to_send > 0 && on_a_terminal() {
        let screen = confirmation(c, to_send, &results_path);
        let stdin = std::io::stdin();
        if !confirm(&screen, &mut stdin.lock(), &mut std::io::stderr())? {
            crate::say!("not confirmed: nothing was sent.");
            return Ok(Status::Invalid);
        }
    }
    let token = token.expect("a token unless --dry-run");
    let started_at = results::now_rfc3339();
    // A rehearsal's sandbox starts here, so that a bad contacts or admins file is an input error.
    let sandbox = if args.sandbox {
        Some(start_sandbox(&args, &token, &loaded.campaign).await?)
    } else {
        None
    };
    let sending = Sending {
        args: &args,
        ledger: &ledger,
        token: &token,
        header: JournalHeader {
            results_offset: 0,
            settings,
            content,
            rows: prior.as_ref().map_or(0, Prior::rows),
        },
        lock: Arc::clone(&lock),
        to_send,
        sandbox,
        copied_columns,
        rules,
    };
    // From here on requests may leave: an error is a stop that can be resumed, never "nothing
    // was sent".
    let (mut end, tally, rate_limited_ms) =
        sending.run(loaded, prior, expected).await.map_err(|e| {
            e.context(Stopped(format!(
                "the run stopped; {} records what was sent, and --resume continues it",
                ledger.results.display()
            )))
        })?;
    // What is left of the campaign, not of this run's --limit.
    end.left = remaining.saturating_sub(end.progress.done());
    let status = report_end(&args, &results_path, &end, tally);
    let run = results::RunRecord {
        started_at,
        ended_at: results::now_rfc3339(),
        target,
        rate: loaded_rate,
        sent: end.progress.sent,
        failed: end.progress.failed,
        unknown: end.progress.unknown,
        skipped: end.progress.skipped,
        rate_limited: end.rate_limited,
        paused_ms: rate_limited_ms,
        exit: status as u8,
    };
    if let Err(e) = results::append_run(&ledger.runs, &run) {
        crate::say!("warning: {e:#}");
    }
    Ok(status)
}

/// The sending part of a run: the sandbox if asked, the client, the journal, the pipeline, and
/// the ledger settled after it.
struct Sending<'a> {
    args: &'a SendArgs,
    ledger: &'a Ledger,
    token: &'a Token,
    header: JournalHeader,
    to_send: u64,
    lock: Arc<RunLock>,
    /// The CSV columns (by index) copied into the results file.
    copied_columns: Vec<usize>,
    /// The in-process sandbox of a rehearsal, started before anything could be sent.
    sandbox: Option<(sandbox::RunningSandbox, PathBuf)>,
    rules: Option<Arc<crate::resolve::Rules>>,
}

impl Sending<'_> {
    async fn run(
        self,
        loaded: check::Loaded,
        prior: Option<Prior>,
        expected: Vec<u32>,
    ) -> anyhow::Result<(pipeline::RunEnd, results::Tally, u64)> {
        let args = self.args;
        let c = &loaded.campaign;
        let sandbox = self.sandbox;
        let base_url = sandbox
            .as_ref()
            .map(|(s, _)| s.base_url())
            .unwrap_or_else(|| c.base_url.clone());
        let shared = Arc::new(Shared {
            client: Client::new(
                &base_url,
                self.token,
                &c.version,
                c.send.request_timeout,
                pace::AUTO_MAX,
            )?,
            gate: Gate::default(),
            limiter: pace::Limiter::new(c.send.rate),
            in_flight: InFlight::new(c.send.concurrency, c.send.rate),
            stop: CancellationToken::new(),
            rows_in_flight: Mutex::new(HashMap::new()),
            max_attempts: c.send.max_attempts,
            max_failures: c.send.max_failures,
            max_failure_share: c.send.max_failure_share,
            retry_not_found_for: c.send.retry_not_found_for,
            request_timeout: c.send.request_timeout,
            stall_timeout: c.send.stall_timeout,
            hours: c.send.hours.clone(),
            lock: Arc::clone(&self.lock),
            rate_limited: Default::default(),
            searches: Default::default(),
        });
        let mut writer = ResultsWriter::open_with(&self.ledger.results, &c.results_columns)?;
        let journal = Journal::start(
            &self.ledger.journal,
            &JournalHeader {
                results_offset: std::fs::metadata(&self.ledger.results)?.len(),
                ..self.header
            },
        )?;
        if self.to_send == 0 {
            crate::say!(
                "nothing left to send; results: {}",
                self.ledger.results.display()
            );
        } else {
            crate::say!(
                "sending {} messages to {base_url} from {} at {} (in flight: {}); results: {}",
                self.to_send,
                c.from_label(),
                c.send.rate,
                c.send.concurrency,
                self.ledger.results.display()
            );
        }
        if c.resolves() {
            crate::say!("{}", lookup_plan(c, self.to_send));
        }
        let retry_unknown = args.retry_unknown.clone();
        let to_type = c.to_type.clone();
        let prior = Arc::new(prior.unwrap_or_default());
        let skipped = Arc::clone(&prior);
        let done: Arc<dyn Fn(u64) -> bool + Send + Sync> = Arc::new(move |row| {
            prior
                .status(row)
                .is_some_and(|s| is_done(s, row, retry_unknown.as_ref()))
        });
        let resolution = match &self.rules {
            Some(rules) if self.header.rows > 0 => Some((
                Arc::clone(rules),
                lookup::Earlier::read(&self.ledger.results, rules, &*done)?,
            )),
            Some(rules) => Some((Arc::clone(rules), lookup::Earlier::default())),
            None => None,
        };
        let skipped_before: Arc<dyn Fn(u64) -> bool + Send + Sync> =
            Arc::new(move |row| skipped.status(row) == Some(RowStatus::Skipped));
        let end = pipeline(
            loaded,
            Arc::clone(&shared),
            journal,
            &mut writer,
            self.to_send,
            args,
            Known {
                copied_columns: self.copied_columns,
                done,
                skipped_before,
                expected,
                resolution,
            },
        )
        .await;
        drop(writer);
        let settled = results::settle(self.ledger, &|r| recipient_hash(&to_type, r))?;
        if let Some((running, log)) = sandbox {
            running.shutdown().await?;
            crate::say!("sandbox log: {}", log.display());
        }
        if let Some(rules) = &self.rules {
            crate::say!(
                "looked up contacts by {} in {} search requests",
                rules.address.key(),
                shared.searches.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        let paused = shared.gate.paused().as_millis() as u64;
        Ok((end, settled.tally, paused))
    }
}

/// The results file: `--results`, or `<stem>.results.csv` (`<stem>.sandbox.results.csv`) beside
/// the campaign file, so that a run from any folder finds the runs before it.
fn results_path(args: &SendArgs, c: &Campaign) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.results {
        return Ok(p.clone());
    }
    let stem = c.stem();
    let name = if args.sandbox {
        format!("{stem}.sandbox.results.csv")
    } else {
        format!("{stem}.results.csv")
    };
    let beside = beside_campaign(&c.path, &name);
    // Earlier versions wrote it in the current folder: a run found there is not passed over.
    let legacy = PathBuf::from(&name);
    if !same_file(&legacy, &beside) && Ledger::new(legacy.clone()).has_history()? {
        bail!(
            "{} holds an earlier run of this campaign (earlier versions wrote the results file in the current folder; it now goes beside the campaign file, {}): continue it with --results {} --resume, or move it beside the campaign file",
            legacy.display(),
            beside.display(),
            legacy.display()
        );
    }
    Ok(beside)
}

fn beside_campaign(campaign: &Path, name: &str) -> PathBuf {
    match campaign.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (
        std::fs::canonicalize(a),
        b.parent().map(std::fs::canonicalize),
    ) {
        (Ok(a), Some(Ok(dir))) => b.file_name().is_some_and(|n| a == dir.join(n)),
        (Ok(a), None) => std::fs::canonicalize(b).is_ok_and(|b| a == b),
        _ => a == b,
    }
}

/// What earlier runs left, settled; `None` for a first run. A ledger with history is resumed only
/// when asked.
fn earlier_runs(ledger: &Ledger, args: &SendArgs, to_type: &str) -> anyhow::Result<Option<Prior>> {
    if !ledger.has_history()? {
        return Ok(None);
    }
    if !args.resume {
        bail!(
            "{} already holds results: add --resume to continue that run (rows recorded `sent` are not sent again), or choose another --results file",
            ledger.results.display()
        );
    }
    Ok(Some(results::settle(ledger, &|r| {
        recipient_hash(to_type, r)
    })?))
}

/// Whether a row with this status is passed over: `sent`, and `unknown` unless --retry-unknown
/// names it.
fn is_done(status: RowStatus, row: u64, retry_unknown: Option<&RowSet>) -> bool {
    match status {
        RowStatus::Sent => true,
        RowStatus::Unknown => !retry_unknown.is_some_and(|r| r.contains(row)),
        RowStatus::Failed | RowStatus::Skipped => false,
    }
}

/// Whether preflight's problems stop the run: any error, unless --skip-invalid and every error is
/// a row's own, so that skipping the row is enough.
fn refuses(pre: &check::Preflight, args: &SendArgs) -> bool {
    pre.report.has_errors() && !(args.skip_invalid && only_row_errors(pre))
}

/// Whether every error belongs to one row (its CSV record, its rendering, its values), none to the
/// file, the templates as a whole, duplicates or a changed campaign.
fn only_row_errors(pre: &check::Preflight) -> bool {
    let beyond_rows = pre.report.counts.iter().any(|((sev, kind), _)| {
        *sev == Severity::Error
            && !matches!(
                kind,
                ProblemKind::Value | ProblemKind::Csv | ProblemKind::Template
            )
    });
    let file_level = pre
        .report
        .kept
        .iter()
        .any(|p| p.severity == Severity::Error && p.record.is_none());
    pre.invalid_rows > 0 && !beyond_rows && !file_level
}

/// On resume: the same target, and unless --allow-changed, the same templates, settings and rows.
fn same_settings(
    header: &JournalHeader,
    settings: &str,
    args: &SendArgs,
    results_path: &std::path::Path,
) -> anyhow::Result<()> {
    let target = |fp: &str| {
        fp.split_once('@')
            .map(|(_, t)| t.to_string())
            .unwrap_or_default()
    };
    let (old_target, new_target) = (target(&header.settings), target(settings));
    if old_target != new_target {
        bail!(
            "{} records a run against {old_target}, and this run would go to {new_target}: rows it records as sent did not reach these customers. Use another --results file",
            results_path.display()
        );
    }
    if header.settings != settings && !args.allow_changed {
        bail!("the templates or message settings changed since the first run of {}; resuming would send a different message to the remaining rows. Add --allow-changed if that is intended", results_path.display());
    }
    Ok(())
}

/// What an earlier run left, and the `unknown` rows that will not be sent again.
fn announce_resume(p: &results::Prior, args: &SendArgs, results_path: &std::path::Path) {
    let recovered = if p.recovered_unknown > 0 {
        format!(
            " ({} were in flight when the last run stopped)",
            p.recovered_unknown
        )
    } else {
        String::new()
    };
    crate::say!(
        "resuming {}: {} sent, {} failed, {} unknown, {} skipped{recovered}",
        results_path.display(),
        p.tally.sent,
        p.tally.failed,
        p.tally.unknown,
        p.tally.skipped,
    );
    let kept: Vec<u64> = p
        .rows_with(RowStatus::Unknown)
        .filter(|&row| is_done(RowStatus::Unknown, row, args.retry_unknown.as_ref()))
        .collect();
    if !kept.is_empty() {
        let rows: Vec<String> = kept.iter().take(20).map(|r| r.to_string()).collect();
        crate::say!(
            "{} rows are `unknown` (rows {}{}): they may have reached their recipients and are not sent again. Check them in Intercom (the contact's conversations; the results file has each row's recipient), then record what you found with `campaign mark {} --rows ROWS --as sent|failed --note TEXT`, or send them on purpose with --resume --retry-unknown ROWS.",
            kept.len(),
            rows.join(", "),
            if kept.len() > 20 { ", …" } else { "" },
            results_path.display()
        );
    }
}

/// What resolution will do, for `--dry-run` and the start of a run.
fn lookup_plan(c: &Campaign, rows: u64) -> String {
    let searches = rows.div_ceil(crate::resolve::PAGE as u64);
    let mut line = format!(
        "up to {rows} rows are {} by {} (POST /contacts/search, {} keys a search: about {searches} searches, besides the pages of keys that find several contacts) before they are sent",
        if c.verify { "verified" } else { "looked up" },
        c.address.key(),
        crate::resolve::PAGE
    );
    if c.message_type == config::MessageType::Email {
        line.push_str(if c.send.respect_unsubscribed {
            "; contacts unsubscribed from e-mail, hard-bounced or marked as spam are skipped"
        } else {
            "; [send] respect_unsubscribed = false: contacts unsubscribed from e-mail, hard-bounced or marked as spam ARE sent this message"
        });
    }
    line
}

/// `send --sandbox`: a sandbox in this process on a free loopback port, accepting only this run's
/// token, logging every message it accepts.
async fn start_sandbox(
    args: &SendArgs,
    token: &Token,
    c: &Campaign,
) -> anyhow::Result<(sandbox::RunningSandbox, PathBuf)> {
    let campaign = &c.path;
    let log = sandbox_log_path(args, campaign);
    let config = sandbox::SandboxConfig {
        token: Some(token.expose().to_string()),
        faults: args.faults.clone(),
        contacts: args.sandbox_contacts.clone(),
        // Without a contacts file, a looked-up campaign's rehearsal finds a contact for every
        // key it searches (so that it runs), less those named to be left out.
        invent_contacts: args.sandbox_contacts.is_none() && c.resolves(),
        missing: args.sandbox_missing.clone(),
        admins: args.sandbox_admins.clone(),
        log: Some(log.clone()),
    };
    let running = sandbox::start(config, "127.0.0.1:0".parse()?).await?;
    crate::say!(
        "sandbox: {} (every accepted message is logged to {})",
        running.base_url(),
        log.display()
    );
    Ok((running, log))
}

/// The sandbox's log: `--sandbox-log`, or `<stem>.sandbox.jsonl` beside the campaign file.
fn sandbox_log_path(args: &SendArgs, campaign: &Path) -> PathBuf {
    let stem = campaign
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "campaign".into());
    args.sandbox_log
        .clone()
        .unwrap_or_else(|| beside_campaign(campaign, &format!("{stem}.sandbox.jsonl")))
}

/// A rehearsal's `unknown` rows, settled from the sandbox's log, which is the truth of what it
/// created: a row whose recipient has a message there is `sent` with its id, any other `failed`
/// (so that this run sends it). Returns whether a row changed.
fn settle_from_sandbox_log(
    ledger: &Ledger,
    prior: &Prior,
    log: &Path,
    to_type: &str,
) -> anyhow::Result<bool> {
    let unknown: Vec<u64> = prior.rows_with(RowStatus::Unknown).collect();
    // Only a rehearsal's rows: a results file of a run against Intercom is refused later.
    let rehearsal = prior
        .header
        .as_ref()
        .is_some_and(|h| h.settings.ends_with("@sandbox"));
    if unknown.is_empty() || !rehearsal {
        return Ok(false);
    }
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", log.display())),
    };
    let mut created: HashMap<u64, String> = HashMap::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // a line the sandbox was writing when it stopped
        };
        if let (Some(to), Some(id)) = (entry["request"]["to"]["id"].as_str(), entry["id"].as_str())
        {
            created.insert(recipient_hash(to_type, to), id.to_string());
        }
    }
    // Rows that share a recipient (--allow-duplicates) cannot be told apart in the log: left
    // `unknown`, never guessed.
    let mut rows_of: HashMap<u64, usize> = HashMap::new();
    for (row, _) in prior.recorded() {
        if let Some(h) = prior.recipient_hash(row) {
            *rows_of.entry(h).or_default() += 1;
        }
    }
    let shared = |row: u64| {
        prior
            .recipient_hash(row)
            .is_some_and(|h| rows_of.get(&h).is_some_and(|&n| n > 1))
    };
    let changes: HashMap<u64, results::Amendment> = unknown
        .iter()
        .filter(|&&row| !shared(row))
        .map(|&row| {
            let id = prior.recipient_hash(row).and_then(|h| created.get(&h));
            let a = match id {
                Some(id) => results::Amendment {
                    status: RowStatus::Sent,
                    message_id: Some(id.clone()),
                    code: "settled_from_sandbox_log".into(),
                    note: format!("the sandbox's log {} has this message", log.display()),
                },
                None => results::Amendment {
                    status: RowStatus::Failed,
                    message_id: None,
                    code: "settled_from_sandbox_log".into(),
                    note: format!(
                        "not in the sandbox's log {}: it was not created",
                        log.display()
                    ),
                },
            };
            (row, a)
        })
        .collect();
    if changes.is_empty() {
        return Ok(false);
    }
    results::amend(ledger, &changes)?;
    let sent = changes
        .values()
        .filter(|a| a.status == RowStatus::Sent)
        .count();
    crate::say!(
        "settled {} `unknown` rows from the sandbox's log: {sent} were created (now `sent`), {} were not (sent again now)",
        changes.len(),
        changes.len() - sent
    );
    Ok(true)
}

fn on_a_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// What a real send is about to do, for a person to confirm before the first request.
fn confirmation(c: &Campaign, to_send: u64, results: &Path) -> String {
    let secs = (to_send as f64 / c.send.rate.per_second()).ceil() as u64;
    let mut lines = vec![
        format!(
            "About to send {to_send} {} message{} through {}",
            match c.message_type {
                config::MessageType::Email => "e-mail",
                config::MessageType::InApp => "in-app",
            },
            if to_send == 1 { "" } else { "s" },
            c.base_url
        ),
        format!("  from     {}", c.from_label()),
        format!("  to       {}s ({})", c.to_type, c.to_id.source.trim()),
    ];
    if let Some(subject) = &c.subject {
        lines.push(format!("  subject  {}", subject.source.trim()));
    }
    lines.push(format!(
        "  rate     {}: about {}",
        c.send.rate,
        humantime::format_duration(std::time::Duration::from_secs(secs))
    ));
    if let Some(hours) = &c.send.hours {
        lines.push(format!("  hours    {hours}"));
    }
    lines.push(format!("  results  {}", results.display()));
    lines.join("\n")
}

/// Shows `screen` and asks `[y/N]`: only `y` or `yes` goes on.
fn confirm(
    screen: &str,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<bool> {
    write!(out, "{screen}\nSend them? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// The CSV columns `[results] columns` names, by index: each by its exact header or by the name a
/// template knows it by (`First name` or `first_name`).
fn copied_columns(c: &Campaign) -> anyhow::Result<Vec<usize>> {
    if c.results_columns.is_empty() {
        return Ok(Vec::new());
    }
    let (recipients, _) = crate::input::recipients::Recipients::open(&c.recipients, c.delimiter)
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let headers = recipients.columns();
    c.results_columns
        .iter()
        .map(|wanted| {
            headers
                .iter()
                .position(|h| h == wanted)
                .or_else(|| {
                    headers.iter().position(|h| {
                        crate::template::vars::template_name(h).as_deref() == Some(wanted)
                    })
                })
                .ok_or_else(|| {
                    let hint = crate::template::closest(wanted, headers)
                        .map(|h| format!("; did you mean `{h}`?"))
                        .unwrap_or_default();
                    anyhow::anyhow!(
                        "{}: [results] columns: `{wanted}` is not a column of {}{hint}",
                        c.path.display(),
                        c.recipients.display()
                    )
                })
        })
        .collect()
}

/// On resume: the results file's extra columns are the ones asked for (a file's columns do not
/// change halfway through).
fn same_results_columns(ledger: &Ledger, wanted: &[String]) -> anyhow::Result<()> {
    let header = results::header_of(&ledger.results)?;
    let has: Vec<String> = header
        .iter()
        .skip(results::COLUMNS.len())
        .skip_while(|h| *h == results::CONTACT_ID)
        .cloned()
        .collect();
    if has != wanted {
        bail!(
            "{} has the columns [{}] after the fixed ones, and this run asks for [{}]: keep [results] columns (or --results-columns) as it was for this results file, or use another --results file",
            ledger.results.display(),
            has.join(", "),
            wanted.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_confirms_a_send() {
        for (answer, go) in [
            ("y\n", true),
            ("YES\n", true),
            ("\n", false),
            ("n\n", false),
            ("", false),
            ("sure\n", false),
        ] {
            let mut out = Vec::new();
            let ok = confirm("About to send 3", &mut answer.as_bytes(), &mut out).unwrap();
            assert_eq!(ok, go, "{answer:?}");
            assert!(String::from_utf8(out)
                .unwrap()
                .ends_with("Send them? [y/N] "));
        }
    }
}
