//! Results cells a spreadsheet opens as text. Support teams open the results file in Excel, and
//! a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is taken there as a
//! formula (OWASP's CSV-injection rule): a recipient id or an error message the server wrote could
//! run one. Such a cell is written with a `'` before it, which spreadsheets show as text; so is a
//! cell that already begins with `'`, which keeps the rule reversible: reading a cell back drops
//! one leading `'`, and gives exactly the value that was written (resume compares recipients
//! read back with freshly rendered ones).
use std::borrow::Cow;

use crate::results::ResultRow;

/// The characters that make a spreadsheet read a cell as a formula, and the quote that escapes.
const ESCAPED_FIRST: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

fn needs_quote(value: &str) -> bool {
    value.starts_with(ESCAPED_FIRST)
}

/// `value` as a cell: with a `'` before it when it would otherwise be a formula or begins with `'`.
pub fn escape(value: &str) -> Cow<'_, str> {
    if needs_quote(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// The value a cell written by [`escape`] holds.
pub fn unescape(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// A results line with its text cells escaped; the row itself when none needs it (the usual case,
/// which costs a look at five first bytes).
pub fn escape_row(row: &ResultRow) -> Cow<'_, ResultRow> {
    let text = [
        &row.recipient,
        &row.message_id,
        &row.error_code,
        &row.error_message,
        &row.request_id,
    ];
    if !text.iter().any(|v| needs_quote(v)) {
        return Cow::Borrowed(row);
    }
    let mut row = row.clone();
    for v in [
        &mut row.recipient,
        &mut row.message_id,
        &mut row.error_code,
        &mut row.error_message,
        &mut row.request_id,
    ] {
        if let Cow::Owned(e) = escape(v) {
            *v = e;
        }
    }
    Cow::Owned(row)
}

/// The row a results line written from [`escape_row`] holds.
pub fn unescape_row(mut row: ResultRow) -> ResultRow {
    for v in [
        &mut row.recipient,
        &mut row.message_id,
        &mut row.error_code,
        &mut row.error_message,
        &mut row.request_id,
    ] {
        if v.starts_with('\'') {
            v.remove(0);
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RowStatus;
    use proptest::prelude::*;

    #[test]
    fn formulas_become_text_and_other_cells_stay() {
        for (value, cell) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("'quoted", "''quoted"),
            ("a=1", "a=1"),
            (" =1", " =1"),
            ("", ""),
        ] {
            assert_eq!(escape(value), cell, "{value:?}");
            assert_eq!(unescape(&escape(value)), value);
        }
    }

    fn row(recipient: String, message: String) -> ResultRow {
        ResultRow {
            row: 1,
            recipient,
            status: RowStatus::Failed,
            message_id: String::new(),
            http_status: Some(400),
            error_code: "-code".into(),
            error_message: message,
            request_id: "@req".into(),
            attempts: 1,
            finished_at: "2026-01-01T00:00:00.000Z".into(),
            contact_id: String::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Through the csv writer and reader, as the results file is: no cell a spreadsheet
        /// would run, and every value read back as it was.
        #[test]
        fn any_value_round_trips_through_the_csv_file_and_no_cell_is_a_formula(
            recipient in "(['=+@\\t\\r-]{0,3})(\\PC|[\\t\\r\\n,\"'])*",
            message in any::<String>(),
        ) {
            let row = row(recipient, message);
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            w.serialize(&*escape_row(&row)).unwrap();
            let bytes = w.into_inner().unwrap();

            let mut raw = csv::ReaderBuilder::new().has_headers(false).from_reader(&bytes[..]);
            let rec = raw.records().next().unwrap().unwrap();
            for cell in rec.iter() {
                prop_assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?}");
            }
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(&bytes[..]);
            let back: ResultRow = rdr.deserialize().next().unwrap().unwrap();
            prop_assert_eq!(unescape(&rec[1]), row.recipient.as_str());
            prop_assert_eq!(unescape_row(back), row);
        }
    }
}
