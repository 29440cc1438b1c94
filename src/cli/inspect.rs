//! `campaign check` and `campaign preview`: the offline commands, which send nothing.
use std::path::PathBuf;

use clap::Args;

/// What `check --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const CHECK_HELP: &str = "\
Examples:
  campaign check welcome.toml
  campaign check welcome.toml --allow-duplicates
  campaign check welcome.toml --columns        the names templates know each column by

Exit codes:
  0  no error (warnings are printed)
  2  the campaign file, a template or a row has an error";

/// What `preview --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const PREVIEW_HELP: &str = "\
Examples:
  campaign preview welcome.toml --limit 2            for people
  campaign preview welcome.toml --row 7 --json       the exact request body
  campaign preview welcome.toml --html preview.html --open

Exit codes:
  0  the messages were shown
  2  the campaign file, a template or a shown row has an error";

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The campaign file (TOML).
    pub campaign: PathBuf,
    /// Report rows that address the same recipient as warnings, not errors: all sent.
    #[arg(long, conflicts_with = "skip_duplicates")]
    pub allow_duplicates: bool,
    /// Report rows that address a recipient an earlier row has as warnings: the first row is
    /// sent, the others recorded `skipped` [campaign file: send.duplicates = "skip"].
    #[arg(long)]
    pub skip_duplicates: bool,
    /// List the recipients file's columns and the names templates know each by
    /// (`First name` is `{{ first_name }}`), and check nothing.
    #[arg(long)]
    pub columns: bool,
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
