//! `[send] skip_replied_to`: a follow-up campaign asks, just before it sends, which recipients
//! of the earlier campaign replied to it (the earlier results' sent messages, searched as
//! `track` does), and records their rows `skipped` (`replied`) instead of messaging them again.
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use anyhow::Context as _;
use serde_json::json;

use super::files;
use super::search::{self, Pacing};
use crate::intercom::pace::Pace;
use crate::results::{self, Ledger, ResultRow, RowStatus};

/// The `error_code` of a row skipped because its recipient replied.
pub(crate) const CODE: &str = "replied";

/// The recipients (as the earlier results name them, and lower-cased) whose message in the
/// earlier results file was replied to. Its ledger's lock is held while it is read.
pub(crate) async fn replied_recipients(
    pace: &Pace,
    earlier: &Path,
) -> anyhow::Result<HashSet<String>> {
    let mut ledger = Ledger::new(earlier.to_path_buf());
    ledger.check_files()?;
    let rows = {
        let _lock = ledger.lock()?;
        files::read_results(earlier).with_context(|| {
            format!(
                "[send] skip_replied_to: cannot read the earlier campaign's results {}",
                earlier.display()
            )
        })?
    };
    let sent: Vec<&files::Recorded> = rows
        .values()
        .filter(|r| r.status == RowStatus::Sent && !r.message_id.is_empty())
        .collect();
    let mut ids: Vec<String> = sent.iter().map(|r| r.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let requests = AtomicU64::new(0);
    let pacing = Pacing {
        pace,
        requests: &requests,
    };
    let query = |batch: &[String]| json!({"field": "source.id", "operator": "IN", "value": batch});
    let found = search::find_all(&pacing, &ids, &query)
        .await
        .with_context(|| {
            format!(
                "[send] skip_replied_to: cannot ask who replied to {}; nothing was sent",
                earlier.display()
            )
        })?;
    let replied: HashSet<&str> = found
        .iter()
        .filter(|f| f.replied())
        .filter_map(|f| f.source.id.as_deref())
        .collect();
    let mut who = HashSet::new();
    let mut rows_replied = 0;
    for r in sent {
        if replied.contains(r.message_id.as_str()) {
            rows_replied += 1;
            who.insert(r.recipient.clone());
            who.insert(r.recipient.to_lowercase());
        }
    }
    crate::say!(
        "{rows_replied} recipients of {} replied to it: their rows are skipped (`replied`)",
        earlier.display()
    );
    Ok(who)
}

/// Whether `recipient` replied, and how the row's line says so.
pub(crate) fn replied_to(replied: &HashSet<String>, recipient: &str) -> Option<&'static str> {
    (replied.contains(recipient) || replied.contains(&recipient.to_lowercase()))
        .then_some("replied to the earlier campaign ([send] skip_replied_to): not messaged again")
}

/// The results line of a row skipped because its recipient replied.
pub(crate) fn replied_row(row: u64, recipient: &str, why: &str) -> ResultRow {
    ResultRow {
        row,
        recipient: recipient.to_string(),
        status: RowStatus::Skipped,
        message_id: String::new(),
        http_status: None,
        error_code: CODE.into(),
        error_message: why.into(),
        request_id: String::new(),
        attempts: 0,
        finished_at: results::now_rfc3339(),
        contact_id: String::new(),
        extra: Vec::new(),
    }
}
