//! The workspace's admins as the sandbox knows them: `GET /admins` lists them (2.16's
//! `admin.list`), a message names one as its `owner`, and a message `from` any other id is refused,
//! as Intercom refuses an admin it does not know. A default set, or `--admins FILE`.
use std::borrow::Cow;
use std::path::Path;

use anyhow::{bail, Context};
use hyper::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::errors::ApiError;
use crate::input::problem::{Problem, ProblemKind, Severity};
use crate::input::recipients::Recipients;

/// The admin messages are sent from in the samples, the tests and Intercom's own examples.
const ADMIN_ID: u64 = 394051;

/// An admin, its fields in the spec's order (`components.schemas.admin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Admin {
    #[serde(rename = "type")]
    kind: &'static str,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) away_mode_enabled: bool,
    pub(super) away_mode_reassign: bool,
}

impl Admin {
    pub(super) fn new(id: u64, name: &str, email: &str, away: bool) -> Admin {
        Admin {
            kind: "admin",
            id: id.to_string(),
            name: name.to_string(),
            email: email.to_string(),
            away_mode_enabled: away,
            away_mode_reassign: false,
        }
    }
}

/// An admin as `GET /admins` lists it: the spec's example adds these two.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    admin: &'a Admin,
    has_inbox_seat: bool,
    team_ids: [u64; 0],
}

#[derive(Serialize)]
struct AdminList<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    admins: Vec<Listed<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admins {
    list: Vec<Admin>,
}

impl Default for Admins {
    /// The admin of the samples and tests, and a second one (the id of another of Intercom's
    /// examples), so that a list is a list.
    fn default() -> Self {
        Admins {
            list: vec![
                Admin::new(
                    ADMIN_ID,
                    "Sandbox Admin",
                    "admin394051@sandbox.invalid",
                    false,
                ),
                Admin::new(
                    814860,
                    "Sandbox Teammate",
                    "admin814860@sandbox.invalid",
                    false,
                ),
            ],
        }
    }
}

impl Admins {
    /// Reads a CSV with the columns `id`, `name`, `email` and optionally `away` (`true` or
    /// `false`, empty for false). Any problem is an error naming the file, record, line and
    /// column: a sandbox with the wrong admins would refuse the wrong messages.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Admins> {
        crate::input::files::regular(path).context("cannot read the admins file")?;
        let (mut rows, header) = Recipients::open(path, b',').map_err(located)?;
        if let Some(p) = header.into_iter().find(|p| p.severity == Severity::Error) {
            return Err(located(p));
        }
        let name = rows.file_name().to_string();
        let at = |c: &str| rows.columns().iter().position(|h| h == c);
        let (Some(id), Some(admin_name), Some(email)) = (at("id"), at("name"), at("email")) else {
            bail!("{name}: line 1: the admins file needs the columns id, name, email (and optionally away)");
        };
        let away = at("away");
        let mut list: Vec<Admin> = Vec::new();
        while let Some(row) = rows.next_row() {
            let row = row.map_err(located)?;
            let problem = |column: &str, message: String| {
                let p =
                    Problem::error(ProblemKind::Admins, &name, message).at(row.number, row.line);
                located(p.column(format!("column `{column}`")))
            };
            let raw = row.fields[id].trim();
            let Ok(admin_id) = raw.parse::<u64>() else {
                return Err(problem("id", format!("`{raw}` is not an admin id: an id is a whole number, such as {ADMIN_ID}, as `from` in a campaign file")));
            };
            if list.iter().any(|a| a.id == admin_id.to_string()) {
                return Err(problem("id", format!("admin {admin_id} is listed twice")));
            }
            let is_away = match away.map(|i| row.fields[i].trim()) {
                None | Some("" | "false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(problem(
                        "away",
                        format!("`{other}` is not `true` or `false` (empty is false)"),
                    ))
                }
            };
            let (n, e) = (row.fields[admin_name].trim(), row.fields[email].trim());
            list.push(Admin::new(admin_id, n, e, is_away));
        }
        if list.is_empty() {
            bail!("{name}: no admins: the sandbox would refuse every message");
        }
        Ok(Admins { list })
    }

    pub(super) fn find(&self, id: &str) -> Option<&Admin> {
        self.list.iter().find(|a| a.id == id)
    }

    /// The body of `GET /admins`.
    pub(super) fn list_body(&self) -> impl Serialize + '_ {
        AdminList {
            kind: "admin.list",
            admins: self
                .list
                .iter()
                .map(|admin| Listed {
                    admin,
                    has_inbox_seat: true,
                    team_ids: [],
                })
                .collect(),
        }
    }

    /// The admin a valid request (`from.id` an integer) is sent from, or Intercom's 404 for an
    /// admin it does not know, naming the field.
    pub(super) fn sender(&self, body: &Value) -> Result<&Admin, ApiError> {
        let id = body
            .pointer("/from/id")
            .map(Value::to_string)
            .unwrap_or_default();
        self.find(&id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "admin_not_found",
                format!("Admin not found: from.id {id} is not an admin of this workspace (GET /admins lists them)"),
            )
            .field("from.id")
        })
    }

    /// The message's `owner`: its admin, or (when requests are not validated) one made up for
    /// whatever `from.id` says.
    pub(super) fn owner<'a>(&'a self, body: &Value) -> Cow<'a, Admin> {
        let id = match body.pointer("/from/id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => ADMIN_ID.to_string(),
        };
        match self.find(&id) {
            Some(admin) => Cow::Borrowed(admin),
            None => {
                let email = format!("admin{id}@sandbox.invalid");
                let mut made_up = Admin::new(0, "Sandbox Admin", &email, false);
                made_up.id = id;
                Cow::Owned(made_up)
            }
        }
    }
}

/// A problem as an error message: its location and what to do, without the `error:` label the
/// command's own message already has.
fn located(p: Problem) -> anyhow::Error {
    anyhow::anyhow!("{}", p.located())
}
