//! `track --export STATUS --to FILE`: the campaign CSV's header and the records of the rows in
//! that state, in CSV order, so that a follow-up is an ordinary campaign over the file.
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use jiff::Timestamp;

use super::files::{self, Recorded, Tracked};
use crate::input::config::Campaign;
use crate::results::RowStatus;

/// A set of rows to export: a tracking state or a results status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportStatus {
    Replied,
    NotReplied,
    Dropped,
    Failed,
    Unknown,
    Skipped,
    Sent,
}

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
    now: Timestamp,
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
        Some(age) => r.finished_at.parse::<Timestamp>().is_ok_and(|at| {
            jiff::SignedDuration::try_from(age).is_ok_and(|age| now.duration_since(at) >= age)
        }),
    };
    recorded
        .values()
        .filter(|r| wanted(r) && old_enough(r))
        .map(|r| r.row)
        .collect()
}

/// The most bytes one record may take; the check bounded the campaign's records far below.
const MAX_RECORD: u64 = 1 << 20;

/// Writes the header and the `rows` of the campaign's CSV to `to` (replaced whole), each record
/// as the file has it, byte for byte; returns how many rows were written. Rows are numbered as
/// `send` numbers them: data records in order, blank lines not counted.
pub(crate) fn write(campaign: &Campaign, rows: &HashSet<u64>, to: &Path) -> anyhow::Result<u64> {
    let csv_path = &campaign.recipients;
    if same_file(csv_path, to) {
        bail!(
            "--to {} is the campaign's own CSV: name another file for the export",
            to.display()
        );
    }
    let open =
        || File::open(csv_path).with_context(|| format!("cannot read {}", csv_path.display()));
    let mut records = csv::ReaderBuilder::new()
        .delimiter(campaign.delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(open()?);
    let mut raw = BufReader::new(open()?);
    let mut raw_at = 0u64;
    let mut written = 0;
    files::replace(to, |out| {
        let mut rec = csv::ByteRecord::new();
        let mut number = 0u64;
        loop {
            let start = records.position().byte();
            if !records.read_byte_record(&mut rec)? {
                break;
            }
            let end = records.position().byte();
            if end - start > MAX_RECORD {
                bail!(
                    "{}: record {number} is longer than {MAX_RECORD} bytes",
                    csv_path.display()
                );
            }
            let wanted = number == 0 || rows.contains(&number);
            number += 1;
            if !wanted {
                continue;
            }
            // The bytes from the end of the record before: blank lines first, then the record.
            std::io::copy(&mut (&mut raw).take(start - raw_at), &mut std::io::sink())?;
            let mut bytes = Vec::with_capacity((end - start) as usize);
            (&mut raw).take(end - start).read_to_end(&mut bytes)?;
            raw_at = end;
            let text = trim_blank_lines(&bytes);
            out.write_all(text)?;
            if !text.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            if number > 1 {
                written += 1;
            }
        }
        Ok(())
    })
    .with_context(|| format!("cannot write the export {}", to.display()))?;
    Ok(written)
}

/// A record's bytes without the blank lines before it.
fn trim_blank_lines(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != b'\n' && *b != b'\r')
        .unwrap_or(bytes.len());
    &bytes[first..]
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
