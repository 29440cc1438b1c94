//! The page itself: a summary of what it shows and why, the paths, then each chosen row's message
//! as the customer gets it beside its CSV values and its problems. Every value is escaped.
use std::fmt::Write as _;

use super::{Chosen, Shown, MAX_ROWS};
use crate::check::Loaded;
use crate::counted;
use crate::input::config::BodyFormat;
use crate::input::problem::{Problem, Severity};
use crate::input::recipients::Recipients;
use crate::page::{escape, page};
use crate::preview::variants::{self, Variants};
use crate::preview::FileFacts;
use crate::template::MessageRequest;

pub(super) fn render_page(
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
        .any(|r| r.reasons.iter().any(|x| x.is_asked_for()))
    {
        body.push_str("the rows asked for.</p>");
    } else {
        let _ = write!(
            body,
            "the first row of each of the {} paths through the templates' <code>if</code>s, \
             every row with a warning or an error, and the first rows where a <code>default</code> \
             gives its fallback and that have the recipient of an earlier row.</p>",
            c.paths.len()
        );
    }
    body.push_str(&paths_list(variants, &c.paths));
    body.push_str(&file_facts(&c.facts));
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

/// The whole file's fallbacks and duplicates, whichever rows the page shows.
fn file_facts(f: &FileFacts) -> String {
    let mut out = String::new();
    if f.default_rows > 0 {
        let _ = write!(
            out,
            "<p id=\"defaults\" class=\"warn\">A <code>default</code> gives its fallback in {}: {}.</p>",
            counted(f.default_rows, "row"),
            escape(&f.defaults_said())
        );
    }
    if !f.duplicates.is_empty() {
        let _ = write!(
            out,
            "<div id=\"duplicates\"><p class=\"warn\">{} the recipient of an earlier row; {}:</p><ul>",
            match f.duplicate_rows() {
                1 => "1 row has".to_string(),
                n => format!("{n} rows have"),
            },
            escape(f.duplicates_rule())
        );
        for group in f.duplicate_groups() {
            let _ = write!(out, "<li>{}</li>", escape(&group));
        }
        out.push_str("</ul></div>");
    }
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
        let _ = write!(
            out,
            "<span class=\"badge {}\">{}</span>",
            r.class(),
            escape(&r.to_string())
        );
    }
    let first_of_path = row.reasons.iter().any(|r| r.is_first_of_path());
    if let (Some(n), false) = (row.path, first_of_path) {
        let _ = write!(out, "<span class=\"note\">path {n}</span>");
    }
    out.push_str("</h2><div class=\"msg\"><div>");
    if !row.defaults.is_empty() {
        let _ = write!(
            out,
            "<p class=\"warn default\">A <code>default</code> gives its fallback: {} {} empty.</p>",
            escape(&row.defaults.join(", ")),
            if row.defaults.len() == 1 { "is" } else { "are" }
        );
    }
    if let Some(first) = row.duplicate_of {
        let _ = write!(
            out,
            "<p class=\"warn duplicate\">Row {first} has this recipient.</p>"
        );
    }
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
