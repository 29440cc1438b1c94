//! The command line: every command, flag and default, as users' scripts see them.
//!
//! This file owns the command list and `campaign --help`; each group of commands has its flags
//! and the examples and exit codes of its `--help` in a file: [`send`], [`inspect`] (check,
//! preview), [`ledger`] (report, mark), [`lookup`] (resolve, admins), [`track`], [`sandbox`],
//! [`manual`] (completions, man pages) and [`init`].
mod init;
mod inspect;
mod ledger;
mod lookup;
pub mod manual;
mod sandbox;
mod send;
mod track;

use clap::{Parser, Subcommand};

pub use init::InitArgs;
pub use inspect::{CheckArgs, PreviewArgs};
pub use ledger::{MarkArgs, MarkAs, ReportArgs};
pub use lookup::{AdminsArgs, ResolveArgs};
pub use manual::{CompletionsArgs, ManArgs};
pub use sandbox::{FaultArgs, SandboxArgs};
pub use send::{Secret, SendArgs};
pub use track::{ExportStatus, TrackArgs};

#[derive(Debug, Parser)]
#[command(
    name = "campaign",
    version,
    about = "Send one Intercom message to each row of a CSV file: safely, at the API's rate, resumably.",
    after_help = TOP_HELP
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
    #[command(after_help = inspect::CHECK_HELP)]
    Check(CheckArgs),
    /// Show rendered messages (or, with --json, the exact request bodies).
    #[command(after_help = inspect::PREVIEW_HELP)]
    Preview(PreviewArgs),
    /// Check, then send one message per row and record each outcome in the results file.
    #[command(after_help = send::HELP)]
    Send(SendArgs),
    /// Write a first campaign file (every key commented) and message template, from a CRM
    /// export's headers (the e-mail column guessed) or an example CSV.
    #[command(after_help = init::HELP)]
    Init(InitArgs),
    /// Look up the contacts of a campaign addressed by e-mail or external id, sending nothing:
    /// the CSV with each row's contact id, role and lookup status.
    #[command(after_help = lookup::RESOLVE_HELP, visible_alias = "lookup")]
    Resolve(ResolveArgs),
    /// Run a local Intercom-compatible server to rehearse against.
    #[command(after_help = sandbox::HELP)]
    Sandbox(SandboxArgs),
    /// Summarize a results file: counts, errors by code, unknown rows, timing, messages per minute.
    #[command(after_help = ledger::REPORT_HELP)]
    Report(ReportArgs),
    /// Record what you found in Intercom for `unknown` (or `failed`) rows of a results file.
    #[command(after_help = ledger::MARK_HELP)]
    Mark(MarkArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = manual::COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout: of campaign, or of one of its commands.
    #[command(after_help = manual::MAN_HELP)]
    Man(ManArgs),
    /// List the workspace's admins (GET /admins): id, name, e-mail, away.
    #[command(after_help = lookup::ADMINS_HELP)]
    Admins(AdminsArgs),
    /// After a send: who replied, which e-mails were dropped (the tracking file beside the
    /// results); export the rows to follow up; settle `unknown` rows by asking Intercom.
    #[command(after_help = track::HELP)]
    Track(TrackArgs),
}

/// What `campaign --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
const TOP_HELP: &str = "\
Examples:
  campaign init renewal --from-csv export.csv a campaign file from a CRM export
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
  4    send not confirmed at the prompt: nothing was sent
  130  interrupted (Ctrl-C)";
