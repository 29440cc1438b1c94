//! Whether a run is still worth going on with: permanent failures in a row, and the share of
//! failures among the last 100 rows. The writer asks after every outcome.
use std::collections::{HashMap, VecDeque};

use crate::results::{ResultRow, RowStatus};

/// How many recent outcomes the failure share is taken over.
const RECENT_ROWS: usize = 100;

pub(super) struct Health {
    max_failures: u32,
    max_share: f64,
    consecutive: u32,
    /// The last outcomes: `Some(description)` for a failure, `None` otherwise.
    recent: VecDeque<Option<String>>,
}

impl Health {
    pub(super) fn new(max_failures: u32, max_share: f64) -> Health {
        Health {
            max_failures,
            max_share,
            consecutive: 0,
            recent: VecDeque::with_capacity(RECENT_ROWS),
        }
    }

    /// Records the outcome of a row's requests (or of a search for its contact that kept
    /// failing); says why the run should stop, if it should. A row decided without a request of
    /// its own (skipped, no contact, several, a duplicate) is the spreadsheet's news, not the
    /// API's: the writer does not ask about it.
    pub(super) fn record(&mut self, row: &ResultRow) -> Option<String> {
        let failure = (row.status == RowStatus::Failed).then(|| describe(row));
        match failure {
            Some(_) => self.consecutive += 1,
            // An unknown row is neither proof of health nor a permanent failure.
            None if row.status == RowStatus::Sent => self.consecutive = 0,
            None => {}
        }
        if self.recent.len() == RECENT_ROWS {
            self.recent.pop_front();
        }
        self.recent.push_back(failure);
        if self.consecutive > self.max_failures {
            return Some(format!(
                "{} rows in a row failed; most often: {}",
                self.consecutive,
                self.dominant()
            ));
        }
        if self.recent.len() == RECENT_ROWS {
            let failed = self.recent.iter().filter(|f| f.is_some()).count();
            if failed as f64 / RECENT_ROWS as f64 > self.max_share {
                return Some(format!(
                    "{failed} of the last {RECENT_ROWS} rows failed; most often: {}",
                    self.dominant()
                ));
            }
        }
        None
    }

    /// The most frequent recent failure, with its count.
    fn dominant(&self) -> String {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for f in self.recent.iter().flatten() {
            *counts.entry(f.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)))
            .map(|(k, n)| format!("{k} ({n} times)"))
            .unwrap_or_default()
    }
}

fn describe(r: &ResultRow) -> String {
    match (r.http_status, r.error_code.as_str()) {
        (Some(s), "") => format!("HTTP {s}"),
        (Some(s), code) => format!("HTTP {s} {code}"),
        (None, code) => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: RowStatus, http: Option<u16>, code: &str) -> ResultRow {
        ResultRow {
            row: 1,
            recipient: "x".into(),
            status,
            message_id: String::new(),
            http_status: http,
            error_code: code.into(),
            error_message: String::new(),
            request_id: String::new(),
            attempts: 1,
            finished_at: String::new(),
            contact_id: String::new(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn stops_after_a_streak_and_names_the_dominant_error() {
        let mut h = Health::new(3, 1.0);
        let fail = outcome(RowStatus::Failed, Some(422), "parameter_invalid");
        for _ in 0..3 {
            assert_eq!(h.record(&fail), None);
        }
        assert_eq!(
            h.record(&outcome(RowStatus::Sent, Some(200), "")),
            None,
            "a success breaks the streak"
        );
        for _ in 0..3 {
            assert_eq!(h.record(&fail), None);
        }
        let why = h
            .record(&outcome(RowStatus::Failed, None, "connection_failed"))
            .unwrap();
        assert!(
            why.starts_with(
                "4 rows in a row failed; most often: HTTP 422 parameter_invalid (6 times)"
            ),
            "{why}"
        );
    }

    #[test]
    fn stops_when_the_share_of_the_last_100_is_too_high() {
        let mut h = Health::new(1000, 0.5);
        let fail = outcome(RowStatus::Failed, Some(404), "not_found");
        let ok = outcome(RowStatus::Sent, Some(200), "");
        // Alternating: half fail, which is not more than half.
        for i in 0..100 {
            assert_eq!(h.record(if i % 2 == 0 { &fail } else { &ok }), None);
        }
        // Two more failures in place of a success and a failure: 51 of 100.
        assert_eq!(h.record(&fail), None);
        let why = h.record(&fail).unwrap();
        assert!(why.starts_with("51 of the last 100 rows failed"), "{why}");
    }
}
