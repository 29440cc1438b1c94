//! Preflight: every row read, rendered and checked on every core, every problem located, before
//! anything is sent; and the `check` command, which is that and nothing else.
//!
//! `load` reads a campaign and compiles its templates; `row` renders one row and checks its
//! values (`values`); `pass` reads and renders a whole file in chunks; `preflight` is the pass
//! that reports, with `duplicates` (rows that address one recipient) and `spill` (their
//! recipients' hashes sorted in bounded memory); `hash` holds the hashes
//! send keeps of what preflight rendered; `summary` the lines that sum a check up; `command` the
//! `check` command.
mod command;
mod duplicates;
mod hash;
mod pass;
mod preflight;
mod row;
mod spill;
mod summary;
mod values;

pub(crate) use command::{run, CheckOptions};
pub use hash::{recipient_hash, request_hash, row_hash};
pub use preflight::{preflight, OnRow, Preflight};
pub use row::{Checked, RowRenderer, RowResult};
pub use summary::summary_line;

use std::path::Path;

use crate::input::config::Campaign;
use crate::input::problem::{Problem, ProblemKind, Report};
use crate::template::{TemplateError, Templates};

/// A campaign whose file and templates are valid: what every command starts from.
pub struct Loaded {
    pub campaign: Campaign,
    pub templates: Templates,
}

/// Why a campaign did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The campaign file read, but templates do not compile: each problem, located, to print as
    /// the report renders it.
    #[error("the campaign's templates do not compile")]
    Invalid(Report),
    /// The campaign file itself: it cannot be read, or it is not a valid campaign. Callers pass
    /// it on as it is, so that it prints as `Campaign::load` worded it.
    #[error(transparent)]
    Campaign(anyhow::Error),
}

/// Reads the campaign file and compiles the templates.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let campaign = Campaign::load(path).map_err(LoadError::Campaign)?;
    // Read here, so that `check` refuses a list that is missing or matches nothing.
    if let Some(list) = &campaign.send.suppress {
        crate::lookup::load_suppress(list).map_err(LoadError::Campaign)?;
    }
    match Templates::compile(&campaign) {
        Ok(templates) => Ok(Loaded {
            campaign,
            templates,
        }),
        Err(errors) => Err(LoadError::Invalid(template_report(errors))),
    }
}

/// The templates' compile errors as a report, each at its line and column where Tera says.
fn template_report(errors: Vec<TemplateError>) -> Report {
    let mut report = Report::default();
    for e in errors {
        let mut p = Problem::error(ProblemKind::Template, &e.origin, e.message);
        if let Some((line, col)) = e.position {
            p = p.line(line as u64).column(format!("column {col}"));
        }
        report.push(p);
    }
    report
}

#[cfg(test)]
mod tests;
