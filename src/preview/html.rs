//! `campaign preview CAMPAIGN --html FILE`: the chosen rows' messages as customers get them, each
//! beside the row's CSV values and its warnings, on one self-contained page.
//!
//! Which rows: `--row N` that row; `--limit N` the first N; by default the first row of each path
//! through the templates' `if`s (see [`super::variants`]) and every row with a warning or an error,
//! so that one look covers every variant and everything `check` would flag in a row.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::variants::{self, Variants};
use super::Selection;
use crate::check::{counted, Loaded, RowRenderer};
use crate::input::config::BodyFormat;
use crate::input::problem::{Problem, Severity};
use crate::input::recipients::{Recipients, Row};
use crate::page::{escape, page, write_page};
use crate::template::{MessageRequest, Plan};
use crate::Status;

/// Rows on one page at most: past this a browser struggles, and `check` lists every problem.
const MAX_ROWS: usize = 500;

/// One row chosen for the page.
struct Shown {
    number: u64,
    line: u64,
    fields: Vec<String>,
    request: Option<MessageRequest>,
    problems: Vec<Problem>,
    /// Why it is on the page: "path 2 of 3", "warnings", "--row".
    reasons: Vec<String>,
    /// Its path's number (1-based, in order of first appearance).
    path: Option<usize>,
}

/// What the page shows, before it is written out.
struct Chosen {
    rows: Vec<Shown>,
    /// Paths in order of first appearance; each is the set of branch tags taken.
    paths: Vec<variants::Path>,
    /// Rows that qualified but did not fit under [`MAX_ROWS`].
    left_out: u64,
    header: Vec<Problem>,
    total_rows: u64,
}

/// Writes the page; prints the shown rows' problems to stderr and a one-line summary to stdout.
pub(super) fn run(
    loaded: &Loaded,
    selection: Selection,
    file: &Path,
    open: bool,
) -> anyhow::Result<Status> {
    let (mut recipients, header) =
        Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    let variants = Variants::new(&loaded.campaign);
    let chosen = choose(selection, loaded, &mut recipients, &variants, header)?;
    let mut status = Status::Ok;
    for p in chosen
        .header
        .iter()
        .chain(chosen.rows.iter().flat_map(|r| &r.problems))
    {
        crate::say!("{p}");
        if p.severity == Severity::Error {
            status = Status::Invalid;
        }
    }
    let html = render_page(loaded, &recipients, &variants, &chosen);
    write_page(file, &html)?;
    crate::out!("{}", summary(file, &chosen));
    if open {
        open_in_browser(&std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()));
    }
    Ok(status)
}

fn summary(file: &Path, c: &Chosen) -> String {
    let warned = c.rows.iter().filter(|r| !r.problems.is_empty()).count();
    let mut text = format!(
        "wrote {}: {} of {} rows",
        file.display(),
        c.rows.len(),
        c.total_rows
    );
    if !c.paths.is_empty() {
        let _ = write!(
            text,
            " ({} through the templates' ifs, {} with warnings or errors)",
            counted(c.paths.len() as u64, "path"),
            counted(warned as u64, "row")
        );
    }
    if c.left_out > 0 {
        let _ = write!(
            text,
            "; {} more rows with warnings left out (at most {MAX_ROWS} on a page: `campaign check` lists them all)",
            c.left_out
        );
    }
    text
}

/// Opens the page in the default browser where there is one; a machine without one is not an
/// error (the page is written either way).
fn open_in_browser(file: &Path) {
    if let Err(e) = open::that_detached(file) {
        crate::say!(
            "could not open a browser ({e}); open {} yourself",
            file.display()
        );
    }
}

