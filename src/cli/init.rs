//! `campaign init`'s flags.
use std::path::PathBuf;

use clap::Args;

/// What `init --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const HELP: &str = "\
Examples:
  campaign init renewal --from-csv crm-export.csv   renewal/campaign.toml and message.html
  campaign init                                     here, with an example recipients.csv

Exit codes:
  0  the files were written
  2  a file exists already, or the export cannot be read";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write campaign.toml and message.html into (created if missing) [default: .].
    pub dir: Option<PathBuf>,
    /// A CSV export of the recipients: the campaign reads it where it is, its headers become
    /// the template's columns, and the column that holds e-mail addresses addresses them.
    #[arg(long, value_name = "EXPORT")]
    pub from_csv: Option<PathBuf>,
}
