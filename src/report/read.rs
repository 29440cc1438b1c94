//! Reading what a run left: the results file (by header name, extra columns ignored, the last line
//! of each row kept), the run log beside it, and the campaign's CSV for each row's e-mail or name.
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;

use crate::results::read::{Col, Reader};
use crate::results::RowStatus;

/// One row's outcome, as its last line in the results file says.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) row: u64,
    pub(crate) recipient: String,
    pub(crate) status: RowStatus,
    pub(crate) http_status: Option<u16>,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
    pub(crate) finished_at: Option<Timestamp>,
}

/// One run from `<results>.runs.jsonl` (appended when a run ends).
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) started_at: Timestamp,
    pub(crate) ended_at: Timestamp,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    pub(crate) rate_limited: u64,
    pub(crate) paused_ms: u64,
    /// Where the messages went: `sandbox` for a rehearsal, else the API's URL.
    pub(crate) target: String,
}

/// A run log line as written; the fields a report does not use (`rate`, `skipped`, `exit`) are
/// not read, so that a log with more of them still reads.
#[derive(Debug, Deserialize)]
struct RunLine {
    started_at: String,
    ended_at: String,
    #[serde(default)]
    pub(crate) sent: u64,
    #[serde(default)]
    pub(crate) failed: u64,
    #[serde(default)]
    pub(crate) unknown: u64,
    #[serde(default)]
    pub(crate) rate_limited: u64,
    #[serde(default)]
    pub(crate) paused_ms: u64,
    #[serde(default)]
    target: String,
}

/// The run log's path: the results file's, plus `.runs.jsonl`.
pub(crate) fn runs_path(results: &Path) -> PathBuf {
    let mut name = results.as_os_str().to_owned();
    name.push(".runs.jsonl");
    PathBuf::from(name)
}

/// Every row's last outcome, by row number, read by the ledger's one reader of results files.
pub(crate) fn outcomes(path: &Path) -> anyhow::Result<BTreeMap<u64, Outcome>> {
    let Some(mut reader) = Reader::open(path)? else {
        anyhow::bail!("{}: no such results file", path.display());
    };
    let mut rows = BTreeMap::new();
    while let Some(line) = reader.next()? {
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
        let outcome = Outcome {
            row: line.row,
            recipient: reader.text(Col::Recipient).into_owned(),
            status: line.status,
            http_status,
            error_code: reader.text(Col::ErrorCode).into_owned(),
            error_message: reader.text(Col::ErrorMessage).into_owned(),
            finished_at,
        };
        // A resumed row has a line per run until the file is compacted: the last one holds.
        rows.insert(line.row, outcome);
    }
    Ok(rows)
}

/// The run log's runs in order, or none when there is no log (an older `send` wrote none).
pub(crate) fn runs(results: &Path) -> anyhow::Result<Vec<Run>> {
    let path = runs_path(results);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("{}: cannot read the run log: {e}", path.display()),
    };
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: String| {
            anyhow::anyhow!(
                "{}: line {}: {what}; each line is one run's JSON object (see the README): \
                 fix or delete the line",
                path.display(),
                i + 1
            )
        };
        let run: RunLine =
            serde_json::from_str(line).map_err(|e| at(format!("column {}: {e}", e.column())))?;
        let time = |key: &str, value: &str| {
            value.parse::<Timestamp>().map_err(|_| {
                at(format!(
                    "key `{key}`: `{value}` is not an RFC 3339 time (2026-01-31T09:00:00.000Z)"
                ))
            })
        };
        runs.push(Run {
            started_at: time("started_at", &run.started_at)?,
            ended_at: time("ended_at", &run.ended_at)?,
            sent: run.sent,
            failed: run.failed,
            unknown: run.unknown,
            rate_limited: run.rate_limited,
            paused_ms: run.paused_ms,
            target: run.target,
        });
    }
    runs.sort_by_key(|r| r.started_at);
    Ok(runs)
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
