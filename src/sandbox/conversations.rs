//! The sandbox's conversations and `POST /conversations/search` over them.
//!
//! A message gets a conversation when its contact replies (`--reply-share` of them, drawn per
//! message id, `--reply-after` later), or at once when it was sent with
//! `create_conversation_without_contact_reply`; `--drop-share` of the e-mails get a
//! `drop_reason` on their recipient (and no reply). Every draw is a hash of the seed and the
//! message id, so that a sandbox started again over the same log holds the same conversations.
//! A search is checked against the limits of the 2.16 description (2 levels of nesting, 15
//! filters a group, `per_page` up to 150, date fields compared only with `=`, `<` and `>`),
//! evaluated, and paged with `starting_after`.
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::errors::ApiError;

const MAX_PER_PAGE: u64 = 150;
const DEFAULT_PER_PAGE: u64 = 20;

/// The most conversations the sandbox holds (a few hundred bytes each); later ones are not kept.
const MAX_CONVERSATIONS: usize = 2_000_000;

/// The fields the description types as dates: compared only with `=`, `<` and `>`.
const DATE_FIELDS: [&str; 4] = [
    "created_at",
    "updated_at",
    "statistics.first_contact_reply_at",
    "statistics.last_contact_reply_at",
];

/// The reasons the sandbox gives a dropped e-mail. The description names none (`drop_reason` is
/// a nullable string), so these are the sandbox's own.
const DROP_REASONS: [&str; 2] = ["hard_bounce", "unsubscribed"];

/// How the sandbox's contacts answer: `--reply-share`, `--reply-after`, `--drop-share`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationSettings {
    /// Share of messages (not dropped) whose contact replies.
    pub reply_share: f64,
    /// How long after its message a reply comes.
    pub reply_after: Duration,
    /// Share of e-mails dropped (a `drop_reason` on the recipient).
    pub drop_share: f64,
    /// Most values an `IN` or `NIN` filter may hold; `None` for no limit (the description gives
    /// none). For tests of the splitting of refused searches.
    pub max_values: Option<usize>,
    /// Earlier rehearsals' logs: their messages' conversations are held too (a follow-up's
    /// rehearsal asks who replied to the campaign before it).
    pub replay: Vec<std::path::PathBuf>,
}

/// One message's conversation (or the conversation it will have once replied to).
#[derive(Debug, Clone)]
struct Conversation {
    id: String,
    message_id: String,
    admin_id: String,
    contact_id: String,
    email: bool,
    created_at: u64,
    /// When it becomes searchable: at once without waiting for a reply, or at the reply.
    exists_from: Option<u64>,
    replied_at: Option<u64>,
    drop_reason: Option<&'static str>,
}

/// Every message's conversation, in the order the messages were created.
#[derive(Debug, Default)]
pub(super) struct Conversations {
    settings: ConversationSettings,
    seed: u64,
    list: Mutex<Vec<Conversation>>,
}

impl Conversations {
    pub(super) fn new(settings: ConversationSettings, seed: u64) -> Conversations {
        Conversations {
            settings,
            seed,
            list: Mutex::new(Vec::new()),
        }
    }

    /// Whether message `id` draws under `share` for `what`: the same every start.
    fn draw(&self, id: &str, what: u64, share: f64) -> bool {
        let h = xxh3_64_with_seed(id.as_bytes(), self.seed ^ what);
        (h as f64 / u64::MAX as f64) < share
    }

    /// Records message `id` (its request `body`), created at `created_at` (Unix seconds).
    pub(super) fn record(&self, id: &str, body: &Value, created_at: u64) {
        let email = body.get("message_type").and_then(Value::as_str) == Some("email");
        let drop_reason = (email && self.draw(id, 1, self.settings.drop_share))
            .then(|| DROP_REASONS[(xxh3_64_with_seed(id.as_bytes(), self.seed ^ 3) % 2) as usize]);
        let replied_at = (drop_reason.is_none() && self.draw(id, 2, self.settings.reply_share))
            .then(|| created_at + self.settings.reply_after.as_secs());
        let at_once = body
            .get("create_conversation_without_contact_reply")
            .and_then(Value::as_bool)
            == Some(true);
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        // A message that will never have a conversation takes no memory: a throughput run of
        // millions of messages without replies holds none.
        if !at_once && replied_at.is_none() {
            return;
        }
        let conversation = Conversation {
            id: format!("9{id}"),
            message_id: id.to_string(),
            admin_id: text(&body["from"]["id"]),
            contact_id: text(&body["to"]["id"]),
            email,
            created_at,
            exists_from: if at_once {
                Some(created_at)
            } else {
                replied_at
            },
            replied_at,
            drop_reason,
        };
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < MAX_CONVERSATIONS {
            list.push(conversation);
        }
    }

