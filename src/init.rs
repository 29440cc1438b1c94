//! `campaign init [DIR] [--from-csv EXPORT]`: a first campaign file, every key commented, and a
//! message template, from an export's headers (the e-mail column guessed) or from a small
//! example CSV. The same commented file, for a CSV of the samples' kind, is the campaign file
//! reference of the man page ([`reference`]), so the two cannot drift apart.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::input::recipients::{template_names, Recipients};

/// The files `init` writes into DIR.
const CAMPAIGN: &str = "campaign.toml";
const MESSAGE: &str = "message.html";
/// The recipients `init` writes when no export is given.
const EXAMPLE_CSV: &str = "recipients.csv";
const EXAMPLE_ROWS: &str = "email,first_name,plan\nada@example.com,Ada,pro\n";

/// What the campaign file is written from.
struct Shape {
    /// `recipients = "…"`, as written into the file.
    recipients: String,
    /// Each column's first template name.
    names: Vec<String>,
    /// The column guessed to hold the e-mail address, by its template name.
    email: Option<String>,
    /// A column that looks like a first name.
    first_name: Option<String>,
}

/// `campaign init` into `dir` (the current folder), from a CRM export's headers or an example.
pub(crate) fn run(dir: Option<&Path>, from_csv: Option<&Path>) -> anyhow::Result<()> {
    let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let campaign = dir.join(CAMPAIGN);
    let message = dir.join(MESSAGE);
    for path in [&campaign, &message] {
        if std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} exists: init writes a new campaign and never overwrites one; choose another folder (`campaign init DIR`)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let shape = match from_csv {
        Some(export) => from_export(export, &dir)?,
        None => {
            let csv = dir.join(EXAMPLE_CSV);
            if std::fs::symlink_metadata(&csv).is_err() {
                std::fs::write(&csv, EXAMPLE_ROWS)
                    .with_context(|| format!("cannot write {}", csv.display()))?;
            }
            Shape {
                recipients: EXAMPLE_CSV.into(),
                names: vec!["email".into(), "first_name".into(), "plan".into()],
                email: Some("email".into()),
                first_name: Some("first_name".into()),
            }
        }
    };
    std::fs::write(&campaign, campaign_file(&shape))
        .with_context(|| format!("cannot write {}", campaign.display()))?;
    std::fs::write(&message, message_template(&shape))
        .with_context(|| format!("cannot write {}", message.display()))?;
    crate::out!("wrote {} and {}", campaign.display(), message.display());
    match &shape.email {
        Some(e) => crate::out!("the recipients are addressed by e-mail: [to] email = \"{{{{ {e} }}}}\""),
        None => crate::out!("no column looks like an e-mail address: set [to] in {} (an id, email or external_id column)", campaign.display()),
    }
    let c = shell_word(&campaign);
    crate::out!(
        "next:\n  campaign check {c} --columns     # the names your columns have in templates\n  campaign check {c}               # every row, offline\n  campaign preview {c}             # the first messages\n  campaign send {c} --sandbox      # a rehearsal against a local Intercom"
    );
    Ok(())
}

/// The export's headers: each column's name, and guesses at the e-mail and first-name columns.
fn from_export(export: &Path, dir: &Path) -> anyhow::Result<Shape> {
    let (mut recipients, header) =
        Recipients::open(export, b',').map_err(|p| anyhow::anyhow!("{p}"))?;
    if let Some(p) = header
        .iter()
        .find(|p| p.severity == crate::input::problem::Severity::Error)
    {
        bail!("{p}");
    }
    let names: Vec<String> = recipients
        .columns()
        .iter()
        .map(|h| template_names(h).into_iter().next().unwrap_or_default())
        .collect();
    // The first rows' cells, for a column the headers do not name.
    let mut with_at = vec![0usize; names.len()];
    for _ in 0..20 {
        let Some(Ok(row)) = recipients.next_row() else {
            break;
        };
        for (i, cell) in row.fields.iter().enumerate().take(names.len()) {
            if cell.contains('@') {
                with_at[i] += 1;
            }
        }
    }
    let named = |wanted: &[&str]| names.iter().find(|n| wanted.contains(&n.as_str())).cloned();
    let email = named(&["email", "e_mail", "email_address", "e_mail_address", "mail"])
        .or_else(|| names.iter().find(|n| n.contains("email")).cloned())
        .or_else(|| {
            let (i, n) = with_at.iter().enumerate().max_by_key(|(_, n)| **n)?;
            (*n > 0).then(|| names[i].clone())
        })
        .filter(|n| !n.is_empty());
    let first_name = named(&["first_name", "firstname", "given_name", "forename", "name"]);
    Ok(Shape {
        recipients: recipients_path(export, dir),
        names: names.into_iter().filter(|n| !n.is_empty()).collect(),
        email,
        first_name,
    })
}

