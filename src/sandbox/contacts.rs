//! `--contacts`: the contacts the sandbox knows (the 404 for any other recipient of a message),
//! and `POST /contacts/search` over them: the request checked against the documented limits
//! (2 levels of nesting, 15 filters a group, `per_page` up to 150), the query evaluated, pages
//! followed with `starting_after`. Without a file, a search finds one invented user for every
//! e-mail or external id it names (less the `missing` ones), so that a rehearsal runs.
use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use super::errors::ApiError;

/// Most contacts a page holds: the API's documented limit.
const MAX_PER_PAGE: u64 = 150;

#[derive(Debug, Clone)]
pub(super) struct Contact {
    pub(super) id: String,
    pub(super) email: String,
    pub(super) external_id: String,
    pub(super) role: String,
    pub(super) unsubscribed_from_emails: bool,
    pub(super) has_hard_bounced: bool,
    pub(super) marked_email_as_spam: bool,
}

impl Contact {
    fn json(&self) -> Value {
        let opt = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
        json!({
            "type": "contact",
            "id": self.id,
            "role": self.role,
            "email": opt(&self.email),
            "external_id": opt(&self.external_id),
            "unsubscribed_from_emails": self.unsubscribed_from_emails,
            "has_hard_bounced": self.has_hard_bounced,
            "marked_email_as_spam": self.marked_email_as_spam,
        })
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => json!(self.id),
            "email" => json!(self.email.to_lowercase()),
            "external_id" => json!(self.external_id),
            "role" => json!(self.role),
            "unsubscribed_from_emails" => json!(self.unsubscribed_from_emails),
            "has_hard_bounced" => json!(self.has_hard_bounced),
            "marked_email_as_spam" => json!(self.marked_email_as_spam),
            _ => return None,
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct Contacts {
    ids: HashSet<String>,
    list: Vec<Contact>,
}

impl Contacts {
    /// Reads a CSV with an `id` column, and optionally `email`, `external_id`, `role` (`user`
    /// unless it says `lead`) and the three subscription columns (`true`/`1`/`yes`).
    pub(super) fn load(path: &Path) -> anyhow::Result<Self> {
        let file = crate::input::files::capped(path, crate::input::files::MAX_LIST_BYTES)
            .context("cannot read the contacts file")?;
        let mut reader = csv::Reader::from_reader(file);
        let headers = reader.headers()?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let id = col("id").with_context(|| format!("{} has no `id` column", path.display()))?;
        let cols = [
            "email",
            "external_id",
            "role",
            "unsubscribed_from_emails",
            "has_hard_bounced",
            "marked_email_as_spam",
        ]
        .map(col);
        let mut contacts = Contacts::default();
        for record in reader.records() {
            let record = record.with_context(|| format!("in {}", path.display()))?;
            let get = |c: Option<usize>| c.and_then(|c| record.get(c)).map(str::trim).unwrap_or("");
            let Some(id) = record.get(id).map(str::trim).filter(|s| !s.is_empty()) else {
                continue;
            };
            let flag = |c| matches!(get(c).to_ascii_lowercase().as_str(), "true" | "1" | "yes");
            contacts.ids.insert(id.to_string());
            contacts.list.push(Contact {
                id: id.to_string(),
                email: get(cols[0]).to_string(),
                external_id: get(cols[1]).to_string(),
                role: if get(cols[2]) == "lead" {
                    "lead"
                } else {
                    "user"
                }
                .to_string(),
                unsubscribed_from_emails: flag(cols[3]),
                has_hard_bounced: flag(cols[4]),
                marked_email_as_spam: flag(cols[5]),
            });
        }
        Ok(contacts)
    }

    /// Every `to` recipient (one object or, from 2.16, an array) that names an `id` must be known.
    pub(super) fn check(&self, body: &Value) -> Result<(), ApiError> {
        let recipients: Vec<&Value> = match body.get("to") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => vec![],
        };
        for r in recipients {
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                if !self.ids.contains(id) {
                    return Err(ApiError::not_found("User Not Found").field("to.id"));
                }
            }
        }
        Ok(())
    }
}

