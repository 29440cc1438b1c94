//! Settling a ledger: again and again, with rows left in flight, stopped between any two steps,
//! over torn, damaged and corrupt lines.
use super::*;
use crate::results::Journal;
use std::io::Write as _;

fn row(n: u64, status: RowStatus) -> ResultRow {
    ResultRow {
        row: n,
        recipient: format!("r{n}"),
        status,
        message_id: if status == RowStatus::Sent {
            format!("m{n}")
        } else {
            String::new()
        },
        http_status: None,
        error_code: String::new(),
        error_message: String::new(),
        request_id: String::new(),
        attempts: 1,
        finished_at: "2026-11-28T00:00:00.000Z".into(),
        contact_id: String::new(),
        extra: Vec::new(),
    }
}

fn h(s: &str) -> u64 {
    crate::check::recipient_hash("user", s)
}

fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::new(dir.path().join("r.csv"));
    l.lock().unwrap();
    (dir, l)
}

fn header(offset: u64) -> JournalHeader {
    JournalHeader {
        results_offset: offset,
        settings: "s@sandbox".into(),
        content: "c".into(),
        rows: 0,
    }
}

/// `(row, status, message_id)` of each line.
fn lines(l: &Ledger) -> Vec<(String, String, String)> {
    let mut rdr = csv::Reader::from_path(&l.results).unwrap();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[2].to_string(), r[3].to_string())
        })
        .collect()
}

/// A run: journals `rows`, writes the outcomes of `answered`, then stops (killed).
fn run(l: &Ledger, rows: &[u64], answered: &[ResultRow]) {
    let mut w = ResultsWriter::open(&l.results).unwrap();
    let offset = std::fs::metadata(&l.results).unwrap().len();
    let mut j = Journal::start(&l.journal, &header(offset), Arc::clone(l.held().unwrap())).unwrap();
    let journaled: Vec<(u64, String)> = rows.iter().map(|&r| (r, format!("r{r}"))).collect();
    j.in_flight(&journaled).unwrap();
    w.write_all(answered).unwrap();
}

#[test]
fn a_finished_run_settled_again_and_again_keeps_every_sent_row() {
    // Run 1: rows 1-4, two failed. Run 2 (a resume) sends those two, and its results file is
    // compacted when it ends, which moves the lines its journal's offset pointed at.
    let (_d, l) = ledger();
    run(
        &l,
        &[1, 2, 3, 4],
        &[
            row(1, RowStatus::Sent),
            row(2, RowStatus::Failed),
            row(3, RowStatus::Sent),
            row(4, RowStatus::Failed),
        ],
    );
    settle(&l, &h).unwrap();
    run(
        &l,
        &[2, 4],
        &[row(2, RowStatus::Sent), row(4, RowStatus::Sent)],
    );
    let after_run_2 = settle(&l, &h).unwrap();
    assert_eq!(after_run_2.tally.sent, 4);
    let settled = lines(&l);
    // Resumes with nothing to do: nothing becomes `unknown`, nothing changes.
    for _ in 0..3 {
        let p = settle(&l, &h).unwrap();
        assert_eq!((p.tally.sent, p.recovered_unknown), (4, 0));
        assert_eq!(lines(&l), settled);
    }
    assert_eq!(
        settled.iter().map(|l| l.2.as_str()).collect::<Vec<_>>(),
        ["m1", "m3", "m2", "m4"]
    );
}

#[test]
fn journaled_rows_without_an_outcome_become_unknown_once() {
    let (_d, l) = ledger();
    run(&l, &[1], &[row(1, RowStatus::Failed)]);
    settle(&l, &h).unwrap();
    // Row 1 resent and never answered; row 2 answered; row 3 in flight.
    run(&l, &[1, 2, 3], &[row(2, RowStatus::Sent)]);
    let p = settle(&l, &h).unwrap();
    assert_eq!(p.status(1), Some(RowStatus::Unknown));
    assert_eq!(p.status(2), Some(RowStatus::Sent));
    assert_eq!(p.status(3), Some(RowStatus::Unknown));
    assert_eq!(p.recipient_hash(3), Some(h("r3")));
    assert_eq!(p.recovered_unknown, 2);
    let mut journaled = 0;
    let retired = journal::read(&l.journal, &mut |_, _| journaled += 1).unwrap();
    assert_eq!(journaled, 0);
    assert_eq!(
        retired,
        Some(JournalHeader {
            rows: 3,
            ..header(journal::RETIRED)
        })
    );
    assert_eq!(
        p.header,
        Some(header(p.header.as_ref().unwrap().results_offset))
    );
    let again = settle(&l, &h).unwrap();
    assert_eq!(again.recovered_unknown, 0);
    assert_eq!(lines(&l).len(), 3);
}

#[test]
fn the_rows_found_in_flight_are_named_for_this_settling_only() {
    let (_d, l) = ledger();
    run(&l, &[4, 2, 3], &[row(3, RowStatus::Sent)]);
    let p = settle(&l, &h).unwrap();
    assert_eq!(p.recovered, [2, 4]);
    assert!(p.recovered_now(2) && p.recovered_now(4) && !p.recovered_now(3));
    assert!(settle(&l, &h).unwrap().recovered.is_empty());
}

