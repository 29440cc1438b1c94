//! `campaign preview CAMPAIGN --html FILE`: the chosen rows' messages as customers get them, each
//! beside the row's CSV values and its warnings, on one self-contained page.
//!
//! Which rows: `--row N` that row; `--limit N` the first N; by default the first row of each path
//! through the templates' `if`s (see [`super::variants`]) and every row with a warning or an error,
//! so that one look covers every variant and everything `check` would flag in a row (`choose`).
//! `render` writes the page.
mod choose;
mod render;

use std::fmt::Write as _;
use std::path::Path;

use super::variants::{self, Variants};
use super::{FileFacts, Selection};
use crate::check::Loaded;
use crate::counted;
use crate::exit::{Ended, Failure, Outcome};
use crate::input::problem::{Problem, Severity};
use crate::input::recipients::Recipients;
use crate::page::write_page;
use crate::template::MessageRequest;
use choose::choose;
use render::render_page;

/// Rows on one page at most: past this a browser struggles, and `check` lists every problem.
const MAX_ROWS: usize = 500;

/// One row chosen for the page.
struct Shown {
    number: u64,
    line: u64,
    fields: Vec<String>,
    request: Option<MessageRequest>,
    problems: Vec<Problem>,
    /// Why it is on the page.
    reasons: Vec<Reason>,
    /// Its path's number (1-based, in order of first appearance).
    path: Option<usize>,
    /// The values a `default` gave its fallback for, by name.
    defaults: Vec<String>,
    /// The earlier row with its recipient, if one has it.
    duplicate_of: Option<u64>,
}

/// Why a row is on the page, as its badges say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// `--row` asked for it.
    Row,
    /// It is among the first `--limit` rows.
    Limit,
    /// The first row of this path through the templates' `if`s.
    FirstOfPath(usize),
    Errors,
    Warnings,
    /// A `default` gives its fallback in it.
    Default,
    /// An earlier row has its recipient (that row's number).
    Duplicate(u64),
}

impl Reason {
    /// The badge's class: the colours of the report's statuses.
    fn class(self) -> &'static str {
        match self {
            Reason::Errors => "failed",
            Reason::Warnings | Reason::Default | Reason::Duplicate(_) => "unknown",
            Reason::Row | Reason::Limit | Reason::FirstOfPath(_) => "sent",
        }
    }

    fn is_asked_for(self) -> bool {
        matches!(self, Reason::Row | Reason::Limit)
    }

    fn is_first_of_path(self) -> bool {
        matches!(self, Reason::FirstOfPath(_))
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Row => f.write_str("--row"),
            Reason::Limit => f.write_str("--limit"),
            Reason::FirstOfPath(n) => write!(f, "path {n}"),
            Reason::Errors => f.write_str("errors"),
            Reason::Warnings => f.write_str("warnings"),
            Reason::Default => f.write_str("default"),
            Reason::Duplicate(first) => write!(f, "recipient of row {first}"),
        }
    }
}

/// What the page shows, before it is written out.
struct Chosen {
    rows: Vec<Shown>,
    /// Paths in order of first appearance; each is the set of branch tags taken.
    paths: Vec<variants::Path>,
    /// Rows that qualified but did not fit under [`MAX_ROWS`].
    left_out: u64,
    header: Vec<Problem>,
    total_rows: u64,
    /// What holds of the whole file.
    facts: FileFacts,
}

/// Writes the page; prints the shown rows' problems to stderr and a one-line summary to stdout.
pub(super) fn run(loaded: &Loaded, selection: Selection, file: &Path, open: bool) -> Ended {
    let (mut recipients, header) =
        Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    let variants = Variants::new(&loaded.campaign);
    let facts = FileFacts::of(loaded)?;
    let chosen = choose(selection, loaded, &mut recipients, &variants, header, facts)?;
    let mut problems = false;
    for p in chosen
        .header
        .iter()
        .chain(chosen.rows.iter().flat_map(|r| &r.problems))
    {
        crate::say!("{p}");
        if p.severity == Severity::Error {
            problems = true;
        }
    }
    let html = render_page(loaded, &recipients, &variants, &chosen);
    write_page(file, &html)?;
    crate::out!("{}", summary(file, &chosen));
    if open {
        open_in_browser(&std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()));
    }
    match problems {
        true => Err(Failure::Reported),
        false => Ok(Outcome::Done),
    }
}

fn summary(file: &Path, c: &Chosen) -> String {
    let warned = c.rows.iter().filter(|r| !r.problems.is_empty()).count();
    let mut text = format!(
        "wrote {}: {} of {} rows",
        file.display(),
        c.rows.len(),
        c.total_rows
    );
    if !c.paths.is_empty() {
        let _ = write!(
            text,
            " ({} through the templates' ifs, {} with warnings or errors)",
            counted(c.paths.len() as u64, "path"),
            counted(warned as u64, "row")
        );
    }
    if c.facts.default_rows > 0 {
        let _ = write!(
            text,
            "; a `default` gives its fallback in {}",
            counted(c.facts.default_rows, "row")
        );
    }
    if !c.facts.duplicates.is_empty() {
        let _ = write!(
            text,
            "; {} with the recipient of an earlier row",
            counted(c.facts.duplicate_rows(), "row")
        );
    }
    if c.left_out > 0 {
        let _ = write!(
            text,
            "; {} more rows with warnings left out (at most {MAX_ROWS} on a page: `campaign check` lists them all)",
            c.left_out
        );
    }
    text
}

/// Opens the page in the default browser where there is one; a machine without one is not an
/// error (the page is written either way).
fn open_in_browser(file: &Path) {
    if let Err(e) = open::that_detached(file) {
        crate::say!(
            "could not open a browser ({e}); open {} yourself",
            file.display()
        );
    }
}
