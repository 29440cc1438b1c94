//! The campaign file (TOML): its keys, defaults and validation. Paths in it are relative to it.
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::input::rate::{parse_duration, Rate};

/// `concurrency = 8` or `concurrency = "auto"` (in-flight limit from rate × observed latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Auto,
}

/// The ranges of the `[send]` settings and their flags (README, "The campaign file"). Outside
/// them a value is refused, naming the key and the range, before anything is sent.
///
/// Requests in flight: as many as `auto` ever uses.
pub const CONCURRENCY: RangeInclusive<u64> = 1..=crate::send::pace::AUTO_MAX as u64;
/// Attempts per row: 20 with the capped backoff is minutes of a server's trouble.
pub const MAX_ATTEMPTS: RangeInclusive<u64> = 1..=20;
/// Permanent failures in a row before the run stops: a million is, in effect, never.
pub const MAX_FAILURES: RangeInclusive<u64> = 1..=1_000_000;
/// One request's time limit: below a second, answers Intercom gives in time would be cut off
/// and their rows recorded `unknown`; above ten minutes, a dead connection holds its row that long.
pub const REQUEST_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(600);
/// How long a new contact's 404 is retried: Intercom's delay is seconds; an hour is plenty.
pub const RETRY_NOT_FOUND_FOR: RangeInclusive<Duration> =
    Duration::ZERO..=Duration::from_secs(3600);
/// How long the server may hold every sender back without an outcome: a second up to a day.
pub const STALL_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(86_400);

