//! `[message]`: the message type, the e-mail template, the sending admin, the subject and body
//! (inline or from files beside the campaign file) and the body's format.
use std::path::{Path, PathBuf};

use super::file::{AdminId, MessageSection, Site};
use super::kinds::{BodyFormat, MessageType, TemplateSource};

/// `[message]`, validated.
pub(super) struct Message {
    pub message_type: MessageType,
    pub template: Option<String>,
    pub from: u64,
    pub from_email: Option<String>,
    pub subject: Option<TemplateSource>,
    pub body: TemplateSource,
    pub body_format: BodyFormat,
    pub create_conversation_without_contact_reply: Option<bool>,
}

/// Each key in the order the errors are reported; settings that an in-app message does not send
/// are dropped with a warning.
pub(super) fn resolve(
    m: MessageSection,
    site: &Site,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Message> {
    let message_type = message_type(&m.message_type, site)?;
    let template = template(message_type, m.template, site, warnings)?;
    let (from, from_email) = from(m.from, site)?;
    let subject = subject(message_type, m.subject, m.subject_file, site, warnings)?;
    let (body, body_ext) = body(m.body, m.body_file, site)?;
    let body_format = body_format(m.body_format.as_deref(), body_ext.as_deref(), site)?;
    Ok(Message {
        message_type,
        template,
        from,
        from_email,
        subject,
        body,
        body_format,
        create_conversation_without_contact_reply: m.create_conversation_without_contact_reply,
    })
}

fn message_type(given: &str, site: &Site) -> anyhow::Result<MessageType> {
    match given {
        "email" => Ok(MessageType::Email),
        "in_app" | "inapp" => Ok(MessageType::InApp),
        other => Err(site.bad(
            "[message] message_type",
            format!("`{other}` is not one of `email`, `in_app`"),
        )),
    }
}

/// E-mail needs `plain` or `personal`; an in-app message sends none.
fn template(
    message_type: MessageType,
    given: Option<String>,
    site: &Site,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<String>> {
    match (message_type, given) {
        (MessageType::Email, None) => Err(site.bad(
            "[message] template",
            "required for email: `plain` or `personal`".into(),
        )),
        (MessageType::Email, Some(t)) if t == "plain" || t == "personal" => Ok(Some(t)),
        (MessageType::Email, Some(t)) => Err(site.bad(
            "[message] template",
            format!("`{t}` is not one of `plain`, `personal`"),
        )),
        (MessageType::InApp, Some(_)) => {
            warnings.push(format!(
                "{}: [message] template is not sent for in_app messages",
                site.name
            ));
            Ok(None)
        }
        (MessageType::InApp, None) => Ok(None),
    }
}

/// The sending admin: an id (an integer, or all digits quoted), or an e-mail address that `send`
/// looks up (the id is 0 until then).
fn from(given: AdminId, site: &Site) -> anyhow::Result<(u64, Option<String>)> {
    match given {
        AdminId::Int(n) if n > 0 => Ok((n as u64, None)),
        AdminId::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let id = s
                .parse()
                .map_err(|_| site.bad("[message] from", format!("`{s}` is too large")))?;
            Ok((id, None))
        }
        AdminId::Str(s) if looks_like_email(s.trim()) => Ok((0, Some(s.trim().to_string()))),
        _ => Err(site.bad(
            "[message] from",
            "expected the sending admin's id, an integer, or the admin's e-mail address (`campaign admins` lists both)".into(),
        )),
    }
}

/// One `@` with something on each side and no spaces: enough to tell an e-mail from a typo'd id;
/// `GET /admins` decides whether it is an admin's.
fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// `subject` or `subject_file`: required for e-mail, dropped (with a warning) for in-app.
fn subject(
    message_type: MessageType,
    inline: Option<String>,
    file: Option<PathBuf>,
    site: &Site,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<TemplateSource>> {
    let subject = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(site.bad(
                "[message] subject",
                "give subject or subject_file, not both".into(),
            ))
        }
        (Some(s), None) => Some(site.inline("message] subject", s)),
        (None, Some(f)) => Some(site.read_template("[message] subject_file", &f)?),
        (None, None) => None,
    };
    match (message_type, subject) {
        (MessageType::Email, None) => Err(site.bad(
            "[message] subject",
            "required for email (or subject_file)".into(),
        )),
        (MessageType::InApp, Some(_)) => {
            warnings.push(format!(
                "{}: [message] subject is not sent for in_app messages",
                site.name
            ));
            Ok(None)
        }
        (_, s) => Ok(s),
    }
}

/// `body` or `body_file`, and the file's extension (lowercase), which gives the default format.
fn body(
    inline: Option<String>,
    file: Option<PathBuf>,
    site: &Site,
) -> anyhow::Result<(TemplateSource, Option<String>)> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            Err(site.bad("[message] body", "give body or body_file, not both".into()))
        }
        (Some(b), None) => Ok((site.inline("message] body", b), None)),
        (None, Some(f)) => {
            let ext = extension(&f);
            Ok((site.read_template("[message] body_file", &f)?, ext))
        }
        (None, None) => Err(site.bad("[message] body", "required (or body_file)".into())),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// `body_format`, or the body file's extension's; an inline body is HTML unless it says
/// otherwise: escaping too much is the safe mistake.
fn body_format(given: Option<&str>, ext: Option<&str>, site: &Site) -> anyhow::Result<BodyFormat> {
    match given {
        Some("html") => Ok(BodyFormat::Html),
        Some("text") => Ok(BodyFormat::Text),
        Some("markdown") => Ok(BodyFormat::Markdown),
        Some(other) => Err(site.bad(
            "[message] body_format",
            format!("`{other}` is not one of `html`, `text`, `markdown`"),
        )),
        None => Ok(match ext {
            Some("txt") | Some("text") => BodyFormat::Text,
            Some("md") | Some("markdown") => BodyFormat::Markdown,
            _ => BodyFormat::Html,
        }),
    }
}
