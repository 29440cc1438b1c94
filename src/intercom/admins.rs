//! The workspace's admins, from `GET /admins`: `campaign admins` lists them, and `send` looks
//! the sending admin up among them before its first request.
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::input::config::{self, Concurrency};
use crate::intercom::client::Client;
use crate::intercom::pace::Pace;

/// One admin, as `campaign admins` shows it (`--json` uses these names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminInfo {
    /// A string in Intercom's answer; `from` in a campaign file takes it as an integer.
    pub id: String,
    pub name: String,
    pub email: String,
    pub away: bool,
}

/// `GET /admins` through `client`: the admins, or why they could not be had (one line, without
/// the token).
pub async fn fetch(client: Client) -> anyhow::Result<Vec<AdminInfo>> {
    // One request, paced like any: a 429 is its answer (the list is asked for once).
    let rate = config::DEFAULT_RATE.parse().map_err(anyhow::Error::msg)?;
    let pace = Pace::new(
        client,
        rate,
        Concurrency::Fixed(1),
        CancellationToken::new(),
    );
    let got = pace
        .request(|client| client.get_json("admins"))
        .await
        .expect("nothing stops this request");
    let body = got.answer.map_err(anyhow::Error::msg)?;
    parse_list(&body).map_err(anyhow::Error::msg)
}

/// 2.16's `admin.list`: `{"type": "admin.list", "admins": [{"id", "name", "email",
/// "away_mode_enabled", …}]}`. An id may come as a string (the spec) or a number.
pub fn parse_list(body: &Value) -> Result<Vec<AdminInfo>, String> {
    let Some(admins) = body.get("admins").and_then(Value::as_array) else {
        return Err("the answer is not an admin list (no `admins` array)".into());
    };
    // Names and e-mails are shown in a table whose layout costs the square of a cell's length:
    // a server's strings are kept to the bound every string it sends is kept to.
    let text = |a: &Value, key: &str| {
        let s = a.get(key).and_then(Value::as_str).unwrap_or("");
        s.chars()
            .take(crate::intercom::answer::FIELD_CHARS)
            .collect()
    };
    admins
        .iter()
        .map(|a| {
            let id = match a.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err("an admin in the answer has no id".to_string()),
            };
            Ok(AdminInfo {
                id,
                name: text(a, "name"),
                email: text(a, "email"),
                away: a.get("away_mode_enabled").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_an_admin_list_with_string_or_number_ids() {
        let body = json!({"type": "admin.list", "admins": [
            {"type": "admin", "id": "394051", "name": "Ann", "email": "ann@example.com", "away_mode_enabled": true},
            {"type": "admin", "id": 814860, "name": "Bo", "email": "bo@example.com"}
        ]});
        let list = parse_list(&body).unwrap();
        assert_eq!(list[0].id, "394051");
        assert!(list[0].away);
        assert_eq!(list[1].id, "814860");
        assert!(!list[1].away);
        assert!(parse_list(&json!({"type": "admin_message", "id": "1"})).is_err());
        assert!(parse_list(&json!({"admins": [{"name": "x"}]})).is_err());
    }
}
