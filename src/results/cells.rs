//! Results cells a spreadsheet opens as text. Support teams open the results file in Excel, and
//! a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is taken there as a
//! formula (OWASP's CSV-injection rule): a recipient id or an error message the server wrote could
//! run one. Such a cell is written with a `'` before it, which spreadsheets show as text; so is a
//! cell that already begins with `'`, which keeps the rule reversible: reading a cell back drops
//! one leading `'`, and gives exactly the value that was written (resume compares recipients
//! read back with freshly rendered ones).
use std::borrow::Cow;

/// The characters that make a spreadsheet read a cell as a formula, and the quote that escapes.
const ESCAPED_FIRST: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

fn needs_quote(value: &str) -> bool {
    value.starts_with(ESCAPED_FIRST)
}

/// `value` as a cell: with a `'` before it when it would otherwise be a formula or begins with `'`.
pub(crate) fn escape(value: &str) -> Cow<'_, str> {
    if needs_quote(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// The value a cell written by [`escape`] holds. A cell [`escape`] could not have written (a
/// `'` before anything else, as a hand edit may leave) is taken as it is.
pub(crate) fn unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_quote(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(unescape("'plain"), "'plain");
    }
}
