//! The ledger stage: the results file opened for this run and compared with what the run is
//! about to do. [`open()`], before preflight: the lock (one run at a time), the same target and
//! templates as the journal's, the earlier runs' rows settled. [`Manifest::new`], after it: the
//! same CSV content, what is left to send. Any refusal here comes before the first request.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use xxhash_rust::xxh3::Xxh3;

use super::expected::Expected;
use super::plan::SendPlan;
use super::preflight::Checked;
use crate::check::recipient_hash;
use crate::input::config::Campaign;
use crate::lookup::Rules;
use crate::results::{self, side, JournalHeader, Ledger, Prior, RowStatus, RunLock};

/// The ledger opened, before preflight.
pub(super) struct Opened {
    /// The results file.
    pub results: PathBuf,
    pub ledger: Ledger,
    pub lock: Arc<RunLock>,
    /// Where the messages go: `sandbox`, or the API's URL.
    pub target: String,
    /// The templates' and settings' fingerprint, `…@target`.
    pub settings: String,
    /// The CSV columns (by index) copied into the results file.
    pub copied_columns: Vec<usize>,
    /// What earlier runs left, settled; `None` for a first run.
    pub prior: Option<Prior>,
    /// The match rules of a campaign addressed by e-mail or external id.
    pub rules: Option<Arc<Rules>>,
}

/// What the run is about to do, against what the ledger holds: the hand-off to the dispatch.
pub(super) struct Manifest {
    pub results: PathBuf,
    pub ledger: Ledger,
    pub lock: Arc<RunLock>,
    pub target: String,
    pub settings: String,
    /// The recipients CSV's content hash.
    pub content: String,
    pub copied_columns: Vec<usize>,
    pub prior: Option<Prior>,
    pub rules: Option<Arc<Rules>>,
    /// Each row's request hash, by record number (0: not a valid row).
    pub expected: Expected,
    pub to_type: String,
    /// Rows invalid at preflight.
    pub invalid_rows: u64,
    /// With `duplicates = "skip"`: each row whose recipient an earlier row has, with that row,
    /// in record order; recorded `skipped`, not sent.
    pub duplicates: Vec<(u64, u64)>,
    /// Rows of the campaign not done yet, whatever this run's --limit.
    pub remaining: u64,
    /// Rows this run sends at most.
    pub to_send: u64,
    /// What this run will send and set aside, as far as it is known before the first request.
    pub going: Going,
}

/// The rows a run will send, and those it passes over, as known offline: for the confirmation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Going {
    /// Rows that will go (within --limit).
    pub rows: u64,
    /// Rows done by earlier runs: `sent`, `unknown` not named by --retry-unknown, marked
    /// `skipped`.
    pub done: u64,
    /// Invalid rows, recorded `skipped` (--skip-invalid).
    pub invalid: u64,
    /// Rows whose recipient an earlier row has, recorded `skipped` (--skip-duplicates).
    pub duplicates: u64,
    /// Rows whose key the suppress list names, recorded `skipped`.
    pub suppressed: u64,
    /// The first row that will go.
    pub first: Option<u64>,
}

/// What the outcome needs of the manifest, which the dispatch consumes.
pub(super) struct Facts {
    pub results: PathBuf,
    pub target: String,
    /// Rows of the campaign not done before this run.
    pub remaining: u64,
    /// The command that settles `unknown` rows by asking Intercom, where it can
    /// ([`super::outcome::settle_command`]).
    pub settle: Option<String>,
}

