//! A results line: its columns (a contract with users' spreadsheets), its status and timestamp.
use serde::{Deserialize, Serialize};

use super::MAX_ROWS;

/// The results file's columns, in order: a contract with users' spreadsheets.
pub(crate) const COLUMNS: [&str; 10] = [
    "row",
    "recipient",
    "status",
    "message_id",
    "http_status",
    "error_code",
    "error_message",
    "request_id",
    "attempts",
    "finished_at",
];

/// The column after the contract's ten: the contact id a row's message went to, when the row
/// addressed its contact by e-mail or external id.
pub(crate) const CONTACT_ID: &str = "contact_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    Sent,
    Failed,
    Unknown,
    Skipped,
}

impl RowStatus {
    pub(crate) fn code(self) -> u8 {
        match self {
            RowStatus::Sent => 1,
            RowStatus::Failed => 2,
            RowStatus::Unknown => 3,
            RowStatus::Skipped => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<RowStatus> {
        match c {
            1 => Some(RowStatus::Sent),
            2 => Some(RowStatus::Failed),
            3 => Some(RowStatus::Unknown),
            4 => Some(RowStatus::Skipped),
            _ => None,
        }
    }

    /// As the `status` column writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RowStatus::Sent => "sent",
            RowStatus::Failed => "failed",
            RowStatus::Unknown => "unknown",
            RowStatus::Skipped => "skipped",
        }
    }

    /// The status a results line's `status` field names.
    pub(crate) fn from_field(field: &[u8]) -> Option<RowStatus> {
        match field {
            b"sent" => Some(RowStatus::Sent),
            b"failed" => Some(RowStatus::Failed),
            b"unknown" => Some(RowStatus::Unknown),
            b"skipped" => Some(RowStatus::Skipped),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResultRow {
    pub(crate) row: u64,
    pub(crate) recipient: String,
    pub(crate) status: RowStatus,
    pub(crate) message_id: String,
    pub(crate) http_status: Option<u16>,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
    pub(crate) request_id: String,
    pub(crate) attempts: u32,
    pub(crate) finished_at: String,
    /// The Intercom contact messaged, when the row addressed it by e-mail or external id (an
    /// added last column, after the contract's ten; empty for rows not resolved).
    #[serde(default)]
    pub(crate) contact_id: String,
    /// The row's values of the CSV columns the campaign copies into the results
    /// (`[results] columns`), written after the fixed columns.
    #[serde(skip)]
    pub(crate) extra: Vec<String>,
}

/// A results or journal line's `row` that is not one: the one reading of a row number, so that
/// every reader of the ledger agrees on which lines name a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadRow {
    #[error("`row` is not a number")]
    NotANumber,
    #[error("`row` {0} is out of range (1 to {MAX_ROWS})")]
    OutOfRange(u64),
}

/// A row number as the ledger writes it: a CSV record number from 1 to [`MAX_ROWS`].
pub(crate) fn row_number(field: &[u8]) -> Result<u64, BadRow> {
    let row: u64 = std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(BadRow::NotANumber)?;
    match row {
        1..=MAX_ROWS => Ok(row),
        _ => Err(BadRow::OutOfRange(row)),
    }
}

/// The `error_code` of a row the operator decided not to send (`campaign mark --as skipped`):
/// such a row is never sent by a resume.
pub(crate) const MARKED_SKIPPED: &str = "marked_skipped";

/// Whether a `failed` row's outcome comes again when the same request is sent again: Intercom
/// refused the request itself (a 4xx but 401 and 403, which the token's fix cures, and 408 and
/// 429, which pass), or the lookup found no contact, several, or one an earlier row has. Such a
/// row needs its CSV row or its contact fixed, or to be closed (`mark --as skipped`): a plain
/// `--resume` only fails it again. A failure with no answer (a connection, a shed 503) passes.
pub(crate) fn fails_again(http_status: Option<u16>, error_code: &str) -> bool {
    let refused =
        http_status.is_some_and(|s| (400..500).contains(&s) && !matches!(s, 401 | 403 | 408 | 429));
    refused
        || matches!(
            error_code,
            "contact_not_found" | "ambiguous_contact" | "duplicate_contact"
        )
}

/// The `error_code` of a row that was in flight when its run stopped (`ResultRow::interrupted`).
pub(crate) const INTERRUPTED: &str = "interrupted";

impl ResultRow {
    /// The line of a row whose request was in flight when its run stopped: it may have been
    /// delivered, so it is never sent again unless asked.
    pub(crate) fn interrupted(row: u64, recipient: String, why: &str) -> ResultRow {
        ResultRow {
            row,
            recipient,
            status: RowStatus::Unknown,
            message_id: String::new(),
            http_status: None,
            error_code: INTERRUPTED.into(),
            error_message: why.into(),
            request_id: String::new(),
            attempts: 1,
            finished_at: now_rfc3339(),
            contact_id: String::new(),
            extra: Vec::new(),
        }
    }
}

/// RFC 3339 UTC to the millisecond.
pub(crate) fn now_rfc3339() -> String {
    rfc3339_at(std::time::SystemTime::now())
}

fn rfc3339_at(at: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_past_the_millisecond_are_cut_not_rounded() {
        // Rounding up would put a row in the next second, or the next day.
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_767_225_599_999_999_999);
        assert_eq!(rfc3339_at(at), "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_row_number_is_a_record_number_the_ledger_can_hold() {
        assert_eq!(row_number(b"1"), Ok(1));
        assert_eq!(row_number(MAX_ROWS.to_string().as_bytes()), Ok(MAX_ROWS));
        assert_eq!(row_number(b"0"), Err(BadRow::OutOfRange(0)));
        let over = MAX_ROWS + 1;
        assert_eq!(
            row_number(over.to_string().as_bytes()),
            Err(BadRow::OutOfRange(over))
        );
        for bad in [&b""[..], b"x", b" 5", b"-1", b"\xff"] {
            assert_eq!(row_number(bad), Err(BadRow::NotANumber), "{bad:?}");
        }
        assert_eq!(
            BadRow::OutOfRange(0).to_string(),
            "`row` 0 is out of range (1 to 10000000)"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_millisecond() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(
            rfc3339_at(UNIX_EPOCH + Duration::from_millis(1_767_225_600_042)),
            "2026-01-01T00:00:00.042Z"
        );
        assert_eq!(
            rfc3339_at(UNIX_EPOCH + Duration::from_millis(1_767_225_599_999)),
            "2025-12-31T23:59:59.999Z"
        );
    }
}
