//! Preflight: the campaign's own warnings, the CSV's header, variables that are not columns, then
//! one pass over every row (see `pass`) that reports each row's problems and keeps what send
//! needs, then duplicates. Each problem is reported once, where it can be fixed.
use super::duplicates::{self, Seen};
use super::hash::Fingerprint;
use super::pass::each_rendered;
use super::row::RowRenderer;
use super::spill::{Hashes, SpillError};
use super::Loaded;
use crate::counted;
use crate::input::config::{BodyFormat, Campaign, Duplicates};
use crate::input::problem::{Problem, ProblemKind, Report};
use crate::input::recipients::Recipients;
use crate::template::Rendered;

/// What a full pass over the rows found.
#[derive(Debug, Default)]
pub struct Preflight {
    pub report: Report,
    pub rows: u64,
    pub invalid_rows: u64,
    pub duplicate_rows: u64,
    /// A hash of every row's rendered request, in order: the campaign's content fingerprint.
    pub content_hash: u64,
    /// Whether rows were rendered (not when a template cannot be).
    pub rendered: bool,
    /// Each row whose recipient an earlier row has, with that first row, in record order;
    /// empty when duplicates are refused (the report says them, and nothing goes on).
    pub duplicates: Vec<(u64, u64)>,
}

/// What `preflight` calls with each valid row's number and rendering (send keeps each row's
/// `row_hash`; resume compares recipients with an earlier run); a problem it returns goes into
/// the report.
pub type OnRow<'a> = dyn FnMut(u64, &Rendered) -> Option<Problem> + Send + 'a;

/// Reads and renders every row.
pub fn preflight(loaded: &Loaded, duplicates: Duplicates, on_row: &mut OnRow<'_>) -> Preflight {
    let mut out = Preflight::default();
    for w in &loaded.campaign.warnings {
        out.report.push(Problem::warning(
            ProblemKind::Campaign,
            loaded.campaign.path.display().to_string(),
            w.clone(),
        ));
    }
    let Some(mut recipients) = open_recipients(loaded, &mut out.report) else {
        return out;
    };
    let file = recipients.file_name().to_string();
    let columns = recipients.columns().to_vec();
    report_unknown_variables(loaded, &columns, &file, &mut out.report);
    // With a template that cannot render, rows are still read: their CSV problems are reported
    // in the same pass, so the file can be fixed at once.
    out.rendered = !out.report.has_errors();
    let renderer = RowRenderer::new(loaded, &recipients);
    let render = out.rendered.then_some(&renderer);
    let hashes = first_pass(loaded, &mut recipients, render, &mut out, on_row);
    drop(recipients);
    if out.rows == 0 {
        out.report.push(no_records(&file));
    }
    if let Some(p) = too_many_records(&file, out.rows, crate::results::MAX_ROWS) {
        out.report.push(p);
    }
    // The rows themselves are gone, and so are their numbers: sorting the hashes is what
    // finding duplicates costs.
    let (repeated, duplicate_rows) = match hashes.and_then(Hashes::repeated) {
        Ok(found) => found,
        Err(e) => {
            out.report.push(e.problem());
            return out;
        }
    };
    out.duplicate_rows = duplicate_rows;
    if !repeated.is_empty() {
        let seen = Seen {
            columns: &columns,
            rows: out.rows,
            duplicate_rows: out.duplicate_rows,
            content_hash: out.content_hash,
        };
        // The duplicates' problems are counted, not all kept (a report keeps its first few),
        // and their list is kept only when something goes on past them (send skips them, a
        // preview shows them): refused, a file of one recipient on every row costs no memory
        // per row here.
        let mut found = Report::default();
        let mut listed = Vec::new();
        let list = duplicates != Duplicates::Refuse;
        let same = duplicates::find(loaded, &renderer, &repeated, &seen, &mut |number, first| {
            found.push(duplicates::problem(&file, number, first, duplicates));
            if list {
                listed.push((number, first));
            }
        });
        // When the second pass did not read what the first did, that error alone.
        match same {
            true => {
                out.report.append(found);
                out.duplicates = listed;
            }
            false => out.report.push(duplicates::changed(&file)),
        }
    }
    out
}

/// The recipients file, open, with its header's problems reported; `None` when it cannot be
/// read past them.
fn open_recipients(loaded: &Loaded, report: &mut Report) -> Option<Recipients> {
    match Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter) {
        Ok((recipients, header)) => {
            for p in header {
                report.push(p);
            }
            (!report.has_errors()).then_some(recipients)
        }
        Err(p) => {
            report.push(p);
            None
        }
    }
}

