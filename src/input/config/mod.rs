//! The campaign file (TOML): its keys, defaults and validation. Paths in it are relative to it.
//!
//! This file owns the validated [`Campaign`] and [`Campaign::load`], which resolves the file one
//! section at a time: [`mod@file`] (the TOML shape, TOML errors), [`message`], [`to`], [`send`],
//! [`intercom`] (base URL, the versions this tool knows); [`kinds`] holds the types the
//! settings take, [`ranges`] the ranges they are kept in.
mod file;
mod intercom;
mod kinds;
mod message;
mod ranges;
mod send;
mod to;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use intercom::{
    check_base_url, check_version, cut_of, OpenApiCut, DEFAULT_BASE_URL, DEFAULT_VERSION, VERSIONS,
};
pub use kinds::{Address, BodyFormat, Concurrency, MessageType, OnMany, TemplateSource};
pub use ranges::{
    duration_in, in_range, AUTO_MAX, MAX_ATTEMPTS, MAX_FAILURES, REQUEST_TIMEOUT,
    RETRY_NOT_FOUND_FOR, STALL_TIMEOUT,
};
pub use send::{Duplicates, SendSettings, DEFAULT_RATE};

use file::{IntercomSection, Site};

/// A validated campaign, ready to check and send.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub path: PathBuf,
    pub recipients: PathBuf,
    pub delimiter: u8,
    pub message_type: MessageType,
    pub template: Option<String>,
    /// The sending admin's id; 0 while `from` is an e-mail address not yet looked up.
    pub from: u64,
    /// `from` as an admin's e-mail address, which `send` resolves to an id (`GET /admins`).
    pub from_email: Option<String>,
    /// The sending admin as `GET /admins` names it, once looked up: `Ann <ann@example.com>`.
    pub sender: Option<String>,
    pub subject: Option<TemplateSource>,
    pub body: TemplateSource,
    pub body_format: BodyFormat,
    pub create_conversation_without_contact_reply: Option<bool>,
    /// `user`, `lead`, or `contact` (either; only with a looked-up address).
    pub to_type: String,
    /// The `[to]` template: it renders the id, e-mail or external id `address` says.
    pub to_id: TemplateSource,
    pub address: Address,
    pub on_many: OnMany,
    /// `[to] verify = true`: an `id` campaign's contacts are looked up too, in batches, so that
    /// unsubscribed ones are skipped.
    pub verify: bool,
    pub send: SendSettings,
    pub base_url: String,
    pub version: String,
    /// CSV columns copied into the results file after its fixed columns (`[results] columns`).
    pub results_columns: Vec<String>,
    /// Things worth saying that do not stop a run.
    pub warnings: Vec<String>,
}

impl Campaign {
    /// Whether rows pass through the lookup before they are sent: addressed by e-mail or
    /// external id, an `id` campaign with `[to] verify = true`, or one with a `[send] suppress`
    /// list (matched by each contact's id, e-mail and external id, which only a lookup gives).
    pub fn resolves(&self) -> bool {
        self.address.looked_up() || self.verify || self.send.suppress.is_some()
    }

    /// Reads and validates a campaign file. Errors name the file and, for TOML errors, the line;
    /// the sections are checked in the order the file usually gives them.
    pub fn load(path: &Path) -> anyhow::Result<Campaign> {
        let text = crate::input::files::read_text(path, crate::input::files::MAX_TEMPLATE_BYTES)
            .context("cannot read the campaign file")?;
        let file: file::File =
            toml::from_str(&text).map_err(|e| file::toml_error(path, &text, &e))?;
        let site = Site::of(path);
        let mut warnings = Vec::new();
        let m = message::resolve(file.message, &site, &mut warnings)?;
        let to = to::resolve(file.to, &site.name)?;
        let to_id = site.inline(&format!("to] {}", to.address.key()), to.template);
        let delimiter = delimiter(file.delimiter.as_deref(), &site)?;
        let send = send::resolve(file.send, &site.name, site.dir)?;
        let (base_url, version) = endpoint(file.intercom, &site)?;
        Ok(Campaign {
            path: path.to_path_buf(),
            recipients: site.dir.join(file.recipients),
            delimiter,
            message_type: m.message_type,
            template: m.template,
            from: m.from,
            from_email: m.from_email,
            sender: None,
            subject: m.subject,
            body: m.body,
            body_format: m.body_format,
            create_conversation_without_contact_reply: m.create_conversation_without_contact_reply,
            to_type: to.kind,
            to_id,
            address: to.address,
            on_many: to.on_many,
            verify: to.verify,
            send,
            base_url,
            version,
            results_columns: file.results.columns,
            warnings,
        })
    }

    /// The sending admin for people: `Ann <ann@example.com> (admin 394051)` once looked up,
    /// else `admin 394051` or `admin ann@example.com`.
    pub fn from_label(&self) -> String {
        match (&self.sender, &self.from_email) {
            (Some(sender), _) => format!("{sender} (admin {})", self.from),
            (None, Some(email)) => format!("admin {email}"),
            (None, None) => format!("admin {}", self.from),
        }
    }

    /// `from` as the campaign file gives it, for the campaign's fingerprint: an id, or an e-mail.
    pub fn from_key(&self) -> String {
        self.from_email
            .clone()
            .unwrap_or_else(|| self.from.to_string())
    }

    /// The campaign file's name without extension: the default results file's stem.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "campaign".into())
    }
}

/// The CSV's delimiter: one character, `tab` or `\t`; a comma by default.
fn delimiter(given: Option<&str>, site: &Site) -> anyhow::Result<u8> {
    match given {
        None => Ok(b','),
        Some("\\t") | Some("\t") | Some("tab") => Ok(b'\t'),
        Some(d) if d.len() == 1 => Ok(d.as_bytes()[0]),
        Some(d) => Err(site.bad(
            "delimiter",
            format!("`{d}` must be a single character such as \",\" or \";\""),
        )),
    }
}

/// `[intercom]`: the base URL and a version this tool knows, with their defaults. The URL is
/// checked where it is used, as a flag may replace it.
fn endpoint(section: IntercomSection, site: &Site) -> anyhow::Result<(String, String)> {
    let base_url = section.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.into());
    let version = section.version.unwrap_or_else(|| DEFAULT_VERSION.into());
    check_version(&version).map_err(|e| site.bad("[intercom] version", e))?;
    Ok((base_url, version))
}
