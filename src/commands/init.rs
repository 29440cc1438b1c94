//! `campaign init`: a first campaign file and message template.
use crate::cli::InitArgs;

pub(super) fn run(args: &InitArgs) -> anyhow::Result<()> {
    crate::init::run(args.dir.as_deref(), args.from_csv.as_deref())
}
