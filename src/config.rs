//! The campaign file (TOML): its keys, defaults and validation. Paths in it are relative to it.
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::rate::{parse_duration, Rate};

/// `concurrency = 8` or `concurrency = "auto"` (in-flight limit from rate × observed latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Auto,
}

impl FromStr for Concurrency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Concurrency::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Concurrency::Fixed(n)),
                _ => Err(format!(
                    "invalid concurrency `{s}`: expected a number from 1, or `auto`"
                )),
            },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Html,
    Text,
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
    pub to_type: String,
    pub to_id: TemplateSource,
    pub send: SendSettings,
    pub base_url: String,
    pub version: String,
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
    pub hours: Option<crate::hours::SendHours>,
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
    id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSection {
    rate: Option<String>,
    concurrency: Option<toml::Value>,
    max_attempts: Option<u32>,
    max_failures: Option<u32>,
    max_failure_share: Option<f64>,
    retry_not_found_for: Option<String>,
    request_timeout: Option<String>,
    stall_timeout: Option<String>,
    hours: Option<String>,
    days: Option<String>,
    timezone: Option<String>,
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
    /// Reads and validates a campaign file. Errors name the file and, for TOML errors, the line.
    pub fn load(path: &Path) -> anyhow::Result<Campaign> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read campaign file {}", path.display()))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
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
            Some(other) => {
                return Err(bad(
                    "[message] body_format",
                    format!("`{other}` is not one of `html`, `text`"),
                ))
            }
            None => match body_ext.as_deref() {
                Some("txt") | Some("text") | Some("md") => BodyFormat::Text,
                Some(_) => BodyFormat::Html,
                // An inline body is HTML unless it says otherwise: escaping too much is the
                // safe mistake.
                None => BodyFormat::Html,
            },
        };
        if file.to.kind != "user" && file.to.kind != "lead" {
            return Err(bad(
                "[to] type",
                format!("`{}` is not one of `user`, `lead`", file.to.kind),
            ));
        }
        let to_id = inline("to] id", file.to.id);

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

        let s = file.send;
        let rate: Rate = s
            .rate
            .as_deref()
            .unwrap_or(DEFAULT_RATE)
            .parse()
            .map_err(|e: String| bad("[send] rate", e))?;
        let concurrency = match s.concurrency {
            None => Concurrency::Auto,
            Some(toml::Value::Integer(n)) if n > 0 => Concurrency::Fixed(n as usize),
            Some(toml::Value::String(t)) => t
                .parse()
                .map_err(|e: String| bad("[send] concurrency", e))?,
            Some(v) => {
                return Err(bad(
                    "[send] concurrency",
                    format!("`{v}`: expected a number from 1, or \"auto\""),
                ))
            }
        };
        let max_failure_share = s.max_failure_share.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&max_failure_share) || max_failure_share == 0.0 {
            return Err(bad(
                "[send] max_failure_share",
                "must be above 0 and at most 1".into(),
            ));
        }
        let duration = |key: &str, v: Option<String>, default: &str| {
            parse_duration(v.as_deref().unwrap_or(default)).map_err(|e| bad(key, e))
        };
        let send = SendSettings {
            rate,
            concurrency,
            max_attempts: s.max_attempts.unwrap_or(5).max(1),
            max_failures: s.max_failures.unwrap_or(20).max(1),
            max_failure_share,
            retry_not_found_for: duration(
                "[send] retry_not_found_for",
                s.retry_not_found_for,
                "60s",
            )?,
            request_timeout: duration("[send] request_timeout", s.request_timeout, "30s")?,
            stall_timeout: duration("[send] stall_timeout", s.stall_timeout, "10m")?,
            hours: crate::hours::SendHours::parse(
                s.hours.as_deref(),
                s.days.as_deref(),
                s.timezone.as_deref(),
            )
            .map_err(|(key, why)| bad(&format!("[send] {key}"), why))?,
        };

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
            to_type: file.to.kind,
            to_id,
            send,
            base_url,
            version,
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
