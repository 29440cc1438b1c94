//! `POST /conversations/search`, batched and paced: many values a search (`IN`), pages of
//! [`PAGE`] followed with `starting_after` while the cursor is new (up to
//! [`crate::lookup::MOST_PAGES`] a batch), a batch the API refuses split in halves down to one
//! value, every request through the run's limiter and pause gate ([`paced`]), 429s waited out
//! with everyone, transient failures asked again a few times.
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::intercom::client::{ApiError, Search};
use crate::intercom::pace::Pace;

/// Values a search carries, and conversations a page holds: the most the description gives a
/// page (it gives no bound on an `IN`'s values; one that is refused is split).
pub(crate) const PAGE: usize = 150;

/// Attempts of one page before the tracking stops with the error.
const ATTEMPTS: u32 = 6;

/// What every search shares: the run's one request path (client, limit, pause, stop).
pub(crate) struct Pacing<'a> {
    pub(crate) pace: &'a Pace,
    /// Search requests sent (each page, each attempt).
    pub(crate) requests: &'a AtomicU64,
}

/// A conversation, as far as tracking reads it. Read field by field from the answer, so that a
/// field of another type (a server's, or a mock's) is a field missing, not a page refused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conversation {
    pub(crate) id: String,
    pub(crate) created_at: Option<i64>,
    pub(crate) source: Source,
    pub(crate) contact_ids: Vec<String>,
    pub(crate) first_contact_reply_at: Option<i64>,
    pub(crate) drop_reasons: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Source {
    pub(crate) id: Option<String>,
    pub(crate) author_id: Option<String>,
}

/// A string, or a number as its text; anything else is none. Bounded: these are ids.
fn text(v: &Value) -> Option<String> {
    let t = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(
        t.chars()
            .take(crate::intercom::answer::FIELD_CHARS)
            .collect(),
    )
}

