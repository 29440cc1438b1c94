//! The command line: every command, flag and default, as users' scripts see them.
pub mod manual;
pub mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Arg, Args, Parser, Subcommand};

use crate::input::config::{in_range, MAX_ATTEMPTS, MAX_FAILURES};
use crate::input::rate::{parse_probability, LatencySpec, Rate};

/// `--max-attempts`: the campaign file's range.
fn max_attempts(s: &str) -> Result<u32, String> {
    in_range(s, &MAX_ATTEMPTS).map(|n| n as u32)
}

/// `--retry-not-found-for`: the campaign file's range.
fn retry_not_found_for(s: &str) -> Result<std::time::Duration, String> {
    crate::input::config::duration_in(s, &crate::input::config::RETRY_NOT_FOUND_FOR)
}

/// `--request-timeout`: the campaign file's range.
fn request_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::input::config::duration_in(s, &crate::input::config::REQUEST_TIMEOUT)
}

/// `--stall-timeout`: the campaign file's range.
fn stall_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::input::config::duration_in(s, &crate::input::config::STALL_TIMEOUT)
}

/// `--max-failures`: the campaign file's range.
fn max_failures(s: &str) -> Result<u32, String> {
    in_range(s, &MAX_FAILURES).map(|n| n as u32)
}

#[derive(Debug, Parser)]
#[command(
    name = "campaign",
    version,
    about = "Send one Intercom message to each row of a CSV file: safely, at the API's rate, resumably.",
    after_help = help::TOP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant (send's flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the campaign file, templates and every row offline; send nothing.
    #[command(after_help = help::CHECK)]
    Check(CheckArgs),
    /// Show rendered messages (or, with --json, the exact request bodies).
    #[command(after_help = help::PREVIEW)]
    Preview(PreviewArgs),
    /// Check, then send one message per row and record each outcome in the results file.
    #[command(after_help = help::SEND)]
    Send(SendArgs),
    /// Look up the contacts of a campaign addressed by e-mail or external id, sending nothing:
    /// the CSV with each row's contact id, role and lookup status.
    #[command(after_help = help::RESOLVE)]
    Resolve(ResolveArgs),
    /// Run a local Intercom-compatible server to rehearse against.
    #[command(after_help = help::SANDBOX)]
    Sandbox(SandboxArgs),
    /// Summarize a results file: counts, errors by code, unknown rows, timing, messages per minute.
    #[command(after_help = help::REPORT)]
    Report(ReportArgs),
    /// Record what you found in Intercom for `unknown` (or `failed`) rows of a results file.
    #[command(after_help = help::MARK)]
    Mark(MarkArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = help::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout: of campaign, or of one of its commands.
    #[command(after_help = help::MAN)]
    Man(ManArgs),
    /// List the workspace's admins (GET /admins): id, name, e-mail, away.
    #[command(after_help = help::ADMINS)]
    Admins(AdminsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (`send`, `check`, ...); without it, campaign's own page.
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct AdminsArgs {
    /// Print a JSON array of {id, name, email, away} instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Intercom API base URL [default: https://api.intercom.io].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Sent as the Intercom-Version header [default: 2.16].
    #[arg(long, value_name = "V")]
    pub intercom_version: Option<String>,
    /// Read the access token from this file instead of INTERCOM_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Ask an in-process sandbox instead of Intercom (no token needed).
    #[arg(long, conflicts_with_all = ["api_base", "token_file"])]
    pub sandbox: bool,
    /// With --sandbox: a CSV of admins (columns `id,name,email`, optional `away`) instead of
    /// the default set.
    #[arg(long, requires = "sandbox", value_name = "FILE")]
    pub sandbox_admins: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The results file.
    pub results: PathBuf,
    /// The rows: `5,9,12-20`, or `all`.
    #[arg(long, value_name = "ROWS")]
    pub rows: crate::cli::rows::RowSet,
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

/// `send`'s copy of the sandbox's fault flags: each needs --sandbox (without it the flag would be
/// ignored, which is worse than an error) and its help says so. Applied after the flatten.
fn needs_sandbox(arg: Arg) -> Arg {
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
    /// Results file [default: <campaign file stem>.results.csv beside the campaign file].
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
    pub retry_unknown: Option<crate::cli::rows::RowSet>,
    /// With --resume: go on although the templates or message settings changed since the first run.
    #[arg(long, requires = "resume")]
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
    pub concurrency: Option<crate::input::config::Concurrency>,
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
    #[arg(long, value_name = "N", conflicts_with = "limit")]
    pub canary: Option<u64>,
    /// Send at most this many rows in this run (with --test-to: the first N rows).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Send the chosen rows' messages to this one test contact (an Intercom contact id), the
    /// subject marked `[TEST] `; recorded in `<results>.tests.csv`, never as a row sent.
    #[arg(long, value_name = "CONTACT", conflicts_with_all = ["resume", "canary", "allow_changed", "skip_invalid"])]
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
    /// With --sandbox: where the sandbox logs the messages it accepted
    /// [default: <campaign file stem>.sandbox.jsonl beside the campaign file].
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

/// What each command's `--help` ends with: examples, exit codes, the environment. Checked against
/// tests/snapshots/ so that a change here is a change someone saw.
mod help {
    pub const TOP: &str = "\
Examples:
  campaign check welcome.toml                 every row and template, offline
  campaign send welcome.toml --sandbox        rehearse against a local sandbox: no token
  campaign send welcome.toml                  check, then send (token: INTERCOM_TOKEN)
  campaign send welcome.toml --resume         continue after a stop or failures
  campaign help send                          one command's flags, examples and exit codes

Exit codes:
  0    success (check, preview: no error)
  1    send finished with failed or unknown rows
  2    invalid input or usage: nothing was sent
  3    send stopped early; --resume continues it
  130  interrupted (Ctrl-C)";

    pub const CHECK: &str = "\
Examples:
  campaign check welcome.toml
  campaign check welcome.toml --allow-duplicates

Exit codes:
  0  no error (warnings are printed)
  2  the campaign file, a template or a row has an error";

    pub const PREVIEW: &str = "\
Examples:
  campaign preview welcome.toml --limit 2            for people
  campaign preview welcome.toml --row 7 --json       the exact request body
  campaign preview welcome.toml --html preview.html --open

Exit codes:
  0  the messages were shown
  2  the campaign file, a template or a shown row has an error";

    pub const SEND: &str = "\
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
  130  interrupted (Ctrl-C); --resume continues it

Environment:
  INTERCOM_TOKEN  the access token (--token); not needed with --sandbox or --dry-run";

    pub const SANDBOX: &str = "\
Examples:
  campaign sandbox
  campaign sandbox --listen 127.0.0.1:4010 --fail-rate 0.1 --latency 20ms..200ms --log sent.jsonl
  campaign send welcome.toml --api-base http://127.0.0.1:4010     send to it

Exit codes:
  0  stopped with Ctrl-C
  2  invalid flags or files (contacts, admins), or the address is taken

Environment:
  SANDBOX_TOKEN  the one bearer token to accept (--token)";

    pub const REPORT: &str = "\
Examples:
  campaign report welcome.results.csv
  campaign report welcome.results.csv --campaign welcome.toml --html report.html
  campaign report welcome.results.csv --json

Exit codes:
  0  the report was printed
  2  the results file cannot be read";

    pub const MARK: &str = "\
Examples:
  campaign mark welcome.results.csv --rows 5,9 --as sent --note \"found in Intercom\"
  campaign mark welcome.results.csv --rows all --as failed --note \"not in Intercom\"

Exit codes:
  0  the rows were marked
  2  a row is not unknown or failed, or the results file cannot be read";

    pub const RESOLVE: &str = "\
Examples:
  campaign resolve welcome.toml                      # welcome.resolved.csv beside it
  campaign resolve welcome.toml --out review.csv     # look up every row, send nothing
  campaign resolve welcome.toml --sandbox            # rehearse the lookups

Exit codes:
  0  every row was found
  1  some rows were not found, ambiguous, unsubscribed or suppressed (see the CSV)
  2  invalid input or usage: nothing was looked up";

    pub const ADMINS: &str = "\
Examples:
  campaign admins                      # the workspace's admins, as a table
  campaign admins --json               # the same as JSON: id, name, email, away
  campaign admins --sandbox            # the sandbox's admins (no token needed)

Exit codes:
  0  the admins were listed
  2  no token, or Intercom refused the request (the message says why)";

    pub const COMPLETIONS: &str = "\
Examples:
  campaign completions bash > ~/.local/share/bash-completion/completions/campaign
  campaign completions zsh > \"${fpath[1]}/_campaign\"
  campaign completions fish > ~/.config/fish/completions/campaign.fish

Exit codes:
  0  the script was printed
  2  an unknown shell";

    pub const MAN: &str = "\
Examples:
  campaign man | man -l -
  campaign man send > campaign-send.1

Exit codes:
  0  the page was printed
  2  no such command";
}
