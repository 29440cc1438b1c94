//! `campaign track`: what became of the messages a send recorded. A message has no conversation
//! until its contact replies (unless it was sent with `create_conversation_without_contact_reply`),
//! and a conversation's `source.id` is the id of the message that started it: so every `sent`
//! row's message id is searched for (`source.id IN [...]`, [`search`]), and the tracking file
//! beside the results ([`files`]) says for each whether the contact replied, when, and whether
//! the e-mail was dropped. [`export`] writes the campaign CSV's rows in a state, for a follow-up;
//! [`settle`] finds the messages of `unknown` rows.
//!
//! The whole command runs under the ledger's lock: it reads the results file (and --settle
//! changes it), and a send must not append to it meanwhile.
mod export;
pub(crate) mod files;
mod followup;
mod report;
pub(crate) mod search;
mod settle;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _};
use jiff::Timestamp;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::exit::{Ended, Failure, Outcome};
use crate::input::config::{self, Campaign, Concurrency};
use crate::intercom::pace::Pace;
use crate::results::{self, Ledger, RowStatus};
use crate::sandbox::SandboxConfig;
use crate::target::{Defaults, Options, Target};
use files::{Recorded, Tracked};
use search::Pacing;

pub(crate) use export::ExportStatus;

pub(crate) use followup::{replied_recipients, replied_row, replied_to};
pub(crate) use report::{html as replies_html, replies, text as replies_text, Replies};

/// How long a search may take before it is asked again, without a campaign file to say.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What `campaign track` is asked.
pub(crate) struct TrackRequest {
    /// The results file of a send.
    pub results: PathBuf,
    /// The campaign file: required by `export`, `settle` and a sandbox.
    pub campaign: Option<PathBuf>,
    /// The tracking rows as JSON on stdout.
    pub json: bool,
    /// The rows in this state written to `to`.
    pub export: Option<ExportStatus>,
    pub to: Option<PathBuf>,
    /// With `export`: only messages at least this old.
    pub older_than: Option<std::time::Duration>,
    /// `unknown` rows settled by finding their messages' conversations.
    pub settle: bool,
    /// With `settle`: a message not found this long after its attempt was never created.
    pub settle_missing_after: Option<std::time::Duration>,
    /// Where the searches go; a sandbox's log is the rehearsal's when it names none.
    pub target: Options,
}

pub(crate) async fn run(args: TrackRequest) -> Ended {
    let mut ledger = Ledger::new(args.results.clone());
    ledger.check_files()?;
    if !ledger.results.is_file() {
        return Err(anyhow::anyhow!(
            "{}: no such results file (track reads the results file a send wrote)",
            ledger.results.display()
        )
        .into());
    }
    let campaign = args.campaign.as_deref().map(Campaign::load).transpose()?;
    if args.settle {
        let c = campaign.as_ref().expect("clap requires --campaign");
        if c.create_conversation_without_contact_reply != Some(true) {
            crate::say!(
                "{}: --settle cannot settle this campaign: it was not sent with create_conversation_without_contact_reply = true, so a message has no conversation until its contact replies, and a message without a reply cannot be found by search; mark the unknown rows with `campaign mark` after looking in Intercom",
                c.path.display()
            );
            return Err(Failure::Reported);
        }
    }
    let _lock = ledger.lock()?;
    // A run killed mid-way leaves rows in the journal: they are recorded `unknown` first.
    results::settle(&ledger, &|_| 0)?;
    let mut recorded = files::read_results(&ledger.results)?;
    let tracking = files::tracking_path(&ledger.results);
    let now = Timestamp::now();

    if let Some(status) = args.export.filter(|s| export::from_ledger_alone(*s)) {
        let c = campaign.as_ref().expect("clap requires --campaign");
        let chosen = export::chosen(status, &recorded, &BTreeMap::new(), args.older_than, now);
        let to = args.to.as_ref().expect("clap requires --to");
        let n = export::write(c, &chosen, to)?;
        crate::say!("{}: {n} rows exported", to.display());
        return Ok(Outcome::Done);
    }

    let rate = match &campaign {
        Some(c) => c.send.rate,
        None => config::DEFAULT_RATE
            .parse()
            .expect("the default rate parses"),
    };
    let timeout = campaign
        .as_ref()
        .map_or(DEFAULT_TIMEOUT, |c| c.send.request_timeout);
    let target = open(args.target, &args.results, campaign.as_ref()).await?;
    let requests = AtomicU64::new(0);
    let pace = Pace::new(
        target.client(timeout, 1)?,
        rate,
        Concurrency::Fixed(1),
        CancellationToken::new(),
    );
    let pacing = Pacing {
        pace: &pace,
        requests: &requests,
    };
    let outcome = track_and_settle(
        args.settle.then_some(args.settle_missing_after),
        campaign.as_ref(),
        &ledger,
        &pacing,
        &mut recorded,
        now,
    )
    .await;
    target.close().await?;
    let tracked = outcome?;
    files::write_tracking(&tracking, &tracked)?;
    let count = |s: &str| tracked.values().filter(|t| t.state == s).count();
    crate::say!(
        "{}: {} sent rows: {} replied, {} not replied, {} dropped ({} searches)",
        tracking.display(),
        tracked.len(),
        count("replied"),
        count("not_replied"),
        count("dropped"),
        requests.load(Ordering::Relaxed)
    );
    if let (Some(state), Some(to)) = (args.export, &args.to) {
        let c = campaign.as_ref().expect("clap requires --campaign");
        let chosen = export::chosen(state, &recorded, &tracked, args.older_than, now);
        let n = export::write(c, &chosen, to)?;
        crate::say!("{}: {n} rows exported", to.display());
    }
    if args.json {
        let rows: Vec<&Tracked> = tracked.values().collect();
        crate::out!(
            "{}",
            crate::results::cells::inert_json(
                serde_json::to_string_pretty(&rows).map_err(anyhow::Error::from)?
            )
        );
    }
    // --settle that leaves rows unknown says so in the exit code (each row was named).
    let left = args.settle && recorded.values().any(|r| r.status == RowStatus::Unknown);
    Ok(match left {
        true => Outcome::RowsLeft,
        false => Outcome::Done,
    })
}