/// An integer setting within its range, or a message that gives the range.
pub fn in_range(value: &str, range: &RangeInclusive<u64>) -> Result<u64, String> {
    let expected = format!(
        "expected a whole number from {} to {}",
        range.start(),
        range.end()
    );
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{value}`: {expected}"));
    }
    // All digits: one that does not parse is too large.
    match v.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("`{value}` is out of range: {expected}")),
    }
}

/// A duration setting (`"30s"`, `"2m"`) within its range, or a message that gives the range.
pub fn duration_in(value: &str, range: &RangeInclusive<Duration>) -> Result<Duration, String> {
    let expected = format!(
        "expected a duration from {} to {}",
        humantime::format_duration(*range.start()),
        humantime::format_duration(*range.end())
    );
    let d = parse_duration(value).map_err(|e| format!("{e}; {expected}"))?;
    if range.contains(&d) {
        Ok(d)
    } else {
        Err(format!("`{value}` is out of range: {expected}"))
    }
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
/// found by before the message is sent (`POST /contacts/search`, [`crate::resolve`]).
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
}

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

#[derive(Debug, Clone)]
pub struct SendSettings {
    pub rate: Rate,
    pub concurrency: Concurrency,
    pub max_attempts: u32,
    pub max_failures: u32,
    pub max_failure_share: f64,
    pub retry_not_found_for: Duration,
    pub request_timeout: Duration,
    /// How long the senders may be held back by the server (429s, its rate headers) without a
    /// row's outcome before the run stops (exit 3), resumable.
    pub stall_timeout: Duration,
    /// When messages may leave (`[send] hours`, `days`, `timezone`); `None`: any time.
    pub hours: Option<crate::input::hours::SendHours>,
    /// E-mail campaigns: contacts unsubscribed from e-mail, hard-bounced or marked as spam are
    /// `skipped` (`[send] respect_unsubscribed`, default true).
    pub respect_unsubscribed: bool,
    /// `[send] suppress`: a do-not-contact list (e-mails or ids, one column), beside the campaign.
    pub suppress: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    recipients: PathBuf,
    delimiter: Option<String>,
    message: MessageSection,
    to: ToSection,
    #[serde(default)]
    send: SendSection,
    #[serde(default)]
    intercom: IntercomSection,
    #[serde(default)]
    results: ResultsSection,
}

/// `[results]`: what the results file holds besides its fixed columns.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsSection {
    /// CSV columns copied into each line after the fixed columns, so a row names its customer.
    #[serde(default)]
    columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageSection {
    message_type: String,
    template: Option<String>,
    from: AdminId,
    subject: Option<String>,
    subject_file: Option<PathBuf>,
    body: Option<String>,
    body_file: Option<PathBuf>,
    body_format: Option<String>,
    create_conversation_without_contact_reply: Option<bool>,
}

/// The admin id is an integer in the API; a quoted one (as the docs' examples write it) is taken
/// if it is all digits, so that the request still carries an integer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AdminId {
    Int(i64),
    Str(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToSection {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
    /// The seed's (and older API versions') name for `external_id`.
    user_id: Option<String>,
    on_many: Option<String>,
    /// `id` campaigns: look the contacts up too (batched), for the unsubscribed check.
    verify: Option<bool>,
}

impl ToSection {
    /// The one address key given, its template, the type and the rule for several matches.
    fn validate(self, name: &str) -> anyhow::Result<(Address, String, String, OnMany, bool)> {
        let bad = |key: &str, why: String| anyhow::anyhow!("{name}: [to] {key}: {why}");
        let given: Vec<(Address, String)> = [
            (Address::Id, self.id),
            (Address::Email, self.email),
            (Address::ExternalId, self.external_id),
            (Address::ExternalId, self.user_id),
        ]
        .into_iter()
        .filter_map(|(a, t)| t.map(|t| (a, t)))
        .collect();
        let (address, template) = match <[_; 1]>::try_from(given) {
            Ok([one]) => one,
            Err(v) if v.is_empty() => {
                return Err(bad(
                    "id",
                    "missing: give exactly one of `id` (the contact's Intercom id), `email` or `external_id`".into(),
                ))
            }
            Err(v) => {
                let keys: Vec<&str> = v.iter().map(|(a, _)| a.key()).collect();
                return Err(bad(
                    keys[0],
                    format!(
                        "give exactly one of `id`, `email` or `external_id` (`user_id` is `external_id`), not {}",
                        keys.join(" and ")
                    ),
                ));
            }
        };
        match (self.kind.as_str(), address) {
            ("user" | "lead", _) => {}
            ("contact", a) if a.looked_up() => {}
            ("contact", _) => {
                return Err(bad(
                    "type",
                    "`contact` (a user or a lead) needs the contact looked up: address it by `email` or `external_id`, or give `type = \"user\"` or `\"lead\"` with `id`".into(),
                ))
            }
            (other, _) => {
                return Err(bad(
                    "type",
                    format!("`{other}` is not one of `user`, `lead`, `contact`"),
                ))
            }
        }
        let on_many = match self.on_many.as_deref() {
            None | Some("fail") => OnMany::Fail,
            Some("user") if address.looked_up() => OnMany::PreferUser,
            Some("user") => {
                return Err(bad(
                    "on_many",
                    "applies to contacts looked up by `email` or `external_id`, not by `id`".into(),
                ))
            }
            Some(other) => {
                return Err(bad(
                    "on_many",
                    format!("`{other}` is not one of `fail` (the default), `user`"),
                ))
            }
        };
        let verify = match (self.verify, address) {
            (Some(true), Address::Id) => true,
            (Some(true), _) => {
                return Err(bad(
                    "verify",
                    "applies to `id` campaigns; a campaign addressed by `email` or `external_id` is looked up (and checked) anyway".into(),
                ))
            }
            (_, _) => false,
        };
        Ok((address, template, self.kind, on_many, verify))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSection {
    rate: Option<String>,
    concurrency: Option<toml::Value>,
    max_attempts: Option<toml::Value>,
    max_failures: Option<toml::Value>,
    max_failure_share: Option<f64>,
    retry_not_found_for: Option<String>,
    request_timeout: Option<String>,
    stall_timeout: Option<String>,
    hours: Option<String>,
    days: Option<String>,
    timezone: Option<String>,
    respect_unsubscribed: Option<bool>,
    suppress: Option<PathBuf>,
}