/// Reads the rows and keeps those the page shows.
fn choose(
    selection: Selection,
    loaded: &Loaded,
    recipients: &mut Recipients,
    variants: &Variants,
    header: Vec<Problem>,
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
    };
    while let Some(next) = recipients.next_row() {
        let row = match next {
            Ok(row) => row,
            Err(p) => {
                // A record that cannot be read: shown as its problem alone.
                let stop = p.record.is_none();
                if selection.row.is_none() || p.record == selection.row {
                    chosen.total_rows += u64::from(p.record.is_some());
                    push(&mut chosen, unreadable(p), selection);
                }
                if stop {
                    break;
                }
                continue;
            }
        };
        chosen.total_rows += 1;
        if selection.row.is_some_and(|r| r != row.number) {
            continue;
        }
        let Some(shown) = consider(selection, &renderer, plan.as_ref(), &mut paths, &row) else {
            continue;
        };
        push(&mut chosen, shown, selection);
        if selection.row.is_some() || selection.limit.is_some_and(|l| chosen.rows.len() >= l) {
            break;
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
    plan: Option<&Plan<'_>>,
    paths: &mut Paths,
    row: &Row<'_>,
) -> Option<Shown> {
    let (request, mut problems) = match renderer.render(row) {
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
    let reasons = reasons(selection, new_path.then_some(path).flatten(), &problems);
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
    })
}

/// Why a row is on the page: asked for, the first of a path (`new_path`, its number), or its
/// errors or warnings. Empty when none of these holds.
fn reasons(selection: Selection, new_path: Option<usize>, problems: &[Problem]) -> Vec<String> {
    if selection.row.is_some() {
        return vec!["--row".to_string()];
    }
    if selection.limit.is_some() {
        return vec!["--limit".to_string()];
    }
    let mut reasons = Vec::new();
    if let Some(n) = new_path {
        reasons.push(format!("path {n}"));
    }
    if problems.iter().any(|p| p.severity == Severity::Error) {
        reasons.push("errors".to_string());
    } else if !problems.is_empty() {
        reasons.push("warnings".to_string());
    }
    reasons
}

fn unreadable(p: Problem) -> Shown {
    Shown {
        number: p.record.unwrap_or(0),
        line: p.line.unwrap_or(0),
        fields: Vec::new(),
        request: None,
        reasons: vec!["errors".to_string()],
        problems: vec![p],
        path: None,
    }
}

/// Adds a row unless the page is full; a new path's first row always gets in.
fn push(chosen: &mut Chosen, shown: Shown, selection: Selection) {
    let limit = selection.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    let new_path = shown.reasons.iter().any(|r| r.starts_with("path "));
    if chosen.rows.len() < limit || new_path {
        chosen.rows.push(shown);
    } else {
        chosen.left_out += 1;
    }
}

fn render_page(
    loaded: &Loaded,
    recipients: &Recipients,
    variants: &Variants,
    c: &Chosen,
) -> String {
    let campaign = &loaded.campaign;
    let mut body = String::new();
    let _ = write!(
        body,
        "<section id=\"summary\"><h2>What this page shows</h2><p>{} of {} rows of <code>{}</code>: ",
        c.rows.len(),
        c.total_rows,
        escape(&campaign.recipients.display().to_string()),
    );
    if c.rows
        .iter()
        .any(|r| r.reasons.iter().any(|x| x.starts_with("--")))
    {
        body.push_str("the rows asked for.</p>");
    } else {
        let _ = write!(
            body,
            "the first row of each of the {} paths through the templates' <code>if</code>s, \
             and every row with a warning or an error.</p>",
            c.paths.len()
        );
    }
    body.push_str(&paths_list(variants, &c.paths));
    if c.left_out > 0 {
        let _ = write!(
            body,
            "<p class=\"warn\">{} more rows with warnings are not shown (at most {MAX_ROWS} on a page); \
             <code>campaign check</code> lists them all.</p>",
            c.left_out
        );
    }
    body.push_str(
        "<p class=\"note\">Bodies are shown in sandboxed frames: no script runs and \
        nothing is fetched, so remote images do not appear.</p>",
    );
    body.push_str(&problem_list(&c.header));
    body.push_str("</section>\n");
    for row in &c.rows {
        body.push_str(&row_section(loaded, recipients.columns(), row));
    }
    let kind = match campaign.message_type {
        crate::input::config::MessageType::Email => "email",
        crate::input::config::MessageType::InApp => "in-app message",
    };
    page(
        &format!("Preview: {}", campaign.path.display()),
        &format!(
            "{kind} from {} to {}s · {} of {} rows",
            campaign.from_label(),
            campaign.to_type,
            c.rows.len(),
            c.total_rows
        ),
        &body,
    )
}