/// Opens the ledger: the do-not-contact list read, the lock taken, the journal's fingerprint
/// compared, the earlier runs settled (a rehearsal's `unknown` rows from the sandbox's log).
pub(super) fn open(plan: &SendPlan, c: &Campaign) -> anyhow::Result<Opened> {
    let target = plan.target_name();
    // The do-not-contact list is read before anything else of the run: a missing one is said
    // while nothing was sent.
    let rules = match c.resolves() {
        true => Some(Arc::new(Rules::of(c)?)),
        false => None,
    };
    let results = plan.results_path(c)?;
    let mut ledger = Ledger::new(results.clone());
    ledger.check_files()?;
    // Before anything of the ledger is read: one run at a time.
    let lock = ledger.lock()?;
    // A rehearsal's log where an earlier version kept it moves in under the lock: this run
    // settles its rows from it, and appends to it.
    if let Some(sandbox) = plan.sandbox() {
        if let Some(old) = sandbox.legacy_log_path(&c.path) {
            let log = sandbox.log_path(&results);
            side::adopt(&old, &log, side::Both::Append, "sandbox's log")?;
        }
    }
    // The same target and templates before the journal's rows are settled into the results file:
    // a journal of another campaign must not write its rows there.
    let settings = settings_fingerprint(c, &target);
    if let Some(header) = results::journal_header(&ledger.journal)? {
        same_settings(&header, &settings, plan.resume.allow_changed, &results)?;
    }
    let columns = &plan.settings.results_columns;
    let label = plan.settings.results_columns_from.label(&c.path);
    let copied_columns = crate::results::copied_columns(c, columns, &label)?;
    let mut prior = earlier_runs(&ledger, plan.resume.asked, &c.to_type)?;
    if prior.is_some() {
        same_results_columns(&ledger, columns)?;
    } else if !plan.resume.new_ledger && plan.sandbox().is_none() {
        // A rehearsal messages no one: two of them side by side are two rehearsals.
        no_other_ledger(plan, &ledger, c, &settings)?;
    }
    // A looked-up campaign's journal names the e-mail, the log the contact id: they cannot be
    // matched, so its `unknown` rows stay `unknown` (never sent twice) rather than be guessed.
    if let (Some(sandbox), Some(p), false) = (plan.sandbox(), &prior, c.address.looked_up()) {
        let log = sandbox.log_path(&results);
        if super::rehearsal::settle_from_log(&ledger, p, &log, &c.to_type)? {
            let first = prior.take();
            prior = earlier_runs(&ledger, plan.resume.asked, &c.to_type)?;
            // What the first settling found in flight was found by this invocation all the same.
            if let (Some(p), Some(first)) = (prior.as_mut(), first) {
                p.recovered = first.recovered;
                p.recovered_unknown = first.recovered_unknown;
            }
        }
    }
    Ok(Opened {
        results,
        ledger,
        lock,
        target,
        settings,
        copied_columns,
        prior,
        rules,
    })
}

impl Manifest {
    pub fn facts(&self) -> Facts {
        Facts {
            results: self.results.clone(),
            target: self.target.clone(),
            remaining: self.remaining,
            settle: None,
        }
    }

    /// The ledger and preflight's findings together: the same rows' content as the first run's,
    /// the resume announced, and what is left to send.
    pub fn new(
        plan: &SendPlan,
        c: &Campaign,
        opened: Opened,
        checked: Checked,
    ) -> anyhow::Result<Self> {
        let Opened { results, prior, .. } = &opened;
        let Checked {
            pre,
            expected,
            suppressed,
        } = checked;
        let content = format!("{:016x}", pre.content_hash);
        if let Some(header) = prior.as_ref().and_then(|p| p.header.as_ref()) {
            if header.content != content && !plan.resume.allow_changed {
                bail!("the recipients CSV's content changed since the first run of {} (the recipients are the same); add --allow-changed if that is intended", results.display());
            }
        }
        if let Some(p) = prior {
            announce_resume(p, plan, results);
        }
        super::retry_unknown::say_rows_not_unknown(
            plan.resume.again.retry_unknown.as_ref(),
            prior.as_ref(),
        );
        let already = prior.as_ref().map_or(0, |p| {
            p.recorded()
                .filter(|&(row, _)| plan.resume.is_done(p, row))
                .count() as u64
        });
        let duplicates = match plan.selection.duplicates {
            crate::input::config::Duplicates::Skip => pre.duplicates,
            _ => Vec::new(),
        };
        let (going, still_skipped) =
            going(plan, prior.as_ref(), &expected, &duplicates, &suppressed)?;
        // Rows skipped before and invalid still are passed over, not sent: not left to do either.
        let remaining = pre.rows.saturating_sub(already + still_skipped);
        let to_send = plan
            .selection
            .limit
            .map_or(remaining, |limit| remaining.min(limit));
        Ok(Manifest {
            going,
            results: opened.results,
            ledger: opened.ledger,
            lock: opened.lock,
            target: opened.target,
            settings: opened.settings,
            content,
            copied_columns: opened.copied_columns,
            prior: opened.prior,
            rules: opened.rules,
            expected,
            to_type: c.to_type.clone(),
            invalid_rows: pre.invalid_rows,
            duplicates,
            remaining,
            to_send,
        })
    }
}

