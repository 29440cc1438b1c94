//! `campaign mark`: what the operator found in Intercom, recorded in the results file.
use crate::cli::{MarkArgs, MarkAs};
use crate::results::mark::{self, Marking};

pub(super) fn run(args: &MarkArgs) -> anyhow::Result<()> {
    mark::run(&Marking {
        results: args.results.clone(),
        rows: args.rows.clone(),
        as_status: match args.as_status {
            MarkAs::Sent => mark::MarkAs::Sent,
            MarkAs::Failed => mark::MarkAs::Failed,
            MarkAs::Skipped => mark::MarkAs::Skipped,
        },
        note: args.note.clone(),
        message_id: args.message_id.clone(),
    })
}
