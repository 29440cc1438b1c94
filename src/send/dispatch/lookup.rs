//! The lookup stage of a run: between the reader and the dispatcher, rows that address their
//! contact by e-mail or external id are held until [`lookup::PAGE`] distinct keys (or the end of
//! the rows) are in hand, looked up in one search, and passed on in their order: as jobs whose
//! `to` is the contact found, or as outcomes (`failed`, `skipped`) that never reach
//! `POST /messages`. Searches create nothing, so nothing here is journaled. Two rows that find
//! one contact: the second fails (`duplicate_contact`) before that contact is messaged.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::{Item, Job, RowEnd, Says, Shared};
use crate::input::config::{Campaign, MessageType};
use crate::lookup::{self, Found, LookupFailure, Pacing, Rules, Verdict};
use crate::results::{self, ResultRow, RowStatus};

/// What earlier runs of the campaign messaged (rows `sent`, and `unknown` ones not retried):
/// a row of this run that addresses one of them is a duplicate, found without a lookup.
#[derive(Debug, Default)]
pub(super) struct Earlier {
    /// Normalized key, and the row that had it.
    pub(super) keys: HashMap<String, u64>,
    /// Contact id (the results' `contact_id`), and the row that had it.
    pub(super) contacts: HashMap<String, u64>,
}

impl Earlier {
    /// Reads the settled results file: the rows `done` says are passed over.
    pub(super) fn read(
        results: &std::path::Path,
        rules: &Rules,
        done: &dyn Fn(u64) -> bool,
    ) -> anyhow::Result<Earlier> {
        let mut earlier = Earlier::default();
        let Some(mut rdr) = results::read::Reader::open(results)? else {
            return Ok(earlier);
        };
        let contact_at = rdr.column(results::CONTACT_ID);
        while let Some(line) = rdr.next()? {
            if !done(line.row) {
                continue;
            }
            let recipient = rdr.text(results::read::Col::Recipient);
            earlier
                .keys
                .insert(lookup::normalize(rules.address, &recipient), line.row);
            if let Some(id) = contact_at.map(|c| rdr.cell(c)).filter(|c| !c.is_empty()) {
                earlier.contacts.insert(id.into_owned(), line.row);
            }
        }
        Ok(earlier)
    }
}

/// Passes items from `rx` to `tx`, resolving the jobs that need it. Returns when `rx` ends, the
/// run stops, or `tx` is gone.
pub(super) async fn stage(
    shared: Arc<Shared>,
    rules: Arc<Rules>,
    earlier: Earlier,
    skip_duplicates: bool,
    mut rx: mpsc::Receiver<Vec<Item>>,
    tx: mpsc::Sender<Vec<Item>>,
) {
    let mut held: Vec<Item> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut distinct: HashSet<String> = HashSet::new();
    // The contacts messaged in this run or before, and the row that has each.
    let mut taken: HashMap<String, u64> = earlier.contacts;
    let earlier_keys = earlier.keys;
    let stop = shared.stop.token();
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            b = rx.recv() => b,
        };
        let ended = batch.is_none();
        for mut item in batch.into_iter().flatten() {
            if let Item::Job(job) = &item {
                let key = lookup::normalize(rules.address, &job.recipient);
                if let Some(first) = earlier_keys.get(&key) {
                    let why = format!("row {first} addressed this {} in an earlier run; this row was not sent, so that the contact is messaged once", rules.address.key());
                    item = settled(
                        job,
                        RowStatus::Failed,
                        None,
                        "duplicate_contact",
                        &why,
                        Says::Nothing,
                    );
                } else if !rules.suppressed(&key) && distinct.insert(key.clone()) {
                    keys.push(key);
                }
            }
            held.push(item);
            if keys.len() >= lookup::PAGE {
                let out = resolved(
                    &shared,
                    &rules,
                    std::mem::take(&mut held),
                    &keys,
                    &mut taken,
                )
                .await;
                keys.clear();
                distinct.clear();
                if tx.send(set_aside(out, skip_duplicates)).await.is_err() {
                    return;
                }
            }
        }
        if ended {
            if !held.is_empty() {
                let out = resolved(&shared, &rules, held, &keys, &mut taken).await;
                let _ = tx.send(set_aside(out, skip_duplicates)).await;
            }
            return;
        }
    }
}

/// With `--skip-duplicates`, a row whose contact an earlier row has (an e-mail in other case, say)
/// is `skipped` (`duplicate`), not `failed`: its contact gets the message once, and no resume
/// could do more.
fn set_aside(items: Vec<Item>, skip_duplicates: bool) -> Vec<Item> {
    if !skip_duplicates {
        return items;
    }
    items
        .into_iter()
        .map(|item| match item {
            Item::Settled { mut row, says } if row.error_code == "duplicate_contact" => {
                row.status = RowStatus::Skipped;
                row.error_code = "duplicate".into();
                Item::Settled { row, says }
            }
            other => other,
        })
        .collect()
}

