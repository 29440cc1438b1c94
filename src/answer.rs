//! What the body of an answer to `POST /messages` says: a success's message id, an error's
//! `error.list`. Facts only; the client decides what they come to.
use std::fmt;

use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::client::ApiError;

/// The message id of a success answer (`{"type": "admin_message", "id": "2001", ...}`): a
/// non-empty string, or a number as its digits; `None` when the answer has neither.
///
/// Intercom sends `id` second, and the rest of the answer echoes the message, body and all (often
/// kilobytes), so reading stops at `id`: parsing the whole echo was about 6,000 instructions an
/// answer, a sixteenth of `send`'s thread at full speed. What follows the id is not checked: an
/// answer that names a message id is a message Intercom made, whatever comes after.
pub fn message_id(body: &[u8]) -> Option<String> {
    let mut id = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    // Leaving the object before its end makes serde_json report the unread rest as an error.
    // That error comes after the id was taken, and is expected: the id decides.
    let _ = de.deserialize_map(IdOf(&mut id));
    id
}

/// Fills its slot with the first `id` of an object and stops there.
struct IdOf<'a>(&'a mut Option<String>);

/// An object's key: `id`, or one to skip.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Id,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for IdOf<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object with an id")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if let Key::Other = key {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            *self.0 = match map.next_value::<Value>()? {
                Value::String(id) if !id.is_empty() => Some(id),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            return Ok(());
        }
        Ok(())
    }
}

/// Intercom's `error.list`, reduced to its first error; a body that is not one becomes the
/// message (its first 200 characters), or `HTTP <status>` when empty.
pub fn error_list(status: u16, body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct ErrorList {
        request_id: Option<String>,
        #[serde(default)]
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<ErrorList>(body) {
        Ok(list) => {
            let first = list.errors.into_iter().next();
            ApiError {
                code: first
                    .as_ref()
                    .and_then(|e| e.code.clone())
                    .unwrap_or_default(),
                message: first.and_then(|e| e.message).unwrap_or_default(),
                request_id: list.request_id.unwrap_or_default(),
            }
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            ApiError {
                code: String::new(),
                message: if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text
                },
                request_id: String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(body: &str) -> Option<String> {
        message_id(body.as_bytes())
    }

    #[test]
    fn finds_the_id_wherever_it_is() {
        // Intercom's order (the docs' example), the same object reordered, and a numeric id.
        let intercom = r#"{"type":"admin_message","id":"2001","created_at":1401916877,"message_type":"email","subject":"Hey","body":"<p>\"Ponies\"</p>","owner":{"type":"admin","id":"394051"}}"#;
        assert_eq!(id(intercom).as_deref(), Some("2001"));
        let last = r#"{"type":"admin_message","owner":{"type":"admin","id":"394051"},"body":"hi","id":"2002"}"#;
        assert_eq!(id(last).as_deref(), Some("2002"), "not the owner's id");
        assert_eq!(id(r#" { "id" : 2003 } "#).as_deref(), Some("2003"));
        assert_eq!(id(r#"{"i\u0064":"2004"}"#).as_deref(), Some("2004"));
    }

    #[test]
    fn no_id_is_none() {
        for body in [
            "",
            "not json",
            r#"{"type":"admin_message"}"#,
            r#"{"type":"admin_message","id":""}"#,
            r#"{"id":null}"#,
            r#"{"id":{"value":"2001"}}"#,
            r#"["id","2001"]"#,
            r#"{"owner":{"id":"394051"}}"#,
            // Broken before the id: nothing after it can be trusted.
            r#"{"type":"admin_message,"id":"2001"}"#,
            r#"{"type":"admin_message","body":"cut off"#,
        ] {
            assert_eq!(id(body), None, "{body}");
        }
    }

    #[test]
    fn what_follows_the_id_is_not_read() {
        // The message exists once an answer names its id; a garbled echo does not undo that.
        assert_eq!(
            id(r#"{"type":"admin_message","id":"2005","body":"cut off"#).as_deref(),
            Some("2005")
        );
    }

    #[test]
    fn parses_error_list() {
        let e = error_list(422, br#"{"type":"error.list","request_id":"abc","errors":[{"code":"parameter_not_found","message":"No subject"}]}"#);
        assert_eq!(
            e,
            ApiError {
                code: "parameter_not_found".into(),
                message: "No subject".into(),
                request_id: "abc".into()
            }
        );
        let e = error_list(502, b"<html>Bad gateway</html>");
        assert_eq!(e.message, "<html>Bad gateway</html>");
        assert_eq!(error_list(503, b" ").message, "HTTP 503");
    }
}