impl SendSection {
    /// The `[send]` settings, each within its range; errors name the file `name` and the key.
    fn validate(self, name: &str) -> anyhow::Result<SendSettings> {
        let s = self;
        let bad = |key: &str, why: String| anyhow::anyhow!("{name}: {key}: {why}");
        // A whole number in range; TOML's own integers are i64, so a negative one is named too.
        let whole = |key: &str, v: &toml::Value, range: &RangeInclusive<u64>| match v {
            toml::Value::Integer(n) => in_range(&n.to_string(), range).map_err(|e| bad(key, e)),
            other => Err(bad(
                key,
                format!(
                    "`{other}`: expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        };
        let rate: Rate = s
            .rate
            .as_deref()
            .unwrap_or(DEFAULT_RATE)
            .parse()
            .map_err(|e: String| bad("[send] rate", e))?;
        let concurrency = match s.concurrency {
            None => Concurrency::Auto,
            Some(toml::Value::String(t)) => t
                .parse()
                .map_err(|e: String| bad("[send] concurrency", e))?,
            Some(v) => Concurrency::Fixed(
                whole("[send] concurrency", &v, &CONCURRENCY)
                    .map_err(|e| anyhow::anyhow!("{e}, or \"auto\""))? as usize,
            ),
        };
        let max_failure_share = s.max_failure_share.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&max_failure_share) || max_failure_share == 0.0 {
            return Err(bad(
                "[send] max_failure_share",
                "must be above 0 and at most 1".into(),
            ));
        }
        let count = |key: &str, v: Option<toml::Value>, default: u32, range| match v {
            None => Ok(default),
            Some(v) => whole(key, &v, range).map(|n| n as u32),
        };
        let duration = |key: &str, v: Option<String>, default: &str, range| {
            duration_in(v.as_deref().unwrap_or(default), range).map_err(|e| bad(key, e))
        };
        Ok(SendSettings {
            rate,
            concurrency,
            max_attempts: count("[send] max_attempts", s.max_attempts, 5, &MAX_ATTEMPTS)?,
            max_failures: count("[send] max_failures", s.max_failures, 20, &MAX_FAILURES)?,
            max_failure_share,
            retry_not_found_for: duration(
                "[send] retry_not_found_for",
                s.retry_not_found_for,
                "60s",
                &RETRY_NOT_FOUND_FOR,
            )?,
            request_timeout: duration(
                "[send] request_timeout",
                s.request_timeout,
                "30s",
                &REQUEST_TIMEOUT,
            )?,
            stall_timeout: duration(
                "[send] stall_timeout",
                s.stall_timeout,
                "10m",
                &STALL_TIMEOUT,
            )?,
            hours: crate::input::hours::SendHours::parse(
                s.hours.as_deref(),
                s.days.as_deref(),
                s.timezone.as_deref(),
            )
            .map_err(|(key, why)| bad(&format!("[send] {key}"), why))?,
            respect_unsubscribed: s.respect_unsubscribed.unwrap_or(true),
            suppress: s.suppress,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntercomSection {
    base_url: Option<String>,
    version: Option<String>,
}

pub const DEFAULT_BASE_URL: &str = "https://api.intercom.io";
pub const DEFAULT_VERSION: &str = "2.16";
pub const DEFAULT_RATE: &str = "10000/min";
/// Intercom-Version values this tool knows the request shape of.
pub const KNOWN_VERSIONS: &[&str] = &["2.11", "2.12", "2.13", "2.14", "2.15", "2.16"];

impl Campaign {
    /// Whether rows pass through resolution before they are sent: addressed by e-mail or
    /// external id, or an `id` campaign with `[to] verify = true`.
    pub fn resolves(&self) -> bool {
        self.address.looked_up() || self.verify
    }

    /// Reads and validates a campaign file. Errors name the file and, for TOML errors, the line.
    pub fn load(path: &Path) -> anyhow::Result<Campaign> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read campaign file {}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.display().to_string();
        let mut warnings = Vec::new();
        let bad = |key: &str, why: String| anyhow::anyhow!("{name}: {key}: {why}");

        let m = file.message;
        let message_type = match m.message_type.as_str() {
            "email" => MessageType::Email,
            "in_app" | "inapp" => MessageType::InApp,
            other => {
                return Err(bad(
                    "[message] message_type",
                    format!("`{other}` is not one of `email`, `in_app`"),
                ))
            }
        };
        let template = match (message_type, m.template) {
            (MessageType::Email, None) => {
                return Err(bad(
                    "[message] template",
                    "required for email: `plain` or `personal`".into(),
                ))
            }
            (MessageType::Email, Some(t)) if t == "plain" || t == "personal" => Some(t),
            (MessageType::Email, Some(t)) => {
                return Err(bad(
                    "[message] template",
                    format!("`{t}` is not one of `plain`, `personal`"),
                ))
            }
            (MessageType::InApp, Some(_)) => {
                warnings.push(format!(
                    "{name}: [message] template is not sent for in_app messages"
                ));
                None
            }
            (MessageType::InApp, None) => None,
        };
        let (from, from_email) = match m.from {
            AdminId::Int(n) if n > 0 => (n as u64, None),
            AdminId::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => (
                s.parse()
                    .map_err(|_| bad("[message] from", format!("`{s}` is too large")))?,
                None,
            ),
            AdminId::Str(s) if looks_like_email(s.trim()) => (0, Some(s.trim().to_string())),
            _ => {
                return Err(bad(
                    "[message] from",
                    "expected the sending admin's id, an integer, or the admin's e-mail address (`campaign admins` lists both)".into(),
                ))
            }
        };
        let read_file = |key: &str, rel: &Path| -> anyhow::Result<TemplateSource> {
            let full = dir.join(rel);
            let source = std::fs::read_to_string(&full)
                .map_err(|e| bad(key, format!("cannot read {}: {e}", full.display())))?;
            Ok(TemplateSource {
                source,
                origin: full.display().to_string(),
            })
        };
        let inline = |key: &str, source: String| TemplateSource {
            source,
            origin: format!("{name} [{key}"),
        };
        let subject = match (m.subject, m.subject_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "[message] subject",
                    "give subject or subject_file, not both".into(),
                ))
            }
            (Some(s), None) => Some(inline("message] subject", s)),
            (None, Some(f)) => Some(read_file("[message] subject_file", &f)?),
            (None, None) => None,
        };
        let subject = match (message_type, subject) {
            (MessageType::Email, None) => {
                return Err(bad(
                    "[message] subject",
                    "required for email (or subject_file)".into(),
                ))
            }
            (MessageType::InApp, Some(_)) => {
                warnings.push(format!(
                    "{name}: [message] subject is not sent for in_app messages"
                ));
                None
            }
            (_, s) => s,
        };
        let (body, body_ext) = match (m.body, m.body_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "[message] body",
                    "give body or body_file, not both".into(),
                ))
            }
            (Some(b), None) => (inline("message] body", b), None),
            (None, Some(f)) => {
                let ext = f
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                (read_file("[message] body_file", &f)?, ext)
            }
            (None, None) => return Err(bad("[message] body", "required (or body_file)".into())),
        };
        let body_format = match m.body_format.as_deref() {
            Some("html") => BodyFormat::Html,
            Some("text") => BodyFormat::Text,
            Some("markdown") => BodyFormat::Markdown,
            Some(other) => {
                return Err(bad(
                    "[message] body_format",
                    format!("`{other}` is not one of `html`, `text`, `markdown`"),
                ))
            }
            None => match body_ext.as_deref() {
                Some("txt") | Some("text") => BodyFormat::Text,
                Some("md") | Some("markdown") => BodyFormat::Markdown,
                Some(_) => BodyFormat::Html,
                // An inline body is HTML unless it says otherwise: escaping too much is the
                // safe mistake.
                None => BodyFormat::Html,
            },
        };
        let (address, to_template, to_type, on_many, verify) = file.to.validate(&name)?;
        let to_id = inline(&format!("to] {}", address.key()), to_template);

        let delimiter = match file.delimiter.as_deref() {
            None => b',',
            Some("\\t") | Some("\t") | Some("tab") => b'\t',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => {
                return Err(bad(
                    "delimiter",
                    format!("`{d}` must be a single character such as \",\" or \";\""),
                ))
            }
        };

        let mut send = file.send.validate(&name)?;
        send.suppress = send.suppress.map(|p| dir.join(p));

        let base_url = file
            .intercom
            .base_url
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
        let version = file
            .intercom
            .version
            .unwrap_or_else(|| DEFAULT_VERSION.into());
        check_version(&version).map_err(|e| bad("[intercom] version", e))?;

        Ok(Campaign {
            path: path.to_path_buf(),
            recipients: dir.join(file.recipients),
            delimiter,
            message_type,
            template,
            from,
            from_email,
            sender: None,
            subject,
            body,
            body_format,
            create_conversation_without_contact_reply: m.create_conversation_without_contact_reply,
            to_type,
            to_id,
            address,
            on_many,
            verify,
            send,
            base_url,
            version,
            results_columns: file.results.columns,
            warnings,
        })
    }