    /// The `conversation.list` answer to a search `body`, at Unix second `now`.
    pub(super) fn search(&self, body: &Value, now: u64) -> Result<Value, ApiError> {
        let query = body
            .get("query")
            .ok_or_else(|| ApiError::missing("query", "query is required"))?;
        super::query::check(
            query,
            1,
            &super::query::SearchRules {
                operators: &[
                    "=", "!=", "IN", "NIN", "~", "!~", ">", "<", ">=", "<=", "^", "$",
                ],
                date_fields: &DATE_FIELDS,
                max_values: self.settings.max_values,
            },
        )?;
        let (per_page, start) = super::query::page(body, DEFAULT_PER_PAGE, MAX_PER_PAGE, "sbxc-")?;
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let matched: Vec<Value> = list
            .iter()
            .filter(|c| c.exists_from.is_some_and(|t| t <= now))
            .map(|c| c.json(now))
            .filter(|c| matches(query, c))
            .collect();
        drop(list);
        let total = matched.len();
        let page: Vec<Value> = matched.into_iter().skip(start).take(per_page).collect();
        let end = start + page.len();
        let mut pages = json!({
            "type": "pages",
            "page": start / per_page + 1,
            "per_page": per_page,
            "total_pages": total.div_ceil(per_page).max(1),
        });
        if end < total {
            pages["next"] = json!({"per_page": per_page, "starting_after": format!("sbxc-{end}")});
        }
        Ok(json!({
            "type": "conversation.list",
            "conversations": page,
            "total_count": total,
            "pages": pages,
        }))
    }
}

impl Conversation {
    /// The `conversation_list_item` Intercom answers with, as far as the sandbox knows it.
    fn json(&self, now: u64) -> Value {
        let replied = self.replied_at.filter(|t| *t <= now);
        let mut source = json!({
            "type": if self.email { "email" } else { "conversation" },
            "id": self.message_id,
            "delivered_as": "admin_initiated",
            "subject": "",
            "body": "",
            "author": {"type": "admin", "id": self.admin_id},
            "attachments": [],
            "url": null,
            "redacted": false,
        });
        if self.email {
            source["recipients"] = json!([{
                "type": "to",
                "email": format!("{}@contacts.sandbox.example", self.contact_id),
                "drop_reason": self.drop_reason,
            }]);
        }
        json!({
            "type": "conversation",
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": replied.unwrap_or(self.created_at),
            "source": source,
            "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": self.contact_id}]},
            "open": replied.is_some(),
            "state": if replied.is_some() { "open" } else { "closed" },
            "read": false,
            "statistics": {
                "type": "conversation_statistics",
                "first_contact_reply_at": replied,
                "last_contact_reply_at": replied,
            },
        })
    }
}

