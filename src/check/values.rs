//! What is wrong with a rendered value, whatever row it came from: the recipient's id or
//! looked-up key, and an email's subject. The bounds Intercom does not set are the tool's own.
use crate::input::config::Address;

/// Intercom documents no bound on the subject; this is the tool's own, a safe one for email.
const MAX_SUBJECT_CHARS: usize = 255;

/// Nor on the body. This bound keeps a request well under a megabyte (JSON escaping included)
/// and a message within what mail clients show: Gmail clips an email past about 100 KB.
pub(super) const MAX_BODY_BYTES: usize = 256 * 1024;

/// What is wrong with a rendered value.
pub(super) enum Finding {
    /// The row cannot be sent.
    Error(String),
    /// Worth a look; the row is sent.
    Warning(String),
}

/// The recipient's problem, if any, as the campaign addresses it.
pub(super) fn recipient_finding(address: Address, to: &str) -> Option<Finding> {
    match address {
        Address::Id => id_finding(to),
        looked_up => key_finding(looked_up, to),
    }
}

/// A looked-up key's problem, if any: an empty one finds nobody; an e-mail without `@` is
/// surely another column.
fn key_finding(address: Address, key: &str) -> Option<Finding> {
    let what = address.key();
    if key.is_empty() {
        return Some(Finding::Error(format!(
            "the recipient's {what} renders empty"
        )));
    }
    if key.chars().any(char::is_control) {
        return Some(Finding::Error(format!(
            "the recipient's {what} `{}` contains control characters",
            key.escape_debug()
        )));
    }
    if address == Address::Email && !key.contains('@') {
        return Some(Finding::Error(format!(
            "`{key}` is not an e-mail address: [to] email must render the contact's e-mail (or use [to] id / external_id)"
        )));
    }
    None
}

/// The recipient id's problem, if any.
fn id_finding(id: &str) -> Option<Finding> {
    if id.is_empty() {
        return Some(Finding::Error("the recipient id renders empty".into()));
    }
    let mistaken = mistaken_id(id)
        .map(|what| format!("looks like {what}, not an Intercom contact id (such as 536e564f316c83104c000020), and Intercom answers 404 for it; [to] id must render the contact's id (POST /contacts/search finds it from an e-mail address)"));
    if !id.bytes().all(|b| b.is_ascii_graphic())
        && id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        let also = mistaken.map(|m| format!("; it {m}")).unwrap_or_default();
        return Some(Finding::Error(format!(
            "the recipient id `{}` contains spaces or control characters{also}",
            id.escape_debug()
        )));
    }
    Some(Finding::Warning(format!(
        "the recipient id `{id}` {}",
        mistaken?
    )))
}

/// Why an email's rendered subject cannot be sent, if it cannot.
pub(super) fn subject_error(subject: &str) -> Option<String> {
    // Printable ASCII (the usual subject) has no line breaks or control characters, and as many
    // characters as bytes.
    let ascii = printable_ascii(subject);
    if subject.trim().is_empty() {
        Some("the subject renders empty".into())
    } else if !ascii && subject.contains(['\n', '\r']) {
        Some("the subject must be one line".into())
    } else if !ascii && subject.chars().any(|c| c.is_control()) {
        Some("the subject contains control characters".into())
    } else if subject.len() > MAX_SUBJECT_CHARS && subject.chars().count() > MAX_SUBJECT_CHARS {
        Some(format!(
            "the subject has {} characters, more than {MAX_SUBJECT_CHARS}",
            subject.chars().count()
        ))
    } else {
        None
    }
}

/// What a recipient id looks like when it is something people put in `[to] id` by mistake: an
/// e-mail address, or a phone number (7 to 15 digits, written with `+` or separators; bare digits
/// may be an id of some system, and are left alone).
fn mistaken_id(id: &str) -> Option<&'static str> {
    if let Some((local, domain)) = id.split_once('@') {
        let dot = domain
            .find('.')
            .is_some_and(|i| i > 0 && i + 1 < domain.len());
        if !local.is_empty() && dot {
            return Some("an e-mail address");
        }
    }
    let digits = id.bytes().filter(u8::is_ascii_digit).count();
    let written = id.starts_with('+') || digits < id.len();
    let phone_bytes = id
        .bytes()
        .all(|b| b.is_ascii_digit() || b" +-().".contains(&b));
    (phone_bytes && written && (7..=15).contains(&digits)).then_some("a phone number")
}

/// Whether `text` is all printable ASCII (space to `~`).
fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_look_like_addresses_or_phone_numbers() {
        for id in ["ann@example.com", "a.b+c@mail.example.co.uk"] {
            assert_eq!(mistaken_id(id), Some("an e-mail address"), "{id}");
        }
        for id in [
            "+4420794609",
            "+1-555-123-4567",
            "(555)123-4567",
            "555.123.4567",
        ] {
            assert_eq!(mistaken_id(id), Some("a phone number"), "{id}");
        }
        // Intercom ids, other systems' ids, and what only resembles the two.
        for id in [
            "536e564f316c83104c000020",
            "5551234567",
            "id-1",
            "user@localhost",
            "@example.com",
            "a@.com",
            "a@example.",
            "+12345",
            "1-2",
            "+1234567890123456",
        ] {
            assert_eq!(mistaken_id(id), None, "{id}");
        }
    }
}
