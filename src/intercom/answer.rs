//! What the body of an answer to `POST /messages` says: a success's message id, an error's
//! `error.list`. Facts only; the client decides what they come to.
use std::fmt;

use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::intercom::redact::Redactor;

/// Intercom's `error.list`, reduced to its first error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub request_id: String,
}

/// The message id of a success answer (`{"type": "admin_message", "id": "2001", ...}`): a
/// non-empty string, or a number as its digits; `None` when the answer has neither.
///
/// Intercom sends `id` second, and the rest of the answer echoes the message, body and all (often
/// kilobytes), so reading stops at `id`: parsing the whole echo would be a sizeable part of
/// `send`'s thread at full speed (BENCHMARKS.md, `718c262`). What follows the id is not checked: an
/// answer that names a message id is a message Intercom made, whatever comes after.
pub(crate) fn message_id(body: &[u8]) -> Option<String> {
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
/// A search answer's `pages` object: where the next page starts, if there is one. Contact and
/// conversation searches page the same way.
#[derive(Debug, Deserialize)]
pub(crate) struct Pages {
    next: Option<Next>,
}

#[derive(Debug, Deserialize)]
struct Next {
    starting_after: Option<String>,
}

impl Pages {
    /// The cursor of the next page; none (or an empty one) ends the search.
    pub(crate) fn cursor(pages: Option<Pages>) -> Option<String> {
        pages
            .and_then(|p| p.next)
            .and_then(|n| n.starting_after)
            .filter(|n| !n.is_empty())
    }
}

/// How much of a body that is not an `error.list` becomes the message.
pub(crate) const TEXT_CHARS: usize = 200;
/// How much of each string the server sends (an error's code, message, request id; a message
/// id) is kept: Intercom's are far shorter, and a server must not fill the results file.
pub(crate) const FIELD_CHARS: usize = 1_000;

/// The message id of an answer that was not read to its end (it was too long, or stopped
/// coming): as [`message_id`], but a number at the very end of what came may be cut short, so it
/// is not taken (`"id": 20` may have been `"id": 2001`). A string id ends with its quote.
pub(crate) fn message_id_in_part(part: &[u8]) -> Option<String> {
    let complete = part
        .iter()
        .rposition(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
        .map_or(0, |i| i + 1);
    message_id(&part[..complete])
}

/// Intercom's `error.list`, reduced to its first error; a body that is not one becomes the
/// message (its first [`TEXT_CHARS`] characters), or `HTTP <status>` when empty. Every string
/// is returned with the token struck (before any cut: a cut must not split the token into
/// pieces too short to be recognized) and at most [`FIELD_CHARS`] long.
pub(crate) fn error_list(status: u16, body: &[u8], redact: &Redactor) -> ApiError {
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
            let (code, message) = first.map(|e| (e.code, e.message)).unwrap_or_default();
            ApiError {
                code: redact.id(&code.unwrap_or_default(), FIELD_CHARS),
                message: redact.text(&message.unwrap_or_default(), FIELD_CHARS),
                request_id: redact.id(&list.request_id.unwrap_or_default(), FIELD_CHARS),
            }
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = redact.text(text.trim(), TEXT_CHARS);
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
        let r = Redactor::new("a-token-of-some-length");
        let e = error_list(422, br#"{"type":"error.list","request_id":"abc","errors":[{"code":"parameter_not_found","message":"No subject"}]}"#, &r);
        assert_eq!(
            e,
            ApiError {
                code: "parameter_not_found".into(),
                message: "No subject".into(),
                request_id: "abc".into()
            }
        );
        let e = error_list(502, b"<html>Bad gateway</html>", &r);
        assert_eq!(e.message, "<html>Bad gateway</html>");
        assert_eq!(error_list(503, b" ", &r).message, "HTTP 503");
    }

    #[test]
    fn an_id_cut_short_is_not_taken() {
        let whole = br#"{"type":"admin_message","id":2001,"body":"x"}"#;
        for n in 0..=whole.len() {
            let id = message_id_in_part(&whole[..n]);
            // Only once the number is followed by something is it known to be whole.
            let expect =
                (n > r#"{"type":"admin_message","id":2001"#.len()).then(|| "2001".to_string());
            assert_eq!(id, expect, "first {n} bytes");
        }
        let string_id = br#"{"type":"admin_message","id":"2001""#;
        assert_eq!(message_id_in_part(string_id).as_deref(), Some("2001"));
        assert_eq!(message_id_in_part(&string_id[..string_id.len() - 1]), None);
    }

    const TOKEN: &str = "c2FuZGJveDpub3RyZWFsXzk4NzY1NDMyMTBfYWJjZGVm";

    #[test]
    fn a_token_in_an_error_is_struck_before_the_cut() {
        let r = Redactor::new(TOKEN);
        let leaks = |s: &str| {
            (crate::intercom::redact::EDGE..=TOKEN.len()).any(|n| s.ends_with(&TOKEN[..n]))
                || TOKEN
                    .as_bytes()
                    .windows(crate::intercom::redact::PART)
                    .any(|w| {
                        s.as_bytes()
                            .windows(crate::intercom::redact::PART)
                            .any(|x| x == w)
                    })
        };
        // Every offset at which the token starts before, across and after the cut.
        for offset in 0..TEXT_CHARS + 2 {
            let body = format!("{}Bearer {TOKEN} rest", "<".repeat(offset));
            let e = error_list(400, body.as_bytes(), &r);
            assert!(!leaks(&e.message), "offset {offset}: {}", e.message);
            assert!(e.message.chars().count() <= TEXT_CHARS, "{}", e.message);
        }
        let json = format!(
            r#"{{"type":"error.list","request_id":"r-{TOKEN}","errors":[{{"code":"{TOKEN}","message":"Bearer {TOKEN} invalid"}}]}}"#
        );
        let e = error_list(401, json.as_bytes(), &r);
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.request_id.as_str()),
            ("<redacted>", "Bearer <redacted> invalid", "r-<redacted>")
        );
        // A JSON message cut at its bound, with the token across the cut.
        for offset in FIELD_CHARS - TOKEN.len() - 2..FIELD_CHARS + 2 {
            let json = format!(
                r#"{{"errors":[{{"message":"{}{TOKEN}"}}]}}"#,
                "m".repeat(offset)
            );
            let e = error_list(401, json.as_bytes(), &r);
            assert!(!leaks(&e.message), "offset {offset}: {}", e.message);
        }
    }
}
