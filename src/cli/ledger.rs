//! `campaign report` and `campaign mark`: reading a results file, and recording what was found in
//! Intercom for its unknown or failed rows.
use std::path::PathBuf;

use clap::Args;

use crate::input::rows::RowSet;

/// What `report --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const REPORT_HELP: &str = "\
Examples:
  campaign report welcome.results.csv
  campaign report welcome.results.csv --campaign welcome.toml --html report.html
  campaign report welcome.results.csv --json
  campaign report welcome.results.csv --csv > by-row.csv

Exit codes:
  0  the report was printed
  2  the results file cannot be read";

/// What `mark --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const MARK_HELP: &str = "\
Examples:
  campaign mark welcome.results.csv --rows 5,9 --as sent --note \"found in Intercom\"
  campaign mark welcome.results.csv --rows 5 --as sent --message-id 403918316 --note \"found\"
  campaign mark welcome.results.csv --rows all --as failed --note \"not in Intercom\"
  campaign mark welcome.results.csv --rows 7 --as skipped --note \"no such customer\"

Exit codes:
  0  the rows were marked
  2  a row is not unknown or failed, or a killed run left it in flight and it became unknown
     just now (look it up, then run the command again), or --message-id is not one row's
     `--as sent`, or the results file cannot be read";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results file that `send` wrote (its run log, in .campaign/ beside it, is read too).
    pub results: PathBuf,
    /// The campaign file, to name each example row by the e-mail (or name) in its CSV.
    #[arg(long, value_name = "FILE")]
    pub campaign: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page, with a chart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print the report as JSON (its shape is in the README) instead of tables.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the results file's rows in row order instead (one line per row, its last outcome;
    /// the file itself is in the order the outcomes came).
    #[arg(long, conflicts_with_all = ["html", "campaign"])]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The results file.
    pub results: PathBuf,
    /// The rows: `5,9,12-20`, or `all`.
    #[arg(long, value_name = "ROWS")]
    pub rows: RowSet,
    /// What you found: `sent` (it reached the contact: never sent again), `failed` (it did not:
    /// --resume sends it), or `skipped` (it is not to be sent: --resume never sends it).
    #[arg(long = "as", value_name = "STATUS", value_enum)]
    pub as_status: MarkAs,
    /// What you found, kept in the row's `error_message`.
    #[arg(long)]
    pub note: String,
    /// The id of the message you found (with `--as sent` and one row): kept in the row's
    /// `message_id`, so that `track` can follow its conversation.
    #[arg(long, value_name = "ID")]
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MarkAs {
    Sent,
    Failed,
    Skipped,
}
