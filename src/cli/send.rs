//! `campaign send`'s flags: the run's choices, the campaign file's settings it may replace (in
//! the same ranges), the token, and the sandbox to rehearse against with its faults.
use std::path::PathBuf;

use clap::{Arg, Args};

use super::sandbox::FaultArgs;
use crate::input::config::{
    duration_in, in_range, Concurrency, MAX_ATTEMPTS, MAX_FAILURES, REQUEST_TIMEOUT,
    RETRY_NOT_FOUND_FOR, STALL_TIMEOUT,
};
use crate::input::rate::{parse_probability, Rate};
use crate::input::rows::RowSet;

/// What `send --help` ends with: examples, exit codes, the environment. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const HELP: &str = "\
Examples:
  campaign send welcome.toml --sandbox           rehearse against a local sandbox: no token
  campaign send welcome.toml --dry-run           check and count; send nothing, no token
  campaign send welcome.toml                     check, ask, then send
  campaign send welcome.toml --canary 20         send 20, stop (exit 3); look, then --resume
  campaign send welcome.toml --resume            continue after a stop or failures
  campaign send welcome.toml --sandbox --fail-rate 0.1 --drop-rate 0.02 --seed 7

Exit codes:
  0    every row sent
  1    the run finished with failed or unknown rows (campaign report shows them)
  2    invalid input or usage, or another run holds the results file: nothing was sent
  3    the run stopped early; --resume continues it
  4    not confirmed at the prompt: nothing was sent
  130  interrupted (Ctrl-C); --resume continues it

Environment:
  INTERCOM_TOKEN  the access token (--token); not needed with --sandbox or --dry-run";

/// `send`'s copy of the sandbox's fault flags: each needs --sandbox (without it the flag would be
/// ignored, which is worse than an error) and its help says so. Applied after the flatten.
pub(super) fn needs_sandbox(arg: Arg) -> Arg {
    let faults = FaultArgs::augment_args(clap::Command::new("faults"));
    if faults.get_arguments().all(|a| a.get_id() != arg.get_id()) {
        return arg;
    }
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let mut chars = help.chars();
    let help = match chars.next() {
        Some(first) => format!("With --sandbox: {}{}", first.to_lowercase(), chars.as_str()),
        None => "With --sandbox.".to_string(),
    };
    arg.requires("sandbox").help(help)
}

