//! The confirmation of a real send on a terminal: what is about to go, and `[y/N]`.
use std::path::Path;

use super::manifest::Going;
use super::plan::Settings;
use crate::input::config::{Campaign, MessageType};

/// Whether a person at a terminal confirms the send (`true` without a terminal to ask at).
pub(super) fn confirmed(
    settings: &Settings,
    loaded: &crate::check::Loaded,
    going: Going,
    results: &Path,
) -> anyhow::Result<bool> {
    if !on_a_terminal() {
        return Ok(true);
    }
    let sample = going.first.and_then(|row| sample(loaded, row));
    let screen = crate::inert(&confirmation(
        settings,
        &loaded.campaign,
        going,
        sample.as_ref(),
        results,
    ))
    .into_owned();
    let stdin = std::io::stdin();
    confirm(&screen, &mut stdin.lock(), &mut std::io::stderr())
}

fn on_a_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A row's message as it will go: what a customer reads, rather than the templates' source.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    row: u64,
    /// The recipient as the request names it: `user id-1`, or the e-mail a lookup starts from.
    to: String,
    subject: Option<String>,
}

/// Record `row` rendered, if it renders.
fn sample(loaded: &crate::check::Loaded, row: u64) -> Option<Sample> {
    let c = &loaded.campaign;
    let (mut recipients, _) =
        crate::input::recipients::Recipients::open(&c.recipients, c.delimiter).ok()?;
    let renderer = crate::check::RowRenderer::new(loaded, &recipients);
    while let Some(next) = recipients.next_row() {
        let Ok(r) = next else { continue };
        if r.number < row {
            continue;
        }
        let (request, _) = renderer.render(&r).ok()?;
        let to = match c.address.looked_up() {
            true => format!(
                "the {} with {} {} (looked up before sending)",
                request.to.kind,
                c.address.key(),
                request.to.id
            ),
            false => format!("{} {}", request.to.kind, request.to.id),
        };
        return Some(Sample {
            row: r.number,
            to,
            subject: request.subject,
        });
    }
    None
}

/// What a real send is about to do, for a person to confirm before the first request: the rows
/// that will go (not those recorded `skipped` or done before), and the first of them as it goes.
fn confirmation(
    settings: &Settings,
    c: &Campaign,
    going: Going,
    sample: Option<&Sample>,
    results: &Path,
) -> String {
    let send = &settings.send;
    let to_send = going.rows;
    let secs = (to_send as f64 / send.rate.per_second()).ceil() as u64;
    let mut lines = vec![format!(
        "About to send {to_send} {} message{} through {}",
        match c.message_type {
            MessageType::Email => "e-mail",
            MessageType::InApp => "in-app",
        },
        if to_send == 1 { "" } else { "s" },
        settings.base_url
    )];
    let passed_over = passed_over(going);
    if !passed_over.is_empty() {
        lines.push(format!("  not sent {}", passed_over.join(", ")));
    }
    lines.push(format!("  from     {}", c.from_label()));
    // A cell's text: control characters shown escaped, never raw on the terminal.
    match sample {
        Some(s) => {
            lines.push(format!(
                "  to       {}s, first {} (row {})",
                c.to_type,
                s.to.escape_debug(),
                s.row
            ));
            if let Some(subject) = &s.subject {
                lines.push(format!(
                    "  subject  {} (row {})",
                    subject.escape_debug(),
                    s.row
                ));
            }
        }
        None => lines.push(format!("  to       {}s", c.to_type)),
    }
    lines.push(format!(
        "  rate     {}: about {}",
        send.rate,
        crate::input::rate::format_duration(std::time::Duration::from_secs(secs))
    ));
    if let Some(hours) = &send.hours {
        lines.push(format!("  hours    {hours}"));
    }
    lines.push(format!("  results  {}", results.display()));
    lines.join("\n")
}

/// The rows the run passes over, each kind with its count.
fn passed_over(g: Going) -> Vec<String> {
    use crate::counted;
    let mut out = Vec::new();
    if g.done > 0 {
        out.push(format!("{} done by earlier runs", counted(g.done, "row")));
    }
    if g.duplicates > 0 {
        out.push(format!(
            "{} (an earlier row has the recipient), recorded `skipped`",
            counted(g.duplicates, "duplicate row")
        ));
    }
    if g.suppressed > 0 {
        out.push(format!(
            "{} on the suppress list, recorded `skipped`",
            counted(g.suppressed, "row")
        ));
    }
    if g.invalid > 0 {
        out.push(format!(
            "{}, recorded `skipped`",
            counted(g.invalid, "invalid row")
        ));
    }
    out
}

/// Shows `screen` and asks `[y/N]`: only `y` or `yes` goes on.
fn confirm(
    screen: &str,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<bool> {
    write!(out, "{screen}\nSend them? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_shows_a_rendered_row_and_counts_the_rows_that_go() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = crate::check::load(&root.join("samples/welcome.toml")).unwrap();
        let sample = sample(&loaded, 2).unwrap();
        assert_eq!(sample.row, 2);
        let c = &loaded.campaign;
        let settings = Settings {
            send: c.send.clone(),
            base_url: c.base_url.clone(),
            version: c.version.clone(),
            results_columns: Vec::new(),
            results_columns_from: super::super::plan::ColumnsFrom::File,
        };
        let going = Going {
            rows: 16,
            done: 1,
            duplicates: 2,
            suppressed: 1,
            first: Some(2),
            ..Going::default()
        };
        let screen = confirmation(&settings, c, going, Some(&sample), Path::new("r.csv"));
        assert!(
            screen.starts_with("About to send 16 e-mail messages"),
            "{screen}"
        );
        assert!(screen.contains("  not sent 1 row done by earlier runs, 2 duplicate rows (an earlier row has the recipient), recorded `skipped`, 1 row on the suppress list, recorded `skipped`"), "{screen}");
        assert!(
            screen.contains("  to       users, first user 0c5c7fd0a6a3a4506513270e (row 2)"),
            "{screen}"
        );
        assert!(
            screen.contains("  subject  Welcome to Enterprise, Grace (row 2)"),
            "{screen}"
        );
        assert!(!screen.contains("{{"), "{screen}");
    }

    #[test]
    fn only_yes_confirms_a_send() {
        for (answer, go) in [
            ("y\n", true),
            ("YES\n", true),
            ("\n", false),
            ("n\n", false),
            ("", false),
            ("sure\n", false),
        ] {
            let mut out = Vec::new();
            let ok = confirm("About to send 3", &mut answer.as_bytes(), &mut out).unwrap();
            assert_eq!(ok, go, "{answer:?}");
            assert!(String::from_utf8(out)
                .unwrap()
                .ends_with("Send them? [y/N] "));
        }
    }
}