/// A Unix timestamp, as an integer (or a float, as some servers send).
fn time(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

impl Conversation {
    fn read(c: &Value) -> Conversation {
        let source = &c["source"];
        Conversation {
            id: text(&c["id"]).unwrap_or_default(),
            created_at: time(&c["created_at"]),
            source: Source {
                id: text(&source["id"]),
                author_id: text(&source["author"]["id"]),
            },
            contact_ids: c["contacts"]["contacts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| text(&x["id"]))
                .collect(),
            first_contact_reply_at: time(&c["statistics"]["first_contact_reply_at"]),
            drop_reasons: source["recipients"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| text(&r["drop_reason"]))
                .filter(|r| !r.is_empty())
                .collect(),
        }
    }

    /// The first recipient's `drop_reason`, if any (e-mail only).
    pub(crate) fn drop_reason(&self) -> Option<&str> {
        self.drop_reasons.first().map(String::as_str)
    }

    pub(crate) fn has_contact(&self, id: &str) -> bool {
        self.contact_ids.iter().any(|c| c == id)
    }

    pub(crate) fn replied(&self) -> bool {
        self.first_contact_reply_at.is_some()
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    conversations: Vec<Value>,
    #[serde(default)]
    pages: Option<crate::intercom::answer::Pages>,
}

/// Why the searches stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SearchFailure {
    #[error("HTTP {status} {}: {}", .error.code, .error.message)]
    Refused { status: u16, error: ApiError },
    #[error("the searches failed {ATTEMPTS} times in a row: {0}")]
    Failed(String),
    /// The pages went in a circle or on past the bound: what the pages not read hold is not
    /// known.
    #[error("{0}")]
    Paging(String),
    #[error("stopped")]
    Stopped,
}

/// Every conversation `query(values)` finds, for `values` in batches of at most [`PAGE`]; a
/// batch the API refuses (a 4xx other than 401, 403 and 429) is searched again as two halves.
/// A single value refused so ends the search with that refusal.
pub(crate) async fn find_all(
    p: &Pacing<'_>,
    values: &[String],
    query: &dyn Fn(&[String]) -> Value,
) -> Result<Vec<Conversation>, SearchFailure> {
    let mut found = Vec::new();
    let mut todo: Vec<&[String]> = values.chunks(PAGE).rev().collect();
    while let Some(batch) = todo.pop() {
        match all_pages(p, &query(batch), batch.len()).await {
            Ok(mut page) => found.append(&mut page),
            Err(Ended::Refused { .. }) if batch.len() > 1 => {
                let (a, b) = batch.split_at(batch.len() / 2);
                todo.push(b);
                todo.push(a);
            }
            Err(Ended::Refused { status, error }) => {
                return Err(SearchFailure::Refused { status, error })
            }
            Err(Ended::Failed(f)) => return Err(f),
        }
    }
    Ok(found)
}

enum Ended {
    Refused { status: u16, error: ApiError },
    Failed(SearchFailure),
}

/// One batch's conversations, every page: `next` is followed while it names a cursor this batch
/// has not had (a server may page by fewer than asked for), up to
/// [`crate::lookup::MOST_PAGES`] pages. A cursor that comes back, or pages past the bound, end
/// the search with the error: a server paging on and on would otherwise be followed forever.
async fn all_pages(
    p: &Pacing<'_>,
    query: &Value,
    values: usize,
) -> Result<Vec<Conversation>, Ended> {
    use crate::lookup::MOST_PAGES;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for pages in 1..=MOST_PAGES {
        let mut pagination = json!({ "per_page": PAGE });
        if let Some(a) = &after {
            pagination["starting_after"] = json!(a);
        }
        let body = json!({ "query": query, "pagination": pagination });
        let page = one_page(p, Bytes::from(body.to_string())).await?;
        all.extend(page.conversations.iter().map(Conversation::read));
        let next = crate::intercom::answer::Pages::cursor(page.pages);
        let Some(next) = next else {
            return Ok(all);
        };
        if !seen.insert(next.clone()) {
            return Err(Ended::Failed(SearchFailure::Paging(format!(
                "the server's conversation search pages went in a circle (page {pages} named a cursor an earlier page had); the conversations on the pages not seen are not known"
            ))));
        }
        after = Some(next);
    }
    Err(Ended::Failed(SearchFailure::Paging(format!(
        "the conversation search's pages went on past {MOST_PAGES} for one batch of {values} values; campaign follows no more"
    ))))
}

async fn one_page(p: &Pacing<'_>, body: Bytes) -> Result<Page, Ended> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let why = match paced(p, body.clone()).await? {
            Search::Found { body, .. } => match serde_json::from_slice::<Page>(&body) {
                Ok(page) => return Ok(page),
                Err(e) => format!("the answer is not a conversation list: {e}"),
            },
            Search::Rejected { status, error, .. } => match status {
                429 => {
                    attempts -= 1;
                    continue;
                }
                408 | 500.. => format!("HTTP {status} {}: {}", error.code, error.message),
                _ => return Err(Ended::Refused { status, error }),
            },
            Search::NoAnswer(why) => why,
        };
        if attempts >= ATTEMPTS {
            return Err(Ended::Failed(SearchFailure::Failed(why)));
        }
        if !p
            .pace
            .sleep(crate::intercom::backoff::backoff(attempts))
            .await
        {
            return Err(Ended::Failed(SearchFailure::Stopped));
        }
    }
}

/// One search request in its turn: the only place tracking meets the pacing (the limiter, the
/// pause gate, the server's rate headers and its 429s), so that a change of the pacing is one
/// edit here. A 401 or 403 ends the tracking at once.
async fn paced(p: &Pacing<'_>, body: Bytes) -> Result<Search, Ended> {
    let Some(answer) = p
        .pace
        .request(|c| c.search_at("conversations/search", body))
        .await
    else {
        return Err(Ended::Failed(SearchFailure::Stopped));
    };
    p.requests.fetch_add(1, Ordering::Relaxed);
    if let Search::Rejected {
        status: status @ (401 | 403),
        error,
        ..
    } = &answer
    {
        return Err(Ended::Failed(SearchFailure::Refused {
            status: *status,
            error: error.clone(),
        }));
    }
    Ok(answer)
}
