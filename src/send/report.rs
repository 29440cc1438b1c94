//! The end of a run: the summary, the `unknown` rows, why it stopped, the command that resumes it,
//! and the exit status.
use std::path::Path;

use super::pipeline::{RunEnd, StopReason};
use crate::cli::SendArgs;
use crate::results;
use crate::Status;

/// The command that continues this run, for the user to copy: every flag the next run needs to
/// reach the same place in the same way, none that would change what it does on purpose
/// (`--retry-unknown`, `--allow-changed`, `--limit`, `--dry-run`), each word quoted for a shell.
pub(super) fn resume_command(args: &SendArgs, results: &Path) -> String {
    let mut words: Vec<String> = vec!["campaign".into(), "send".into()];
    let path = |p: &Path| p.display().to_string();
    words.push(path(&args.campaign));
    words.extend(["--results".into(), path(results), "--resume".into()]);
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            words.push(format!("--{name}"));
            words.push(v);
        }
    };
    flag("api-base", args.api_base.clone());
    flag(
        "results-columns",
        args.results_columns.as_ref().map(|c| c.join(",")),
    );
    flag("intercom-version", args.intercom_version.clone());
    flag("token-file", args.token_file.as_deref().map(path));
    flag("rate", args.rate.map(|r| r.to_string()));
    flag(
        "concurrency",
        args.concurrency.map(|c| match c {
            crate::input::config::Concurrency::Auto => "auto".to_string(),
            crate::input::config::Concurrency::Fixed(n) => n.to_string(),
        }),
    );
    flag("max-attempts", args.max_attempts.map(|n| n.to_string()));
    flag("max-failures", args.max_failures.map(|n| n.to_string()));
    flag(
        "stall-timeout",
        args.stall_timeout
            .map(|d| humantime::format_duration(d).to_string()),
    );
    if args.sandbox {
        flag("sandbox-log", args.sandbox_log.as_deref().map(path));
        flag(
            "sandbox-contacts",
            args.sandbox_contacts.as_deref().map(path),
        );
        let f = &args.faults;
        let rate_limit = f.rate_limit.to_string();
        flag(
            "rate-limit",
            (rate_limit != "10000/min").then_some(rate_limit),
        );
        flag(
            "latency",
            f.latency.map(|l| {
                if l.min == l.max {
                    humantime::format_duration(l.min).to_string()
                } else {
                    format!(
                        "{}..{}",
                        humantime::format_duration(l.min),
                        humantime::format_duration(l.max)
                    )
                }
            }),
        );
        flag(
            "fail-rate",
            (f.fail_rate > 0.0).then(|| f.fail_rate.to_string()),
        );
        flag(
            "drop-rate",
            (f.drop_rate > 0.0).then(|| f.drop_rate.to_string()),
        );
        flag("seed", f.seed.map(|n| n.to_string()));
    }
    for (given, name) in [
        (args.sandbox, "--sandbox"),
        (args.sandbox && args.faults.no_validate, "--no-validate"),
        (args.skip_invalid, "--skip-invalid"),
        (args.allow_duplicates, "--allow-duplicates"),
    ] {
        if given {
            words.push(name.into());
        }
    }
    words
        .iter()
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn report_end(
    args: &SendArgs,
    results_path: &Path,
    end: &RunEnd,
    all: results::Tally,
) -> Status {
    let p = &end.progress;
    let secs = p.elapsed().as_secs_f64();
    crate::out!(
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
    let resume = resume_command(args, results_path);
    match &end.stop {
        Some(StopReason::Interrupted) => {
            crate::say!(
                "interrupted; {} rows not sent. To continue: {resume}",
                end.left
            );
            Status::Interrupted
        }
        Some(StopReason::Auth {
            status,
            code,
            message,
        }) => {
            crate::say!(
                "stopped: HTTP {status} {code} ({message}): the access token or the workspace's plan is the problem, and every later request would fail the same way. Fix it, then continue: {resume}"
            );
            Status::Stopped
        }
        Some(StopReason::Failures(why)) => {
            crate::say!("stopped: {why}. Fix the cause, then continue: {resume}");
            Status::Stopped
        }
        Some(StopReason::Io(why)) => {
            crate::say!("stopped: {why}. Then continue: {resume}");
            Status::Stopped
        }
        Some(StopReason::Stalled(why)) => {
            crate::say!("stopped: {why}. Wait for the workspace's limit to free up (other integrations share it), then continue: {resume}");
            Status::Stopped
        }
        None if args.canary.is_some() && end.left > 0 => {
            crate::say!(
                "canary: {} sent, {} rows wait. Before the rest goes, look at these in Intercom: the contacts' conversations (the results file has each row's recipient and message id), the message in an inbox (subject, body, links, sender), and any replies or bounces. Then continue: {resume}",
                p.sent, end.left
            );
            Status::Stopped
        }
        // The campaign's state, not just this run's: rows left `unknown` or `failed` by an earlier
        // run mean it is not done.
        // Skipped rows were set aside on purpose (--skip-invalid): not a failure of the run.
        None if all.failed + all.unknown > 0 => {
            let next = if all.failed > 0 {
                format!("`failed` rows are sent again by: {resume}")
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
            Status::Failed
        }
        // Exit 0 means every row was sent: rows left by --limit are a stop that can be resumed.
        None if end.left > 0 => {
            crate::say!(
                "{} rows not sent yet (--limit). To continue: {resume}",
                end.left
            );
            Status::Stopped
        }
        None => Status::Ok,
    }
}
