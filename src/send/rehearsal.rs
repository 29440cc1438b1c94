//! `send --sandbox`: the rehearsal's sandbox, started in this process just before the first
//! request, and the ledger's `unknown` rows settled from its log on resume (the log is the truth
//! of what the sandbox created).
use std::collections::{HashMap, HashSet};
use std::io::BufRead as _;
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
    let shared = shared_recipients(prior, &unknown);
    let wanted: HashSet<u64> = shared.counts.keys().copied().collect();
    let created = created_messages(log, to_type, &wanted)?;
    let changes: HashMap<u64, Amendment> = unknown
        .iter()
        .filter(|&&row| !shared.has(prior, row))
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

/// The messages the log records for the recipient hashes `wanted`: each one's message id. The
/// log, a line per message, is read a line at a time.
fn created_messages(
    log: &Path,
    to_type: &str,
    wanted: &HashSet<u64>,
) -> anyhow::Result<HashMap<u64, String>> {
    let file = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", log.display())),
    };
    let mut created: HashMap<u64, String> = HashMap::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.with_context(|| format!("cannot read {}", log.display()))?;
        let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue; // a line the sandbox was writing when it stopped
        };
        if let (Some(to), Some(id)) = (entry["request"]["to"]["id"].as_str(), entry["id"].as_str())
        {
            let hash = recipient_hash(to_type, to);
            if wanted.contains(&hash) {
                created.insert(hash, id.to_string());
            }
        }
    }
    Ok(created)
}

/// The recipients of the `unknown` rows, each with how many rows have it: a recipient of more
/// than one (--allow-duplicates) cannot be told apart in the log, so its rows are left
/// `unknown`, never guessed. Only those recipients are counted, so that what is kept grows with
/// the `unknown` rows, not with all of them.
struct Shared {
    counts: HashMap<u64, usize>,
}

impl Shared {
    fn has(&self, prior: &Prior, row: u64) -> bool {
        prior
            .recipient_hash(row)
            .is_some_and(|h| self.counts.get(&h).is_some_and(|&n| n > 1))
    }
}

fn shared_recipients(prior: &Prior, unknown: &[u64]) -> Shared {
    let mut counts: HashMap<u64, usize> = unknown
        .iter()
        .filter_map(|&row| prior.recipient_hash(row))
        .map(|h| (h, 0))
        .collect();
    for (row, _) in prior.recorded() {
        if let Some(n) = prior.recipient_hash(row).and_then(|h| counts.get_mut(&h)) {
            *n += 1;
        }
    }
    Shared { counts }
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
