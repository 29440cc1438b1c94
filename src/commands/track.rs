//! `campaign track`: after a send, who replied, which e-mails were dropped; the rows to follow
//! up; `unknown` rows settled by asking Intercom.
use crate::cli::{ExportStatus, TrackArgs};
use crate::exit::Ended;
use crate::target::{Options, SandboxOptions};
use crate::track::{self, TrackRequest};

pub(super) async fn run(args: TrackArgs) -> Ended {
    let target = Options {
        token: super::env_token(),
        token_file: args.token_file,
        base_url: args.api_base,
        version: args.intercom_version,
        sandbox: args.sandbox.then(|| SandboxOptions {
            contacts: None,
            missing: Vec::new(),
            admins: None,
            log: args.sandbox_log,
            faults: args.faults.settings(),
        }),
        instead: "try --sandbox",
    };
    track::run(TrackRequest {
        results: args.results,
        campaign: args.campaign,
        json: args.json,
        export: args.export.map(export_status),
        to: args.to,
        older_than: args.older_than,
        settle: args.settle,
        settle_missing_after: args.settle_missing_after,
        target,
    })
    .await
}

fn export_status(status: ExportStatus) -> track::ExportStatus {
    match status {
        ExportStatus::Replied => track::ExportStatus::Replied,
        ExportStatus::NotReplied => track::ExportStatus::NotReplied,
        ExportStatus::Dropped => track::ExportStatus::Dropped,
        ExportStatus::Failed => track::ExportStatus::Failed,
        ExportStatus::Unknown => track::ExportStatus::Unknown,
        ExportStatus::Skipped => track::ExportStatus::Skipped,
        ExportStatus::Sent => track::ExportStatus::Sent,
    }
}
