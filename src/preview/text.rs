//! The preview on the terminal: each chosen row's message as a person reads it, or with `--json`
//! its exact request body, one per line; each row's problems on stderr.
use std::io::Write;

use super::{FileFacts, Selection};
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
    // Every row read (for the file's true count, the fallbacks and the duplicates), not only
    // the ones shown.
    let facts = FileFacts::of(loaded)?;
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
        let duplicate_of = facts.first_of.get(&row.number).copied();
        if !show_row(&renderer, &row, address, json, duplicate_of, &mut out)? {
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
    say_file(loaded, shown, &facts);
    match problems {
        true => Err(Failure::Reported),
        false => Ok(Outcome::Done),
    }
}

/// Of the whole file, on stderr: how many rows it has, the rows where a `default` gives its
/// fallback, and the rows that share a recipient, with what `send` does with them.
fn say_file(loaded: &Loaded, shown: usize, facts: &FileFacts) {
    let file = loaded.campaign.recipients.display();
    crate::say!("{file}: {shown} of {} rows shown", facts.rows);
    if facts.default_rows > 0 {
        crate::say!(
            "{file}: a `default` gives its fallback in {}: {}",
            crate::counted(facts.default_rows, "row"),
            facts.defaults_said()
        );
    }
    if facts.duplicates.is_empty() {
        return;
    }
    crate::say!(
        "{file}: {} the recipient of an earlier row; {}:",
        match facts.duplicate_rows() {
            1 => "1 row has".to_string(),
            n => format!("{n} rows have"),
        },
        facts.duplicates_rule()
    );
    for group in facts.duplicate_groups() {
        crate::say!("  {group}");
    }
}

/// Prints one row's message and its warnings, or its errors; says whether it renders.
fn show_row(
    renderer: &RowRenderer<'_>,
    row: &Row<'_>,
    address: Address,
    json: bool,
    duplicate_of: Option<u64>,
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
                write_message(out, row, &request, address, &defaults, duplicate_of)?;
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
    defaults: &[String],
    duplicate_of: Option<u64>,
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
    let fallback = match defaults.len() {
        0 => String::new(),
        1 => format!(" ─ a `default` applies: {} is empty", defaults[0]),
        _ => format!(" ─ a `default` applies: {} are empty", defaults.join(", ")),
    };
    let duplicate = duplicate_of
        .map(|first| format!(" ─ the recipient of row {first}"))
        .unwrap_or_default();
    writeln!(
        out,
        "── row {} (line {}) ─ to {}{fallback}{duplicate}",
        row.number,
        row.line,
        crate::inert(&to)
    )?;
    if let Some(s) = &request.subject {
        writeln!(out, "Subject: {}", crate::inert(s))?;
    }
    writeln!(out, "{}\n", crate::inert(request.body.trim_end()))
}
