//! `campaign check`: preflight and its report, and nothing sent.
use super::summary::{counted, summary_line, warnings_suffix};
use super::{load, preflight, LoadError};
use crate::cli::CheckArgs;
use crate::Status;

/// `campaign check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<Status> {
    let loaded = match load(&args.campaign) {
        Ok(l) => l,
        Err(LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            crate::say!(
                "{}: {}; nothing was sent.",
                args.campaign.display(),
                counted(report.errors, "template error")
            );
            return Ok(Status::Invalid);
        }
        Err(LoadError::Campaign(e)) => return Err(e),
    };
    let pre = preflight(&loaded, args.allow_duplicates, &mut |_, _| None);
    crate::say_part!("{}", pre.report.render());
    let summary = summary_line(&loaded.campaign, &pre);
    if pre.report.has_errors() {
        crate::say!(
            "{summary}: {}, {}.",
            counted(pre.report.errors, "error"),
            counted(pre.report.warnings, "warning")
        );
        Ok(Status::Invalid)
    } else {
        crate::out!("{summary}: ok{}.", warnings_suffix(&pre.report));
        Ok(Status::Ok)
    }
}
