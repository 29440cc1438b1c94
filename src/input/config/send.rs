//! `[send]`: rate, concurrency, attempts, the stop rules, time limits, send hours, the
//! unsubscribed check and the suppression list; each setting within its range.
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use super::file::SendSection;
use super::kinds::Concurrency;
use super::ranges::{
    duration_in, in_range, CONCURRENCY, MAX_ATTEMPTS, MAX_FAILURES, REQUEST_TIMEOUT,
    RETRY_NOT_FOUND_FOR, STALL_TIMEOUT,
};
use crate::input::hours::SendHours;
use crate::input::rate::Rate;

pub const DEFAULT_RATE: &str = "10000/min";

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
    pub hours: Option<SendHours>,
    /// E-mail campaigns: contacts unsubscribed from e-mail, hard-bounced or marked as spam are
    /// `skipped` (`[send] respect_unsubscribed`, default true).
    pub respect_unsubscribed: bool,
    /// `[send] suppress`: a do-not-contact list (e-mails or ids, one column), beside the campaign.
    pub suppress: Option<std::path::PathBuf>,
    /// `[send] skip_replied_to`: an earlier campaign's results file, beside the campaign; its
    /// recipients who replied to it (asked just before this run sends) are `skipped` (`replied`).
    pub skip_replied_to: Option<std::path::PathBuf>,
    /// `[send] duplicates`: what is done with a row whose recipient an earlier row has.
    pub duplicates: Duplicates,
}

/// What is done with a row whose recipient an earlier row has (`[send] duplicates`, or
/// `--allow-duplicates` / `--skip-duplicates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// An error: nothing is sent until the CSV is fixed or another choice made.
    #[default]
    Refuse,
    /// A warning: every row is sent, so the recipient gets the message more than once.
    Allow,
    /// A warning: the first row of each recipient is sent, the later ones recorded `skipped`
    /// (`duplicate`).
    Skip,
}

impl Duplicates {
    /// The campaign file's choice, unless a flag makes another.
    pub fn chosen(file: Duplicates, allow: bool, skip: bool) -> Duplicates {
        match (allow, skip) {
            (true, _) => Duplicates::Allow,
            (_, true) => Duplicates::Skip,
            _ => file,
        }
    }

    fn parse(value: Option<&str>) -> Result<Duplicates, String> {
        match value {
            None | Some("refuse") => Ok(Duplicates::Refuse),
            Some("allow") => Ok(Duplicates::Allow),
            Some("skip") => Ok(Duplicates::Skip),
            Some(other) => Err(format!(
                "`{}`: expected \"refuse\" (the default), \"allow\" (send every row) or \"skip\" (send the first row of each recipient, record the others `skipped`)",
                other.escape_debug()
            )),
        }
    }
}

/// A setting's error: `campaign.toml: [send] rate: why`.
struct Bad<'a>(&'a str);

impl Bad<'_> {
    fn at(&self, key: &str, why: String) -> anyhow::Error {
        anyhow::anyhow!("{}: [send] {key}: {why}", self.0)
    }
}

/// The `[send]` settings, each within its range; errors name the file `name` and the key.
/// `dir` is the campaign file's folder, which the suppression list's path is relative to.
pub(super) fn resolve(s: SendSection, name: &str, dir: &Path) -> anyhow::Result<SendSettings> {
    let bad = Bad(name);
    let rate: Rate = s
        .rate
        .as_deref()
        .unwrap_or(DEFAULT_RATE)
        .parse()
        .map_err(|e: String| bad.at("rate", e))?;
    let concurrency = concurrency(s.concurrency, &bad)?;
    let max_failure_share = failure_share(s.max_failure_share, &bad)?;
    let duration = |key: &str, v: Option<String>, default: &str, range| {
        duration_in(v.as_deref().unwrap_or(default), range).map_err(|e| bad.at(key, e))
    };
    Ok(SendSettings {
        rate,
        concurrency,
        max_attempts: count("max_attempts", s.max_attempts, 5, &MAX_ATTEMPTS, &bad)?,
        max_failures: count("max_failures", s.max_failures, 20, &MAX_FAILURES, &bad)?,
        max_failure_share,
        retry_not_found_for: duration(
            "retry_not_found_for",
            s.retry_not_found_for,
            "60s",
            &RETRY_NOT_FOUND_FOR,
        )?,
        request_timeout: duration(
            "request_timeout",
            s.request_timeout,
            "30s",
            &REQUEST_TIMEOUT,
        )?,
        stall_timeout: duration("stall_timeout", s.stall_timeout, "10m", &STALL_TIMEOUT)?,
        hours: SendHours::parse(s.hours.as_deref(), s.days.as_deref(), s.timezone.as_deref())
            .map_err(|(key, why)| bad.at(key, why))?,
        respect_unsubscribed: s.respect_unsubscribed.unwrap_or(true),
        suppress: s.suppress.map(|p| dir.join(p)),
        skip_replied_to: s.skip_replied_to.map(|p| dir.join(p)),
        duplicates: Duplicates::parse(s.duplicates.as_deref())
            .map_err(|e| bad.at("duplicates", e))?,
    })
}

/// A whole number in range; TOML's own integers are i64, so a negative one is named too.
fn whole(
    key: &str,
    v: &toml::Value,
    range: &RangeInclusive<u64>,
    bad: &Bad,
) -> anyhow::Result<u64> {
    match v {
        toml::Value::Integer(n) => in_range(&n.to_string(), range).map_err(|e| bad.at(key, e)),
        other => Err(bad.at(
            key,
            format!(
                "`{other}`: expected a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// A count with its default.
fn count(
    key: &str,
    v: Option<toml::Value>,
    default: u32,
    range: &RangeInclusive<u64>,
    bad: &Bad,
) -> anyhow::Result<u32> {
    match v {
        None => Ok(default),
        Some(v) => whole(key, &v, range, bad).map(|n| n as u32),
    }
}

/// `"auto"` (the default) or a whole number in range.
fn concurrency(v: Option<toml::Value>, bad: &Bad) -> anyhow::Result<Concurrency> {
    match v {
        None => Ok(Concurrency::Auto),
        Some(toml::Value::String(t)) => t.parse().map_err(|e: String| bad.at("concurrency", e)),
        Some(v) => Ok(Concurrency::Fixed(
            whole("concurrency", &v, &CONCURRENCY, bad)
                .map_err(|e| anyhow::anyhow!("{e}, or \"auto\""))? as usize,
        )),
    }
}

/// Above 0 and at most 1; 0.5 by default.
fn failure_share(v: Option<f64>, bad: &Bad) -> anyhow::Result<f64> {
    let share = v.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&share) || share == 0.0 {
        return Err(bad.at("max_failure_share", "must be above 0 and at most 1".into()));
    }
    Ok(share)
}
