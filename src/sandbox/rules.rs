//! The per-type rules of `POST /messages` that the schema leaves out: which fields each message
//! type needs, and the constraints the spec states only in prose (`template`) or that the real
//! API enforces although senders get them wrong (`from.id` an integer; Intercom's docs' own
//! examples send a string). They run before the schema, as they name the field precisely, as
//! the real API's messages do.
use serde_json::{Map, Value};

use super::errors::ApiError;
use crate::input::config::OpenApiCut;

/// Every rule, in the order Intercom reports them.
pub(super) fn check(cut: OpenApiCut, obj: &Map<String, Value>) -> Result<(), ApiError> {
    let message_type = message_type(cut, obj)?;
    let email = message_type == "email";
    let whatsapp = message_type == "whatsapp";
    if !whatsapp {
        body(obj, email)?;
    }
    if email {
        email_fields(obj)?;
    }
    if !whatsapp {
        template(obj)?;
    }
    from(obj)?;
    if obj.get("to").is_none_or(Value::is_null) {
        return Err(ApiError::missing("to", "No to supplied"));
    }
    Ok(())
}

/// `message_type`: given, a string, and one the version knows.
fn message_type(cut: OpenApiCut, obj: &Map<String, Value>) -> Result<&str, ApiError> {
    let message_type = match obj.get("message_type") {
        None | Some(Value::Null) => {
            return Err(ApiError::missing(
                "message_type",
                "No message_type supplied",
            ))
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("message_type"),
                "message_type must be a string",
            ))
        }
    };
    let known: &[&str] = match cut {
        OpenApiCut::V2_11 => &["in_app", "inapp", "email"],
        OpenApiCut::V2_16 => &["in_app", "inapp", "email", "whatsapp"],
    };
    if !known.contains(&message_type) {
        return Err(ApiError::invalid(
            Some("message_type"),
            format!(
                "message_type '{message_type}' is not one of {}",
                known.join(", ")
            ),
        ));
    }
    Ok(message_type)
}

/// A body, as a string: every type but WhatsApp's (a template message) has one.
fn body(obj: &Map<String, Value>, email: bool) -> Result<(), ApiError> {
    let suffix = if email {
        " for email message"
    } else {
        " for message"
    };
    match obj.get("body") {
        None => Err(ApiError::missing(
            "body",
            format!("No body supplied{suffix}"),
        )),
        Some(Value::String(_)) => Ok(()),
        // The spec's examples: `"body": null` is 400 "Body is required".
        Some(_) => Err(ApiError::invalid(Some("body"), "Body is required")),
    }
}

/// An e-mail's subject and template.
fn email_fields(obj: &Map<String, Value>) -> Result<(), ApiError> {
    if obj.get("subject").is_none_or(Value::is_null) {
        return Err(ApiError::missing(
            "subject",
            "No subject supplied for email message",
        ));
    }
    if obj.get("template").is_none_or(Value::is_null) {
        return Err(ApiError::missing(
            "template",
            "No template supplied for email message",
        ));
    }
    Ok(())
}

/// A template, where given, is `plain` or `personal` (the spec says so only in prose).
fn template(obj: &Map<String, Value>) -> Result<(), ApiError> {
    match obj.get("template") {
        Some(t) if !matches!(t.as_str(), Some("plain" | "personal")) => Err(ApiError::invalid(
            Some("template"),
            format!("template must be 'plain' or 'personal', not {t}"),
        )),
        _ => Ok(()),
    }
}

/// `from`: an object whose `id` is an integer, the admin's.
fn from(obj: &Map<String, Value>) -> Result<(), ApiError> {
    match obj.get("from") {
        None | Some(Value::Null) => Err(ApiError::missing("from", "No from supplied")),
        Some(Value::Object(from)) => match from.get("id") {
            None | Some(Value::Null) => Err(ApiError::missing("from.id", "No from.id supplied")),
            Some(id) if id.is_i64() || id.is_u64() => Ok(()),
            Some(id) => Err(ApiError::invalid(
                Some("from.id"),
                format!("from.id must be an integer (the admin id), not {id}"),
            )),
        },
        Some(_) => Err(ApiError::invalid(Some("from"), "from must be an object")),
    }
}
