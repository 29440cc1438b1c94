//! `send --sandbox`: the rehearsal's sandbox, started in this process just before the first
//! request, and the ledger's `unknown` rows settled from its log on resume (the log is the truth
//! of what the sandbox created).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::plan::SandboxPlan;
use crate::check::recipient_hash;
use crate::input::config::Campaign;
use crate::results::{Amendment, Ledger, Prior, RowStatus};
use crate::sandbox::SandboxConfig;
use crate::target::{Access, Target};

/// The rehearsal's sandbox, accepting only this run's token, logging every message it accepts;
/// with the log's path.
pub(super) async fn start(
    access: &Access,
    plan: &SandboxPlan,
    c: &Campaign,
    results: &Path,
) -> anyhow::Result<(Target, PathBuf)> {
    let log = plan.log_path(results);
    let target = access
        .start(|o| {
            let mut faults = o.faults.clone();
            // A follow-up's rehearsal holds the conversations of the rehearsal it follows up.
            if let Some(earlier) = &c.send.skip_replied_to {
                faults
                    .conversations
                    .replay
                    .push(crate::track::rehearsal_log_of(earlier, None));
            }
            SandboxConfig {
                faults,
                // Without a contacts file, a looked-up campaign's rehearsal finds a contact for
                // every key it searches (so that it runs), less those named to be left out.
                invent_contacts: o.contacts.is_none() && c.resolves(),
                log: Some(log.clone()),
                ..o.config()
            }
        })
        .await?;
    crate::say!(
        "sandbox: {} (every accepted message is logged to {})",
        target.base_url,
        log.display()
    );
    Ok((target, log))
}

/// A rehearsal's `unknown` rows, settled from the sandbox's log: a row whose recipient has a
/// message there is `sent` with its id, any other `failed` (so that this run sends it). Returns
/// whether a row changed.
pub(super) fn settle_from_log(
    ledger: &Ledger,
    prior: &Prior,
    log: &Path,
    to_type: &str,
) -> anyhow::Result<bool> {
    let unknown: Vec<u64> = prior.rows_with(RowStatus::Unknown).collect();
    // Only a rehearsal's rows: a results file of a run against Intercom is refused later.
    let rehearsal = prior
        .header
        .as_ref()
        .is_some_and(|h| h.settings.ends_with("@sandbox"));
    if unknown.is_empty() || !rehearsal {
        return Ok(false);
    }
    let created = created_messages(log, to_type)?;
    let shared = shared_recipients(prior);
    let changes: HashMap<u64, Amendment> = unknown
        .iter()
        .filter(|&&row| !shared(row))
        .map(|&row| {
            let id = prior.recipient_hash(row).and_then(|h| created.get(&h));
            (row, amendment(id, log))
        })
        .collect();
    if changes.is_empty() {
        return Ok(false);
    }
    ledger.amend(&changes)?;
    let sent = changes
        .values()
        .filter(|a| a.status == RowStatus::Sent)
        .count();
    crate::say!(
        "settled {} `unknown` rows from the sandbox's log: {sent} were created (now `sent`), {} were not (sent again now)",
        changes.len(),
        changes.len() - sent
    );
    Ok(true)
}

/// The messages the log records, by recipient hash: each one's message id.
fn created_messages(log: &Path, to_type: &str) -> anyhow::Result<HashMap<u64, String>> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", log.display())),
    };
    let mut created: HashMap<u64, String> = HashMap::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // a line the sandbox was writing when it stopped
        };
        if let (Some(to), Some(id)) = (entry["request"]["to"]["id"].as_str(), entry["id"].as_str())
        {
            created.insert(recipient_hash(to_type, to), id.to_string());
        }
    }
    Ok(created)
}

/// Whether a row shares its recipient with another (--allow-duplicates): such rows cannot be
/// told apart in the log, so they are left `unknown`, never guessed.
fn shared_recipients(prior: &Prior) -> impl Fn(u64) -> bool + '_ {
    let mut rows_of: HashMap<u64, usize> = HashMap::new();
    for (row, _) in prior.recorded() {
        if let Some(h) = prior.recipient_hash(row) {
            *rows_of.entry(h).or_default() += 1;
        }
    }
    move |row: u64| {
        prior
            .recipient_hash(row)
            .is_some_and(|h| rows_of.get(&h).is_some_and(|&n| n > 1))
    }
}

/// What the log says of an `unknown` row: `sent` with the message `id` it has, else `failed`.
fn amendment(id: Option<&String>, log: &Path) -> Amendment {
    match id {
        Some(id) => Amendment {
            status: RowStatus::Sent,
            message_id: Some(id.clone()),
            code: "settled_from_sandbox_log".into(),
            note: format!("the sandbox's log {} has this message", log.display()),
        },
        None => Amendment {
            status: RowStatus::Failed,
            message_id: None,
            code: "settled_from_sandbox_log".into(),
            note: format!(
                "not in the sandbox's log {}: it was not created",
                log.display()
            ),
        },
    }
}
