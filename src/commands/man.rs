//! `campaign man`: the manual page, made from the command line's definition.
use crate::cli::ManArgs;

pub(super) fn run(args: &ManArgs) -> anyhow::Result<()> {
    crate::cli::manual::man(args)
}
