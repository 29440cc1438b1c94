//! Parsing of the rates and durations users write: `"50/s"`, `"10000/min"`, `"1666/10s"`, `"50ms"`,
//! `"20ms..200ms"`. Shared by the sender's limiter and the sandbox's limits.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::fmt::friendly::{SpanParser, SpanPrinter};

/// `count` events per `per`. Kept as written (not reduced to a per-second float) so that a limit
/// stated per window is enforced per that window without rounding.
///
/// ```
/// use std::time::Duration;
/// use campaign::input::rate::Rate;
///
/// let r: Rate = "10000/min".parse().unwrap();
/// // Intercom enforces a per-minute limit in 10-second windows.
/// assert_eq!(r.per_window(Duration::from_secs(10)), 1666);
/// assert_eq!(r.to_string(), "10000/min");
/// assert!("fast".parse::<Rate>().is_err());
/// assert!("2000000/s".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The fastest rate accepted: far above any API's limit (Intercom allows 10,000 a minute), high
/// enough to mean "no limit" in a benchmark, and low enough that one request's interval is a
/// thousand nanoseconds, which the limiter's nanosecond arithmetic keeps exact to 0.1 %.
pub const MAX_PER_SECOND: u64 = 1_000_000;
/// The accepted range, as error messages and the README give it. The slowest is one request an
/// hour, the longest unit with a count of 1.
const RANGE: &str = "from 1/h to 1000000/s";

/// A window's share is rounded down (a window cannot hold part of a request, and servers count
/// whole requests: 10000/min allows 1,666 in 10 s) unless that gives up more than this share of
/// the rate; then it is rounded up (7/min: two can fall in one 10-second span, 8.6 s apart).
const ROUND_DOWN_COST: (u128, u128) = (1, 400);

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.per.as_secs_f64()
    }

    /// How many events this rate allows in any `window`: its share rounded down, or up where
    /// rounding down would cost more than a quarter of a percent of the rate (always at least 1).
    pub fn per_window(&self, window: Duration) -> u32 {
        let num = self.count as u128 * window.as_nanos();
        let den = self.per.as_nanos().max(1);
        let floor = num / den;
        let (cost_num, cost_den) = ROUND_DOWN_COST;
        let share = if num.is_multiple_of(den)
            || (floor > 0 && floor * den * cost_den >= num * (cost_den - cost_num))
        {
            floor
        } else {
            floor + 1
        };
        u32::try_from(share).unwrap_or(u32::MAX)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "invalid rate `{s}`: expected N/s, N/10s, N/min or N/h, {RANGE} (for example `50/s` or `10000/min`)"
            )
        };
        let out_of_range = || format!("invalid rate `{s}`: out of range: expected one {RANGE}");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let n = n.trim().replace('_', "");
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" | "1s" => Duration::from_secs(1),
            "10s" => Duration::from_secs(10),
            "min" | "m" | "minute" | "60s" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        // All digits: a number that does not parse is too large.
        let count: u64 = n.parse().map_err(|_| out_of_range())?;
        if count == 0 || count > MAX_PER_SECOND * per.as_secs() {
            return Err(out_of_range());
        }
        // At most 1,000,000/s × 3,600 s: fits.
        let count = u32::try_from(count).map_err(|_| out_of_range())?;
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            10 => "10s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{}s", self.count, self.per.as_secs_f64()),
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

/// A duration such as `60s`, `250ms`, `2m` or `1h 30m` (jiff's friendly format, which also
/// takes `2 hours`, `1.5m` and ISO 8601's `PT1M`). Units up to hours: a day is not always 24 hours.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    SpanParser::new()
        .parse_unsigned_duration(s.trim())
        .map_err(|e| format!("invalid duration `{s}`: {e}"))
}

/// An age such as `3d`, `36h` or `1w` (`--older-than`): a duration whose days are 24 hours, as a
/// person means "three days old"; negative spans and years or months are refused.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let bad = |e: &dyn std::fmt::Display| {
        format!("invalid age `{s}`: {e} (write it as `3d`, `36h` or `90m`)")
    };
    let span = SpanParser::new()
        .parse_span(s.trim())
        .map_err(|e| bad(&e))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| bad(&e))?;
    Duration::try_from(d).map_err(|e| bad(&e))
}

/// A duration as [`parse_duration`] reads it back: `90s` is `1m 30s`, `250ms` stays `250ms`.
pub fn format_duration(d: Duration) -> String {
    SpanPrinter::new().unsigned_duration_to_string(&d)
}

