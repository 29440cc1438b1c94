//! `campaign completions`: a shell's completion script, made from the command line's definition.
use crate::cli::CompletionsArgs;

pub(super) fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    crate::cli::manual::completions(args)
}
