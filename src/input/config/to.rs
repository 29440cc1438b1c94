//! `[to]`: how a row names its contact (one of `id`, `email`, `external_id`), the contact type,
//! what several matches come to (`on_many`) and `verify`.
use super::file::ToSection;
use super::kinds::{Address, OnMany};

/// `[to]`, validated.
pub(super) struct To {
    pub address: Address,
    /// The template that renders the key `address` names.
    pub template: String,
    /// `user`, `lead` or `contact`.
    pub kind: String,
    pub on_many: OnMany,
    pub verify: bool,
}

/// `name` is the campaign file's, which errors start with.
pub(super) fn resolve(to: ToSection, name: &str) -> anyhow::Result<To> {
    let bad = |key: &str, why: String| anyhow::anyhow!("{name}: [to] {key}: {why}");
    let (address, template) = address(
        [
            (Address::Id, to.id),
            (Address::Email, to.email),
            (Address::ExternalId, to.external_id),
            (Address::ExternalId, to.user_id),
        ],
        &bad,
    )?;
    check_kind(&to.kind, address).map_err(|why| bad("type", why))?;
    let on_many = on_many(to.on_many.as_deref(), address).map_err(|why| bad("on_many", why))?;
    let verify = verify(to.verify, address).map_err(|why| bad("verify", why))?;
    Ok(To {
        address,
        template,
        kind: to.kind,
        on_many,
        verify,
    })
}

/// The one address key given, with its template.
fn address(
    keys: [(Address, Option<String>); 4],
    bad: &dyn Fn(&str, String) -> anyhow::Error,
) -> anyhow::Result<(Address, String)> {
    let given: Vec<(Address, String)> = keys
        .into_iter()
        .filter_map(|(a, t)| t.map(|t| (a, t)))
        .collect();
    match <[_; 1]>::try_from(given) {
        Ok([one]) => Ok(one),
        Err(v) if v.is_empty() => Err(bad(
            "id",
            "missing: give exactly one of `id` (the contact's Intercom id), `email` or `external_id`".into(),
        )),
        Err(v) => {
            let keys: Vec<&str> = v.iter().map(|(a, _)| a.key()).collect();
            Err(bad(
                keys[0],
                format!(
                    "give exactly one of `id`, `email` or `external_id` (`user_id` is `external_id`), not {}",
                    keys.join(" and ")
                ),
            ))
        }
    }
}

/// `contact` (either a user or a lead) can only be told apart once looked up.
fn check_kind(kind: &str, address: Address) -> Result<(), String> {
    match (kind, address) {
        ("user" | "lead", _) => Ok(()),
        ("contact", a) if a.looked_up() => Ok(()),
        ("contact", _) => Err("`contact` (a user or a lead) needs the contact looked up: address it by `email` or `external_id`, or give `type = \"user\"` or `\"lead\"` with `id`".into()),
        (other, _) => Err(format!("`{other}` is not one of `user`, `lead`, `contact`")),
    }
}

fn on_many(given: Option<&str>, address: Address) -> Result<OnMany, String> {
    match given {
        None | Some("fail") => Ok(OnMany::Fail),
        Some("user") if address.looked_up() => Ok(OnMany::PreferUser),
        Some("user") => {
            Err("applies to contacts looked up by `email` or `external_id`, not by `id`".into())
        }
        Some(other) => Err(format!(
            "`{other}` is not one of `fail` (the default), `user`"
        )),
    }
}

fn verify(given: Option<bool>, address: Address) -> Result<bool, String> {
    match (given, address) {
        (Some(true), Address::Id) => Ok(true),
        (Some(true), _) => Err("applies to `id` campaigns; a campaign addressed by `email` or `external_id` is looked up (and checked) anyway".into()),
        (_, _) => Ok(false),
    }
}
