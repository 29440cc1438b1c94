//! The ranges of the `[send]` settings and of their flags (README, "The campaign file"), and the
//! checks both use. Outside them a value is refused, naming the key and the range, before
//! anything is sent.
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::input::rate::{format_duration, parse_duration};

/// Requests in flight: as many as `auto` ever uses.
pub const CONCURRENCY: RangeInclusive<u64> = 1..=AUTO_MAX as u64;

/// The most requests in flight: a fixed `concurrency`'s largest, and where `auto` stops.
pub const AUTO_MAX: usize = 1024;
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
        format_duration(*range.start()),
        format_duration(*range.end())
    );
    let d = parse_duration(value).map_err(|e| format!("{e}; {expected}"))?;
    if range.contains(&d) {
        Ok(d)
    } else {
        Err(format!("`{value}` is out of range: {expected}"))
    }
}