/// Each path as the branch tags it takes, so a reader knows what sets the variants apart.
fn paths_list(variants: &Variants, paths: &[variants::Path]) -> String {
    if variants.tags.is_empty() {
        return "<p>The templates have no <code>if</code>: every row takes the same path.</p>"
            .to_string();
    }
    let mut out = String::from("<ol id=\"paths\">");
    for path in paths {
        out.push_str("<li>");
        if path.is_empty() {
            out.push_str("no branch taken");
        }
        for (i, n) in path.iter().enumerate() {
            let Some(tag) = variants.tags.get(*n as usize) else {
                continue;
            };
            let _ = write!(
                out,
                "{}<code>{}</code> ({} line {})",
                if i > 0 { ", " } else { "" },
                escape(&tag.text),
                escape(&tag.origin),
                tag.line
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ol>");
    out
}

fn problem_list(problems: &[Problem]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"problems\">");
    for p in problems {
        let class = match p.severity {
            Severity::Error => "err",
            Severity::Warning => "warn",
        };
        let _ = write!(out, "<li class=\"{class}\">{}</li>", escape(&p.to_string()));
    }
    out.push_str("</ul>");
    out
}

fn row_section(loaded: &Loaded, columns: &[String], row: &Shown) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"row\" id=\"row-{n}\" data-row=\"{n}\"><h2>Row {n} <span class=\"note\">(line {line})</span> ",
        n = row.number,
        line = row.line
    );
    for r in &row.reasons {
        let class = match r.as_str() {
            "errors" => "failed",
            "warnings" => "unknown",
            _ => "sent",
        };
        let _ = write!(out, "<span class=\"badge {class}\">{}</span>", escape(r));
    }
    if let (Some(n), false) = (row.path, row.reasons.iter().any(|r| r.starts_with("path "))) {
        let _ = write!(out, "<span class=\"note\">path {n}</span>");
    }
    out.push_str("</h2><div class=\"msg\"><div>");
    match &row.request {
        Some(request) => out.push_str(&message(loaded, request, row.number)),
        None => out.push_str(
            "<p class=\"err\">This row does not render; nothing would be sent to it.</p>",
        ),
    }
    out.push_str(&problem_list(&row.problems));
    out.push_str("</div><div><table class=\"fields\"><caption class=\"note\">CSV values</caption>");
    for (column, value) in columns.iter().zip(&row.fields) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td></tr>",
            escape(column),
            escape(value)
        );
    }
    out.push_str("</table></div></div></section>\n");
    out
}

/// The message as the customer gets it: from, to, subject, and the body (HTML in a sandboxed
/// frame with no permissions at all, text as text).
fn message(loaded: &Loaded, r: &MessageRequest, row: u64) -> String {
    let mut out = String::from("<table class=\"head\">");
    let _ = write!(
        out,
        "<tr><th>From</th><td>{}</td></tr><tr><th>To</th><td>{} <code>{}</code></td></tr>",
        escape(&loaded.campaign.from_label()),
        escape(&r.to.kind),
        escape(&r.to.id)
    );
    if let Some(subject) = &r.subject {
        let _ = write!(
            out,
            "<tr><th>Subject</th><td class=\"subject\">{}</td></tr>",
            escape(subject)
        );
    }
    let _ = write!(
        out,
        "<tr><th>Type</th><td>{}{}</td></tr></table>",
        r.message_type,
        r.template
            .as_deref()
            .map(|t| format!(", template <code>{}</code>", escape(t)))
            .unwrap_or_default()
    );
    match loaded.campaign.body_format {
        BodyFormat::Html | BodyFormat::Markdown => {
            let doc = format!(
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{{font:15px/1.5 \
                 system-ui,sans-serif;margin:12px;color:#222}}</style></head><body>{}</body></html>",
                r.body
            );
            let _ = write!(
                out,
                "<iframe sandbox=\"\" referrerpolicy=\"no-referrer\" title=\"Body of row {row}\" srcdoc=\"{}\"></iframe>",
                escape(&doc)
            );
        }
        BodyFormat::Text => {
            let _ = write!(out, "<pre class=\"text-body\">{}</pre>", escape(&r.body));
        }
    }
    out
}
