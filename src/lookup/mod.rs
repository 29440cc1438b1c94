//! Lookup: rows that address their contact by e-mail or external id are looked up with
//! `POST /contacts/search`, many keys a request (`IN`, filtered by role), pages of up to
//! [`PAGE`] followed with `starting_after` while the cursor moves (a page may be shorter than
//! asked for and still have one after it), at most [`MOST_PAGES`] a batch. Searches go the
//! messages' one way ([`Pace::request`]: they count against the same Intercom limit); being
//! read-only they are retried on any transient failure, and a batch the API refuses (for its
//! size) is split in halves down to one key before its rows fail. [`rules`] says what the
//! contacts found mean.
mod rules;
mod suppress;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::input::config::Address;
use crate::intercom::client::{ApiError, Search};
use crate::intercom::pace::Pace;
pub(crate) use rules::{normalize, Contact, Rules, Verdict};
pub(crate) use suppress::load_suppress;

/// Keys a search carries, and contacts a page holds: the most the API's documentation gives.
pub(crate) const PAGE: usize = 150;

/// Attempts of one search page before its rows fail (`lookup_failed`, looked up again on resume).
const ATTEMPTS: u32 = 8;

/// Pages one batch's search follows at most: 150 keys rarely find more than a few contacts
/// each, and a server that pages on and on would otherwise be followed forever. Past it, the
/// batch's rows fail (`lookup_failed`).
pub(crate) const MOST_PAGES: usize = 20;

/// What the lookups share with the senders: the run's one way for requests, and where the
/// search requests made are counted (every one, answered or not).
pub(crate) struct Pacing<'a> {
    pub(crate) pace: &'a Pace,
    pub(crate) searches: &'a AtomicU64,
    /// The caller holds a place in flight for these searches (the dispatcher's rows looked up
    /// again hold theirs): they take their turn only. Waiting for a place of their own could
    /// wait forever, the rows that hold every place waiting for the search.
    pub(crate) placed: bool,
}

/// Why a lookup found nothing to go on.
#[derive(Debug, Clone)]
pub(crate) enum LookupFailure {
    /// 401/403: every later request would fail too; the run stops.
    Fatal { status: u16, error: ApiError },
    /// The searches failed past their attempts, or the API refused even one key.
    Failed {
        status: Option<u16>,
        error: ApiError,
    },
    /// The run stopped meanwhile.
    Stopped,
}

/// The search request for `keys` (normalized) on the campaign's field, filtered by `role`
/// unless it is `contact`.
pub(crate) fn search_body(
    address: Address,
    role: &str,
    keys: &[String],
    after: Option<&str>,
) -> Value {
    let by_key = json!({"field": address.key(), "operator": "IN", "value": keys});
    let query = if role == "contact" {
        by_key
    } else {
        json!({"operator": "AND", "value": [by_key, {"field": "role", "operator": "=", "value": role}]})
    };
    let mut pagination = json!({ "per_page": PAGE });
    if let Some(after) = after {
        pagination["starting_after"] = json!(after);
    }
    json!({ "query": query, "pagination": pagination })
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Contact>,
    #[serde(default)]
    pages: Option<crate::intercom::answer::Pages>,
}

/// What a batch of keys found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Every contact found, by normalized key.
    pub(crate) contacts: HashMap<String, Vec<Contact>>,
    /// Keys the API refused even alone (a 4xx), with why: their rows fail.
    pub(crate) refused: HashMap<String, (u16, ApiError)>,
}

/// Every contact `keys` find.
pub(crate) async fn find(
    p: &Pacing<'_>,
    rules: &Rules,
    keys: &[String],
) -> Result<Found, LookupFailure> {
    let mut found = Found::default();
    // Batches still to search; one the API refuses comes back as its two halves.
    let mut todo: Vec<&[String]> = vec![keys];
    while let Some(batch) = todo.pop() {
        match all_pages(p, rules, batch).await {
            Ok(contacts) => {
                for c in contacts {
                    if let Some(k) = c.key(rules.address) {
                        found.contacts.entry(k).or_default().push(c);
                    }
                }
            }
            Err(Ended::Refused { .. }) if batch.len() > 1 => {
                let (a, b) = batch.split_at(batch.len() / 2);
                todo.push(b);
                todo.push(a);
            }
            Err(Ended::Refused { status, error }) => {
                found.refused.insert(batch[0].clone(), (status, error));
            }
            Err(Ended::Failed(f)) => return Err(f),
        }
    }
    Ok(found)
}

/// Why a batch's search ended without its contacts.
enum Ended {
    /// The API refused the request itself (a 4xx other than 401, 403 and 429), which splitting
    /// the batch may cure; one key refused so is that key's outcome.
    Refused { status: u16, error: ApiError },
    /// Anything else ends the lookup.
    Failed(LookupFailure),
}