/// The export as the campaign file names it: relative to the campaign's folder where it is inside
/// it, else its absolute path.
fn recipients_path(export: &Path, dir: &Path) -> String {
    let export = std::fs::canonicalize(export).unwrap_or_else(|_| export.to_path_buf());
    let path = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| export.strip_prefix(d).ok().map(Path::to_path_buf))
        .unwrap_or(export);
    path.display().to_string()
}

/// A path for the user to paste into a shell.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    shlex::try_quote(&s).map_or(s.clone(), |q| q.into_owned())
}

/// A TOML basic string's content.
fn toml_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The campaign file for `shape`, every key commented.
fn campaign_file(shape: &Shape) -> String {
    let to = match &shape.email {
        Some(e) => format!(
            "type = \"user\"                       # \"user\" | \"lead\" | \"contact\" (either): who the e-mails belong to
email = \"{{{{ {e} }}}}\"                  # looked up (case-insensitive) in batches before sending; or
# id = \"{{{{ intercom_id }}}}\"          #   the contact's Intercom id, or
# external_id = \"{{{{ user_id }}}}\"     #   your own user id: exactly one of the three
# on_many = \"user\"                  # an e-mail that finds a user and a lead: \"fail\" (default) or prefer the user"
        ),
        None => "type = \"user\"                       # \"user\" | \"lead\" | \"contact\" (either; only with email / external_id)
id = \"{{ intercom_id }}\"            # the contact's Intercom id (a Tera template over the row); or
# email = \"{{ email }}\"             #   the contact's e-mail, or
# external_id = \"{{ user_id }}\"     #   your own user id: exactly one of the three"
            .to_string(),
    };
    let greeting = match &shape.first_name {
        Some(n) => format!("{{{{ {n} | default(value=\\\"there\\\") }}}}"),
        None => "there".into(),
    };
    format!(
        r#"# A campaign: one Intercom message to each row of the recipients CSV.
# `campaign check` validates it offline; `campaign send FILE --sandbox` rehearses it.
# Columns: {columns} (`campaign check FILE --columns` lists them).
recipients = "{recipients}"        # CSV with a header row; each row is one recipient
# delimiter = ";"                   # default ","; "\t" for tab

[message]
message_type = "email"              # "email" | "in_app"
template = "personal"               # "plain" | "personal"; required for email
from = 394051                       # the sending admin's id or e-mail (`campaign admins` lists them;
                                    #   a rehearsal knows 394051, or your own with --sandbox-admins FILE)
subject = "Hello {greeting}"        # a Tera template over the row; or subject_file = "path"
body_file = "{message}"             # a Tera template file; or body = "inline"
# body_format = "html"              # "html" | "text" | "markdown"; default from body_file's extension

[to]
{to}

[send]
rate = "10/s"                       # "N/s", "N/10s", "N/min", "N/h"; default "10000/min"
# concurrency = "auto"              # requests in flight at most, 1 to 1024, or "auto"
duplicates = "skip"                 # rows of one recipient: send the first, record the rest `skipped`;
                                    #   "refuse" (the default) or "allow" (send them all)
# max_attempts = 5                  # attempts per row for transient failures, 1 to 20
# max_failures = 20                 # stop after this many permanent failures in a row
# request_timeout = "30s"           # one request's time limit
# hours = "09:00-17:00"             # send hours: outside them the sender waits
# days = "mon-fri"                  #   "mon,wed" or "mon-fri"
# timezone = "Europe/Berlin"        #   an IANA name, required with hours or days
# respect_unsubscribed = true       # skip unsubscribed, bounced, spam-marking contacts (e-mail)
# suppress = "do-not-contact.csv"   # one column of e-mails or ids never messaged

[results]
# columns = ["email", "first_name"] # CSV columns copied into each results line

[intercom]
base_url = "https://api.intercom.io"   # or https://api.eu.intercom.io, https://api.au.intercom.io
version = "2.16"                    # the Intercom-Version header: 2.11 to 2.16
"#,
        columns = shape.names.join(", "),
        recipients = toml_text(&shape.recipients),
        greeting = greeting,
        message = MESSAGE,
        to = to,
    )
}

/// The message template: a greeting, and the columns to use named in a comment.
fn message_template(shape: &Shape) -> String {
    let greeting = match &shape.first_name {
        Some(n) => format!("{{{{ {n} | default(value=\"there\") }}}}"),
        None => "there".into(),
    };
    format!(
        "{{# The message, a Tera template over each row. Columns: {}. A date column reads well as: column | date(format=\"%B %-d, %Y\"). #}}\n<p>Hi {greeting},</p>\n<p>Write your message here.</p>\n<p>Cheers,<br>The Support Team</p>\n",
        shape.names.join(", ")
    )
}

/// The campaign file reference of the man page: the file `init` writes for the samples' kind of
/// CSV, every key commented.
pub fn reference() -> String {
    campaign_file(&Shape {
        recipients: "customers.csv".into(),
        names: vec!["intercom_id".into(), "email".into(), "first_name".into()],
        email: Some("email".into()),
        first_name: Some("first_name".into()),
    })
}
