//! `campaign check`: preflight and its report, and nothing sent.
use super::summary::{summary_line, warnings_suffix};
use super::{load, preflight, LoadError};
use crate::counted;
use crate::exit::{Ended, Failure, Outcome};

/// What `campaign check` is asked.
pub(crate) struct CheckOptions {
    pub campaign: std::path::PathBuf,
    /// Duplicates allowed, or skipped after the first, whatever the campaign file says.
    pub allow_duplicates: bool,
    pub skip_duplicates: bool,
    /// Only the recipients' columns and their template names.
    pub columns: bool,
}

/// `campaign check`.
pub(crate) fn run(args: &CheckOptions) -> Ended {
    if args.columns {
        columns(&args.campaign)?;
        return Ok(Outcome::Done);
    }
    let loaded = match load(&args.campaign) {
        Ok(l) => l,
        Err(LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            crate::say!(
                "{}: {}.",
                args.campaign.display(),
                counted(report.errors, "template error")
            );
            return Err(Failure::Reported);
        }
        Err(LoadError::Campaign(e)) => return Err(e.into()),
    };
    let duplicates = crate::input::config::Duplicates::chosen(
        loaded.campaign.send.duplicates,
        args.allow_duplicates,
        args.skip_duplicates,
    );
    let mut pre = preflight(&loaded, duplicates, &mut |_, _| None);
    for p in refused_by_send(&loaded.campaign) {
        pre.report.push(p);
    }
    crate::say_part!("{}", pre.report.render());
    let summary = summary_line(&loaded.campaign, &pre);
    if pre.report.has_errors() {
        crate::say!(
            "{summary}: {}, {}.",
            counted(pre.report.errors, "error"),
            counted(pre.report.warnings, "warning")
        );
        Err(Failure::Reported)
    } else {
        crate::out!("{summary}: ok{}.", warnings_suffix(&pre.report));
        Ok(Outcome::Done)
    }
}

/// `check --columns`: each column of the recipients file with the names templates know it by.
fn columns(path: &std::path::Path) -> anyhow::Result<()> {
    let campaign = crate::input::config::Campaign::load(path)?;
    let (recipients, _) =
        crate::input::recipients::Recipients::open(&campaign.recipients, campaign.delimiter)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    crate::out!(
        "{}: the names templates know each column by (every cell is also `columns[\"HEADER\"]`):",
        campaign.recipients.display()
    );
    for (i, header) in recipients.columns().iter().enumerate() {
        let names = crate::input::recipients::template_names(header);
        let names = if names.is_empty() {
            "(no name: only `columns[…]`)".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("{{{{ {n} }}}}"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        // A header is the file's text: control characters are shown escaped, never raw.
        crate::out!(
            "  column {}: `{}`  →  {names}",
            i + 1,
            header.escape_debug()
        );
    }
    Ok(())
}

/// What `send` refuses offline besides the rows and templates: the results file's extra columns
/// (`[results] columns`), and an API base URL it would not send to.
fn refused_by_send(c: &crate::input::config::Campaign) -> Vec<crate::input::problem::Problem> {
    use crate::input::problem::{Problem, ProblemKind};
    let file = c.path.display().to_string();
    let mut problems = Vec::new();
    let label = format!("{file}: [results] columns");
    if let Err(e) = crate::results::copied_columns(c, &c.results_columns, &label) {
        let why = format!("{e:#}");
        let why = why.strip_prefix(&format!("{label}: ")).unwrap_or(&why);
        problems.push(
            Problem::error(ProblemKind::Campaign, &file, why.to_string())
                .column("[results] columns"),
        );
    }
    if let Err(e) = crate::input::config::check_base_url(&c.base_url) {
        problems.push(
            Problem::error(ProblemKind::Campaign, &file, format!("{e:#}"))
                .column("[intercom] base_url"),
        );
    }
    problems
}
