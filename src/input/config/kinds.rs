//! The campaign's choices as types: how many requests fly, what kind of message, how a row names
//! its contact, what several matches come to, the body's format, and a template with its origin.
use std::str::FromStr;

use super::ranges::{in_range, CONCURRENCY};

/// `concurrency = 8` or `concurrency = "auto"` (in-flight limit from rate × observed latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Auto,
}

/// As the flag and the campaign file write it: `8`, `auto`.
impl std::fmt::Display for Concurrency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Concurrency::Fixed(n) => write!(f, "{n}"),
            Concurrency::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for Concurrency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Concurrency::Auto),
            n => in_range(n, &CONCURRENCY)
                .map(|n| Concurrency::Fixed(n as usize))
                .map_err(|e| format!("{e}, or `auto`")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Email,
    InApp,
}

impl MessageType {
    /// As the request schema spells it.
    pub fn as_api(self) -> &'static str {
        match self {
            MessageType::Email => "email",
            MessageType::InApp => "in_app",
        }
    }
}

/// What a row's `[to]` template renders: the contact's Intercom id, or a key its contact is
/// found by before the message is sent (`POST /contacts/search`, the `lookup` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    Id,
    Email,
    ExternalId,
}

impl Address {
    /// The `[to]` key, and the contact field searched.
    pub fn key(self) -> &'static str {
        match self {
            Address::Id => "id",
            Address::Email => "email",
            Address::ExternalId => "external_id",
        }
    }

    /// Whether a row's contact is looked up before its message is sent.
    pub fn looked_up(self) -> bool {
        self != Address::Id
    }
}

/// `[to] on_many`: what a row whose key finds several contacts comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMany {
    /// `failed`, `ambiguous_contact` (the default).
    Fail,
    /// The one user among them; still ambiguous when there are several users or none.
    PreferUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Html,
    Text,
    /// Markdown, turned into the HTML Intercom receives after the template renders.
    Markdown,
}

impl BodyFormat {
    /// Whether the body Intercom receives is HTML.
    pub fn is_html(self) -> bool {
        matches!(self, BodyFormat::Html | BodyFormat::Markdown)
    }
}

/// A template's source and where it came from, for error messages.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    pub source: String,
    /// `templates/welcome.html`, or `campaign.toml [message] subject` for an inline one.
    pub origin: String,
    /// Whether it is a file of its own (its lines are the file's), not a value of the campaign
    /// file.
    pub in_file: bool,
}