/// `--settle` (when asked: `Some`, with its `--settle-missing-after`), then the tracking of every
/// sent row. Searches that failed are [`Failure::Api`].
async fn track_and_settle(
    settle: Option<Option<std::time::Duration>>,
    campaign: Option<&Campaign>,
    ledger: &Ledger,
    p: &Pacing<'_>,
    recorded: &mut BTreeMap<u64, Recorded>,
    now: Timestamp,
) -> Result<BTreeMap<u64, Tracked>, Failure> {
    if let Some(missing_after) = settle {
        let c = campaign.expect("clap requires --campaign");
        settle_unknown(missing_after, c, ledger, p, recorded, now).await?;
    }
    let prior = files::read_tracking(&files::tracking_path(&ledger.results))?;
    track(p, recorded, &prior, now)
        .await
        .context("the conversation searches failed; the tracking file was left as it was")
        .map_err(Failure::api)
}

async fn settle_unknown(
    missing_after: Option<std::time::Duration>,
    c: &Campaign,
    ledger: &Ledger,
    p: &Pacing<'_>,
    recorded: &mut BTreeMap<u64, Recorded>,
    now: Timestamp,
) -> Result<(), Failure> {
    if c.from == 0 {
        return Err(anyhow::anyhow!(
            "{}: --settle needs the sending admin's id as `from` (it searches for the conversations that admin started); `campaign admins` lists the ids",
            c.path.display()
        )
        .into());
    }
    let first_start = crate::results::runs::runs(&ledger.results)?
        .first()
        .map(|r| r.started_at);
    let ask = settle::Ask {
        admin: c.from.to_string(),
        recorded,
        recipient_is_id: !c.address.looked_up(),
        first_start,
        missing_after,
        now,
    };
    let settled = settle::settle(p, &ask)
        .await
        .context("the searches for unknown rows failed; no row was changed")
        .map_err(Failure::api)?;
    ledger.amend(&settled.changes)?;
    let sent = settled
        .changes
        .values()
        .filter(|a| a.status == RowStatus::Sent)
        .count();
    crate::say!(
        "settled {} unknown rows: {sent} now sent, {} now failed, {} left unknown",
        settled.changes.len(),
        settled.changes.len() - sent,
        settled.left.len()
    );
    for (row, why) in &settled.left {
        crate::say!("  row {row}: left unknown: {why}");
    }
    *recorded = files::read_results(&ledger.results)?;
    Ok(())
}

