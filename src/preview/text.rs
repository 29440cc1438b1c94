//! The preview on the terminal: each chosen row's message as a person reads it, or with `--json`
//! its exact request body, one per line; each row's problems on stderr.
use std::io::Write;

use super::Selection;
use crate::check::{Loaded, RowRenderer};
use crate::exit::{Ended, Failure, Outcome};
use crate::input::config::Address;
use crate::input::recipients::{Recipients, Row};
use crate::template::MessageRequest;

/// Rows shown when neither `--row` nor `--limit` says.
const DEFAULT_LIMIT: usize = 3;

/// Prints the selected rows: messages on stdout, problems on stderr.
pub(super) fn run(loaded: &Loaded, selection: Selection, json: bool) -> Ended {
    let limit = selection.limit.unwrap_or(DEFAULT_LIMIT);
    let (mut recipients, header) =
        Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    for p in &header {
        crate::say!("{p}");
    }
    let renderer = RowRenderer::new(loaded, &recipients);
    // Every row read (for the file's true count and the duplicates), not only the ones shown.
    let pre = crate::check::preflight(
        loaded,
        crate::input::config::Duplicates::Allow,
        &mut |_, _| None,
    );
    let address = loaded.campaign.address;
    if address.looked_up() && json {
        crate::say!(
            "note: every row is looked up by {} before it is sent (POST /contacts/search); `to` below holds the {} it will be looked up by, and the message goes to {{type: <the contact's role>, id: <its id>}}",
            address.key(),
            address.key()
        );
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut shown = 0;
    let mut problems = false;
    while let Some(next) = recipients.next_row() {
        if shown >= limit && selection.row.is_none() {
            break;
        }
        let row = match next {
            Ok(row) => row,
            Err(p) => {
                if selection.row.is_none() || p.record == selection.row {
                    crate::say!("{p}");
                    problems = true;
                    shown += 1;
                }
                if p.record.is_none() {
                    break;
                }
                continue;
            }
        };
        if selection.row.is_some_and(|r| r != row.number) {
            continue;
        }
        shown += 1;
        if !show_row(&renderer, &row, address, json, &mut out)? {
            problems = true;
        }
        if selection.row.is_some() {
            break;
        }
    }
    if let (Some(r), 0) = (selection.row, shown) {
        return Err(anyhow::anyhow!(
            "{}: there is no record {r}",
            loaded.campaign.recipients.display()
        )
        .into());
    }
    say_file(loaded, shown, &pre);
    match problems {
        true => Err(Failure::Reported),
        false => Ok(Outcome::Done),
    }
}

/// Of the whole file, on stderr: how many rows it has, and the rows that address a recipient an
/// earlier row has, with what `send` does with them.
fn say_file(loaded: &Loaded, shown: usize, pre: &crate::check::Preflight) {
    use crate::input::config::Duplicates;
    let file = loaded.campaign.recipients.display();
    crate::say!("{file}: {shown} of {} rows shown", pre.rows);
    if pre.duplicates.is_empty() {
        return;
    }
    let pairs: Vec<String> = pre
        .duplicates
        .iter()
        .take(20)
        .map(|(row, first)| format!("{row} (as {first})"))
        .collect();
    let more = match pre.duplicates.len() {
        n if n > 20 => format!(" and {} more", n - 20),
        _ => String::new(),
    };
    crate::say!(
        "{file}: {} rows address a recipient an earlier row has: rows {}{more}; {}",
        pre.duplicates.len(),
        pairs.join(", "),
        match loaded.campaign.send.duplicates {
            Duplicates::Skip => "send records them `skipped` ([send] duplicates = \"skip\")",
            Duplicates::Allow => "send sends them all ([send] duplicates = \"allow\")",
            Duplicates::Refuse =>
                "send refuses the file unless --skip-duplicates or --allow-duplicates",
        }
    );
}

/// Prints one row's message and its warnings, or its errors; says whether it renders.
fn show_row(
    renderer: &RowRenderer<'_>,
    row: &Row<'_>,
    address: Address,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    crate::template::filters::take_defaults_used();
    let rendered = renderer.render(row);
    let defaults = crate::template::filters::take_defaults_used();
    match rendered {
        Ok((request, warnings)) => {
            for w in warnings {
                crate::say!("{w}");
            }
            if json {
                let text = serde_json::to_string(&request)?;
                writeln!(out, "{}", crate::results::cells::inert_json(text))?;
            } else {
                write_message(out, row, &request, address, defaults)?;
            }
            Ok(true)
        }
        Err(problems) => {
            for p in problems {
                crate::say!("{p}");
            }
            Ok(false)
        }
    }
}

/// A row's message as a person reads it: who it goes to, the subject, the body.
fn write_message(
    out: &mut impl Write,
    row: &Row<'_>,
    request: &MessageRequest,
    address: Address,
    defaults: u32,
) -> std::io::Result<()> {
    let to = if address.looked_up() {
        format!(
            "the {} with {} {} (looked up before sending)",
            request.to.kind,
            address.key(),
            request.to.id
        )
    } else {
        format!("{} {}", request.to.kind, request.to.id)
    };
    let fallback = match defaults {
        0 => String::new(),
        1 => " ─ a `default` applies (an empty cell)".to_string(),
        n => format!(" ─ `default` applies {n} times (empty cells)"),
    };
    writeln!(
        out,
        "── row {} (line {}) ─ to {}{fallback}",
        row.number,
        row.line,
        crate::inert(&to)
    )?;
    if let Some(s) = &request.subject {
        writeln!(out, "Subject: {}", crate::inert(s))?;
    }
    writeln!(out, "{}\n", crate::inert(request.body.trim_end()))
}