/// The value of a dotted field of a conversation's JSON; `contact_ids` is its contacts' ids.
fn field(c: &Value, name: &str) -> Vec<Value> {
    if name == "contact_ids" {
        return c["contacts"]["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| x["id"].clone())
            .collect();
    }
    let mut at = c;
    for part in name.split('.') {
        at = &at[part];
    }
    if at.is_null() {
        Vec::new()
    } else {
        vec![at.clone()]
    }
}

/// A search value as the field holds it: numbers given as strings compare as numbers.
fn same(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Number(h), Value::String(w)) => w.parse::<f64>().ok() == h.as_f64(),
        (Value::String(h), Value::Number(w)) => h == &w.to_string(),
        _ => have == want,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Whether conversation `c` matches query `q` (checked already). `>` and `<` include the value
/// itself, as the description's table says ("Greater (or equal) than").
fn matches(q: &Value, c: &Value) -> bool {
    let op = q["operator"].as_str().unwrap_or("");
    let items = || q["value"].as_array().into_iter().flatten();
    match op {
        "AND" => items().all(|i| matches(i, c)),
        "OR" => items().any(|i| matches(i, c)),
        _ => {
            let have = field(c, q["field"].as_str().unwrap_or(""));
            let want = &q["value"];
            let cmp = |f: fn(f64, f64) -> bool| {
                have.iter()
                    .any(|h| matches!((number(h), number(want)), (Some(h), Some(w)) if f(h, w)))
            };
            match op {
                "=" => have.iter().any(|h| same(h, want)),
                "!=" => !have.iter().any(|h| same(h, want)),
                "IN" => have.iter().any(|h| items().any(|w| same(h, w))),
                "NIN" => !have.iter().any(|h| items().any(|w| same(h, w))),
                ">" | ">=" => cmp(|h, w| h >= w),
                "<" | "<=" => cmp(|h, w| h <= w),
                "~" => have.iter().any(|h| match (h.as_str(), want.as_str()) {
                    (Some(h), Some(w)) => h.contains(w),
                    _ => false,
                }),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, email: bool, at_once: bool) -> Value {
        json!({
            "message_type": if email { "email" } else { "inapp" },
            "from": {"type": "admin", "id": 394051},
            "to": {"type": "user", "id": to},
            "create_conversation_without_contact_reply": at_once,
        })
    }

    fn ids(answer: &Value) -> Vec<String> {
        answer["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["source"]["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_message_has_a_conversation_once_replied_to_or_at_once_when_asked() {
        let all = ConversationSettings {
            reply_share: 1.0,
            reply_after: Duration::from_secs(60),
            ..ConversationSettings::default()
        };
        let c = Conversations::new(all.clone(), 7);
        c.record("1", &message("a", false, false), 1000);
        c.record("2", &message("b", false, true), 1000);
        let q = json!({"query": {"field": "source.id", "operator": "IN", "value": ["1", "2"]}});
        assert_eq!(ids(&c.search(&q, 1000).unwrap()), ["2"]);
        let later = c.search(&q, 1060).unwrap();
        assert_eq!(ids(&later), ["1", "2"]);
        assert_eq!(
            later["conversations"][0]["statistics"]["first_contact_reply_at"],
            1060
        );
        let none = Conversations::new(ConversationSettings::default(), 7);
        none.record("1", &message("a", false, false), 1000);
        assert!(ids(&none.search(&q, 99_999).unwrap()).is_empty());
    }

    #[test]
    fn shares_are_drawn_per_message_the_same_every_start() {
        let s = ConversationSettings {
            reply_share: 0.5,
            drop_share: 0.2,
            ..ConversationSettings::default()
        };
        let draw = || {
            let c = Conversations::new(s.clone(), 3);
            for i in 0..1000 {
                c.record(&i.to_string(), &message("x", true, true), 10);
            }
            c.search(&json!({"query": {"field": "source.id", "operator": "!=", "value": "-"}, "pagination": {"per_page": 150}}), 10)
                .unwrap()["total_count"]
                .clone()
        };
        assert_eq!(draw(), 1000);
        let c = Conversations::new(s.clone(), 3);
        for i in 0..1000 {
            c.record(&i.to_string(), &message("x", true, false), 10);
        }
        let replied = c.search(&json!({"query": {"field": "statistics.first_contact_reply_at", "operator": ">", "value": 0}}), 10).unwrap();
        let n = replied["total_count"].as_u64().unwrap();
        assert!(
            (300..=500).contains(&n),
            "{n} of 1000 replied at 0.5 less drops"
        );
        let c2 = Conversations::new(s, 3);
        for i in 0..1000 {
            c2.record(&i.to_string(), &message("x", true, false), 10);
        }
        let again = c2.search(&json!({"query": {"field": "statistics.first_contact_reply_at", "operator": ">", "value": 0}}), 10).unwrap();
        assert_eq!(again["total_count"], replied["total_count"]);
    }

    #[test]
    fn searches_keep_the_documented_limits() {
        let c = Conversations::new(
            ConversationSettings {
                max_values: Some(3),
                ..ConversationSettings::default()
            },
            0,
        );
        let filter = json!({"field": "source.id", "operator": "=", "value": "1"});
        let group = json!({"operator": "OR", "value": vec![filter.clone(); 16]});
        assert!(c.search(&json!({"query": group}), 0).is_err());
        let deep = json!({"operator": "AND", "value": [{"operator": "OR", "value": [{"operator": "OR", "value": [filter]}]}]});
        assert!(c.search(&json!({"query": deep}), 0).is_err());
        let date_in = json!({"field": "created_at", "operator": "IN", "value": [1]});
        assert!(c.search(&json!({"query": date_in}), 0).is_err());
        let four = json!({"field": "source.id", "operator": "IN", "value": ["1", "2", "3", "4"]});
        assert!(c.search(&json!({"query": four}), 0).is_err());
        let big_page = json!({"query": filter, "pagination": {"per_page": 151}});
        assert!(c.search(&big_page, 0).is_err());
    }

    #[test]
    fn pages_follow_starting_after() {
        let c = Conversations::new(ConversationSettings::default(), 0);
        for i in 0..45 {
            c.record(
                &i.to_string(),
                &message(&format!("c{i}"), false, true),
                100 + i,
            );
        }
        let by_author = json!({"operator": "AND", "value": [
            {"field": "source.author.id", "operator": "=", "value": "394051"},
            {"field": "contact_ids", "operator": "IN", "value": ["c3", "c30", "c44"]},
            {"field": "created_at", "operator": ">", "value": 130},
        ]});
        assert_eq!(
            ids(&c.search(&json!({ "query": by_author }), 200).unwrap()),
            ["30", "44"]
        );
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut body =
                json!({"query": {"field": "source.author.id", "operator": "=", "value": "394051"}});
            if let Some(a) = &after {
                body["pagination"] = json!({ "starting_after": a });
            }
            let page = c.search(&body, 200).unwrap();
            seen.extend(ids(&page));
            match page["pages"]["next"]["starting_after"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 45);
    }
}
