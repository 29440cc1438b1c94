//! The match rules: what a row's key and the contacts found for it come to (found, not found,
//! ambiguous, unsubscribed, suppressed), independent of how the contacts were fetched.
use std::collections::HashSet;

use serde::Deserialize;

use crate::input::config::{Address, Campaign, MessageType, OnMany};

/// A contact as `POST /contacts/search` returns it: the fields a lookup reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Contact {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) external_id: Option<String>,
    #[serde(default)]
    pub(crate) unsubscribed_from_emails: bool,
    #[serde(default)]
    pub(crate) has_hard_bounced: bool,
    #[serde(default)]
    pub(crate) marked_email_as_spam: bool,
}

impl Contact {
    /// The contact's value of the field a campaign addresses by, as keys are compared.
    pub(crate) fn key(&self, address: Address) -> Option<String> {
        match address {
            Address::Id => Some(self.id.clone()),
            Address::Email => self.email.as_deref().map(|e| normalize(address, e)),
            Address::ExternalId => self.external_id.as_deref().map(|e| normalize(address, e)),
        }
    }
}

/// A key as it is searched and compared: trimmed, and an e-mail in lower case (Intercom's
/// e-mails are not case-sensitive; a spreadsheet's often are in mixed case).
pub(crate) fn normalize(address: Address, key: &str) -> String {
    let key = key.trim();
    match address {
        Address::Email => key.to_lowercase(),
        Address::Id | Address::ExternalId => key.to_string(),
    }
}

/// What one row's lookup came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Found(Contact),
    NotFound,
    /// Several contacts, and the rule does not choose: how many, of which roles.
    Ambiguous(String),
    /// The contact asked not to get e-mail: `unsubscribed_from_emails`, `has_hard_bounced` or
    /// `marked_email_as_spam`.
    Unsubscribed(&'static str),
    /// On the `[send] suppress` list (by its key or its contact id).
    Suppressed,
}

/// The campaign's settings that decide a row's verdict.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) address: Address,
    /// `user`, `lead`, or `contact` (either).
    pub(crate) role: String,
    pub(crate) on_many: OnMany,
    /// Whether unsubscribed, bounced and spam-marking contacts are skipped.
    pub(crate) respect_unsubscribed: bool,
    /// Normalized e-mails, external ids and contact ids not to message.
    pub(crate) suppress: HashSet<String>,
}

impl Rules {
    pub(crate) fn of(c: &Campaign) -> anyhow::Result<Rules> {
        let suppress = match &c.send.suppress {
            Some(path) => super::suppress::load_suppress(path)?,
            None => HashSet::new(),
        };
        Ok(Rules {
            address: c.address,
            role: c.to_type.clone(),
            on_many: c.on_many,
            // Only e-mail messages are what these contacts declined.
            respect_unsubscribed: c.send.respect_unsubscribed
                && c.message_type == MessageType::Email,
            suppress,
        })
    }

    pub(crate) fn suppressed(&self, key: &str) -> bool {
        self.suppress.contains(key) || self.suppress.contains(&key.to_lowercase())
    }

    /// The verdict for a row whose (normalized) key found `matches`.
    pub(crate) fn judge(&self, key: &str, matches: &[&Contact]) -> Verdict {
        if self.suppressed(key) {
            return Verdict::Suppressed;
        }
        let mut wanted: Vec<&Contact> = Vec::with_capacity(matches.len());
        // A server may return one contact twice (on two pages, say): it is still one contact.
        for c in matches.iter().copied() {
            if (self.role == "contact" || c.role == self.role)
                && !wanted.iter().any(|w| w.id == c.id)
            {
                wanted.push(c);
            }
        }
        let chosen = match wanted.as_slice() {
            [] => return Verdict::NotFound,
            [one] => *one,
            many => {
                let users: Vec<&Contact> =
                    many.iter().copied().filter(|c| c.role == "user").collect();
                match (self.on_many, users.as_slice()) {
                    (OnMany::PreferUser, [user]) => *user,
                    _ => return Verdict::Ambiguous(describe_many(many)),
                }
            }
        };
        let by_contact = [
            Some(chosen.id.clone()),
            chosen.email.as_deref().map(|e| e.trim().to_lowercase()),
            chosen.external_id.as_deref().map(|e| e.trim().to_string()),
        ];
        if by_contact
            .iter()
            .flatten()
            .any(|k| !k.is_empty() && self.suppress.contains(k))
        {
            return Verdict::Suppressed;
        }
        if self.respect_unsubscribed {
            for (flag, reason) in [
                (chosen.unsubscribed_from_emails, "unsubscribed_from_emails"),
                (chosen.has_hard_bounced, "has_hard_bounced"),
                (chosen.marked_email_as_spam, "marked_email_as_spam"),
            ] {
                if flag {
                    return Verdict::Unsubscribed(reason);
                }
            }
        }
        Verdict::Found(chosen.clone())
    }
}

