//! The sending admin, looked up once before the first request, so that `send` can say who the
//! messages come from, take `from` as an e-mail address, and refuse an admin the workspace does
//! not have before any customer is messaged.
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::exit::Failure;
use crate::input::config::Campaign;
use crate::intercom::admins::AdminInfo;
use crate::sandbox::{FaultSettings, SandboxConfig};
use crate::target::{Access, SandboxOptions};

/// `GET /admins` at the target: a rehearsal's from a sandbox of its admins alone, which answers
/// at once and always (the lookup is not a rehearsal of faults).
async fn fetch(access: &Access, timeout: Duration) -> anyhow::Result<Vec<AdminInfo>> {
    let target = access
        .start(|o| SandboxConfig {
            faults: FaultSettings::quiet(),
            contacts: None,
            invent_contacts: false,
            missing: Vec::new(),
            log: None,
            ..o.config()
        })
        .await?;
    let list = crate::intercom::admins::fetch(target.client(timeout, 1)?).await;
    target.close().await?;
    list
}

/// `send`, once before its first request: the campaign's `from` found among the workspace's
/// admins, its id and name set on the campaign. An admin the list does not have is refused
/// (nothing is sent), and so is an e-mail several admins have. A list that cannot be had is a
/// warning when `from` is an id (a token may lack the right to read admins, and Intercom then
/// says so at the first message) and an error when it is an e-mail, which only the list can turn
/// into an id.
async fn resolve_sender(
    c: &mut Campaign,
    access: &Access,
    timeout: Duration,
) -> Result<(), Failure> {
    let list = match fetch(access, timeout).await {
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
            unknown_admin_fix(access.sandbox.as_ref())
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
fn unknown_admin_fix(sandbox: Option<&SandboxOptions>) -> String {
    match sandbox.map(|s| &s.admins) {
        None => "Fix `from` (an id or e-mail from `campaign admins`)".into(),
        Some(None) => "The rehearsal's sandbox has only its default admins: give it your workspace's with --sandbox-admins FILE (a CSV with columns `id,name,email`, as `campaign admins` lists them), or fix `from`".into(),
        Some(Some(file)) => format!(
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
pub(super) async fn look_up(
    c: &mut Campaign,
    access: Option<&Access>,
    timeout: Duration,
) -> Result<(), Failure> {
    let Some(access) = access else {
        crate::say!(
            "dry run: the sending admin ({}) is not looked up (GET /admins needs a token)",
            c.from_label()
        );
        return Ok(());
    };
    // A bad admins file is the user's to fix (exit 2), not a list that could not be had.
    if let Some(path) = access.sandbox.as_ref().and_then(|s| s.admins.as_ref()) {
        crate::sandbox::admins::Admins::load(path)?;
    }
    resolve_sender(c, access, timeout).await
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