/// Each row's fate as known before the first request: done by earlier runs, invalid, a
/// duplicate, suppressed, or going (within --limit); and how many rows an earlier run recorded
/// `skipped` that are still invalid (passed over, not left to do). `duplicates` and
/// `suppressed` are in record order. One pass over the rows' hashes, in order.
fn going(
    plan: &SendPlan,
    prior: Option<&Prior>,
    expected: &Expected,
    duplicates: &[(u64, u64)],
    suppressed: &[u64],
) -> anyhow::Result<(Going, u64)> {
    let mut g = Going::default();
    let mut still_skipped = 0;
    let mut duplicates = duplicates.iter().map(|(row, _)| *row).peekable();
    let mut suppressed = suppressed.iter().copied().peekable();
    expected.each(&mut |row, hash| {
        let duplicate = duplicates.next_if_eq(&row).is_some();
        let on_list = suppressed.next_if_eq(&row).is_some();
        if prior.is_some_and(|p| plan.resume.is_done(p, row)) {
            g.done += 1;
        } else if hash == 0 {
            g.invalid += 1;
            if prior.is_some_and(|p| p.status(row) == Some(RowStatus::Skipped)) {
                still_skipped += 1;
            }
        } else if duplicate {
            g.duplicates += 1;
        } else if on_list {
            g.suppressed += 1;
        } else {
            g.rows += 1;
            g.first = g.first.or(Some(row));
        }
    })?;
    g.rows = plan
        .selection
        .limit
        .map_or(g.rows, |limit| g.rows.min(limit));
    Ok((g, still_skipped))
}

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

/// Refuses a fresh ledger where another record of this campaign says messages went out: they
/// would go again. Names that record and the command that continues it.
fn no_other_ledger(
    plan: &SendPlan,
    ledger: &Ledger,
    c: &Campaign,
    settings: &str,
) -> anyhow::Result<()> {
    let resume = |results: &std::path::Path| super::plan::resume_command(plan, results);
    match ledger.other_ledger(&c.recipients, settings)? {
        None => Ok(()),
        Some(results::Other::RunLog { runs, sent }) => bail!(
            "{} has no rows, but its run log {} says earlier runs sent {sent} messages (or may have: `unknown`): the results file and its journal were deleted or moved, and starting again would message those customers a second time. Put them back (from a copy) and continue with `{}`; or, to start a new ledger anyway, add --new-ledger",
            ledger.results.display(),
            runs.display(),
            resume(&ledger.results)
        ),
        Some(results::Other::Ledger { results, sent }) => bail!(
            "another ledger of this campaign (the same templates, settings and target) already records {sent} rows sent (or perhaps sent: `unknown`): {}. This would start a new one at {} and message those customers again (a copied campaign file, or --results pointing elsewhere). Continue that one with `{}`; or, to start a new ledger anyway, add --new-ledger",
            results.display(),
            ledger.results.display(),
            resume(&results)
        ),
    }
}

