//! `campaign mark`: records what the operator found in Intercom for `unknown` (or `failed`) rows,
//! so that a resume sends again only what did not arrive. The finding is kept in the row's line
//! (`error_code` `marked_sent` or `marked_failed`, the note in `error_message`).
use std::collections::HashMap;

use anyhow::bail;

use crate::cli::rows::RowSet;
use crate::cli::{MarkArgs, MarkAs};
use crate::results::{self, Amendment, Ledger, RowStatus};
use crate::Status;

pub fn run(args: &MarkArgs) -> anyhow::Result<Status> {
    let mut ledger = Ledger::new(args.results.clone());
    ledger.check_files()?;
    if !ledger.results.is_file() {
        bail!("{}: no such results file", ledger.results.display());
    }
    ledger.lock()?;
    // Recipients are not compared here: any hash will do.
    let prior = results::settle(&ledger, &|_| 0)?;
    let recorded: HashMap<u64, RowStatus> = prior.recorded().collect();
    if let RowSet::Ranges(ranges) = &args.rows {
        let missing: Vec<String> = ranges
            .iter()
            .filter(|(a, b)| a == b && !recorded.contains_key(a))
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
    // `all` means every row there is to settle: the unknown and failed ones.
    let settleable = |s: &RowStatus| matches!(s, RowStatus::Unknown | RowStatus::Failed);
    let mut chosen: Vec<(u64, RowStatus)> = recorded
        .into_iter()
        .filter(|(row, s)| args.rows.contains(*row) && (args.rows != RowSet::All || settleable(s)))
        .collect();
    chosen.sort_unstable_by_key(|(row, _)| *row);
    if let Some((row, status)) = chosen
        .iter()
        .find(|(_, s)| !matches!(s, RowStatus::Unknown | RowStatus::Failed))
    {
        bail!(
            "row {row} is `{}`: only `unknown` and `failed` rows can be marked (a `sent` row has Intercom's message id already; a `skipped` row was never sent)",
            serde_json::to_value(status)?.as_str().unwrap_or_default()
        );
    }
    let (status, code) = match args.as_status {
        MarkAs::Sent => (RowStatus::Sent, "marked_sent"),
        MarkAs::Failed => (RowStatus::Failed, "marked_failed"),
    };
    let changes: HashMap<u64, Amendment> = chosen
        .iter()
        .map(|&(row, _)| {
            let a = Amendment {
                status,
                message_id: None,
                code: code.into(),
                note: args.note.clone(),
            };
            (row, a)
        })
        .collect();
    ledger.amend(&changes)?;
    let rows: Vec<String> = chosen.iter().map(|(r, _)| r.to_string()).collect();
    crate::say!(
        "{}: marked {} as `{}` ({code}): {}{}",
        ledger.results.display(),
        crate::check::counted(rows.len() as u64, "row"),
        code.trim_start_matches("marked_"),
        rows.iter().take(20).cloned().collect::<Vec<_>>().join(", "),
        match args.as_status {
            MarkAs::Failed if !rows.is_empty() => "; --resume sends them again",
            _ => "",
        }
    );
    Ok(Status::Ok)
}
