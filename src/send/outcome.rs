//! The outcome stage: the summary, the `unknown` rows, why the run stopped and the command that
//! resumes it, the run's [`Outcome`] (`crate::exit` maps it to the exit code), and the run's
//! line in the run log. Also what a dry run would do.
use std::path::Path;

use super::dispatch::{Ran, RunEnd, StopReason};
use super::manifest::{Facts, Manifest};
use super::plan::{resume_command, resume_command_with, SendPlan};
use crate::exit::{self, Outcome};
use crate::input::config::Campaign;
use crate::results;

/// The end of a run: its summary said, its line appended to the run log, its outcome.
pub(super) fn finish(plan: &SendPlan, m: &Facts, started_at: String, ran: Ran) -> Outcome {
    let ledger = ran.ledger.clone();
    let Ran {
        mut end,
        left,
        paused_ms,
        slowest_sync,
        ..
    } = ran;
    // What is left of the campaign, not of this run's --limit.
    end.left = m.remaining.saturating_sub(end.progress.done());
    say_summary(&m.results, &end);
    let status = say_status(plan, m, &end, &left);
    let tally = end.progress.tally;
    let run = results::RunRecord {
        started_at,
        ended_at: results::now_rfc3339(),
        target: m.target.clone(),
        rate: plan.settings.send.rate.to_string(),
        sent: tally.sent,
        failed: tally.failed,
        unknown: tally.unknown,
        skipped: tally.skipped,
        rate_limited: end.rate_limited,
        paused_ms,
        slowest_journal_sync_ms: slowest_sync.as_micros() as f64 / 1000.0,
        exit: exit::code(&Ok(status)),
        resume: resume_command(plan, &m.results),
    };
    // A run that lost its lock writes no line: the run log may be another run's by now.
    if !ledger.lost() {
        if let Err(e) = ledger.append_run(&run) {
            crate::say!("warning: {e:#}");
        }
    }
    status
}

/// This run's counts and pace, the 429s, and the rows it left `unknown`.
fn say_summary(results_path: &Path, end: &RunEnd) {
    let p = &end.progress;
    let secs = p.elapsed().as_secs_f64();
    crate::out!(
        "sent {}, failed {}, unknown {}, skipped {} in {:.1}s ({:.1}/s); results: {}",
        p.tally.sent,
        p.tally.failed,
        p.tally.unknown,
        p.tally.skipped,
        secs,
        p.done() as f64 / secs.max(0.001),
        results_path.display()
    );
    if end.unrecorded > 0 {
        crate::say!(
            "{} of the outcomes counted above are not in the results file: they came after the lock was lost, and each is named above",
            end.unrecorded
        );
    }
    if end.rate_limited > 0 {
        crate::say!(
            "rate limited: {} answers were 429; every sender waited for the window to reset, and those rows went again",
            end.rate_limited
        );
    }
    if !end.unknown_rows.is_empty() {
        let mut rows = end.unknown_rows.clone();
        rows.sort_unstable();
        let shown: Vec<String> = rows.iter().take(20).map(|r| r.to_string()).collect();
        crate::say!(
            "{} rows are `unknown` (rows {}{}): the request may have reached Intercom.",
            rows.len(),
            shown.join(", "),
            if rows.len() > 20 { ", …" } else { "" }
        );
    }
}

/// Why the run ended and what to do next, and the outcome that says it.
fn say_status(plan: &SendPlan, m: &Facts, end: &RunEnd, left: &Left) -> Outcome {
    let resume = resume_command(plan, &m.results);
    match &end.stop {
        Some(stop) => say_stopped(stop, end.left, &resume),
        None if plan.selection.canary && end.left > 0 => {
            crate::say!(
                "canary: {} sent, {} rows wait. Before the rest goes, look at these in Intercom: the contacts' conversations (the results file has each row's recipient and message id), the message in an inbox (subject, body, links, sender), and any replies or bounces. Then continue: {resume}",
                end.progress.tally.sent, end.left
            );
            Outcome::Stopped
        }
        // The campaign's state, not just this run's: rows left `unknown` or `failed` by an earlier
        // run mean it is not done.
        // Skipped rows were set aside on purpose (--skip-invalid): not a failure of the run.
        None if left.all.failed + left.all.unknown > 0 => {
            let all = left.all;
            crate::say!(
                "the results file holds {} sent, {} failed, {} unknown, {} skipped rows",
                all.sent,
                all.failed,
                all.unknown,
                all.skipped
            );
            say_next(plan, m, left, &resume);
            Outcome::RowsLeft
        }
        // Exit 0 means every row was sent: rows left by --limit are a stop that can be resumed.
        None if end.left > 0 => {
            crate::say!(
                "{} rows not sent yet (--limit). To continue: {resume}",
                end.left
            );
            Outcome::Stopped
        }
        None => Outcome::Done,
    }
}

