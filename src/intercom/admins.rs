//! The workspace's admins, from `GET /admins`: `campaign admins` lists them (a table, or `--json`),
//! and `send` looks the sending admin up once before its first request, so that it can say who
//! the messages come from, take `from` as an e-mail address, and refuse an admin the workspace
//! does not have before any customer is messaged.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;
use serde_json::Value;

use crate::cli::AdminsArgs;
use crate::exit::Failure;
use crate::input::config::{self, Campaign, Concurrency};
use crate::intercom::client::{Client, Token};
use crate::intercom::pace::Pace;
use tokio_util::sync::CancellationToken;

/// One admin, as `campaign admins` shows it (`--json` uses these names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminInfo {
    /// A string in Intercom's answer; `from` in a campaign file takes it as an integer.
    pub id: String,
    pub name: String,
    pub email: String,
    pub away: bool,
}

/// Where the admins are asked for.
pub enum Target<'a> {
    /// A sandbox started in this process for the question, with this admins file (or the
    /// default set): the same set `send --sandbox` then sends against.
    Sandbox { admins: Option<PathBuf> },
    Api {
        base_url: &'a str,
        version: &'a str,
        token: &'a Token,
    },
}

/// The access token for a command that reads the API: `--token-file`, else `INTERCOM_TOKEN`.
pub fn read_token(file: Option<&Path>) -> anyhow::Result<Token> {
    if let Some(path) = file {
        let text = crate::input::files::read_text(path, crate::input::files::MAX_TOKEN_BYTES)
            .context("cannot read the token file")?;
        return Token::new(text).with_context(|| format!("{}", path.display()));
    }
    match std::env::var("INTERCOM_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Token::new(t),
        _ => bail!(
            "no access token: set INTERCOM_TOKEN (or pass --token-file FILE), or try --sandbox"
        ),
    }
}

/// `GET /admins`: the admins, or why they could not be had (one line, without the token).
pub async fn fetch(target: &Target<'_>, timeout: Duration) -> anyhow::Result<Vec<AdminInfo>> {
    match target {
        Target::Api {
            base_url,
            version,
            token,
        } => {
            let client = Client::new(base_url, token, version, timeout, 1)?;
            // One request, paced like any: a 429 is its answer (the list is asked for once).
            let rate = config::DEFAULT_RATE.parse().map_err(anyhow::Error::msg)?;
            let pace = Pace::new(
                client,
                rate,
                Concurrency::Fixed(1),
                CancellationToken::new(),
            );
            let got = pace
                .request(|client| client.get_json("admins"))
                .await
                .expect("nothing stops this request");
            let body = got.answer.map_err(anyhow::Error::msg)?;
            parse_list(&body).map_err(anyhow::Error::msg)
        }
        Target::Sandbox { admins } => {
            let token = Token::new("sandbox-admins-lookup".into())?;
            let config = crate::sandbox::SandboxConfig {
                token: Some(token.expose().to_string()),
                faults: quiet_faults(),
                contacts: None,
                admins: admins.clone(),
                log: None,
                invent_contacts: false,
                missing: Vec::new(),
            };
            let running = crate::sandbox::start(config, "127.0.0.1:0".parse()?).await?;
            let api = Target::Api {
                base_url: &running.base_url(),
                version: config::DEFAULT_VERSION,
                token: &token,
            };
            let list = Box::pin(fetch(&api, timeout)).await;
            running.shutdown().await?;
            list
        }
    }
}

/// A sandbox that answers at once and always: the lookup is not a rehearsal of faults.
fn quiet_faults() -> crate::sandbox::FaultSettings {
    crate::sandbox::FaultSettings::quiet()
}

