//! `campaign mark`: records what the operator found in Intercom for `unknown` (or `failed`) rows,
//! so that a resume sends again only what did not arrive, or that a row is not to be sent at all.
//! The finding is kept in the row's line (`error_code` `marked_sent`, `marked_failed` or
//! `marked_skipped`, the note in `error_message`).
//!
//! Only what the operator saw changes meaning: a row this command's own settling found in flight
//! (a killed run's) became `unknown` just now, and no one has looked it up, so it is left so:
//! `--rows all` passes over it and says so, and a row named by number is refused.
use std::collections::HashMap;

use anyhow::bail;

use crate::input::rows::RowSet;
use crate::results::{self, Amendment, Ledger, RowStatus, MARKED_SKIPPED};

/// What to mark: the rows of a results file, as what the operator found, with a note.
pub(crate) struct Marking {
    pub results: std::path::PathBuf,
    pub rows: RowSet,
    pub as_status: MarkAs,
    pub note: String,
    /// The message the operator found, for one row marked `sent`.
    pub message_id: Option<String>,
}

/// The longest message id `--message-id` takes (Intercom's are a dozen digits or so).
const MAX_MESSAGE_ID: usize = 64;

/// What the operator found for the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkAs {
    Sent,
    Failed,
    Skipped,
}

pub(crate) fn run(args: &Marking) -> anyhow::Result<()> {
    if let Some(id) = &args.message_id {
        check_message_id(args, id)?;
    }
    let mut ledger = Ledger::new(args.results.clone());
    ledger.check_files()?;
    if !ledger.results.is_file() {
        bail!("{}: no such results file", ledger.results.display());
    }
    ledger.lock()?;
    // Recipients are not compared here: any hash will do.
    let prior = results::settle(&ledger, &|_| 0)?;
    if let RowSet::Ranges(ranges) = &args.rows {
        let missing: Vec<String> = ranges
            .iter()
            .filter(|(a, b)| a == b && prior.status(*a).is_none())
            .map(|(a, _)| a.to_string())
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} has no line for row {}: only rows a run attempted can be marked",
                ledger.results.display(),
                missing.join(", ")
            );
        }
    }
    let mut fresh: Vec<u64> = prior.recovered.clone();
    fresh.retain(|&row| args.rows.contains(row));
    if !fresh.is_empty() && args.rows != RowSet::All {
        bail!(
            "{} in flight when the last run stopped, and became `unknown` just now, as this command settled {}: no one has looked {} up yet, so nothing was marked. Look {} up in Intercom (the contact's conversations), then run this command again",
            rows_said(&fresh, "was", "were"),
            ledger.results.display(),
            them(&fresh),
            them(&fresh)
        );
    }
    // `all` means every row there was to settle before this command: the unknown and failed ones.
    let settleable = |s: &RowStatus| matches!(s, RowStatus::Unknown | RowStatus::Failed);
    // In row order; the first named row that cannot be marked refuses the whole command.
    let mut chosen: Vec<u64> = Vec::new();
    for (row, s) in prior.recorded() {
        let named = args.rows.contains(row) && (args.rows != RowSet::All || settleable(&s));
        if !named || prior.recovered_now(row) {
            continue;
        }
        if !settleable(&s) {
            bail!(
                "row {row} is `{}`: only `unknown` and `failed` rows can be marked (a `sent` row has Intercom's message id already; a `skipped` row was never sent)",
                serde_json::to_value(s)?.as_str().unwrap_or_default()
            );
        }
        chosen.push(row);
    }
    let (status, code) = match args.as_status {
        MarkAs::Sent => (RowStatus::Sent, "marked_sent"),
        MarkAs::Failed => (RowStatus::Failed, "marked_failed"),
        MarkAs::Skipped => (RowStatus::Skipped, MARKED_SKIPPED),
    };
    let changes: HashMap<u64, Amendment> = chosen
        .iter()
        .map(|&row| {
            let a = Amendment {
                status,
                message_id: args.message_id.clone(),
                code: code.into(),
                note: args.note.clone(),
            };
            (row, a)
        })
        .collect();
    ledger.amend(&changes)?;
    crate::say!(
        "{}: marked {} as `{}` ({code}): {}{}",
        ledger.results.display(),
        crate::counted(chosen.len() as u64, "row"),
        code.trim_start_matches("marked_"),
        chosen
            .iter()
            .take(20)
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        match args.as_status {
            MarkAs::Failed if !chosen.is_empty() => "; --resume sends them again",
            MarkAs::Skipped if !chosen.is_empty() => "; --resume never sends them",
            _ => "",
        }
    );
    if !fresh.is_empty() {
        crate::say!(
            "{}: {} in flight when the last run stopped, and became `unknown` just now: left `unknown`, since no one has looked {} up yet. Look {} up in Intercom, then record the messages you find (`--as failed` for those not there): {}",
            ledger.results.display(),
            rows_said(&fresh, "was", "were"),
            them(&fresh),
            them(&fresh),
            shlex::try_join([
                "campaign",
                "mark",
                &ledger.results.display().to_string(),
                "--rows",
                &RowSet::of_rows(&fresh).to_string(),
                "--as",
                "sent",
                "--note",
                "found in Intercom",
            ])
            .unwrap_or_default()
        );
    }
    Ok(())
}

/// `row 4 was` or `rows 4, 5 were` (the first 20, then how many in all).
fn rows_said(rows: &[u64], one: &str, many: &str) -> String {
    let listed: Vec<String> = rows.iter().take(20).map(u64::to_string).collect();
    match rows.len() {
        1 => format!("row {} {one}", listed[0]),
        n if n > 20 => format!("rows {}, … ({n} in all) {many}", listed.join(", ")),
        _ => format!("rows {} {many}", listed.join(", ")),
    }
}

fn them(rows: &[u64]) -> &'static str {
    if rows.len() == 1 {
        "it"
    } else {
        "them"
    }
}

/// `--message-id` names the one message found for one row marked `sent`, and is an id as
/// Intercom writes them.
fn check_message_id(args: &Marking, id: &str) -> anyhow::Result<()> {
    let one_row = matches!(&args.rows, RowSet::Ranges(r) if r.len() == 1 && r[0].0 == r[0].1);
    if args.as_status != MarkAs::Sent || !one_row {
        bail!(
            "--message-id names the one message you found for one row: use it with `--as sent` and one row (`--rows 5`)"
        );
    }
    if id.is_empty() || id.len() > MAX_MESSAGE_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        // Shown escaped, and no longer than an id could be.
        let shown: String = id.chars().take(MAX_MESSAGE_ID + 1).collect();
        bail!(
            "--message-id {shown:?}: a message id is letters and digits (at most {MAX_MESSAGE_ID}), as Intercom shows it"
        );
    }
    Ok(())
}
