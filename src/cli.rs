//! The command line: every command, flag and default, as users' scripts see them.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{in_range, MAX_ATTEMPTS, MAX_FAILURES};
use crate::rate::{parse_probability, LatencySpec, Rate};

/// `--max-attempts`: the campaign file's range.
fn max_attempts(s: &str) -> Result<u32, String> {
    in_range(s, &MAX_ATTEMPTS).map(|n| n as u32)
}

/// `--stall-timeout`: the campaign file's range.
fn stall_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::config::duration_in(s, &crate::config::STALL_TIMEOUT)
}

/// `--max-failures`: the campaign file's range.
fn max_failures(s: &str) -> Result<u32, String> {
    in_range(s, &MAX_FAILURES).map(|n| n as u32)
}

#[derive(Debug, Parser)]
#[command(
    name = "campaign",
    version,
    about = "Send one Intercom message to each row of a CSV file: safely, at the API's rate, resumably."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the campaign file, templates and every row offline; send nothing.
    Check(CheckArgs),
    /// Show rendered messages (or, with --json, the exact request bodies).
    Preview(PreviewArgs),
    /// Check, then send one message per row and record each outcome in the results file.
    Send(Box<SendArgs>),
    /// Look up the contacts of a campaign addressed by e-mail or external id, sending nothing:
    /// the CSV with each row's contact id, role and lookup status.
    Resolve(ResolveArgs),
    /// Run a local Intercom-compatible server to rehearse against.
    Sandbox(SandboxArgs),
    /// Summarize a results file: counts, errors by code, unknown rows, timing, messages per minute.
    Report(ReportArgs),
    /// Record what you found in Intercom for `unknown` (or `failed`) rows of a results file.
    Mark(MarkArgs),
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The results file.
    pub results: PathBuf,
    /// The rows: `5,9,12-20`, or `all`.
    #[arg(long, value_name = "ROWS")]
    pub rows: crate::rows::RowSet,
    /// What you found: `sent` (it reached the contact: never sent again) or `failed` (it did not:
    /// --resume sends it).
    #[arg(long = "as", value_name = "STATUS", value_enum)]
    pub as_status: MarkAs,
    /// What you found, kept in the row's `error_message`.
    #[arg(long)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MarkAs {
    Sent,
    Failed,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results file that `send` wrote.
    pub results: PathBuf,
    /// The campaign file, to name each example row by the e-mail (or name) in its CSV.
    #[arg(long, value_name = "FILE")]
    pub campaign: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page, with a chart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print the report as JSON (its shape is in the README) instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The campaign file (TOML).
    pub campaign: PathBuf,
    /// Report rows that address the same recipient as warnings, not errors.
    #[arg(long)]
    pub allow_duplicates: bool,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The campaign file (TOML).
    pub campaign: PathBuf,
    /// Show at most this many messages [default: 3; with --html: the first row of each path
    /// through the templates' ifs, and every row with a warning].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Show only this record (1-based, as in the results file).
    #[arg(long)]
    pub row: Option<u64>,
    /// Print the exact request bodies, one JSON object per line.
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write one self-contained HTML page showing the messages as customers get them.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// With --html: open the page in the default browser, where there is one.
    #[arg(long, requires = "html")]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The campaign file (TOML).
    pub campaign: PathBuf,
    /// Results file [default: <campaign file stem>.results.csv in the current directory].
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Continue a run: rows recorded `sent` or `unknown` are not sent again.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: send `unknown` rows again, on purpose (they may have gone out already):
    /// all of them, or only the rows named (`--retry-unknown 5,9,12-20`).
    #[arg(long, value_name = "ROWS", num_args = 0..=1, default_missing_value = "all", requires = "resume")]
    pub retry_unknown: Option<crate::rows::RowSet>,
    /// With --resume: go on although the templates or message settings changed since the first run.
    #[arg(long)]
    pub allow_changed: bool,
    /// Send although several rows address the same recipient.
    #[arg(long)]
    pub allow_duplicates: bool,
    /// Send the valid rows; record each invalid one as `skipped`.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Requests per time: `N/s`, `N/10s`, `N/min` or `N/h`, from 1/h to 1000000/s [campaign file:
    /// send.rate].
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Requests in flight at most, 1 to 1024, or `auto` [campaign file: send.concurrency].
    #[arg(long)]
    pub concurrency: Option<crate::config::Concurrency>,
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
    /// Send the first N rows, then stop (exit 3) so that they can be checked in Intercom before
    /// the rest goes with --resume.
    #[arg(long, value_name = "N", conflicts_with = "limit")]
    pub canary: Option<u64>,
    /// Send at most this many rows in this run.
    #[arg(long)]
    pub limit: Option<u64>,
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
    /// Read the access token from this file instead of INTERCOM_TOKEN.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Send to an in-process sandbox on a free loopback port instead of Intercom.
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: where the sandbox logs the messages it accepted
    /// [default: <campaign file stem>.sandbox.jsonl in the current directory].
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
    #[command(flatten)]
    pub faults: FaultArgs,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The campaign file (TOML); its `[to]` must be `email` or `external_id`.
    pub campaign: PathBuf,
    /// Where to write the CSV [default: <campaign file stem>.resolved.csv beside the campaign file].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Read the access token from this file instead of INTERCOM_TOKEN.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Intercom API base URL [campaign file: intercom.base_url].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Look up in an in-process sandbox instead of Intercom.
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: its contacts (as `send --sandbox-contacts`).
    #[arg(long, requires = "sandbox")]
    pub sandbox_contacts: Option<PathBuf>,
    /// With --sandbox and no --sandbox-contacts: keys it finds nobody for.
    #[arg(long, requires = "sandbox", value_delimiter = ',', value_name = "KEYS")]
    pub sandbox_missing: Vec<String>,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// How the sandbox misbehaves; shared by `sandbox` and `send --sandbox`.
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// The limit the sandbox enforces, in Intercom's 10-second windows (a rate as `send --rate`
    /// takes it, from 1/h to 1000000/s).
    #[arg(long, default_value = "10000/min")]
    pub rate_limit: Rate,
    /// Delay before each answer: `50ms`, or a range `20ms..200ms`.
    #[arg(long)]
    pub latency: Option<LatencySpec>,
    /// Share of requests answered 500, 502 or 503 (no message created).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub fail_rate: f64,
    /// Share of requests whose message is created but whose connection is closed unanswered.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub drop_rate: f64,
    /// Seed for the faults, so that a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Accept any body without validating it (for throughput benchmarks).
    #[arg(long)]
    pub no_validate: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    pub listen: SocketAddr,
    /// Accept only this bearer token (any token is accepted without it).
    #[arg(long, env = "SANDBOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CSV of known contacts (column `id`; optional `email`, `external_id`, `role` and the
    /// three subscription columns `POST /contacts/search` reads); other recipients get 404.
    #[arg(long)]
    pub contacts: Option<PathBuf>,
    /// A CSV of the workspace's admins (columns `id,name,email`, optional `away`) instead of the
    /// default set (394051 and 814860); a message from any other admin gets 404.
    #[arg(long, value_name = "FILE")]
    pub admins: Option<PathBuf>,
    /// Append one JSON line per accepted message to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub faults: FaultArgs,
}