#[test]
fn a_message_id_and_an_operators_skip_are_read_with_the_status() {
    let (_d, l) = ledger();
    let mut edited = row(1, RowStatus::Failed);
    edited.message_id = "m1".into();
    let mut closed = row(2, RowStatus::Skipped);
    closed.error_code = crate::results::MARKED_SKIPPED.into();
    let mut invalid = row(3, RowStatus::Skipped);
    invalid.error_code = "invalid_row".into();
    run(
        &l,
        &[1, 2, 3, 4],
        &[edited, closed, invalid, row(4, RowStatus::Sent)],
    );
    let p = settle(&l, &h).unwrap();
    assert_eq!(
        (1..=4).map(|r| p.has_message_id(r)).collect::<Vec<_>>(),
        [true, false, false, true]
    );
    assert_eq!(
        (1..=4).map(|r| p.closed(r)).collect::<Vec<_>>(),
        [false, true, false, false]
    );
    // A later line of the row decides: sent again, it is no longer closed.
    run(&l, &[2], &[row(2, RowStatus::Sent)]);
    let p = settle(&l, &h).unwrap();
    assert!(!p.closed(2) && p.has_message_id(2));
}

#[test]
fn a_stop_between_any_two_steps_of_settling_loses_nothing() {
    // The unknown lines written, the journal not yet retired (a crash right after): settling
    // again must not add them twice nor lose them.
    let (_d, l) = ledger();
    run(&l, &[1, 2], &[row(1, RowStatus::Sent)]);
    let journal_before = std::fs::read(&l.journal).unwrap();
    settle(&l, &h).unwrap();
    std::fs::write(&l.journal, journal_before).unwrap();
    let p = settle(&l, &h).unwrap();
    assert_eq!((p.tally.sent, p.tally.unknown), (1, 1));
    assert_eq!(p.recovered_unknown, 0, "already recorded");
    assert_eq!(lines(&l).len(), 2);
}

#[test]
fn a_line_torn_at_every_byte_of_a_quoted_multiline_field_is_repaired() {
    let (_d, l) = ledger();
    run(&l, &[1], &[row(1, RowStatus::Sent)]);
    settle(&l, &h).unwrap();
    let before = std::fs::read(&l.results).unwrap();
    let mut failed = row(2, RowStatus::Failed);
    failed.error_message = "line one,\n\"quoted\"\nline three".repeat(3);
    run(&l, &[2], &[failed]);
    let journal = std::fs::read(&l.journal).unwrap();
    let full = std::fs::read(&l.results).unwrap();
    for cut in before.len()..full.len() {
        std::fs::write(&l.results, &full[..cut]).unwrap();
        std::fs::write(&l.journal, &journal).unwrap();
        let p = settle(&l, &h).unwrap_or_else(|e| panic!("cut at {cut}: {e:#}"));
        assert_eq!(p.status(1), Some(RowStatus::Sent), "cut at {cut}");
        // Cut inside the line: row 2's outcome is lost, and the journal makes it unknown.
        // Its last field cut (the timestamp): the outcome is whole and kept.
        let two = p.status(2);
        assert!(
            two == Some(RowStatus::Unknown) || two == Some(RowStatus::Failed),
            "cut at {cut}: {two:?}"
        );
        assert_eq!(lines(&l).len(), 2, "cut at {cut}");
        // And the file reads cleanly again, as many times as it is settled.
        settle(&l, &h).unwrap();
    }
}

#[test]
fn a_damaged_line_no_run_was_writing_is_refused_not_cut() {
    let (_d, l) = ledger();
    run(&l, &[1], &[row(1, RowStatus::Sent)]);
    settle(&l, &h).unwrap();
    let mut f = OpenOptions::new().append(true).open(&l.results).unwrap();
    f.write_all(b"2,r2,sent,m2").unwrap();
    let err = format!("{:#}", settle(&l, &h).unwrap_err());
    assert!(
        err.contains("r.csv: line 3, the last one, is incomplete (4 of 11 cells, no line break at its end), and no run was writing it"),
        "{err}"
    );
    assert!(std::fs::read_to_string(&l.results).unwrap().ends_with("m2"));
}

#[test]
fn a_corrupt_results_line_is_named_not_trusted() {
    let (_d, l) = ledger();
    run(&l, &[1], &[row(1, RowStatus::Sent)]);
    settle(&l, &h).unwrap();
    let mut f = OpenOptions::new().append(true).open(&l.results).unwrap();
    f.write_all(b"99999999999,x,sent,,,,,,1,\n2,x,maybe,,,,,,1,\n")
        .unwrap();
    let err = format!("{:#}", settle(&l, &h).unwrap_err());
    assert!(
        err.contains(
            "r.csv: line 3, column `row`: `99999999999` is not a row number from 1 to 10000000"
        ) && err.contains("restore the file from a copy"),
        "{err}"
    );
}

proptest::proptest! {
    /// A row's record reads back from the table's bytes as it was, whatever it holds.
    #[test]
    fn a_record_reads_back_as_written(
        status in 0u8..=4,
        flags in 0u8..8,
        answered: bool,
        recipient: u64,
        last_line in proptest::option::of(0u32..u32::MAX),
    ) {
        let rec = Rec { status, flags: flags << 3, answered, recipient, last_line };
        proptest::prop_assert_eq!(Rec::decode(rec.encode()), rec);
    }
}

#[test]
fn a_row_never_recorded_reads_as_none() {
    let rec = Rec::decode([0; REC]);
    assert_eq!(rec, Rec::default());
    assert_eq!(rec.last_line, None);
}