/// What the rows a run left `failed` or `unknown` need, each with the command that does it:
/// only a resume that can help is offered.
fn say_next(plan: &SendPlan, m: &Facts, left: &Left, resume: &str) {
    let results = m.results.display().to_string();
    if left.resendable > 0 {
        crate::say!("`failed` rows are sent again by: {resume}");
    }
    if !left.fails_again.is_empty() {
        let rows = &left.fails_again;
        crate::say!(
            "{} failed in a way that sending again repeats (Intercom refused the request, or no single contact was found: `campaign report {}` groups them by error), so a resume sends {them} in vain until the CSV row or the contact in Intercom is fixed. To close {them} unsent: {}",
            crate::input::rows::said(rows),
            quoted(&[&results]),
            quoted(&[
                "campaign",
                "mark",
                &results,
                "--rows",
                &crate::input::rows::arg(rows),
                "--as",
                "skipped",
                "--note",
                "not to be sent",
            ]),
            them = if rows.len() == 1 { "it" } else { "them" },
        );
    }
    if left.all.failed > left.resendable + left.fails_again.len() as u64 {
        crate::say!("`failed` rows that carry Intercom's message id are not sent again by a resume: look them up in Intercom (the command that sends them on purpose is above)");
    }
    if left.unknown.is_empty() {
        return;
    }
    let rows = crate::input::rows::arg(&left.unknown);
    crate::say!(
        "`unknown` rows may have reached their recipients and are never sent again unless asked. Look {} up in Intercom (the contact's conversations), then record the messages you found: {}",
        crate::input::rows::said(&left.unknown),
        quoted(&[
            "campaign",
            "mark",
            &results,
            "--rows",
            &rows,
            "--as",
            "sent",
            "--note",
            "found in Intercom",
        ])
    );
    if let Some(track) = &m.settle {
        crate::say!(
            "Or let Intercom say which were made (each message has its conversation): {track}"
        );
    }
    crate::say!(
        "Or send those not found again, on purpose: {}",
        resume_command_with(plan, &m.results, &["--retry-unknown", &rows])
    );
}

/// What a run leaves to do, from its ledger settled.
pub(super) struct Left {
    /// Every row of the campaign by status.
    pub all: results::Tally,
    /// `failed` rows a resume sends again and that may pass then.
    pub resendable: u64,
    /// `failed` rows a resume would fail the same way.
    pub fails_again: Vec<u64>,
    /// `unknown` rows, in order.
    pub unknown: Vec<u64>,
}

/// Words joined into one shell command, each quoted as a shell needs.
fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.to_string(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command that settles a campaign's `unknown` rows by asking Intercom, when its messages
/// have a conversation from the start (`create_conversation_without_contact_reply = true`) and
/// the campaign file names the sender by id: `campaign track --settle` against the run's API, or
/// a rehearsal's log.
pub(super) fn settle_command(plan: &SendPlan, c: &Campaign, results: &Path) -> Option<String> {
    // `track` searches for the conversations of the sender's id, and has no admins to look an
    // e-mail up in (a rehearsal's are its --sandbox-admins).
    if c.create_conversation_without_contact_reply != Some(true) || c.from_email.is_some() {
        return None;
    }
    let log = plan.sandbox().map(|sandbox| sandbox.log_path(results));
    let results = results.display().to_string();
    let campaign = plan.campaign.display().to_string();
    let mut words: Vec<String> = [
        "campaign",
        "track",
        &results,
        "--campaign",
        &campaign,
        "--settle",
    ]
    .map(String::from)
    .to_vec();
    match log {
        Some(log) => words.extend([
            "--sandbox".to_string(),
            "--sandbox-log".to_string(),
            log.display().to_string(),
        ]),
        None => words.extend(plan.track_flags.iter().cloned()),
    }
    Some(quoted(
        &words.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
}

/// A run stopped before its end: why, and how to continue.
fn say_stopped(stop: &StopReason, left: u64, resume: &str) -> Outcome {
    match stop {
        StopReason::Interrupted => {
            crate::say!("interrupted; {left} rows not sent. To continue: {resume}");
            return Outcome::Interrupted;
        }
        StopReason::Auth {
            status,
            code,
            message,
        } => crate::say!(
            "stopped: HTTP {status} {code} ({message}): the access token or the workspace's plan is the problem, and every later request would fail the same way. Fix it, then continue: {resume}"
        ),
        StopReason::Failures(why) => {
            crate::say!("stopped: {why}. Fix the cause, then continue: {resume}")
        }
        StopReason::Io(why) => crate::say!("stopped: {why}. Then continue: {resume}"),
        StopReason::Stalled(why) => crate::say!("stopped: {why}. Wait for the workspace's limit to free up (other integrations share it), then continue: {resume}"),
    }
    Outcome::Stopped
}

/// `--dry-run`: what would be sent, and where.
pub(super) fn say_dry_run(plan: &SendPlan, c: &Campaign, m: &Manifest) {
    // With --skip-invalid the invalid rows are recorded, not sent: counted apart.
    let skipped = if plan.selection.skip_invalid {
        m.invalid_rows
    } else {
        0
    };
    let duplicates = m.duplicates.len() as u64;
    let valid = m.remaining.saturating_sub(skipped + duplicates);
    let to_send = plan.selection.limit.map_or(valid, |limit| valid.min(limit));
    let s = &plan.settings;
    let mut set_aside = Vec::new();
    if skipped > 0 {
        set_aside.push(crate::counted(skipped, "invalid row"));
    }
    if duplicates > 0 {
        set_aside.push(crate::counted(duplicates, "duplicate row"));
    }
    crate::out!(
        "dry run: {to_send} messages would be sent to {} (rate {}, concurrency {}){}; nothing was sent.",
        if plan.sandbox().is_some() { "the sandbox".to_string() } else { s.base_url.clone() },
        s.send.rate,
        s.send.concurrency,
        match set_aside.is_empty() {
            true => String::new(),
            false => format!(", {} would be recorded `skipped`", set_aside.join(" and ")),
        }
    );
    if c.resolves() {
        crate::out!("{}", super::dispatch::lookup_plan(c, to_send));
    }
}