/// An error for each variable the templates read that is not a column, with the closest column
/// or else all of them.
fn report_unknown_variables(loaded: &Loaded, columns: &[String], file: &str, report: &mut Report) {
    for v in loaded.templates.unknown_variables(columns) {
        let hint = match v.suggestion {
            Some(s) => format!("; did you mean `{s}`?"),
            None => format!(
                "; the columns are: {}",
                crate::template::vars::names_of(columns)
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let problem = Problem::error(
            ProblemKind::Template,
            &v.origin,
            format!("`{}` is not a column of {file}{hint}", v.name),
        );
        // A template file's lines are the file's; an inline one's are its value's.
        report.push(match v.at {
            Some((line, column)) if v.in_file => problem
                .line(line)
                .column(format!("column {column}, variable `{}`", v.name)),
            Some((1, column)) => problem.column(format!(
                "variable `{}` at column {column} of the value",
                v.name
            )),
            Some((line, column)) => problem.column(format!(
                "variable `{}` at line {line}, column {column} of the value",
                v.name
            )),
            None => problem.column(format!("variable `{}`", v.name)),
        });
    }
}

/// Every row, in order: its problems into the report, and for each valid row its recipient's
/// hash (returned, sorted in bounded memory: see `spill`), its part of the content fingerprint,
/// and `on_row`. Past the most rows a campaign holds, hashes are no longer kept: the file is
/// refused for its size, and its duplicates would only add temporary files.
fn first_pass(
    loaded: &Loaded,
    recipients: &mut Recipients,
    renderer: Option<&RowRenderer<'_>>,
    out: &mut Preflight,
    on_row: &mut OnRow<'_>,
) -> Result<Hashes, SpillError> {
    let campaign = &loaded.campaign;
    let mut hashes = Ok(Hashes::new(&campaign.recipients));
    let mut content = Fingerprint::default();
    let mut template_html = TemplateHtml::of(campaign).map(|t| (t, 0u64));
    each_rendered(recipients, renderer, &mut |slot| {
        out.rows += 1;
        if let Some(p) = slot.bad.take() {
            out.invalid_rows += 1;
            out.report.push(p);
            return;
        }
        if let Some(w) = slot.warning.take() {
            out.report.push(w);
        }
        match slot.checked.take() {
            None => {}
            Some(Ok(warnings)) => {
                push_warnings(warnings, &mut template_html, &mut out.report);
                if let (Ok(h), true) = (&mut hashes, out.rows <= crate::results::MAX_ROWS) {
                    // After an error, no more: the pass goes on for the rows' own problems.
                    if let Err(e) = h.push(duplicates::key_hash(campaign, &slot.rendered.to_id)) {
                        hashes = Err(e);
                    }
                }
                content.add(slot.number, campaign, &slot.rendered);
                if let Some(p) = on_row(slot.number, &slot.rendered) {
                    out.report.push(p);
                }
            }
            Some(Err(problems)) => {
                out.invalid_rows += 1;
                for p in problems {
                    out.report.push(p);
                }
            }
        }
    });
    if let Some((t, rows @ 1..)) = template_html {
        out.report.push(t.once(rows));
    }
    out.content_hash = content.digest();
    hashes
}

/// A valid row's warnings into the report, except the body template's own HTML imbalance,
/// which is counted, to be said once.
fn push_warnings(
    warnings: Vec<Problem>,
    template_html: &mut Option<(TemplateHtml, u64)>,
    report: &mut Report,
) {
    for w in warnings {
        match template_html {
            Some((t, rows)) if t.is(&w) => *rows += 1,
            _ => report.push(w),
        }
    }
}

/// A header and nothing else is a CSV cut short or the wrong file, not a campaign done.
/// More rows than a results file holds (`most`): its row numbers are bounded, so a send would
/// journal rows that no later run could read back.
pub(super) fn too_many_records(file: &str, rows: u64, most: u64) -> Option<Problem> {
    (rows > most).then(|| {
        Problem::error(
            ProblemKind::Csv,
            file,
            format!(
                "the file has {rows} records; a campaign holds at most {most} (its results file's bound): split the CSV into campaigns of at most that many rows"
            ),
        )
    })
}

fn no_records(file: &str) -> Problem {
    Problem::error(
        ProblemKind::Csv,
        file,
        "the file has a header row but no records: add one row per recipient below it",
    )
    .line(1)
}

/// An imbalance in the HTML body template's own text: every row that renders it has the same
/// warning, which belongs to the template, so it is said once, at the template's line, with the
/// number of rows, instead of once per row.
struct TemplateHtml {
    origin: String,
    line: u64,
    message: String,
}

impl TemplateHtml {
    fn of(c: &Campaign) -> Option<TemplateHtml> {
        if c.body_format != BodyFormat::Html {
            return None;
        }
        let (at, why) = crate::template::html::unbalanced_at(&c.body.source)?;
        Some(TemplateHtml {
            origin: c.body.origin.clone(),
            line: line_of(&c.body.source, at),
            message: format!("the body's HTML does not balance: {why}"),
        })
    }

    /// Whether a row's warning is this one.
    fn is(&self, w: &Problem) -> bool {
        w.kind == ProblemKind::Html && w.message == self.message
    }

    fn once(self, rows: u64) -> Problem {
        Problem::warning(
            ProblemKind::Html,
            self.origin,
            format!("{} (in {})", self.message, counted(rows, "row")),
        )
        .line(self.line)
    }
}

/// The 1-based line of byte `at`, as an editor counts lines (LF, CR LF or CR alone).
fn line_of(text: &str, at: usize) -> u64 {
    let before = &text.as_bytes()[..at.min(text.len())];
    let breaks = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && before.get(i + 1) != Some(&b'\n')))
        .count();
    breaks as u64 + 1
}
