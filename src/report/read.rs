//! Reading what a run left: the results file (by header name, extra columns ignored, the last line
//! of each row read, streamed), the run log beside it, and the campaign's CSV for each row's e-mail or name.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use jiff::Timestamp;

use crate::results::read::{Col, Line, Reader};
use crate::results::RowStatus;

/// One row's outcome, as its last line in the results file says: kept only for the rows the
/// report lists (error examples, `unknown` rows).
#[derive(Debug, Clone)]
pub(crate) struct RowOutcome {
    pub(crate) row: u64,
    pub(crate) recipient: String,
    pub(crate) http_status: Option<u16>,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
    pub(crate) finished_at: Option<Timestamp>,
}

/// A row's last line, as the reader holds it: its cells are read only when a report keeps them.
pub(crate) struct Last<'r> {
    pub(crate) row: u64,
    pub(crate) status: RowStatus,
    pub(crate) http_status: Option<u16>,
    pub(crate) finished_at: Option<Timestamp>,
    reader: &'r Reader,
}

impl Last<'_> {
    pub(crate) fn text(&self, col: Col) -> Cow<'_, str> {
        self.reader.text(col)
    }

    pub(crate) fn outcome(&self) -> RowOutcome {
        RowOutcome {
            row: self.row,
            recipient: self.text(Col::Recipient).into_owned(),
            http_status: self.http_status,
            error_code: self.text(Col::ErrorCode).into_owned(),
            error_message: self.text(Col::ErrorMessage).into_owned(),
            finished_at: self.finished_at,
        }
    }
}

/// How many lines each row has, in two bits a row (3 means three or more, the count then kept
/// aside): a resumed row has a line per run until the file is compacted, and only the last holds.
#[derive(Default)]
struct LineCounts {
    bits: Vec<u8>,
    more: HashMap<u64, u64>,
}

impl LineCounts {
    fn get(&self, row: u64) -> u64 {
        let (i, shift) = ((row / 4) as usize, (row % 4) * 2);
        match self.bits.get(i).map_or(0, |b| (b >> shift) & 3) {
            3 => self.more.get(&row).copied().unwrap_or(3),
            n => u64::from(n),
        }
    }

    fn set(&mut self, row: u64, n: u64) {
        let (i, shift) = ((row / 4) as usize, (row % 4) * 2);
        if i >= self.bits.len() {
            self.bits.resize(i + 1, 0);
        }
        let small = n.min(3) as u8;
        self.bits[i] = (self.bits[i] & !(3 << shift)) | (small << shift);
        if n >= 3 {
            self.more.insert(row, n);
        } else {
            self.more.remove(&row);
        }
    }
}

/// Calls `each` with every row's last line, in the file's order, reading the file twice through
/// the ledger's one reader (first to count each row's lines, then to find its last), so that
/// what is kept per row is two bits, not the row.
pub(crate) fn last_lines(
    path: &Path,
    mut each: impl FnMut(Last<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let open = || -> anyhow::Result<Reader> {
        Reader::open(path)?
            .ok_or_else(|| anyhow::anyhow!("{}: no such results file", path.display()))
    };
    let mut counts = LineCounts::default();
    let mut reader = open()?;
    while let Some(line) = reader.next()? {
        counts.set(line.row, counts.get(line.row) + 1);
    }
    let mut reader = open()?;
    while let Some(line) = reader.next()? {
        let (http_status, finished_at) = times_and_code(&reader, line)?;
        let left = counts.get(line.row).saturating_sub(1);
        counts.set(line.row, left);
        if left == 0 {
            each(Last {
                row: line.row,
                status: line.status,
                http_status,
                finished_at,
                reader: &reader,
            })?;
        }
    }
    Ok(())
}

/// A line's HTTP status and finish time, checked.
fn times_and_code(reader: &Reader, line: Line) -> anyhow::Result<(Option<u16>, Option<Timestamp>)> {
    let http_status = match &*reader.text(Col::HttpStatus) {
        "" => None,
        s => Some(
            s.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    reader.bad(
                        line.line,
                        "http_status",
                        s,
                        "empty or an HTTP status (100 to 599)",
                    )
                })?,
        ),
    };
    let finished_at = match &*reader.text(Col::FinishedAt) {
        "" => None,
        s => Some(s.parse::<Timestamp>().map_err(|_| {
            reader.bad(
                line.line,
                "finished_at",
                s,
                "empty or an RFC 3339 time (2026-01-31T09:00:00.000Z)",
            )
        })?),
    };
    Ok((http_status, finished_at))
}

/// Each wanted row's e-mail (or, without an e-mail column, its name), from the campaign's CSV.
pub(crate) fn contacts(
    campaign: &Path,
    wanted: &HashSet<u64>,
) -> anyhow::Result<BTreeMap<u64, String>> {
    let campaign = crate::input::config::Campaign::load(campaign)?;
    let (mut recipients, _) =
        crate::input::recipients::Recipients::open(&campaign.recipients, campaign.delimiter)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    let pick = contact_columns(recipients.columns());
    let mut found = BTreeMap::new();
    if pick.is_empty() {
        return Ok(found);
    }
    while let Some(next) = recipients.next_row() {
        let Ok(row) = next else { continue };
        if !wanted.contains(&row.number) {
            continue;
        }
        let text = pick
            .iter()
            .filter_map(|i| row.fields.get(*i).map(|f| f.trim()))
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() {
            found.insert(row.number, text);
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    Ok(found)
}

/// The columns that say who a row is: an e-mail column; else a name column; else first and last
/// name together.
fn contact_columns(columns: &[String]) -> Vec<usize> {
    let find = |pred: &dyn Fn(&str) -> bool| {
        columns
            .iter()
            .position(|c| pred(&c.trim().to_ascii_lowercase().replace(['-', ' '], "_")))
    };
    if let Some(i) = find(&|c| c == "email" || c == "e_mail" || c == "email_address")
        .or_else(|| find(&|c| c.contains("email")))
    {
        return vec![i];
    }
    if let Some(i) = find(&|c| c == "name" || c == "full_name") {
        return vec![i];
    }
    [find(&|c| c == "first_name"), find(&|c| c == "last_name")]
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefers_the_email_then_a_name() {
        assert_eq!(
            contact_columns(&cols(&["id", "first_name", "E-Mail"])),
            vec![2]
        );
        assert_eq!(contact_columns(&cols(&["id", "work_email"])), vec![1]);
        assert_eq!(contact_columns(&cols(&["id", "Name"])), vec![1]);
        assert_eq!(
            contact_columns(&cols(&["last_name", "id", "first_name"])),
            vec![2, 0]
        );
        assert!(contact_columns(&cols(&["id", "plan"])).is_empty());
    }
}
