//! `campaign resolve` and `campaign admins`: the commands that look things up in Intercom (or a
//! sandbox) and send no message.
use std::path::PathBuf;

use clap::Args;

use super::sandbox::FaultArgs;

/// What `resolve --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const RESOLVE_HELP: &str = "\
Examples:
  campaign resolve welcome.toml                      # welcome.resolved.csv beside it
  campaign resolve welcome.toml --out review.csv     # look up every row, send nothing
  campaign resolve welcome.toml --sandbox            # rehearse the lookups

Exit codes:
  0  every row was found
  1  some rows were not found, ambiguous, unsubscribed or suppressed (see the CSV)
  2  invalid input or usage: nothing was looked up";

/// What `admins --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const ADMINS_HELP: &str = "\
Examples:
  campaign admins                      # the workspace's admins, as a table
  campaign admins --json               # the same as JSON: id, name, email, away
  campaign admins --sandbox            # the sandbox's admins (no token needed)

Exit codes:
  0  the admins were listed
  2  no token, or Intercom refused the request (the message says why)";

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