/// Every sent row's tracking: a reply or a drop found before stays (they do not change); the
/// others are searched for again.
async fn track(
    p: &Pacing<'_>,
    recorded: &BTreeMap<u64, Recorded>,
    prior: &BTreeMap<u64, Tracked>,
    now: Timestamp,
) -> Result<BTreeMap<u64, Tracked>, search::SearchFailure> {
    let sent: Vec<&Recorded> = recorded
        .values()
        .filter(|r| r.status == RowStatus::Sent && !r.message_id.is_empty())
        .collect();
    let settled = |r: &Recorded| {
        prior.get(&r.row).filter(|t| {
            t.message_id == r.message_id && matches!(t.state.as_str(), "replied" | "dropped")
        })
    };
    let mut ids: Vec<String> = sent
        .iter()
        .filter(|r| settled(r).is_none())
        .map(|r| r.message_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    let query = |batch: &[String]| json!({"field": "source.id", "operator": "IN", "value": batch});
    let found = search::find_all(p, &ids, &query).await?;
    let mut by_message: HashMap<&str, &search::Conversation> = HashMap::new();
    for f in &found {
        if let Some(id) = f.source.id.as_deref() {
            // A replied conversation says more than another of the same message.
            let replied = |f: &search::Conversation| f.replied();
            match by_message.get(id) {
                Some(have) if replied(have) || !replied(f) => {}
                _ => {
                    by_message.insert(id, f);
                }
            }
        }
    }
    let checked_at = rfc3339(now);
    let mut out = BTreeMap::new();
    for r in sent {
        if let Some(t) = settled(r) {
            out.insert(r.row, t.clone());
            continue;
        }
        let f = by_message.get(r.message_id.as_str());
        let replied_at = f
            .and_then(|f| f.first_contact_reply_at)
            .and_then(|t| Timestamp::from_second(t).ok());
        let drop_reason = f.and_then(|f| f.drop_reason()).unwrap_or("");
        let state = match (replied_at, drop_reason.is_empty()) {
            (Some(_), _) => "replied",
            (None, false) => "dropped",
            (None, true) => "not_replied",
        };
        out.insert(
            r.row,
            Tracked {
                row: r.row,
                message_id: r.message_id.clone(),
                conversation_id: f.map(|f| f.id.clone()).unwrap_or_default(),
                state: state.into(),
                replied_at: replied_at.map(rfc3339).unwrap_or_default(),
                drop_reason: drop_reason.chars().take(200).collect(),
                checked_at: checked_at.clone(),
            },
        );
    }
    Ok(out)
}

fn rfc3339(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// Where the searches go: Intercom (or `--api-base`), or a sandbox in this process holding the
/// conversations of the rehearsal's log.
async fn open(
    options: Options,
    results: &std::path::Path,
    c: Option<&Campaign>,
) -> anyhow::Result<Target> {
    let token = options.token()?;
    let mut options = options;
    if let Some(sandbox) = &mut options.sandbox {
        let c = c.expect("clap requires --campaign with --sandbox");
        let log = sandbox
            .log
            .clone()
            .unwrap_or_else(|| rehearsal_log_of(results, Some(c)));
        if !log.is_file() {
            bail!(
                "--sandbox: no rehearsal log at {}: `campaign send {} --sandbox` writes it (or name it with --sandbox-log)",
                log.display(),
                c.path.display()
            );
        }
        sandbox.log = Some(log);
    }
    let defaults = Defaults {
        base_url: c.map_or(config::DEFAULT_BASE_URL, |c| &c.base_url),
        version: c.map_or(config::DEFAULT_VERSION, |c| &c.version),
    };
    options
        .access(token, &defaults)?
        .start(|o| SandboxConfig {
            invent_contacts: false,
            ..o.config()
        })
        .await
}

/// The log of the rehearsal that wrote `results`, where `send --sandbox` keeps it: in the hidden
/// folder beside it (`.campaign/<results>.sandbox.jsonl`), or where an earlier version kept it
/// (`X.sandbox.results.csv`'s `X.sandbox.jsonl` beside it, `<results>.sandbox.jsonl`, or, with
/// the campaign, `<campaign stem>.sandbox.jsonl` beside the campaign file) when only that one
/// exists.
pub(crate) fn rehearsal_log_of(results: &std::path::Path, c: Option<&Campaign>) -> PathBuf {
    let new = crate::results::side::path(results, crate::results::side::SANDBOX_LOG);
    let by_name = results
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".sandbox.results.csv"))
        .map(|stem| results.with_file_name(format!("{stem}.sandbox.jsonl")));
    let by_campaign = c.map(|c| {
        let name = format!("{}.sandbox.jsonl", c.stem());
        match c.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
            _ => PathBuf::from(name),
        }
    });
    std::iter::once(new.clone())
        .chain(by_name)
        .chain([crate::results::side::legacy(
            results,
            crate::results::side::SANDBOX_LOG,
        )])
        .chain(by_campaign)
        .find(|p| p.is_file())
        .unwrap_or(new)
}
