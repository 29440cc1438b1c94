//! Which rows the page shows: one pass over the CSV that keeps each row asked for, the first row
//! of each path through the templates' `if`s, and every row with a problem, up to the page's
//! bound.
use std::collections::HashMap;

use super::{Chosen, Reason, Shown, MAX_ROWS};
use crate::check::{Loaded, RowRenderer};
use crate::input::problem::{Problem, Severity};
use crate::input::recipients::{Recipients, Row};
use crate::preview::variants::{self, Variants};
use crate::preview::{FileFacts, Selection};
use crate::template::BoundTemplates;

/// Reads the rows and keeps those the page shows.
pub(super) fn choose(
    selection: Selection,
    loaded: &Loaded,
    recipients: &mut Recipients,
    variants: &Variants,
    header: Vec<Problem>,
    facts: FileFacts,
) -> anyhow::Result<Chosen> {
    let renderer = RowRenderer::new(loaded, recipients);
    let plan = variants.plan(recipients.columns());
    let mut paths = Paths::default();
    let mut chosen = Chosen {
        rows: Vec::new(),
        paths: Vec::new(),
        left_out: 0,
        header,
        total_rows: 0,
        facts,
    };
    // Rows put on the page for a fallback or a duplicate, each kind at most [`NOTED`]: the
    // summary lists the others.
    let mut noted = Noted::default();
    // Once the page has its rows, the rest are only counted: the page says "N of M rows" of
    // the whole file.
    let mut full = false;
    while let Some(next) = recipients.next_row() {
        let row = match next {
            Ok(row) => row,
            Err(p) => {
                // A record that cannot be read: shown as its problem alone.
                let stop = p.record.is_none();
                chosen.total_rows += u64::from(p.record.is_some());
                if !full && (selection.row.is_none() || p.record == selection.row) {
                    push(&mut chosen, unreadable(p), selection);
                }
                if stop {
                    break;
                }
                continue;
            }
        };
        chosen.total_rows += 1;
        if full || selection.row.is_some_and(|r| r != row.number) {
            continue;
        }
        let duplicate_of = chosen.facts.first_of.get(&row.number).copied();
        let Some(shown) = consider(
            selection,
            &renderer,
            plan.as_ref(),
            (&mut paths, &mut noted),
            &row,
            duplicate_of,
        ) else {
            continue;
        };
        push(&mut chosen, shown, selection);
        if selection.row.is_some() || selection.limit.is_some_and(|l| chosen.rows.len() >= l) {
            full = true;
        }
    }
    chosen.paths = paths.in_order;
    if let (Some(r), true) = (selection.row, chosen.rows.is_empty()) {
        anyhow::bail!(
            "{}: there is no record {r}",
            loaded.campaign.recipients.display()
        );
    }
    Ok(chosen)
}

/// Rows a page shows for a fallback given, and for a duplicate, at most each.
const NOTED: u32 = 5;

/// How many rows are on the page for a fallback given and for a duplicate.
#[derive(Default)]
struct Noted {
    defaults: u32,
    duplicates: u32,
}

/// The paths rows took so far, numbered from 1 in order of first appearance.
#[derive(Default)]
struct Paths {
    numbers: HashMap<variants::Path, usize>,
    in_order: Vec<variants::Path>,
}

impl Paths {
    /// The path's number, and whether this row is its first.
    fn number(&mut self, path: variants::Path) -> (usize, bool) {
        if let Some(n) = self.numbers.get(&path) {
            return (*n, false);
        }
        let n = self.numbers.len() + 1;
        self.numbers.insert(path.clone(), n);
        self.in_order.push(path);
        (n, true)
    }
}

/// The row as the page would show it, or `None` when nothing puts it there: rows asked for by
/// `--row` or `--limit` always; otherwise a new path's first row, or a row with problems.
fn consider(
    selection: Selection,
    renderer: &RowRenderer<'_>,
    plan: Option<&BoundTemplates<'_>>,
    (paths, noted): (&mut Paths, &mut Noted),
    row: &Row<'_>,
    duplicate_of: Option<u64>,
) -> Option<Shown> {
    crate::template::filters::take_defaults_used();
    let rendered = renderer.render(row);
    let defaults = crate::template::filters::take_defaults_used();
    let (request, mut problems) = match rendered {
        Ok((request, warnings)) => (Some(request), warnings),
        Err(errors) => (None, errors),
    };
    problems.extend(row.warning.clone());
    let explicit = selection.row.is_some() || selection.limit.is_some();
    let (path, new_path) = match variants::path_of(plan, &row.fields, row.number) {
        Some(p) if !explicit => {
            let (n, new) = paths.number(p);
            (Some(n), new)
        }
        _ => (None, false),
    };
    let mut reasons = reasons(selection, new_path.then_some(path).flatten(), &problems);
    if !explicit {
        if !defaults.is_empty() && noted.defaults < NOTED {
            noted.defaults += 1;
            reasons.push(Reason::Default);
        }
        if let Some(first) = duplicate_of.filter(|_| noted.duplicates < NOTED) {
            noted.duplicates += 1;
            reasons.push(Reason::Duplicate(first));
        }
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Shown {
        number: row.number,
        line: row.line,
        fields: row.fields.iter().map(|f| f.to_string()).collect(),
        request,
        problems,
        reasons,
        path,
        defaults,
        duplicate_of,
    })
}

/// Why a row is on the page: asked for, the first of a path (`new_path`, its number), or its
/// errors or warnings. Empty when none of these holds.
fn reasons(selection: Selection, new_path: Option<usize>, problems: &[Problem]) -> Vec<Reason> {
    if selection.row.is_some() {
        return vec![Reason::Row];
    }
    if selection.limit.is_some() {
        return vec![Reason::Limit];
    }
    let mut reasons = Vec::new();
    if let Some(n) = new_path {
        reasons.push(Reason::FirstOfPath(n));
    }
    if problems.iter().any(|p| p.severity == Severity::Error) {
        reasons.push(Reason::Errors);
    } else if !problems.is_empty() {
        reasons.push(Reason::Warnings);
    }
    reasons
}

fn unreadable(p: Problem) -> Shown {
    Shown {
        number: p.record.unwrap_or(0),
        line: p.line.unwrap_or(0),
        fields: Vec::new(),
        request: None,
        reasons: vec![Reason::Errors],
        problems: vec![p],
        path: None,
        defaults: Vec::new(),
        duplicate_of: None,
    }
}

/// Adds a row unless the page is full; a new path's first row always gets in.
fn push(chosen: &mut Chosen, shown: Shown, selection: Selection) {
    let limit = selection.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    let new_path = shown.reasons.iter().any(|r| r.is_first_of_path());
    if chosen.rows.len() < limit || new_path {
        chosen.rows.push(shown);
    } else {
        chosen.left_out += 1;
    }
}