/// `held`'s items, their jobs resolved by one lookup of `keys`.
async fn resolved(
    shared: &Shared,
    rules: &Rules,
    held: Vec<Item>,
    keys: &[String],
    taken: &mut HashMap<String, u64>,
) -> Vec<Item> {
    let pacing = Pacing {
        pace: &shared.pace,
        searches: &shared.counters.searches,
        placed: false,
    };
    // Not while the hours are closed: a contact's unsubscribe status would be used when they
    // open, maybe days later.
    let open = keys.is_empty() || shared.hours_open().await;
    let asked = tokio::time::Instant::now();
    let found = if keys.is_empty() {
        Ok(Found::default())
    } else if !open {
        Err(LookupFailure::Stopped)
    } else {
        lookup::find(&pacing, rules, keys).await
    };
    let items: Vec<Item> = held
        .into_iter()
        .map(|item| match item {
            Item::Job(job) => resolve_job(rules, &found, job, taken, asked),
            other => other,
        })
        .collect();
    let suppressed = items
        .iter()
        .filter(|i| matches!(i, Item::Settled { row, .. } if row.error_code == "suppressed"))
        .count();
    shared
        .counters
        .suppressed
        .fetch_add(suppressed as u64, std::sync::atomic::Ordering::Relaxed);
    items
}

/// Looks `jobs` up again (their lookup is older than the window the dispatcher keeps), in one
/// search: each comes back a job addressed to the same contact, or settled by what the search
/// says now (unsubscribed, gone, ...). A key that now finds another contact fails
/// (`lookup_failed`): which row that contact belongs to is the lookup stage's to judge, on resume.
pub(super) async fn refresh(shared: &Shared, rules: &Rules, jobs: Vec<Job>) -> Vec<Item> {
    let mut keys: Vec<String> = Vec::new();
    let mut distinct: HashSet<String> = HashSet::new();
    for job in &jobs {
        let key = lookup::normalize(rules.address, &job.recipient);
        if distinct.insert(key.clone()) {
            keys.push(key);
        }
    }
    // The rows looked up again hold their places in flight: the search is theirs.
    let pacing = Pacing {
        pace: &shared.pace,
        searches: &shared.counters.searches,
        placed: true,
    };
    let asked = tokio::time::Instant::now();
    let found = lookup::find(&pacing, rules, &keys).await;
    jobs.into_iter()
        .map(|job| {
            let before = job.contact_id.clone();
            match resolve_job(rules, &found, job, &mut HashMap::new(), asked) {
                Item::Job(j) if j.contact_id != before => settled(&j, RowStatus::Failed, None, "lookup_failed", "this row's key finds another contact than when it was first looked up; --resume looks it up again", Says::Health),
                other => other,
            }
        })
        .collect()
}

/// One job looked up again before its retry (its lookup aged past the window while it waited):
/// the job addressed as before, or its row as the search settles it now (unsubscribed, gone,
/// another contact), with whether that ends the run.
pub(super) async fn renew(shared: &Shared, rules: &Rules, job: Job) -> Result<Job, RowEnd> {
    match refresh(shared, rules, vec![job]).await.pop() {
        Some(Item::Job(job)) => Ok(job),
        Some(Item::Settled { row, says }) => Err(RowEnd { row: *row, says }),
        Some(Item::Skip(row)) => Err(RowEnd {
            row: *row,
            says: Says::Nothing,
        }),
        None => unreachable!("one job in, one item out"),
    }
}

/// One job and what its key found.
fn resolve_job(
    rules: &Rules,
    found: &Result<Found, LookupFailure>,
    mut job: Job,
    taken: &mut HashMap<String, u64>,
    asked: tokio::time::Instant,
) -> Item {
    job.looked_up = Some(asked);
    let key = lookup::normalize(rules.address, &job.recipient);
    let what = rules.address.key();
    let found = match found {
        Ok(f) => f,
        Err(failure) => return not_looked_up(&job, failure),
    };
    if let Some((status, error)) = found.refused.get(&key) {
        return settled(
            &job,
            RowStatus::Failed,
            Some(*status),
            "lookup_refused",
            &format!(
                "the search for this {what} was refused ({}: {})",
                error.code, error.message
            ),
            Says::Nothing,
        );
    }
    let matches: Vec<&lookup::Contact> = found
        .contacts
        .get(&key)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    match rules.judge(&key, &matches) {
        Verdict::Found(contact) => addressed(job, contact, taken),
        Verdict::NotFound => settled(&job, RowStatus::Failed, None, "contact_not_found", &format!("{}; a contact created in the last minutes may not be searchable yet: --resume looks it up again", lookup::not_found(rules)), Says::Nothing),
        Verdict::Ambiguous(many) => settled(&job, RowStatus::Failed, None, "ambiguous_contact", &format!("this {what} finds {many}; send to one with [to] id, or set [to] on_many = \"user\" to prefer the user"), Says::Nothing),
        Verdict::Unsubscribed(reason) => settled(&job, RowStatus::Skipped, None, reason, &format!("the contact ({reason}) asked not to get e-mail; [send] respect_unsubscribed = false sends anyway (service messages only)"), Says::Nothing),
        Verdict::Suppressed => settled(&job, RowStatus::Skipped, None, "suppressed", "on the [send] suppress list", Says::Nothing),
    }
}