/// A fixed latency (`50ms`) or a uniform range (`20ms..200ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySpec {
    pub min: Duration,
    pub max: Duration,
}

impl FromStr for LatencySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (parse_duration(a)?, parse_duration(b)?),
            None => {
                let d = parse_duration(s)?;
                (d, d)
            }
        };
        if min > max {
            return Err(format!(
                "invalid latency range `{s}`: the minimum is above the maximum"
            ));
        }
        Ok(LatencySpec { min, max })
    }
}

/// A probability between 0 and 1, as `--fail-rate 0.05` takes it.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid probability `{s}`"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "invalid probability `{s}`: must be between 0 and 1"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        let r: Rate = "50/s".parse().unwrap();
        assert_eq!(r.per_second(), 50.0);
        let r: Rate = "10000/min".parse().unwrap();
        assert_eq!(r.per_window(Duration::from_secs(10)), 1666);
        let r: Rate = "1666/10s".parse().unwrap();
        assert_eq!(r.per_window(Duration::from_secs(10)), 1666);
        assert_eq!(r.to_string(), "1666/10s");
        assert!("fast".parse::<Rate>().is_err());
        assert!("5/day".parse::<Rate>().is_err());
        let r: Rate = "50/hour".parse().unwrap();
        assert_eq!((r.count, r.per), (50, Duration::from_secs(3600)));
    }

    #[test]
    fn rates_outside_the_range_name_it() {
        for s in [
            "0/s",
            "0/h",
            "1000001/s",
            "10000001/10s",
            "60000001/min",
            "3600000001/h",
            "4294967296/s",
            "99999999999999999999/s",
        ] {
            let e = s.parse::<Rate>().unwrap_err();
            assert!(e.contains("from 1/h to 1000000/s"), "{s}: {e}");
        }
        for s in ["1/h", "1000000/s", "3600000000/h", "60000000/min"] {
            assert!(s.parse::<Rate>().is_ok(), "{s}");
        }
    }

    #[test]
    fn a_window_share_rounds_down_unless_that_costs_the_rate() {
        let share = |r: &str| {
            r.parse::<Rate>()
                .unwrap()
                .per_window(Duration::from_secs(10))
        };
        // Whole shares and Intercom's own limit: as they are, or rounded down.
        assert_eq!(share("1/s"), 10);
        assert_eq!(share("3/10s"), 3);
        assert_eq!(share("12/min"), 2);
        assert_eq!(share("10000/min"), 1666);
        // Rounding down would cost 0.4 % (1000/min) or 14 % (7/min): rounded up.
        assert_eq!(share("1000/min"), 167);
        assert_eq!(share("7/min"), 2);
        // Less than one request a window: still one.
        assert_eq!(share("1/h"), 1);
        assert_eq!(share("50/hour"), 1);
        assert_eq!(share("1000000/s"), 10_000_000);
    }

    #[test]
    fn parses_latency() {
        let l: LatencySpec = "50ms".parse().unwrap();
        assert_eq!(
            (l.min, l.max),
            (Duration::from_millis(50), Duration::from_millis(50))
        );
        let l: LatencySpec = "20ms..200ms".parse().unwrap();
        assert_eq!(
            (l.min, l.max),
            (Duration::from_millis(20), Duration::from_millis(200))
        );
        assert!("200ms..20ms".parse::<LatencySpec>().is_err());
        assert!(parse_probability("1.5").is_err());
    }

    #[test]
    fn durations_parse_as_the_readme_writes_them_and_print_back_the_same() {
        let secs = Duration::from_secs;
        for (text, d) in [
            ("60s", secs(60)),
            ("10m", secs(600)),
            ("1h", secs(3600)),
            ("24h", secs(86_400)),
            ("250ms", Duration::from_millis(250)),
            ("1h 30m", secs(5400)),
            ("1h30m", secs(5400)),
            (" 2 minutes ", secs(120)),
            ("1s 500ms", Duration::from_millis(1500)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text:?}");
        }
        for (d, text) in [
            (secs(30), "30s"),
            (secs(90), "1m 30s"),
            (secs(600), "10m"),
            (secs(86_400), "24h"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1s 500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d), "{text:?} reads back");
        }
        for bad in ["", "60", "-5s", "1 fortnight", "s", "1d"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.starts_with(&format!("invalid duration `{bad}`")), "{e}");
        }
    }
}