/// `POST /contacts/search`: the list answer for `body`, over `known`, or over contacts invented
/// for the keys the query names when there is no list (less `missing`).
pub(super) fn search(
    known: Option<&Contacts>,
    missing: &[String],
    body: &Value,
) -> Result<Value, ApiError> {
    let query = body
        .get("query")
        .ok_or_else(|| ApiError::missing("query", "query is required"))?;
    super::query::check(
        query,
        1,
        &super::query::SearchRules {
            operators: &["=", "!=", "IN", "NIN", "~", "!~", ">", "<", "^", "$"],
            date_fields: &[],
            max_values: None,
        },
    )?;
    let (per_page, start) = super::query::page(body, 50, MAX_PER_PAGE, "sbx-")?;
    let invented;
    let pool: &[Contact] = match known {
        Some(k) => &k.list,
        None => {
            invented = invent(query, missing);
            &invented
        }
    };
    let matched: Vec<&Contact> = pool.iter().filter(|c| matches(query, c)).collect();
    let page: Vec<Value> = matched
        .iter()
        .skip(start)
        .take(per_page)
        .map(|c| c.json())
        .collect();
    let end = start + page.len();
    let total_pages = matched.len().div_ceil(per_page).max(1);
    let mut pages = json!({
        "type": "pages",
        "page": start / per_page + 1,
        "per_page": per_page,
        "total_pages": total_pages,
    });
    if end < matched.len() {
        pages["next"] = json!({"per_page": per_page, "starting_after": format!("sbx-{end}")});
    }
    Ok(json!({"type": "list", "data": page, "total_count": matched.len(), "pages": pages}))
}

/// Whether contact `c` matches query `q` (checked already). E-mails compare in any case.
fn matches(q: &Value, c: &Contact) -> bool {
    let op = q["operator"].as_str().unwrap_or("");
    let items = || q["value"].as_array().into_iter().flatten();
    match op {
        "AND" => items().all(|i| matches(i, c)),
        "OR" => items().any(|i| matches(i, c)),
        _ => {
            let field = q["field"].as_str().unwrap_or("");
            let Some(have) = c.field(field) else {
                return false;
            };
            let norm = |v: &Value| match (field, v) {
                ("email", Value::String(s)) => json!(s.to_lowercase()),
                _ => v.clone(),
            };
            let want = &q["value"];
            match op {
                "=" => have == norm(want),
                "!=" => have != norm(want),
                "IN" => items().any(|v| have == norm(v)),
                "NIN" => !items().any(|v| have == norm(v)),
                "~" => match (have.as_str(), norm(want).as_str()) {
                    (Some(h), Some(w)) => h.contains(w),
                    _ => false,
                },
                _ => false,
            }
        }
    }
}

/// The contacts a list-less sandbox has for `q`: a user (or the lead the query asks for) for
/// every e-mail, external id or id it names, with an id derived from the key (or that id).
fn invent(q: &Value, missing: &[String]) -> Vec<Contact> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut role = "user";
    collect(q, &mut keys, &mut role);
    let missing: HashSet<String> = missing.iter().map(|m| m.trim().to_lowercase()).collect();
    keys.into_iter()
        .filter(|(_, k)| !missing.contains(&k.to_lowercase()))
        .map(|(field, key)| {
            let id = if field == "id" {
                key.clone()
            } else {
                format!(
                    "{:016x}",
                    xxhash_rust::xxh3::xxh3_64(
                        format!("{field}:{}", key.to_lowercase()).as_bytes()
                    )
                )
            };
            Contact {
                id,
                email: if field == "email" {
                    key.clone()
                } else {
                    String::new()
                },
                external_id: if field == "external_id" {
                    key
                } else {
                    String::new()
                },
                role: role.to_string(),
                unsubscribed_from_emails: false,
                has_hard_bounced: false,
                marked_email_as_spam: false,
            }
        })
        .collect()
}

