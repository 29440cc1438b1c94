//! `--retry-unknown ROWS` held against the ledger: a named row that is not `unknown` gets nothing
//! from the flag, so the run says which they are (by status) instead of passing over them in
//! silence, and goes on with the named rows that are `unknown`. `all` names no row in particular.
use crate::input::rows::RowSet;
use crate::results::{Prior, RowStatus};

/// Rows shown per group; the rest are counted.
const SHOWN: usize = 20;

/// One line on stderr naming the rows `--retry-unknown` named that are not `unknown`, grouped by
/// what they are, or nothing when every named row is `unknown` (or the flag is absent or `all`).
pub(super) fn say_rows_not_unknown(named: Option<&RowSet>, prior: Option<&Prior>) {
    let Some(RowSet::Ranges(ranges)) = named else {
        return;
    };
    let empty = Prior::default();
    if let Some(line) = rows_not_unknown(ranges, prior.unwrap_or(&empty)) {
        crate::say!("{line}");
    }
}

/// Some of a group's rows, and how many it has.
#[derive(Default)]
struct Listed {
    shown: Vec<u64>,
    count: u64,
}

impl Listed {
    fn add(&mut self, row: u64) {
        if self.shown.len() < SHOWN {
            self.shown.push(row);
        }
        self.count += 1;
    }

    /// `row 7`, `rows 3, 4`, or `rows 3, 4, … (120 in all)`.
    fn rows(&self) -> String {
        let shown: Vec<String> = self.shown.iter().map(u64::to_string).collect();
        match self.count {
            1 => format!("row {}", shown.join(", ")),
            n if n as usize <= self.shown.len() => format!("rows {}", shown.join(", ")),
            n => format!("rows {}, … ({n} in all)", shown.join(", ")),
        }
    }

    /// The group said as `<rows> is|are <what>`, and `: it|they <then>` when there is one.
    fn say(&self, what: &str, then: Option<(&str, &str)>) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let one = self.count == 1;
        let mut s = format!("{} {} {what}", self.rows(), if one { "is" } else { "are" });
        if let Some((singular, plural)) = then {
            s.push_str(": ");
            s.push_str(if one { singular } else { plural });
        }
        Some(s)
    }
}

/// The line for [`say_rows_not_unknown`], `None` when there is nothing to say.
fn rows_not_unknown(ranges: &[(u64, u64)], prior: &Prior) -> Option<String> {
    let ranges = merged(ranges);
    let named = |row: u64| ranges.iter().any(|&(a, b)| (a..=b).contains(&row));
    let (mut sent, mut failed, mut skipped) =
        (Listed::default(), Listed::default(), Listed::default());
    // `failed` rows that carry a message id, and rows the operator marked `skipped`: a resume
    // passes over both.
    let (mut held, mut closed) = (Listed::default(), Listed::default());
    let mut recorded_named = 0u64;
    for (row, status) in prior.recorded().filter(|&(row, _)| named(row)) {
        recorded_named += 1;
        match status {
            RowStatus::Sent => sent.add(row),
            RowStatus::Failed if prior.has_message_id(row) => held.add(row),
            RowStatus::Failed => failed.add(row),
            RowStatus::Skipped if prior.closed(row) => closed.add(row),
            RowStatus::Skipped => skipped.add(row),
            RowStatus::Unknown => {}
        }
    }
    let missing = not_recorded(&ranges, prior, recorded_named);
    let groups: Vec<String> = [
        missing.say("not in the results", None),
        sent.say(
            "sent",
            Some(("it is not sent again", "they are not sent again")),
        ),
        failed.say(
            "failed",
            Some((
                "it goes again as on any resume",
                "they go again as on any resume",
            )),
        ),
        held.say(
            "failed with a message id",
            Some((
                "it is not sent again without --allow-resend",
                "they are not sent again without --allow-resend",
            )),
        ),
        skipped.say(
            "skipped",
            Some((
                "it is checked again as on any resume",
                "they are checked again as on any resume",
            )),
        ),
        closed.say(
            "marked skipped",
            Some(("it is never sent", "they are never sent")),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!groups.is_empty()).then(|| format!("--retry-unknown: {}", groups.join("; ")))
}

/// The named rows the results do not hold: counted from the ranges' sizes (a range may reach far
/// past the campaign's rows), the first few found by walking the ranges past recorded rows.
fn not_recorded(ranges: &[(u64, u64)], prior: &Prior, recorded_named: u64) -> Listed {
    let named = ranges.iter().fold(0u64, |n, &(a, b)| {
        n.saturating_add((b - a).saturating_add(1))
    });
    let mut missing = Listed {
        shown: Vec::new(),
        count: named.saturating_sub(recorded_named),
    };
    'ranges: for &(a, b) in ranges {
        for row in a..=b {
            if missing.shown.len() == SHOWN || missing.shown.len() as u64 == missing.count {
                break 'ranges;
            }
            if prior.status(row).is_none() {
                missing.shown.push(row);
            }
        }
    }
    missing
}

/// The ranges in order, overlapping or adjacent ones joined, so that no row is counted twice.
fn merged(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (a, b) in sorted {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_merged_so_no_row_counts_twice() {
        assert_eq!(
            merged(&[(5, 9), (1, 2), (3, 3), (8, 12)]),
            [(1, 3), (5, 12)]
        );
        assert_eq!(merged(&[(1, u64::MAX), (4, 4)]), [(1, u64::MAX)]);
    }

    #[test]
    fn rows_outside_the_results_are_counted_and_the_first_few_shown() {
        let prior = Prior::default();
        assert_eq!(
            rows_not_unknown(&[(99, 99)], &prior).as_deref(),
            Some("--retry-unknown: row 99 is not in the results")
        );
        let line = rows_not_unknown(&[(1, u64::MAX)], &prior).unwrap();
        assert!(
            line.starts_with("--retry-unknown: rows 1, 2, 3,")
                && line.ends_with(&format!(
                    ", 20, … ({} in all) are not in the results",
                    u64::MAX
                )),
            "{line}"
        );
    }
}
