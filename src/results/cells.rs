//! Results cells a spreadsheet opens as text. Support teams open the results file in Excel, and
//! a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is taken there as a
//! formula (OWASP's CSV-injection rule): a recipient id or an error message the server wrote could
//! run one. Such a cell is written with a `'` before it, which spreadsheets show as text; so is a
//! cell that already begins with `'`, which keeps the rule reversible: reading a cell back drops
//! one leading `'`, and gives exactly the value that was written (resume compares recipients
//! read back with freshly rendered ones).
//!
//! Text shown on a terminal or a page is made inert here too ([`inert`]): a control character
//! from outside (an escape sequence in an admin's display name, a server's error, a cell) would
//! otherwise clear the screen, retitle the window or write to the clipboard (OSC 52).
use std::borrow::Cow;

/// Whether `c` is a control character a terminal acts on: C0 but tab and line feed, DEL, C1.
fn is_control(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// `text` with every control character but tab and line feed (C0, ESC, DEL, C1) written as
/// `\u{..}`, which a terminal shows and does not act on. Borrowed when there is none.
pub(crate) fn inert(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text as the terminal may show it, still JSON that reads back the same: serde_json
/// escapes C0 itself but writes DEL and C1 (U+009B is a terminal's CSI) as they are; here they
/// become `\u00..` escapes. Outside its strings, JSON text holds no such character, and inside
/// one a raw character is never part of an escape, so the result is valid JSON.
pub(crate) fn inert_json(text: String) -> String {
    let raw = |c: char| c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c);
    if !text.chars().any(raw) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if raw(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

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
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(inert("plain\ttext\nnext"), "plain\ttext\nnext");
        assert_eq!(
            inert("Ann\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\r\u{7f}\u{9b}31m"),
            "Ann\\u{1b}]52;c;aGk=\\u{7}\\u{1b}[2J\\u{d}\\u{7f}\\u{9b}31m"
        );
        assert!(matches!(inert("é ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_keeps_its_meaning_and_drives_no_terminal() {
        let name = "Eve\u{1b}]52;c;aGk=\u{7}\u{7f}\u{9b}31m\u{85}é";
        let text =
            inert_json(serde_json::to_string_pretty(&serde_json::json!({ "name": name })).unwrap());
        assert!(!text.chars().any(is_control_but_line_break), "{text:?}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["name"], name);
        assert!(text.contains("\\u007f\\u009b31m\\u0085é"), "{text}");
    }

    fn is_control_but_line_break(c: char) -> bool {
        c.is_control() && c != '\n'
    }

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
