//! The confirmation of a real send on a terminal: what is about to go, and `[y/N]`.
use std::path::Path;

use super::plan::Settings;
use crate::input::config::{Campaign, MessageType};

/// Whether a person at a terminal confirms the send (`true` without a terminal to ask at).
pub(super) fn confirmed(
    settings: &Settings,
    loaded: &crate::check::Loaded,
    to_send: u64,
    results: &Path,
) -> anyhow::Result<bool> {
    if !on_a_terminal() {
        return Ok(true);
    }
    let sample = sample_subject(loaded);
    let screen = crate::inert(&confirmation(
        settings,
        &loaded.campaign,
        to_send,
        sample,
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

/// The subject of the first row that renders, with its record number: what a customer reads,
/// rather than the template's source.
fn sample_subject(loaded: &crate::check::Loaded) -> Option<(u64, String)> {
    let c = &loaded.campaign;
    c.subject.as_ref()?;
    let (mut recipients, _) =
        crate::input::recipients::Recipients::open(&c.recipients, c.delimiter).ok()?;
    let renderer = crate::check::RowRenderer::new(loaded, &recipients);
    while let Some(next) = recipients.next_row() {
        let Ok(row) = next else { continue };
        if let Ok((request, _)) = renderer.render(&row) {
            return Some((row.number, request.subject?));
        }
    }
    None
}

/// What a real send is about to do, for a person to confirm before the first request. `to_send`
/// counts only the rows that will go (not those recorded `skipped`).
fn confirmation(
    settings: &Settings,
    c: &Campaign,
    to_send: u64,
    sample: Option<(u64, String)>,
    results: &Path,
) -> String {
    let send = &settings.send;
    let secs = (to_send as f64 / send.rate.per_second()).ceil() as u64;
    let mut lines = vec![
        format!(
            "About to send {to_send} {} message{} through {}",
            match c.message_type {
                MessageType::Email => "e-mail",
                MessageType::InApp => "in-app",
            },
            if to_send == 1 { "" } else { "s" },
            settings.base_url
        ),
        format!("  from     {}", c.from_label()),
        format!("  to       {}s ({})", c.to_type, c.to_id.source.trim()),
    ];
    match (sample, &c.subject) {
        // A cell's text: control characters shown escaped, never raw on the terminal.
        (Some((row, subject)), _) => {
            lines.push(format!("  subject  {} (row {row})", subject.escape_debug()))
        }
        (None, Some(subject)) => lines.push(format!("  subject  {}", subject.source.trim())),
        (None, None) => {}
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
    fn the_screen_shows_a_rendered_subject_and_the_rows_that_go() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = crate::check::load(&root.join("samples/welcome.toml")).unwrap();
        let sample = sample_subject(&loaded);
        assert_eq!(sample, Some((1, "Welcome to Pro, Ada".to_string())));
        let c = &loaded.campaign;
        let settings = Settings {
            send: c.send.clone(),
            base_url: c.base_url.clone(),
            version: c.version.clone(),
            results_columns: Vec::new(),
            results_columns_from: super::super::plan::ColumnsFrom::File,
        };
        let screen = confirmation(&settings, c, 19, sample, Path::new("r.csv"));
        assert!(
            screen.starts_with("About to send 19 e-mail messages"),
            "{screen}"
        );
        assert!(
            screen.contains("  subject  Welcome to Pro, Ada (row 1)"),
            "{screen}"
        );
        let subject = screen.lines().find(|l| l.contains("subject")).unwrap();
        assert!(!subject.contains("{{"), "{screen}");
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
