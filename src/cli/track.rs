//! `campaign track`: after a send, who replied, which e-mails were dropped, the rows to follow
//! up, and `unknown` rows settled by asking Intercom.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::sandbox::FaultArgs;

/// What `track --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const HELP: &str = "\
Examples:
  campaign track welcome.results.csv                 # welcome.results.tracking.csv beside it
  campaign track welcome.results.csv --json          # the same rows as JSON on stdout
  campaign track welcome.results.csv --campaign welcome.toml \\
      --export not_replied --older-than 3d --to reminder.csv
  campaign track welcome.results.csv --campaign welcome.toml --settle --settle-missing-after 10m

Exit codes:
  0  tracked (and exported, settled)
  1  --settle left rows `unknown` (each is named)
  2  invalid input or usage, no token, or Intercom refused the searches";

/// A set of rows to export: a tracking state or a results status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Sent, and the contact replied.
    Replied,
    /// Sent, no reply (and not dropped).
    NotReplied,
    /// Sent as e-mail, and the e-mail was dropped (`drop_reason`).
    Dropped,
    /// The results' `failed` rows.
    Failed,
    /// The results' `unknown` rows.
    Unknown,
    /// The results' `skipped` rows.
    Skipped,
    /// The results' `sent` rows.
    Sent,
}

#[derive(Debug, Args)]
#[command(mut_args(super::send::needs_sandbox))]
pub struct TrackArgs {
    /// The results file of a send (`welcome.results.csv`).
    pub results: PathBuf,
    /// The campaign file: its CSV for --export, its sender and settings for --settle, its
    /// base_url, Intercom-Version and rate for the searches.
    #[arg(long, value_name = "FILE")]
    pub campaign: Option<PathBuf>,
    /// Print the tracking rows as a JSON array on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the campaign CSV's header and the records of the rows in this state to --to.
    #[arg(long, value_enum, value_name = "STATUS", requires_all = ["to", "campaign"])]
    pub export: Option<ExportStatus>,
    /// Where --export writes (refused if it is the campaign's own CSV).
    #[arg(long, value_name = "FILE", requires = "export")]
    pub to: Option<PathBuf>,
    /// With --export: only messages at least this old (`3d`, `12h`), by the results' finished_at.
    #[arg(long, value_parser = crate::input::rate::parse_age, value_name = "AGE", requires = "export")]
    pub older_than: Option<Duration>,
    /// Settle `unknown` rows by finding their messages' conversations (campaigns sent with
    /// create_conversation_without_contact_reply = true).
    #[arg(long, requires = "campaign")]
    pub settle: bool,
    /// With --settle: a row whose message is not found this long after it was attempted was
    /// never created: it becomes `failed` (sent again by `send --resume`).
    #[arg(long, value_parser = crate::input::rate::parse_duration, value_name = "DURATION", requires = "settle")]
    pub settle_missing_after: Option<Duration>,
    /// Intercom API base URL [campaign file: intercom.base_url; default: https://api.intercom.io].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Sent as the Intercom-Version header [campaign file: intercom.version; default: 2.16].
    #[arg(long, value_name = "V")]
    pub intercom_version: Option<String>,
    /// Read the access token from this file instead of INTERCOM_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Search an in-process sandbox holding the conversations of the rehearsal's log
    /// (`send --sandbox` wrote it: .campaign/<results>.sandbox.jsonl beside the results file, or
    /// --sandbox-log).
    #[arg(long, requires = "campaign", conflicts_with_all = ["api_base", "token_file"])]
    pub sandbox: bool,
    /// With --sandbox: the rehearsal's log, when `send --sandbox --sandbox-log` named another.
    #[arg(long, requires = "sandbox", value_name = "FILE")]
    pub sandbox_log: Option<PathBuf>,
    #[command(flatten)]
    pub faults: FaultArgs,
}
