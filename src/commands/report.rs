//! `campaign report`: a results file summarized.
use crate::cli::ReportArgs;
use crate::report::Asked;

pub(super) fn run(args: &ReportArgs) -> anyhow::Result<()> {
    crate::report::run(&Asked {
        results: args.results.clone(),
        campaign: args.campaign.clone(),
        html: args.html.clone(),
        json: args.json,
        csv: args.csv,
    })
}
