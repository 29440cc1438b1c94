//! The preflight stage: every row rendered as it will be sent (`check`'s own preflight), each
//! row's request hash kept for the dispatch to compare with, and on resume every recorded row's
//! recipient compared with the CSV's. Its problems are printed; a run they refuse sends nothing.
use std::path::Path;

use crate::check::{self, recipient_hash, Loaded, Preflight};
use crate::exit::Failure;
use crate::input::problem::{Problem, ProblemKind, Severity};
use crate::lookup::Rules;
use crate::results::{Prior, RowStatus};

use super::expected::{Expected, Writing};
use super::plan::SendPlan;

/// Preflight's findings, for the manifest.
pub(super) struct Checked {
    pub pre: Preflight,
    /// Each row's request hash, by record number (0: not a valid row).
    pub expected: Expected,
    /// The rows whose key the `[send] suppress` list names, in order: recorded `skipped`, never
    /// sent (a contact the list names by another key is found at its lookup).
    pub suppressed: Vec<u64>,
}

/// Checks every row against the results file and what it recorded (`prior`, none for a fresh
/// one); [`Failure::Reported`] (its problems said) when the run is refused.
pub(super) fn run(
    plan: &SendPlan,
    loaded: &Loaded,
    results: &Path,
    prior: Option<&Prior>,
    rules: Option<&Rules>,
) -> Result<Checked, Failure> {
    let (pre, expected, suppressed) = check_rows(plan, loaded, results, prior, rules)?;
    if let Some(p) = prior {
        if p.rows() > pre.rows {
            return Err(anyhow::anyhow!(
                "{}: the results file has rows beyond the CSV's {} rows: the CSV changed since the first run",
                results.display(),
                pre.rows
            )
            .into());
        }
    }
    crate::say_part!("{}", pre.report.render());
    let skip_invalid = plan.selection.skip_invalid;
    if refuses(&pre, skip_invalid) {
        crate::say!(
            "{}: {}, {}; nothing was sent{}.",
            check::summary_line(&loaded.campaign, &pre),
            crate::counted(pre.report.errors, "error"),
            crate::counted(pre.report.warnings, "warning"),
            // Not when no row is valid: there would be nothing to send.
            if !skip_invalid && only_row_errors(&pre) && pre.rows > pre.invalid_rows {
                " (--skip-invalid sends the valid rows and records the others as skipped)"
            } else {
                ""
            }
        );
        return Err(Failure::Reported);
    }
    Ok(Checked {
        pre,
        expected,
        suppressed,
    })
}

/// `check`'s preflight, keeping each row's request hash and the rows the suppress list names,
/// and comparing recipients on resume.
fn check_rows(
    plan: &SendPlan,
    loaded: &Loaded,
    results: &Path,
    prior: Option<&Prior>,
    rules: Option<&Rules>,
) -> anyhow::Result<(Preflight, Expected, Vec<u64>)> {
    let mut changed = Changed {
        reported: false,
        recipients_file: loaded.campaign.recipients.display().to_string(),
        results: results.display().to_string(),
        to_type: &loaded.campaign.to_type,
    };
    // Each row's request hash, by record number (0: not a valid row), for the send pass to
    // compare with: 4 bytes a row, on disk beside the results file.
    let mut expected = Writing::beside(results)?;
    let campaign = &loaded.campaign;
    let mut suppressed = Vec::new();
    let rules = rules.filter(|r| !r.suppress.is_empty());
    let pre = check::preflight(loaded, plan.selection.duplicates, &mut |row, rendered| {
        expected.set(row, check::row_hash(campaign, rendered));
        if let Some(rules) = rules {
            if rules.suppressed(&crate::lookup::normalize(rules.address, &rendered.to_id)) {
                suppressed.push(row);
            }
        }
        changed.check(prior?, row, rendered.to_id.as_str())
    });
    let expected = expected.finish(pre.rows)?;
    Ok((pre, expected, suppressed))
}

/// On resume: the first row whose recipient is not the one the results file recorded.
struct Changed<'a> {
    reported: bool,
    recipients_file: String,
    results: String,
    to_type: &'a str,
}

impl Changed<'_> {
    fn check(&mut self, prior: &Prior, row: u64, id: &str) -> Option<Problem> {
        let recorded = prior.recipient_hash(row)?;
        if self.reported || recorded == recipient_hash(self.to_type, id) {
            return None;
        }
        // A row skipped without a recipient (its id did not render, or the results file has no
        // recipient for it) has nothing to compare: it was never sent, and fixing it is why one
        // resumes.
        if prior.status(row) == Some(RowStatus::Skipped)
            && recorded == recipient_hash(self.to_type, "")
        {
            return None;
        }
        self.reported = true;
        Some(Problem {
            record: Some(row),
            ..Problem::error(
                ProblemKind::Changed,
                &self.recipients_file,
                format!(
                    "the recipient is now `{}`, but the results file {} recorded another one for this row: the CSV changed since the first run, so resuming it could skip or double customers",
                    id,
                    self.results
                ),
            )
        })
    }
}

/// Whether preflight's problems stop the run: any error, unless --skip-invalid and every error is
/// a row's own, so that skipping the row is enough.
fn refuses(pre: &Preflight, skip_invalid: bool) -> bool {
    pre.report.has_errors() && !(skip_invalid && only_row_errors(pre))
}

/// Whether every error belongs to one row (its CSV record, its rendering, its values), none to the
/// file, the templates as a whole, duplicates or a changed campaign.
fn only_row_errors(pre: &Preflight) -> bool {
    let beyond_rows = pre.report.counts.iter().any(|((sev, kind), _)| {
        *sev == Severity::Error
            && !matches!(
                kind,
                ProblemKind::Value | ProblemKind::Csv | ProblemKind::Template
            )
    });
    let file_level = pre
        .report
        .kept
        .iter()
        .any(|p| p.severity == Severity::Error && p.record.is_none());
    pre.invalid_rows > 0 && !beyond_rows && !file_level
}
