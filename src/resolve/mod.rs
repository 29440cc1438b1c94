//! Resolution: rows that address their contact by e-mail or external id are looked up with
//! `POST /contacts/search`, many keys a request (`IN`, filtered by role), pages of up to
//! [`PAGE`] followed with `starting_after`. Searches share the messages' limiter, pause gate and
//! rate-header handling (they count against the same Intercom limit); being read-only they are
//! retried on any transient failure, and a batch the API refuses (for its size) is split in
//! halves down to one key before its rows fail. [`rules`] says what the contacts found mean.
pub mod command;
mod rules;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::input::config::Address;
use crate::intercom::client::{ApiError, Client, Search};
use crate::intercom::pace::{self, Gate, InFlight, Limiter};
pub(crate) use rules::{normalize, Contact, Rules, Verdict};

/// Keys a search carries, and contacts a page holds: the most the API's documentation gives.
pub(crate) const PAGE: usize = 150;

/// Attempts of one search page before its rows fail (`lookup_failed`, looked up again on resume).
const ATTEMPTS: u32 = 8;

/// What resolution shares with the senders: one client, one limit, one pause.
pub(crate) struct Pacing<'a> {
    pub(crate) client: &'a Client,
    pub(crate) gate: &'a Gate,
    pub(crate) limiter: &'a Limiter,
    pub(crate) in_flight: &'a InFlight,
    pub(crate) stop: &'a CancellationToken,
    pub(crate) rate_limited: &'a AtomicU64,
}

/// Why a lookup found nothing to go on.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
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
    pages: Option<Pages>,
}

#[derive(Deserialize)]
struct Pages {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    starting_after: Option<String>,
}

/// What a batch of keys found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Every contact found, by normalized key.
    pub(crate) contacts: HashMap<String, Vec<Contact>>,
    /// Keys the API refused even alone (a 4xx), with why: their rows fail.
    pub(crate) refused: HashMap<String, (u16, ApiError)>,
    /// Search requests made.
    pub(crate) requests: u64,
}

/// Every contact `keys` find.
pub(crate) async fn find(p: &Pacing<'_>, rules: &Rules, keys: &[String]) -> Result<Found, Failure> {
    let mut found = Found::default();
    let requests = &mut found.requests;
    // Batches still to search; one the API refuses comes back as its two halves.
    let mut todo: Vec<&[String]> = vec![keys];
    while let Some(batch) = todo.pop() {
        match all_pages(p, rules, batch, requests).await {
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
    Failed(Failure),
}

/// The contacts of one batch, every page.
async fn all_pages(
    p: &Pacing<'_>,
    rules: &Rules,
    keys: &[String],
    requests: &mut u64,
) -> Result<Vec<Contact>, Ended> {
    let mut contacts = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = search_body(rules.address, &rules.role, keys, after.as_deref());
        let page = one_page(p, Bytes::from(body.to_string()), requests).await?;
        // A page short of full is the last, whatever its cursor says; a cursor that does not
        // move would loop forever.
        let full = page.data.len() >= PAGE;
        contacts.extend(page.data);
        match page
            .pages
            .and_then(|p| p.next)
            .and_then(|n| n.starting_after)
        {
            Some(next) if full && Some(&next) != after.as_ref() => after = Some(next),
            _ => return Ok(contacts),
        }
    }
}

/// One page, asked until it is answered, the attempts run out, or the API refuses it.
async fn one_page(p: &Pacing<'_>, body: Bytes, requests: &mut u64) -> Result<Page, Ended> {
    let mut attempts = 0;
    loop {
        tokio::select! {
            biased;
            _ = p.stop.cancelled() => return Err(Ended::Failed(Failure::Stopped)),
            _ = pace::turn(p.gate, p.limiter) => {}
        }
        attempts += 1;
        *requests += 1;
        let (status, error) = match ask(p, body.clone()).await {
            Asked::Page(page) => return Ok(page),
            Asked::RateLimited => {
                // Not this search's fault: it waits with everyone and does not count.
                attempts -= 1;
                continue;
            }
            Asked::Transient(status, error) => (status, error),
            Asked::Refused(failure) => return Err(failure),
        };
        if attempts >= ATTEMPTS {
            return Err(Ended::Failed(Failure::Failed { status, error }));
        }
        tokio::select! {
            biased;
            _ = p.stop.cancelled() => return Err(Ended::Failed(Failure::Stopped)),
            _ = tokio::time::sleep(crate::intercom::policy::backoff(attempts)) => {}
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
}

/// Sends the search once and reads what came back; heeds the server's rate headers.
async fn ask(p: &Pacing<'_>, body: Bytes) -> Asked {
    let started = Instant::now();
    match p.client.search(body).await {
        Search::Found { body, rate } => {
            p.in_flight.record_latency(started.elapsed());
            pace::heed_server(p.gate, &rate, p.in_flight.busy());
            match serde_json::from_slice::<Page>(&body) {
                Ok(page) => Asked::Page(page),
                Err(e) => Asked::Transient(
                    None,
                    ApiError {
                        code: "unreadable_answer".into(),
                        message: format!("the search's answer is not a contact list: {e}"),
                        ..ApiError::default()
                    },
                ),
            }
        }
        Search::Rejected {
            status,
            error,
            rate,
            retry_after,
        } => {
            pace::heed_server(p.gate, &rate, p.in_flight.busy());
            match status {
                429 => {
                    p.rate_limited.fetch_add(1, Ordering::Relaxed);
                    p.gate
                        .pause_until(pace::rate_limited_until(retry_after, rate.reset));
                    Asked::RateLimited
                }
                401 | 403 => Asked::Refused(Ended::Failed(Failure::Fatal { status, error })),
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
