//! `track --export STATUS --to FILE`: the campaign CSV's header and the records of the rows in
//! that state, in CSV order, so that a follow-up is an ordinary campaign over the file.
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::files::{self, Recorded, Tracked};
use crate::cli::ExportStatus;
use crate::input::config::Campaign;
use crate::input::recipients::Recipients;
use crate::results::RowStatus;

/// Whether the rows of `status` are known from the results alone (no search needed).
pub(crate) fn from_ledger_alone(status: ExportStatus) -> bool {
    !matches!(
        status,
        ExportStatus::Replied | ExportStatus::NotReplied | ExportStatus::Dropped
    )
}

/// The rows `status` names, at least `older_than` old by their `finished_at`.
pub(crate) fn chosen(
    status: ExportStatus,
    recorded: &BTreeMap<u64, Recorded>,
    tracked: &BTreeMap<u64, Tracked>,
    older_than: Option<Duration>,
    now: OffsetDateTime,
) -> HashSet<u64> {
    let state = |r: &Recorded| tracked.get(&r.row).map(|t| t.state.as_str());
    let wanted = |r: &Recorded| match status {
        ExportStatus::Failed => r.status == RowStatus::Failed,
        ExportStatus::Unknown => r.status == RowStatus::Unknown,
        ExportStatus::Skipped => r.status == RowStatus::Skipped,
        ExportStatus::Sent => r.status == RowStatus::Sent,
        ExportStatus::Replied => r.status == RowStatus::Sent && state(r) == Some("replied"),
        ExportStatus::NotReplied => r.status == RowStatus::Sent && state(r) == Some("not_replied"),
        ExportStatus::Dropped => r.status == RowStatus::Sent && state(r) == Some("dropped"),
    };
    let old_enough = |r: &Recorded| match older_than {
        None => true,
        Some(age) => {
            OffsetDateTime::parse(&r.finished_at, &Rfc3339).is_ok_and(|at| now - at >= age)
        }
    };
    recorded
        .values()
        .filter(|r| wanted(r) && old_enough(r))
        .map(|r| r.row)
        .collect()
}

/// Writes the header and the `rows` of the campaign's CSV to `to` (replaced whole); returns how
/// many rows were written.
pub(crate) fn write(campaign: &Campaign, rows: &HashSet<u64>, to: &Path) -> anyhow::Result<u64> {
    if same_file(&campaign.recipients, to) {
        bail!(
            "--to {} is the campaign's own CSV: name another file for the export",
            to.display()
        );
    }
    let (mut recipients, _) = Recipients::open(&campaign.recipients, campaign.delimiter)
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let columns = recipients.columns().to_vec();
    let mut written = 0;
    files::replace(to, |out| {
        let mut w = csv::WriterBuilder::new()
            .delimiter(campaign.delimiter)
            .from_writer(out);
        w.write_record(&columns)?;
        while let Some(row) = recipients.next_row() {
            let row = row.map_err(|p| anyhow::anyhow!("{p}"))?;
            if rows.contains(&row.number) {
                w.write_record(&row.fields)?;
                written += 1;
            }
        }
        w.flush()?;
        Ok(())
    })
    .with_context(|| format!("cannot write the export {}", to.display()))?;
    Ok(written)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