/// The contacts of one batch, every page: `next` is followed while it names a cursor this batch
/// has not had (a server may page by fewer than asked for), up to [`MOST_PAGES`] pages. A cursor
/// that comes back, or pages past the bound, fail the batch's rows: what the pages after would
/// have found is not known.
async fn all_pages(p: &Pacing<'_>, rules: &Rules, keys: &[String]) -> Result<Vec<Contact>, Ended> {
    let mut contacts = Vec::new();
    let mut after: Option<String> = None;
    let mut seen: HashSet<String> = HashSet::new();
    for pages in 1..=MOST_PAGES {
        let body = search_body(rules.address, &rules.role, keys, after.as_deref());
        let page = one_page(p, Bytes::from(body.to_string())).await?;
        contacts.extend(page.data);
        let next = crate::intercom::answer::Pages::cursor(page.pages);
        let Some(next) = next else {
            return Ok(contacts);
        };
        if !seen.insert(next.clone()) {
            return Err(paging_failed(format!(
                "the server's search pages went in a circle (page {pages} named a cursor an earlier page had); the contacts on the pages not seen are not known"
            )));
        }
        after = Some(next);
    }
    Err(paging_failed(format!(
        "the search's pages went on past {MOST_PAGES} for one batch of {} keys; campaign follows no more",
        keys.len()
    )))
}

fn paging_failed(message: String) -> Ended {
    Ended::Failed(LookupFailure::Failed {
        status: None,
        error: ApiError {
            code: "paging_unbounded".into(),
            message,
            ..ApiError::default()
        },
    })
}

/// One page, asked until it is answered, the attempts run out, or the API refuses it.
async fn one_page(p: &Pacing<'_>, body: Bytes) -> Result<Page, Ended> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, error) = match ask(p, body.clone()).await {
            Asked::Page(page) => return Ok(page),
            Asked::RateLimited => {
                // Not this search's fault: it waits with everyone and does not count.
                attempts -= 1;
                continue;
            }
            Asked::Transient(status, error) => (status, error),
            Asked::Refused(failure) => return Err(failure),
            Asked::Stopped => return Err(Ended::Failed(LookupFailure::Stopped)),
        };
        if attempts >= ATTEMPTS {
            return Err(Ended::Failed(LookupFailure::Failed { status, error }));
        }
        if !p
            .pace
            .sleep(crate::intercom::backoff::backoff(attempts))
            .await
        {
            return Err(Ended::Failed(LookupFailure::Stopped));
        }
    }
}

/// What one search request came to.
enum Asked {
    Page(Page),
    /// 429: the gate holds every request until the server's window turns.
    RateLimited,
    /// Worth asking again (no answer, 408, 5xx, an unreadable page): the status, if any, and why.
    Transient(Option<u16>, ApiError),
    /// Asking again will not help.
    Refused(Ended),
    /// The run stopped before it was sent.
    Stopped,
}

/// Sends the search once, the run's one way, and reads what came back.
async fn ask(p: &Pacing<'_>, body: Bytes) -> Asked {
    let answer = if !p.placed {
        p.pace.request(|client| client.search(body)).await
    } else if p.pace.turn().await {
        Some(p.pace.send(p.pace.client().search(body)).await)
    } else {
        None
    };
    let Some(answer) = answer else {
        return Asked::Stopped;
    };
    p.searches.fetch_add(1, Ordering::Relaxed);
    match answer {
        Search::Found { body, .. } => match serde_json::from_slice::<Page>(&body) {
            Ok(page) => Asked::Page(page),
            Err(e) => Asked::Transient(
                None,
                ApiError {
                    code: "unreadable_answer".into(),
                    message: format!("the search's answer is not a contact list: {e}"),
                    ..ApiError::default()
                },
            ),
        },
        Search::Rejected { status, error, .. } => {
            match status {
                // The pace has paused every sender until the server's window turns.
                429 => Asked::RateLimited,
                401 | 403 => Asked::Refused(Ended::Failed(LookupFailure::Fatal { status, error })),
                408 | 500.. => Asked::Transient(Some(status), error),
                _ => Asked::Refused(Ended::Refused { status, error }),
            }
        }
        Search::NoAnswer(why) => Asked::Transient(
            None,
            ApiError {
                code: "no_answer".into(),
                message: why,
                ..ApiError::default()
            },
        ),
    }
}

/// Why a key found nobody, naming the contacts searched: a campaign of users does not search
/// leads (nor the other way round), and `[to] type = "contact"` searches both.
pub(crate) fn not_found(rules: &Rules) -> String {
    let what = rules.address.key();
    match rules.role.as_str() {
        "user" => format!("no user has this {what} (leads are not searched: if this is a lead, set [to] type = \"contact\", which finds users and leads)"),
        "lead" => format!("no lead has this {what} (users are not searched: if this is a user, set [to] type = \"contact\", which finds users and leads)"),
        _ => format!("no contact has this {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_filters_by_role_unless_either_will_do() {
        let keys = vec!["a@x.test".to_string()];
        let b = search_body(Address::Email, "lead", &keys, Some("abc"));
        assert_eq!(b["query"]["operator"], "AND");
        assert_eq!(b["query"]["value"][0]["operator"], "IN");
        assert_eq!(b["query"]["value"][1]["value"], "lead");
        assert_eq!(b["pagination"]["starting_after"], "abc");
        assert_eq!(b["pagination"]["per_page"], 150);
        let b = search_body(Address::ExternalId, "contact", &keys, None);
        assert_eq!(b["query"]["field"], "external_id");
        assert!(b["pagination"].get("starting_after").is_none());
    }
}