/// `3 contacts (2 users, 1 lead)`.
fn describe_many(many: &[&Contact]) -> String {
    let count = |role: &str| many.iter().filter(|c| c.role == role).count();
    let mut parts = Vec::new();
    for role in ["user", "lead"] {
        match count(role) {
            0 => {}
            1 => parts.push(format!("1 {role}")),
            n => parts.push(format!("{n} {role}s")),
        }
    }
    format!("{} contacts ({})", many.len(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, role: &str) -> Contact {
        Contact {
            id: id.into(),
            role: role.into(),
            email: Some("a@x.test".into()),
            external_id: None,
            unsubscribed_from_emails: false,
            has_hard_bounced: false,
            marked_email_as_spam: false,
        }
    }

    fn rules(role: &str, on_many: OnMany) -> Rules {
        Rules {
            address: Address::Email,
            role: role.into(),
            on_many,
            respect_unsubscribed: true,
            suppress: ["stop@x.test".to_string(), "c9".to_string()].into(),
        }
    }

    #[test]
    fn several_matches_are_ambiguous_unless_one_user_is_preferred() {
        let (u, l1, l2) = (
            contact("u", "user"),
            contact("l1", "lead"),
            contact("l2", "lead"),
        );
        let r = rules("contact", OnMany::Fail);
        assert_eq!(
            r.judge("a@x.test", &[&u, &l1]),
            Verdict::Ambiguous("2 contacts (1 user, 1 lead)".into())
        );
        let r = rules("contact", OnMany::PreferUser);
        assert_eq!(r.judge("a@x.test", &[&u, &l1]), Verdict::Found(u.clone()));
        assert_eq!(
            r.judge("a@x.test", &[&l1, &l2]),
            Verdict::Ambiguous("2 contacts (2 leads)".into())
        );
        // `type = "lead"` looks at leads only: one lead is found.
        assert_eq!(
            rules("lead", OnMany::Fail).judge("a@x.test", &[&u, &l1]),
            Verdict::Found(l1.clone())
        );
        assert_eq!(
            rules("user", OnMany::Fail).judge("a@x.test", &[&l1]),
            Verdict::NotFound
        );
    }

    #[test]
    fn one_contact_returned_twice_is_one_contact() {
        let r = rules("contact", OnMany::Fail);
        let c = contact("c1", "user");
        assert_eq!(r.judge("a@x.test", &[&c, &c]), Verdict::Found(c.clone()));
    }

    #[test]
    fn unsubscribed_and_suppressed_contacts_are_not_found_for_sending() {
        let r = rules("user", OnMany::Fail);
        let mut c = contact("c1", "user");
        c.has_hard_bounced = true;
        assert_eq!(
            r.judge("a@x.test", &[&c]),
            Verdict::Unsubscribed("has_hard_bounced")
        );
        assert_eq!(r.judge("stop@x.test", &[&c]), Verdict::Suppressed);
        assert_eq!(
            r.judge("b@x.test", &[&contact("c9", "user")]),
            Verdict::Suppressed
        );
        let off = Rules {
            respect_unsubscribed: false,
            ..r
        };
        assert_eq!(off.judge("a@x.test", &[&c]), Verdict::Found(c.clone()));
    }

    #[test]
    fn emails_compare_trimmed_and_in_any_case() {
        assert_eq!(
            normalize(Address::Email, "  Ann@Example.COM "),
            "ann@example.com"
        );
        assert_eq!(normalize(Address::ExternalId, " AbC "), "AbC");
    }
}