fn collect<'a>(q: &'a Value, keys: &mut Vec<(String, String)>, role: &mut &'a str) {
    match (q["operator"].as_str(), q["field"].as_str()) {
        (Some("AND" | "OR"), _) => {
            for i in q["value"].as_array().into_iter().flatten() {
                collect(i, keys, role);
            }
        }
        (Some("=" | "IN"), Some(f @ ("email" | "external_id" | "id"))) => {
            let values: Vec<&Value> = match &q["value"] {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            keys.extend(
                values
                    .into_iter()
                    .filter_map(Value::as_str)
                    .map(|s| (f.to_string(), s.to_string())),
            );
        }
        (Some("="), Some("role")) => *role = if q["value"] == "lead" { "lead" } else { "user" },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_ids_and_refuses_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, "email,id\na@x.test,c1\nb@x.test,c2\n").unwrap();
        let c = Contacts::load(&path).unwrap();
        assert!(c
            .check(&json!({"to": {"type": "user", "id": "c2"}}))
            .is_ok());
        let e = c
            .check(&json!({"to": [{"id": "c1"}, {"id": "zz"}]}))
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (404, "not_found"));
        std::fs::write(&path, "email\na@x.test\n").unwrap();
        assert!(Contacts::load(&path).is_err());
    }

    #[test]
    fn a_search_pages_through_its_matches_and_keeps_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        let mut text = String::from("id,email,role\n");
        for i in 0..5 {
            text.push_str(&format!("u{i},P{i}@x.test,user\nl{i},p{i}@x.test,lead\n"));
        }
        std::fs::write(&path, text).unwrap();
        let c = Contacts::load(&path).unwrap();
        let keys: Vec<String> = (0..5).map(|i| format!("p{i}@x.test")).collect();
        let q = json!({"operator": "AND", "value": [
            {"field": "email", "operator": "IN", "value": keys},
            {"field": "role", "operator": "=", "value": "user"}]});
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut body = json!({"query": q, "pagination": {"per_page": 2}});
            if let Some(a) = &after {
                body["pagination"]["starting_after"] = json!(a);
            }
            let page = search(Some(&c), &[], &body).unwrap();
            assert_eq!(page["total_count"], 5);
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["id"].as_str().unwrap().to_string()),
            );
            match page["pages"]["next"]["starting_after"].as_str() {
                Some(a) => after = Some(a.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, ["u0", "u1", "u2", "u3", "u4"]);
        let too_many = json!({"query": q, "pagination": {"per_page": 151}});
        assert_eq!(
            search(Some(&c), &[], &too_many)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        let sixteen: Vec<Value> = (0..16)
            .map(|i| json!({"field": "id", "operator": "=", "value": format!("u{i}")}))
            .collect();
        let wide = json!({"query": {"operator": "OR", "value": sixteen}});
        assert_eq!(
            search(Some(&c), &[], &wide).unwrap_err().status.as_u16(),
            400
        );
        let deep = json!({"query": {"operator": "OR", "value": [{"operator": "AND", "value": [{"operator": "OR", "value": []}]}]}});
        assert_eq!(
            search(Some(&c), &[], &deep).unwrap_err().status.as_u16(),
            400
        );
    }

    #[test]
    fn without_a_list_every_key_but_the_missing_finds_one_contact() {
        let q = json!({"query": {"field": "email", "operator": "IN", "value": ["A@x.test", "gone@x.test"]}});
        let page = search(None, &["gone@x.test".into()], &q).unwrap();
        assert_eq!(page["total_count"], 1);
        assert_eq!(page["data"][0]["email"], "A@x.test");
        assert_eq!(page["data"][0]["role"], "user");
    }
}
