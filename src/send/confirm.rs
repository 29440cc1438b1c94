//! The confirmation of a real send on a terminal: what is about to go, and `[y/N]`.
use std::path::Path;

use super::plan::Settings;
use crate::input::config::{Campaign, MessageType};

/// Whether a person at a terminal confirms the send (`true` without a terminal to ask at).
pub(super) fn confirmed(
    settings: &Settings,
    c: &Campaign,
    to_send: u64,
    results: &Path,
) -> anyhow::Result<bool> {
    if !on_a_terminal() {
        return Ok(true);
    }
    let screen = crate::inert(&confirmation(settings, c, to_send, results)).into_owned();
    let stdin = std::io::stdin();
    confirm(&screen, &mut stdin.lock(), &mut std::io::stderr())
}

fn on_a_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// What a real send is about to do, for a person to confirm before the first request.
fn confirmation(settings: &Settings, c: &Campaign, to_send: u64, results: &Path) -> String {
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
    if let Some(subject) = &c.subject {
        lines.push(format!("  subject  {}", subject.source.trim()));
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