    /// The campaign file's name without extension: the default results file's stem.
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

    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "campaign".into())
    }
}

/// A TOML error as toml prints it (line, column, the line marked), and for the two mistakes people
/// make most, what to write instead.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let shown = e.to_string();
    let mut hint = String::new();
    if e.message().contains("missing field `from`") {
        hint = "add `from = <admin id>` under [message]: the id of the admin the messages come from, an integer (GET /admins lists them; the sandbox knows 394051 and 814860)".into();
    } else if let Some(field) = e
        .message()
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        hint = format!("add `{field} = …` to the section marked above (the README's campaign file shows every key)");
    } else if let Some(line) = e.span().map(|s| line_at(text, s.start)) {
        // `subject = "Welcome to "Acme""`: the string ended at the second quote.
        let (key, value) = line.split_once('=').unwrap_or(("key", line));
        if value.trim_start().starts_with('"') && value.matches('"').count() > 2 {
            hint = format!(
                "a double-quoted string ends at its next `\"`: write quotes inside it as single quotes ({} = \"Welcome to 'Acme'\"), or escape them as \\\"",
                key.trim()
            );
        }
    }
    if hint.is_empty() {
        anyhow::anyhow!("{}: {}", path.display(), shown.trim_end())
    } else {
        anyhow::anyhow!("{}: {}\n{hint}", path.display(), shown.trim_end())
    }
}

/// The line of `text` holding byte `at`.
fn line_at(text: &str, at: usize) -> &str {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    &text[start..end]
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

pub fn check_version(v: &str) -> Result<(), String> {
    if KNOWN_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "Intercom-Version `{v}` is not one this tool knows ({})",
            KNOWN_VERSIONS.join(", ")
        ))
    }
}

/// The token crosses the network only encrypted: plain http is for loopback (the sandbox, tests).
pub fn check_base_url(url: &str) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("invalid API base URL `{url}`"))?;
    // The client appends `/messages` to the URL: a path would send every request somewhere
    // Intercom has no API (a 404 for each row, found only once the run is under way).
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        let root = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
        let root = match parsed.port() {
            Some(p) => format!("{root}:{p}"),
            None => root,
        };
        bail!("the API base URL `{url}` has a path: it must be the API's root, such as {root} (requests go to its /messages)");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                bail!("refusing plain http:// to `{url}`: the access token would cross the network in clear; use https://")
            }
        }
        other => bail!("invalid API base URL `{url}`: unsupported scheme `{other}`"),
    }
}
