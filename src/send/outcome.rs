//! The outcome stage: the summary, the `unknown` rows, why the run stopped and the command that
//! resumes it, the run's [`Outcome`] (`crate::exit` maps it to the exit code), and the run's
//! line in the run log. Also what a dry run would do.
use std::path::Path;

use super::dispatch::{Ran, RunEnd, StopReason};
use super::manifest::{Facts, Manifest};
use super::plan::{resume_command, SendPlan};
use crate::exit::{self, Outcome};
use crate::input::config::Campaign;
use crate::results;

/// The end of a run: its summary said, its line appended to the run log, its outcome.
pub(super) fn finish(plan: &SendPlan, m: &Facts, started_at: String, ran: Ran) -> Outcome {
    let ledger = ran.ledger.clone();
    let Ran {
        mut end,
        all,
        resendable,
        paused_ms,
        ..
    } = ran;
    // What is left of the campaign, not of this run's --limit.
    end.left = m.remaining.saturating_sub(end.progress.done());
    say_summary(&m.results, &end);
    let status = say_status(plan, &m.results, &end, all, resendable);
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
        exit: exit::code(&Ok(status)),
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
            "{} rows are `unknown` (rows {}{}): the request may have reached Intercom. Check those contacts' conversations before sending again with --resume --retry-unknown.",
            rows.len(),
            shown.join(", "),
            if rows.len() > 20 { ", …" } else { "" }
        );
    }
}

/// Why the run ended and what to do next, and the outcome that says it.
fn say_status(
    plan: &SendPlan,
    results_path: &Path,
    end: &RunEnd,
    all: results::Tally,
    resendable: u64,
) -> Outcome {
    let resume = resume_command(plan, results_path);
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
        None if all.failed + all.unknown > 0 => {
            let next = if resendable > 0 {
                format!("`failed` rows are sent again by: {resume}\nA row not to be sent (a contact that does not exist, say) is closed with `campaign mark {} --rows ROWS --as skipped --note TEXT`.", results_path.display())
            } else if all.unknown == 0 {
                "its `failed` rows carry Intercom's message id and are not sent again by a resume: look them up in Intercom (the command that sends them on purpose is above)".to_string()
            } else {
                "`unknown` rows are sent again only on purpose, once checked in Intercom: add --retry-unknown to that command".to_string()
            };
            crate::say!(
                "the results file holds {} sent, {} failed, {} unknown, {} skipped rows; {next}",
                all.sent,
                all.failed,
                all.unknown,
                all.skipped
            );
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
        set_aside.push(crate::check::counted(skipped, "invalid row"));
    }
    if duplicates > 0 {
        set_aside.push(crate::check::counted(duplicates, "duplicate row"));
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
