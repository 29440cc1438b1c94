//! `track --settle`: `unknown` rows of a campaign sent with
//! `create_conversation_without_contact_reply = true` (every message has a conversation at once)
//! settled by finding their messages: each row's contact's conversations started by the sending
//! admin since the first run began (less a minute) and no later than a minute after the row was
//! recorded. One message, that no other row of the results holds, makes the row `sent` with its
//! id; several leave it `unknown`, naming them; none leave it `unknown`, unless the message
//! should have been searchable for `--settle-missing-after` (then `failed`, sent again by
//! `send --resume`). The rows are changed through the ledger's amendment, noted
//! "settled by track".
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::files::Recorded;
use super::search::{self, Conversation, Pacing};
use crate::results::{Amendment, RowStatus};

/// The `error_code` a settled row gets.
pub(crate) const CODE: &str = "settled_by_track";

/// How far a message's creation may lie outside the run that sent it: clocks differ.
const SLACK: i64 = 60;

/// Intercom's description of the contact search matches dates by calendar day (`>` from the
/// start of the next day); the conversation search's says nothing. The search asks from a day
/// before, and the window is applied here to the timestamps the answer carries.
const DAY: i64 = 86_400;

/// What settling came to: the rows' changes, and the rows left `unknown` with why.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub(crate) changes: HashMap<u64, Amendment>,
    pub(crate) left: BTreeMap<u64, String>,
}

/// The inputs: the sending admin, the results' rows, the first run's start, the rule for
/// missing messages.
pub(crate) struct Ask<'a> {
    pub(crate) admin: String,
    pub(crate) recorded: &'a BTreeMap<u64, Recorded>,
    /// Whether the rows name their contact in `recipient` (`[to] id`); else in `contact_id`.
    pub(crate) recipient_is_id: bool,
    pub(crate) first_start: Option<Timestamp>,
    pub(crate) missing_after: Option<Duration>,
    pub(crate) now: Timestamp,
}

pub(crate) async fn settle(
    p: &Pacing<'_>,
    ask: &Ask<'_>,
) -> Result<Settled, search::SearchFailure> {
    let mut out = Settled::default();
    let unknown: Vec<&Recorded> = ask
        .recorded
        .values()
        .filter(|r| r.status == RowStatus::Unknown)
        .collect();
    if unknown.is_empty() {
        return Ok(out);
    }
    // The earliest a message of this ledger was created: the first run's start, or the first
    // outcome recorded when the run log lacks a run (one killed before it could write its line).
    let first_outcome = ask
        .recorded
        .values()
        .filter_map(|r| r.finished_at.parse::<Timestamp>().ok())
        .min();
    let Some(start) = [ask.first_start, first_outcome].into_iter().flatten().min() else {
        for r in &unknown {
            out.left
                .insert(r.row, "the results hold no time to search from".into());
        }
        return Ok(out);
    };
    let lower = start.as_second() - SLACK;
    let contact_of = |r: &Recorded| {
        let c = if ask.recipient_is_id {
            &r.recipient
        } else {
            &r.contact_id
        };
        (!c.is_empty()).then(|| c.clone())
    };
    let mut contacts: Vec<String> = unknown.iter().filter_map(|r| contact_of(r)).collect();
    contacts.sort();
    contacts.dedup();
    let admin = ask.admin.clone();
    let query = |batch: &[String]| {
        json!({"operator": "AND", "value": [
            {"field": "source.author.id", "operator": "=", "value": admin},
            {"field": "contact_ids", "operator": "IN", "value": batch},
            {"field": "created_at", "operator": ">", "value": lower - DAY},
        ]})
    };
    let found = search::find_all(p, &contacts, &query).await?;
    // Messages the results hold already belong to their rows: never another's.
    let known: HashSet<&str> = ask
        .recorded
        .values()
        .map(|r| r.message_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let mut candidates: BTreeMap<u64, Vec<&Conversation>> = BTreeMap::new();
    for r in &unknown {
        let Some(contact) = contact_of(r) else {
            out.left.insert(
                r.row,
                "the results do not name its contact (no contact_id): mark it with `campaign mark`"
                    .into(),
            );
            continue;
        };
        let upper = r
            .finished_at
            .parse::<Timestamp>()
            .map_or(i64::MAX, |t| t.as_second() + SLACK);
        let mut mine: Vec<&Conversation> = found
            .iter()
            .filter(|f| {
                f.has_contact(&contact)
                    && f.source.author_id.as_deref() == Some(ask.admin.as_str())
                    && f.created_at.is_some_and(|t| (lower..=upper).contains(&t))
                    && f.source
                        .id
                        .as_deref()
                        .is_some_and(|id| !id.is_empty() && !known.contains(id))
            })
            .collect();
        mine.sort_by(|a, b| a.source.id.cmp(&b.source.id));
        mine.dedup_by(|a, b| a.source.id == b.source.id);
        candidates.insert(r.row, mine);
    }
    // A message two rows could claim (a contact twice in the CSV) settles neither.
    let mut claims: HashMap<&str, u64> = HashMap::new();
    for list in candidates.values() {
        for f in list {
            *claims
                .entry(f.source.id.as_deref().unwrap_or(""))
                .or_default() += 1;
        }
    }
    for (row, list) in candidates {
        let r = &ask.recorded[&row];
        let ids: Vec<&str> = list
            .iter()
            .map(|f| f.source.id.as_deref().unwrap_or(""))
            .collect();
        match ids.as_slice() {
            [id] if claims[id] == 1 => {
                out.changes.insert(
                    row,
                    Amendment {
                        status: RowStatus::Sent,
                        message_id: Some(id.to_string()),
                        code: CODE.into(),
                        note: format!(
                            "settled by track: conversation {} holds message {id}, from admin {} to this row's contact",
                            list[0].id, ask.admin
                        ),
                    },
                );
            }
            [id] => {
                out.left.insert(
                    row,
                    format!(
                        "message {id} could be this row's or another row's with the same contact"
                    ),
                );
            }
            [] => match missing_for(r, ask) {
                Some(age) => {
                    out.changes.insert(
                        row,
                        Amendment {
                            status: RowStatus::Failed,
                            message_id: None,
                            code: CODE.into(),
                            note: format!(
                                "settled by track: no message from admin {} to this row's contact {} after it was attempted: it was not created",
                                ask.admin,
                                crate::input::rate::format_duration(age)
                            ),
                        },
                    );
                }
                None => {
                    out.left
                        .insert(row, "no message found for its contact (yet)".into());
                }
            },
            several => {
                out.left.insert(
                    row,
                    format!(
                        "several messages from admin {} to its contact: {}",
                        ask.admin,
                        several.join(", ")
                    ),
                );
            }
        }
    }
    Ok(out)
}

/// With `--settle-missing-after D`: how long ago the row was attempted, when that is at least D.
fn missing_for(r: &Recorded, ask: &Ask<'_>) -> Option<Duration> {
    let wait = ask.missing_after?;
    let at = r.finished_at.parse::<Timestamp>().ok()?;
    let age = Duration::try_from(ask.now.duration_since(at)).ok()?;
    // Whole seconds: the note reads better.
    let age = Duration::from_secs(age.as_secs());
    (age >= wait).then_some(age)
}
