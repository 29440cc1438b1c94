//! Parsing of the rates and durations users write: `"50/s"`, `"10000/min"`, `"1666/10s"`, `"50ms"`,
//! `"20ms..200ms"`. Shared by the sender's limiter and the sandbox's limits.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// `count` events per `per`. Kept as written (not reduced to a per-second float) so that a limit
/// stated per window is enforced per that window without rounding.
///
/// ```
/// use std::time::Duration;
/// use campaign::rate::Rate;
///
/// let r: Rate = "10000/min".parse().unwrap();
/// // Intercom enforces a per-minute limit in 10-second windows.
/// assert_eq!(r.per_window(Duration::from_secs(10)), 1666);
/// assert_eq!(r.to_string(), "10000/min");
/// assert!("fast".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.per.as_secs_f64()
    }

    /// How many events this rate allows in `window` (rounded down, at least 1).
    pub fn per_window(&self, window: Duration) -> u32 {
        ((self.per_second() * window.as_secs_f64()).floor() as u32).max(1)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("invalid rate `{s}`: expected N/s, N/10s or N/min (for example `50/s` or `10000/min`)")
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().replace('_', "").parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("invalid rate `{s}`: the count must be at least 1"));
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" | "1s" => Duration::from_secs(1),
            "10s" => Duration::from_secs(10),
            "min" | "m" | "minute" | "60s" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
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

/// A duration such as `60s`, `250ms` or `2m` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration `{s}`: {e}"))
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
        assert!("0/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert!("5/day".parse::<Rate>().is_err());
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
}