/// 2.16's `admin.list`: `{"type": "admin.list", "admins": [{"id", "name", "email",
/// "away_mode_enabled", …}]}`. An id may come as a string (the spec) or a number.
pub fn parse_list(body: &Value) -> Result<Vec<AdminInfo>, String> {
    let Some(admins) = body.get("admins").and_then(Value::as_array) else {
        return Err("the answer is not an admin list (no `admins` array)".into());
    };
    // Names and e-mails are shown in a table whose layout costs the square of a cell's length:
    // a server's strings are kept to the bound every string it sends is kept to.
    let text = |a: &Value, key: &str| {
        let s = a.get(key).and_then(Value::as_str).unwrap_or("");
        s.chars()
            .take(crate::intercom::answer::FIELD_CHARS)
            .collect()
    };
    admins
        .iter()
        .map(|a| {
            let id = match a.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err("an admin in the answer has no id".to_string()),
            };
            Ok(AdminInfo {
                id,
                name: text(a, "name"),
                email: text(a, "email"),
                away: a.get("away_mode_enabled").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect()
}

/// `send`, once before its first request: the campaign's `from` found among the workspace's
/// admins, its id and name set on the campaign. An admin the list does not have is refused
/// (nothing is sent), and so is an e-mail several admins have. A list that cannot be had is a
/// warning when `from` is an id (a token may lack the right to read admins, and Intercom then
/// says so at the first message) and an error when it is an e-mail, which only the list can turn
/// into an id.
async fn resolve_sender(
    c: &mut Campaign,
    target: &Target<'_>,
    timeout: Duration,
) -> Result<(), Failure> {
    let list = match fetch(target, timeout).await {
        Ok(list) => list,
        Err(why) => {
            if let Some(email) = &c.from_email {
                return Err(Failure::api(anyhow::anyhow!(
                    "{}: [message] from: cannot look up the admin `{email}`: GET /admins: {why:#}. Give the admin's id instead (`from = 394051`)",
                    c.path.display()
                )));
            }
            crate::say!(
                "warning: cannot check the sending admin {}: GET /admins: {why:#}; sending from it unchecked",
                c.from
            );
            return Ok(());
        }
    };
    let found = match &c.from_email {
        Some(email) => one_by_email(&list, email, &c.path)?,
        None => list.iter().find(|a| a.id == c.from.to_string()),
    };
    let Some(admin) = found else {
        return Err(anyhow::anyhow!(
            "{}: [message] from: {} is not an admin of this workspace; its admins are {}. {}; nothing was sent",
            c.path.display(),
            c.from_label(),
            known(&list),
            unknown_admin_fix(target)
        )
        .into());
    };
    c.from = admin.id.parse().with_context(|| {
        format!(
            "GET /admins gave admin `{}` an id that is not a whole number",
            admin.email
        )
    })?;
    c.sender = Some(format!("{} <{}>", admin.name, admin.email));
    Ok(())
}

/// What to do about a `from` the workspace does not have: a rehearsal's workspace is the
/// sandbox's, whose admins come from `--sandbox-admins`.
fn unknown_admin_fix(target: &Target<'_>) -> String {
    match target {
        Target::Api { .. } => "Fix `from` (an id or e-mail from `campaign admins`)".into(),
        Target::Sandbox { admins: None } => "The rehearsal's sandbox has only its default admins: give it your workspace's with --sandbox-admins FILE (a CSV with columns `id,name,email`, as `campaign admins` lists them), or fix `from`".into(),
        Target::Sandbox { admins: Some(file) } => format!(
            "The sandbox's admins come from --sandbox-admins {}: add this admin there (`id,name,email`), or fix `from`",
            file.display()
        ),
    }
}

/// The admin whose e-mail is `email`, without regard to case; several are refused, since which
/// one the messages would come from is a guess the operator settles with the id.
fn one_by_email<'a>(
    list: &'a [AdminInfo],
    email: &str,
    campaign: &Path,
) -> anyhow::Result<Option<&'a AdminInfo>> {
    let matching: Vec<&AdminInfo> = list
        .iter()
        .filter(|a| a.email.eq_ignore_ascii_case(email))
        .collect();
    if let [_, _, ..] = matching[..] {
        let named: Vec<String> = matching
            .iter()
            .map(|a| format!("{} ({} <{}>)", a.id, a.name, a.email))
            .collect();
        bail!(
            "{}: [message] from: `{email}` is the e-mail of {} admins, {}: set `from` to the admin's id (`from = {}`); nothing was sent",
            campaign.display(),
            matching.len(),
            named.join(", "),
            matching[0].id
        );
    }
    Ok(matching.first().copied())
}

/// `send`'s lookup of its admin, before anything of the ledger is touched: against the
/// sandbox's admins for `--sandbox`, Intercom otherwise; skipped (and said) for `--dry-run`
/// (`None`), which has no token. `timeout` is the run's request timeout.
pub async fn resolve_for_send(
    c: &mut Campaign,
    target: Option<Target<'_>>,
    timeout: Duration,
) -> Result<(), Failure> {
    let Some(target) = target else {
        crate::say!(
            "dry run: the sending admin ({}) is not looked up (GET /admins needs a token)",
            c.from_label()
        );
        return Ok(());
    };
    // A bad admins file is the user's to fix (exit 2), not a list that could not be had.
    if let Target::Sandbox { admins: Some(path) } = &target {
        crate::sandbox::admins::Admins::load(path)?;
    }
    resolve_sender(c, &target, timeout).await
}

/// The first admins of a list, for an error message.
fn known(list: &[AdminInfo]) -> String {
    if list.is_empty() {
        return "none (GET /admins listed no one)".into();
    }
    let mut names: Vec<String> = list
        .iter()
        .take(10)
        .map(|a| format!("{} ({} <{}>)", a.id, a.name, a.email))
        .collect();
    if list.len() > 10 {
        names.push(format!("and {} more", list.len() - 10));
    }
    names.join(", ")
}

/// `campaign admins`.
pub async fn run(args: &AdminsArgs) -> Result<(), Failure> {
    let version = args
        .intercom_version
        .clone()
        .unwrap_or_else(|| config::DEFAULT_VERSION.into());
    config::check_version(&version).map_err(anyhow::Error::msg)?;
    let base_url = args
        .api_base
        .clone()
        .unwrap_or_else(|| config::DEFAULT_BASE_URL.into());
    let token;
    let target = if args.sandbox {
        Target::Sandbox {
            admins: args.sandbox_admins.clone(),
        }
    } else {
        config::check_base_url(&base_url)?;
        token = read_token(args.token_file.as_deref())?;
        Target::Api {
            base_url: &base_url,
            version: &version,
            token: &token,
        }
    };
    let list = fetch(&target, Duration::from_secs(30))
        .await
        .map_err(|e| Failure::api(anyhow::anyhow!("GET /admins: {e:#}")))?;
    if args.json {
        crate::out!(
            "{}",
            crate::results::cells::inert_json(
                serde_json::to_string_pretty(&list).map_err(anyhow::Error::from)?
            )
        );
    } else {
        crate::out!("{}", table(&list));
    }
    Ok(())
}

fn table(list: &[AdminInfo]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(120)
        .set_header(["id", "name", "e-mail", "away"]);
    for a in list {
        let away = if a.away { "away" } else { "" };
        t.add_row([a.id.as_str(), &a.name, &a.email, away]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_an_admin_list_with_string_or_number_ids() {
        let body = json!({"type": "admin.list", "admins": [
            {"type": "admin", "id": "394051", "name": "Ann", "email": "ann@example.com", "away_mode_enabled": true},
            {"type": "admin", "id": 814860, "name": "Bo", "email": "bo@example.com"}
        ]});
        let list = parse_list(&body).unwrap();
        assert_eq!(list[0].id, "394051");
        assert!(list[0].away);
        assert_eq!(list[1].id, "814860");
        assert!(!list[1].away);
        assert!(parse_list(&json!({"type": "admin_message", "id": "1"})).is_err());
        assert!(parse_list(&json!({"admins": [{"name": "x"}]})).is_err());
    }
}
