//! The campaign file as written: its TOML shape (serde, unknown keys refused), where it is (for
//! errors and the paths relative to it), and TOML errors with a hint for the common mistakes.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::kinds::TemplateSource;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub recipients: PathBuf,
    pub delimiter: Option<String>,
    pub message: MessageSection,
    pub to: ToSection,
    #[serde(default)]
    pub send: SendSection,
    #[serde(default)]
    pub intercom: IntercomSection,
    #[serde(default)]
    pub results: ResultsSection,
}

/// `[results]`: what the results file holds besides its fixed columns.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultsSection {
    /// CSV columns copied into each line after the fixed columns, so a row names its customer.
    #[serde(default)]
    pub columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageSection {
    pub message_type: String,
    pub template: Option<String>,
    pub from: AdminId,
    pub subject: Option<String>,
    pub subject_file: Option<PathBuf>,
    pub body: Option<String>,
    pub body_file: Option<PathBuf>,
    pub body_format: Option<String>,
    pub create_conversation_without_contact_reply: Option<bool>,
}

/// The admin id is an integer in the API; a quoted one (as the docs' examples write it) is taken
/// if it is all digits, so that the request still carries an integer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum AdminId {
    Int(i64),
    Str(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ToSection {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    /// The seed's (and older API versions') name for `external_id`.
    pub user_id: Option<String>,
    pub on_many: Option<String>,
    /// `id` campaigns: look the contacts up too (batched), for the unsubscribed check.
    pub verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendSection {
    pub rate: Option<String>,
    pub concurrency: Option<toml::Value>,
    pub max_attempts: Option<toml::Value>,
    pub max_failures: Option<toml::Value>,
    pub max_failure_share: Option<f64>,
    pub retry_not_found_for: Option<String>,
    pub request_timeout: Option<String>,
    pub stall_timeout: Option<String>,
    pub hours: Option<String>,
    pub days: Option<String>,
    pub timezone: Option<String>,
    pub respect_unsubscribed: Option<bool>,
    pub suppress: Option<PathBuf>,
    /// The results file of an earlier campaign: its contacts who replied are skipped.
    pub skip_replied_to: Option<PathBuf>,
    pub duplicates: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntercomSection {
    pub base_url: Option<String>,
    pub version: Option<String>,
}

/// Where the campaign file is: its name starts every error, and its folder anchors the paths
/// it gives.
pub(super) struct Site<'a> {
    pub name: String,
    pub dir: &'a Path,
}

impl<'a> Site<'a> {
    pub fn of(path: &'a Path) -> Site<'a> {
        Site {
            name: path.display().to_string(),
            dir: path.parent().unwrap_or(Path::new(".")),
        }
    }

    /// `campaign.toml: [message] subject: why`.
    pub fn bad(&self, key: &str, why: String) -> anyhow::Error {
        anyhow::anyhow!("{}: {key}: {why}", self.name)
    }

    /// A template from a file beside the campaign file; `key` names the setting that gave it.
    pub fn read_template(&self, key: &str, rel: &Path) -> anyhow::Result<TemplateSource> {
        let full = self.dir.join(rel);
        let source = crate::input::files::read_text(&full, crate::input::files::MAX_TEMPLATE_BYTES)
            .map_err(|e| self.bad(key, e.to_string()))?;
        Ok(TemplateSource {
            source,
            origin: full.display().to_string(),
            in_file: true,
        })
    }

    /// A template written in the campaign file; `key` is the section and key as in
    /// `message] subject` (the origin reads `campaign.toml [message] subject`).
    pub fn inline(&self, key: &str, source: String) -> TemplateSource {
        TemplateSource {
            source,
            origin: format!("{} [{key}", self.name),
            in_file: false,
        }
    }
}

/// A TOML error as toml prints it (line, column, the line marked), and for the two mistakes people
/// make most, what to write instead.
pub(super) fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let shown = e.to_string();
    match hint(text, e) {
        None => anyhow::anyhow!("{}: {}", path.display(), shown.trim_end()),
        Some(hint) => anyhow::anyhow!("{}: {}\n{hint}", path.display(), shown.trim_end()),
    }
}

/// What to write instead: a missing `from` or other key, or a string closed by a quote inside it.
fn hint(text: &str, e: &toml::de::Error) -> Option<String> {
    if e.message().contains("missing field `from`") {
        return Some("add `from = <admin id>` under [message]: the id of the admin the messages come from, an integer (GET /admins lists them; the sandbox knows 394051 and 814860)".into());
    }
    if let Some(field) = e
        .message()
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        return Some(format!("add `{field} = …` to the section marked above (the README's campaign file shows every key)"));
    }
    // `subject = "Welcome to "Acme""`: the string ended at the second quote.
    let line = line_at(text, e.span()?.start);
    let (key, value) = line.split_once('=').unwrap_or(("key", line));
    (value.trim_start().starts_with('"') && value.matches('"').count() > 2).then(|| {
        format!(
            "a double-quoted string ends at its next `\"`: write quotes inside it as single quotes ({} = \"Welcome to 'Acme'\"), or escape them as \\\"",
            key.trim()
        )
    })
}

/// The line of `text` holding byte `at`.
fn line_at(text: &str, at: usize) -> &str {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    &text[start..end]
}
