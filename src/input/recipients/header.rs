//! The header row's checks: names that are not UTF-8, empty, padded with spaces, repeated, or
//! the same name to a template; and a one-column header that looks split by another delimiter.
//! Errors mean no row can be trusted; warnings stop nothing.
use std::collections::HashMap;

use csv::ByteRecord;

use crate::input::problem::{Problem, ProblemKind};

/// The column names (trimmed; empty for one that is not UTF-8) and what is wrong with them.
pub(super) fn columns(
    name: &str,
    header: &ByteRecord,
    delimiter: u8,
) -> (Vec<String>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut columns: Vec<String> = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        let column = column(name, i + 1, raw, &columns, &mut problems);
        columns.push(column);
    }
    problems.extend(name_collisions(name, &columns));
    problems.extend(delimiter_hint(name, &columns, delimiter));
    (columns, problems)
}

/// Column `col` (from 1) as the rows' cells are known by, given the names before it.
fn column(
    name: &str,
    col: usize,
    raw: &[u8],
    before: &[String],
    problems: &mut Vec<Problem>,
) -> String {
    let at = |p: Problem| p.line(1).column(format!("column {col}"));
    let Ok(text) = std::str::from_utf8(raw) else {
        problems.push(at(Problem::error(
            ProblemKind::Csv,
            name,
            "the header name has bytes that are not UTF-8; save the file as UTF-8",
        )));
        return String::new();
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        problems.push(at(Problem::error(
            ProblemKind::Csv,
            name,
            "empty header name",
        )));
    } else if trimmed != text {
        problems.push(at(Problem::warning(
            ProblemKind::Csv,
            name,
            format!("header `{text}` has leading or trailing spaces; it is used as `{trimmed}`"),
        )));
    }
    if !trimmed.is_empty() && before.iter().any(|c| c == trimmed) {
        problems.push(at(Problem::error(
            ProblemKind::Csv,
            name,
            format!("duplicate header name `{trimmed}`"),
        )));
    }
    trimmed.to_string()
}

/// Headers that templates would know by the same name (`names::template_names`): `First name` and
/// `first_name` are both `first_name`, `Email` and `email` both `email`, and a template could not
/// tell which it reads. (Headers that are the same text are reported as duplicates.)
fn name_collisions(file: &str, columns: &[String]) -> Vec<Problem> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (i, header) in columns.iter().enumerate() {
        for name in super::names::template_names(header) {
            match first.get(&name) {
                Some(&j) if columns[j] != *header => {
                    problems.push(
                        Problem::error(
                            ProblemKind::Csv,
                            file,
                            format!(
                                "headers `{}` (column {}) and `{header}` are both `{name}` in templates; rename one of them",
                                columns[j],
                                j + 1
                            ),
                        )
                        .line(1)
                        .column(format!("column {}", i + 1)),
                    );
                    break;
                }
                Some(_) => {}
                None => {
                    first.insert(name, i);
                }
            }
        }
    }
    problems
}

/// A header of one column that holds another common delimiter: the file is likely separated by
/// it, and the campaign file should say so.
fn delimiter_hint(name: &str, columns: &[String], delimiter: u8) -> Option<Problem> {
    let [only] = columns else {
        return None;
    };
    let d = [b';', b'\t', b',', b'|']
        .into_iter()
        .find(|d| *d != delimiter && only.as_bytes().contains(d))?;
    let shown = if d == b'\t' {
        "\\t".to_string()
    } else {
        (d as char).to_string()
    };
    Some(
        Problem::warning(
            ProblemKind::Csv,
            name,
            format!("the header has one column but looks separated by `{shown}`; set delimiter = \"{shown}\" in the campaign file"),
        )
        .line(1),
    )
}