#[derive(Debug, Args)]
#[command(mut_args(needs_sandbox))]
pub struct SendArgs {
    /// The campaign file (TOML).
    pub campaign: PathBuf,
    /// Results file; its journal, lock and logs go in the hidden folder .campaign/ beside it
    /// [default: <campaign file stem>.results.csv beside the campaign file].
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// CSV columns to copy into each results line after the fixed columns, e.g.
    /// `email,first_name`, so a failed row names its customer [campaign file: results.columns].
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub results_columns: Option<Vec<String>>,
    /// Continue a run: rows recorded `sent` or `unknown` are not sent again.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: send `unknown` rows again, on purpose (they may have gone out already):
    /// all of them, or only the rows named (`--retry-unknown 5,9,12-20`).
    #[arg(long, value_name = "ROWS", num_args = 0..=1, default_missing_value = "all", requires = "resume")]
    pub retry_unknown: Option<RowSet>,
    /// With --resume: send these `failed` rows again although they carry Intercom's message id
    /// (a hand edit, say: the message may exist), once checked in Intercom: `4,9` or `all`.
    #[arg(long, value_name = "ROWS", requires = "resume")]
    pub allow_resend: Option<RowSet>,
    /// With --resume: go on although the templates or message settings changed since the first run.
    #[arg(long, requires = "resume")]
    pub allow_changed: bool,
    /// Start a fresh ledger although another ledger of this campaign records messages sent (the
    /// results file's run log, or another results file of the same templates and target): those
    /// customers may be messaged again.
    #[arg(long, conflicts_with = "resume")]
    pub new_ledger: bool,
    /// Send although several rows address the same recipient [campaign file: send.duplicates =
    /// "allow"].
    #[arg(long, conflicts_with = "skip_duplicates")]
    pub allow_duplicates: bool,
    /// Send the first row of each recipient and record the later ones `skipped` (`duplicate`)
    /// [campaign file: send.duplicates = "skip"].
    #[arg(long)]
    pub skip_duplicates: bool,
    /// Send the valid rows; record each invalid one as `skipped`.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Requests per time: `N/s`, `N/10s`, `N/min` or `N/h`, from 1/h to 1000000/s [campaign file:
    /// send.rate].
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Requests in flight at most, 1 to 1024, or `auto` [campaign file: send.concurrency].
    #[arg(long)]
    pub concurrency: Option<Concurrency>,
    /// Attempts per row for transient failures, 1 to 20 [campaign file: send.max_attempts].
    #[arg(long, value_parser = max_attempts)]
    pub max_attempts: Option<u32>,
    /// Stop after this many permanent failures in a row, 1 to 1000000 [campaign file:
    /// send.max_failures].
    #[arg(long, value_parser = max_failures)]
    pub max_failures: Option<u32>,
    /// Stop (exit 3, resumable) when the server has held every sender back this long without a
    /// row's outcome: 429s, or its rate headers [campaign file: send.stall_timeout; default 10m].
    #[arg(long, value_name = "DURATION", value_parser = stall_timeout)]
    pub stall_timeout: Option<std::time::Duration>,
    /// Stop when more than this share of the last 100 rows failed: above 0, at most 1
    /// [campaign file: send.max_failure_share; default 0.5].
    #[arg(long, value_name = "SHARE", value_parser = failure_share)]
    pub max_failure_share: Option<f64>,
    /// How long a recipient's 404 is retried (a new contact can 404 for a while)
    /// [campaign file: send.retry_not_found_for; default 60s].
    #[arg(long, value_name = "DURATION", value_parser = retry_not_found_for)]
    pub retry_not_found_for: Option<std::time::Duration>,
    /// How long one request may take before its row is recorded `unknown`
    /// [campaign file: send.request_timeout; default 30s].
    #[arg(long, value_name = "DURATION", value_parser = request_timeout)]
    pub request_timeout: Option<std::time::Duration>,
    /// Send the first N rows, then stop (exit 3) so that they can be checked in Intercom before
    /// the rest goes with --resume.
    #[arg(long, value_name = "N", conflicts_with = "limit", value_parser = clap::value_parser!(u64).range(1..))]
    pub canary: Option<u64>,
    /// Send at most this many rows in this run, 1 or more (with --test-to: the first N rows).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Send the chosen rows' messages to this one test contact (an e-mail, looked up as `[to]
    /// email` is, or an Intercom contact id), the subject marked `[TEST] `; recorded in
    /// `.campaign/<results>.tests.csv` beside the results file, never as a row sent.
    #[arg(long, value_name = "CONTACT", conflicts_with_all = ["resume", "canary", "allow_changed", "skip_invalid", "retry_unknown", "rate", "allow_duplicates"])]
    pub test_to: Option<String>,
    /// With --test-to: the rows to test (1-based records, as in the results file), e.g.
    /// `--row 3 --row 7` or `--row 3,7` [default: the first row].
    #[arg(long, value_name = "N", num_args = 1.., value_delimiter = ',', requires = "test_to", conflicts_with = "limit")]
    pub row: Vec<u64>,
    /// Send without asking: on a terminal, a real send first shows what it will do and asks.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Do everything but the requests: check, render, and show what would be sent.
    #[arg(long)]
    pub dry_run: bool,
    /// Intercom API base URL [campaign file: intercom.base_url].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Sent as the Intercom-Version header [campaign file: intercom.version].
    #[arg(long, value_name = "V")]
    pub intercom_version: Option<String>,
    /// The access token. Better from the environment than as a flag, where `ps` and the shell's
    /// history show it; never printed.
    #[arg(long, env = "INTERCOM_TOKEN", hide_env_values = true, value_name = "TOKEN", value_parser = secret)]
    pub token: Option<Secret>,
    /// Read the access token from this file instead (it wins over --token and INTERCOM_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Send to an in-process sandbox on a free loopback port instead of Intercom.
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: where the sandbox logs the messages it accepted [default:
    /// .campaign/<results>.sandbox.jsonl beside the results file].
    #[arg(long, requires = "sandbox")]
    pub sandbox_log: Option<PathBuf>,
    /// With --sandbox: a CSV of known contacts (column `id`; optional `email`, `external_id`,
    /// `role`, `unsubscribed_from_emails`, `has_hard_bounced`, `marked_email_as_spam`); other
    /// recipients get 404. Without it, a campaign addressed by e-mail or external id finds one
    /// user for every key it searches.
    #[arg(long, requires = "sandbox")]
    pub sandbox_contacts: Option<PathBuf>,
    /// With --sandbox and no --sandbox-contacts: e-mails or external ids (comma-separated) the
    /// sandbox finds no contact for, to rehearse `contact_not_found`.
    #[arg(long, requires = "sandbox", value_delimiter = ',', value_name = "KEYS")]
    pub sandbox_missing: Vec<String>,
    /// With --sandbox: a CSV of the workspace's admins (columns `id,name,email`, optional
    /// `away`) instead of the default set; a message from any other admin gets 404.
    #[arg(long, requires = "sandbox", value_name = "FILE")]
    pub sandbox_admins: Option<PathBuf>,
    /// With --sandbox: rehearse at any hour, although the campaign file's `[send] hours` and
    /// `days` say to wait (a real send always keeps them).
    #[arg(long, requires = "sandbox")]
    pub ignore_hours: bool,
    #[command(flatten, next_help_heading = "Sandbox faults (each needs --sandbox)")]
    pub faults: FaultArgs,
}

/// `--max-failure-share`: the campaign file's range, above 0 and at most 1.
fn failure_share(s: &str) -> Result<f64, String> {
    match parse_probability(s) {
        Ok(p) if p > 0.0 => Ok(p),
        _ => Err(format!(
            "`{s}`: expected a share above 0 and at most 1, such as 0.5"
        )),
    }
}

/// A token from the command line or the environment: `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Never fails: clap would print the value in its error, and this value is a secret.
fn secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret(s.to_string()))
}

/// `--max-attempts`: the campaign file's range.
fn max_attempts(s: &str) -> Result<u32, String> {
    in_range(s, &MAX_ATTEMPTS).map(|n| n as u32)
}

/// `--max-failures`: the campaign file's range.
fn max_failures(s: &str) -> Result<u32, String> {
    in_range(s, &MAX_FAILURES).map(|n| n as u32)
}

/// `--retry-not-found-for`: the campaign file's range.
fn retry_not_found_for(s: &str) -> Result<std::time::Duration, String> {
    duration_in(s, &RETRY_NOT_FOUND_FOR)
}

/// `--request-timeout`: the campaign file's range.
fn request_timeout(s: &str) -> Result<std::time::Duration, String> {
    duration_in(s, &REQUEST_TIMEOUT)
}

/// `--stall-timeout`: the campaign file's range.
fn stall_timeout(s: &str) -> Result<std::time::Duration, String> {
    duration_in(s, &STALL_TIMEOUT)
}