/// A job whose lookup failed: its row fails, looked up again on resume. A search that kept
/// failing counts in the run's health; one refused for the token stops the run.
fn not_looked_up(job: &Job, failure: &LookupFailure) -> Item {
    match failure {
        LookupFailure::Fatal { status, error } => settled(
            job,
            RowStatus::Failed,
            Some(*status),
            &error.code,
            &error.message,
            Says::Refused,
        ),
        LookupFailure::Failed { status, error } => settled(
            job,
            RowStatus::Failed,
            *status,
            "lookup_failed",
            &format!(
                "the contact could not be looked up ({}: {}); --resume looks it up again",
                error.code, error.message
            ),
            Says::Health,
        ),
        LookupFailure::Stopped => settled(
            job,
            RowStatus::Failed,
            None,
            "lookup_failed",
            "the run stopped before the contact was looked up; --resume looks it up again",
            Says::Health,
        ),
    }
}

/// The job addressed to the contact found, unless an earlier row has that contact.
fn addressed(mut job: Job, contact: lookup::Contact, taken: &mut HashMap<String, u64>) -> Item {
    if let Some(first) = taken.get(&contact.id) {
        let mut r = settled_row(&job, RowStatus::Failed, None, "duplicate_contact", &format!("row {first} addresses the same contact ({}); this row was not sent, so that the contact is messaged once", contact.id));
        r.contact_id = contact.id;
        return Item::Settled {
            row: Box::new(r),
            says: Says::Nothing,
        };
    }
    taken.insert(contact.id.clone(), job.row);
    let mut body: serde_json::Value = match serde_json::from_slice(&job.body) {
        Ok(v) => v,
        Err(e) => {
            return settled(
                &job,
                RowStatus::Failed,
                None,
                "internal",
                &format!("cannot address the message: {e}"),
                Says::Nothing,
            )
        }
    };
    body["to"] = json!({"type": contact.role, "id": contact.id});
    job.body = Bytes::from(body.to_string());
    job.contact_id = contact.id;
    Item::Job(job)
}

fn settled(
    job: &Job,
    status: RowStatus,
    http: Option<u16>,
    code: &str,
    message: &str,
    says: Says,
) -> Item {
    Item::Settled {
        row: Box::new(settled_row(job, status, http, code, message)),
        says,
    }
}

fn settled_row(
    job: &Job,
    status: RowStatus,
    http: Option<u16>,
    code: &str,
    message: &str,
) -> ResultRow {
    ResultRow {
        row: job.row,
        recipient: job.recipient.clone(),
        status,
        message_id: String::new(),
        http_status: http,
        error_code: code.to_string(),
        error_message: message.to_string(),
        request_id: String::new(),
        attempts: 0,
        finished_at: results::now_rfc3339(),
        contact_id: String::new(),
        extra: job.extra.clone(),
    }
}

/// What the lookup stage will do, for `--dry-run` and the start of a run.
pub(in crate::send) fn lookup_plan(c: &Campaign, rows: u64) -> String {
    let searches = rows.div_ceil(crate::lookup::PAGE as u64);
    let mut line = format!(
        "up to {rows} rows are {} by {} (POST /contacts/search, {} keys a search: about {searches} searches, besides the pages of keys that find several contacts) before they are sent",
        if c.verify { "verified" } else { "looked up" },
        c.address.key(),
        crate::lookup::PAGE
    );
    if c.message_type == MessageType::Email {
        line.push_str(if c.send.respect_unsubscribed {
            "; contacts unsubscribed from e-mail, hard-bounced or marked as spam are skipped"
        } else {
            "; [send] respect_unsubscribed = false: contacts unsubscribed from e-mail, hard-bounced or marked as spam ARE sent this message"
        });
    }
    line
}