/// What earlier runs left, settled; `None` for a first run. A ledger with history is resumed only
/// when asked.
fn earlier_runs(ledger: &Ledger, resume: bool, to_type: &str) -> anyhow::Result<Option<Prior>> {
    if !ledger.has_history()? {
        return Ok(None);
    }
    if !resume {
        bail!(
            "{} already holds results: add --resume to continue that run (rows recorded `sent` are not sent again), or choose another --results file",
            ledger.results.display()
        );
    }
    Ok(Some(results::settle(ledger, &|r| {
        recipient_hash(to_type, r)
    })?))
}

/// On resume: the same target, and unless --allow-changed, the same templates, settings and rows.
fn same_settings(
    header: &JournalHeader,
    settings: &str,
    allow_changed: bool,
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
    if header.settings != settings && !allow_changed {
        bail!("the templates or message settings changed since the first run of {}; resuming would send a different message to the remaining rows. Add --allow-changed if that is intended", results_path.display());
    }
    Ok(())
}

/// What an earlier run left, and the `unknown` rows that will not be sent again.
fn announce_resume(p: &Prior, plan: &SendPlan, results_path: &std::path::Path) {
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
    let retrying = plan.resume.again.retry_unknown.is_some();
    // Rows found in flight just now: a --retry-unknown names them only in a later run, once they
    // were looked up.
    let (fresh, kept): (Vec<u64>, Vec<u64>) = p
        .rows_with(RowStatus::Unknown)
        .filter(|&row| plan.resume.is_done(p, row))
        .partition(|&row| retrying && p.recovered_now(row));
    if !kept.is_empty() {
        let rows: Vec<String> = kept.iter().take(20).map(|r| r.to_string()).collect();
        let named = crate::input::rows::arg(&kept);
        let results = results_path.display().to_string();
        let mark = [
            "campaign",
            "mark",
            &results,
            "--rows",
            &named,
            "--as",
            "sent",
            "--note",
            "found in Intercom",
        ]
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.to_string(), |q| q.into_owned()))
        .join(" ");
        crate::say!(
            "{} rows are `unknown` (rows {}{}): they may have reached their recipients and are not sent again. Check them in Intercom (the contact's conversations; the results file has each row's recipient), then record the messages you find: {mark}\nOr send them again, on purpose: {}",
            kept.len(),
            rows.join(", "),
            if kept.len() > 20 { ", …" } else { "" },
            super::plan::resume_command_with(plan, results_path, &["--retry-unknown", &named])
        );
    }
    if !fresh.is_empty() {
        let rows = crate::input::rows::arg(&fresh);
        crate::say!(
            "{} just now (in flight when the last run stopped: {}): they may have reached their recipients, and --retry-unknown does not send them in this run. Look them up in Intercom, then: {}",
            match fresh.len() {
                1 => "1 row became unknown".to_string(),
                n => format!("{n} rows became unknown"),
            },
            crate::input::rows::said(&fresh),
            super::plan::resume_command_with(plan, results_path, &["--retry-unknown", &rows])
        );
    }
    let resend: Vec<u64> = p
        .rows_with(RowStatus::Failed)
        .filter(|&row| plan.resume.is_done(p, row))
        .collect();
    if !resend.is_empty() {
        crate::say!(
            "{} `failed` but {} Intercom's message id (the results file was edited, or a message was made after all): not sent again. Look {} up in Intercom; if no message went out, send {} with: {}",
            match resend.len() {
                1 => format!("row {} is", resend[0]),
                _ => format!("{} are", crate::input::rows::said(&resend)),
            },
            if resend.len() == 1 { "carries" } else { "carry" },
            if resend.len() == 1 { "it" } else { "them" },
            if resend.len() == 1 { "it" } else { "them" },
            super::plan::resume_command_with(plan, results_path, &["--allow-resend", &crate::input::rows::arg(&resend)])
        );
    }
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
