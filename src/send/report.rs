//! The end of a run: the summary, the `unknown` rows, why it stopped, the command that resumes it,
//! and the exit status.
use std::path::Path;

use super::pipeline::{RunEnd, StopReason};
use crate::cli::SendArgs;
use crate::results;
use crate::Status;

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

pub fn report_end(
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
        // Skipped rows were set aside on purpose (--skip-invalid): not a failure of the run.
        None if all.failed + all.unknown > 0 => {
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
