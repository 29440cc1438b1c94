//! `campaign preview`: rendered messages for people, or with `--json` the exact request bodies.
pub mod html;
pub mod variants;

use std::io::Write;

use crate::check::{load, LoadError, RowRenderer};
use crate::cli::PreviewArgs;
use crate::input::recipients::Recipients;
use crate::Status;

pub fn run(args: &PreviewArgs) -> anyhow::Result<Status> {
    let loaded = match load(&args.campaign) {
        Ok(l) => l,
        Err(LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            return Ok(Status::Invalid);
        }
        Err(LoadError::Campaign(e)) => return Err(e),
    };
    if let Some(file) = &args.html {
        return crate::preview::html::run(args, &loaded, file);
    }
    let limit = args.limit.unwrap_or(3);
    let (mut recipients, header) =
        Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    for p in &header {
        crate::say!("{p}");
    }
    let renderer = RowRenderer::new(&loaded, &recipients);
    let address = loaded.campaign.address;
    if address.looked_up() && args.json {
        crate::say!(
            "note: every row is looked up by {} before it is sent (POST /contacts/search); `to` below holds the {} it will be looked up by, and the message goes to {{type: <the contact's role>, id: <its id>}}",
            address.key(),
            address.key()
        );
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut shown = 0;
    let mut status = Status::Ok;
    while let Some(next) = recipients.next_row() {
        if shown >= limit && args.row.is_none() {
            break;
        }
        let row = match next {
            Ok(row) => row,
            Err(p) => {
                if args.row.is_none() || p.record == args.row {
                    crate::say!("{p}");
                    status = Status::Invalid;
                    shown += 1;
                }
                if p.record.is_none() {
                    break;
                }
                continue;
            }
        };
        if args.row.is_some_and(|r| r != row.number) {
            continue;
        }
        shown += 1;
        match renderer.render(&row) {
            Ok((request, warnings)) => {
                for w in warnings {
                    crate::say!("{w}");
                }
                if args.json {
                    serde_json::to_writer(&mut out, &request)?;
                    writeln!(out)?;
                } else {
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
                    writeln!(out, "── row {} (line {}) ─ to {to}", row.number, row.line)?;
                    if let Some(s) = &request.subject {
                        writeln!(out, "Subject: {s}")?;
                    }
                    writeln!(out, "{}\n", request.body.trim_end())?;
                }
            }
            Err(problems) => {
                status = Status::Invalid;
                for p in problems {
                    crate::say!("{p}");
                }
            }
        }
        if args.row.is_some() {
            break;
        }
    }
    if let (Some(r), 0) = (args.row, shown) {
        anyhow::bail!(
            "{}: there is no record {r}",
            loaded.campaign.recipients.display()
        );
    }
    Ok(status)
}
