//! `campaign check`: every row and template, offline.
use crate::check::CheckOptions;
use crate::cli::CheckArgs;
use crate::exit::Ended;

pub(super) fn run(args: &CheckArgs) -> Ended {
    crate::check::run(&CheckOptions {
        campaign: args.campaign.clone(),
        allow_duplicates: args.allow_duplicates,
        skip_duplicates: args.skip_duplicates,
        columns: args.columns,
    })
}
