//! Send hours (`[send] hours`, `days`, `timezone`): when messages may leave, so that replies come
//! while the team is there to answer. Outside them the sender waits for the next opening.
use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone)]
pub struct SendHours {
    start: Time,
    end: Time,
    /// By `Weekday::to_monday_zero_offset`.
    days: [bool; 7],
    tz: TimeZone,
    /// As written, for messages.
    text: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl SendHours {
    /// From the campaign file's keys; `None` when none is given. Errors say which key and why.
    pub fn parse(
        hours: Option<&str>,
        days: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Option<SendHours>, (&'static str, String)> {
        if hours.is_none() && days.is_none() {
            if timezone.is_some() {
                return Err((
                    "timezone",
                    "is for `hours` and `days`; give one of them".into(),
                ));
            }
            return Ok(None);
        }
        let Some(tz_name) = timezone else {
            return Err((
                "timezone",
                "is required with `hours` or `days`: an IANA name such as \"Europe/Berlin\" or \"America/New_York\" (a server's own time zone is often UTC)".into(),
            ));
        };
        let tz = TimeZone::get(tz_name).map_err(|_| {
            (
                "timezone",
                format!("`{tz_name}` is not an IANA time zone name (such as \"Europe/Berlin\")"),
            )
        })?;
        let (start, end) = match hours {
            Some(h) => parse_hours(h).map_err(|e| ("hours", e))?,
            None => (Time::midnight(), Time::midnight()),
        };
        let days = match days {
            Some(d) => parse_days(d).map_err(|e| ("days", e))?,
            None => [true; 7],
        };
        let text = format!(
            "{} {} {tz_name}",
            hours.unwrap_or("00:00-24:00"),
            days.iter()
                .zip(DAYS)
                .filter(|(on, _)| **on)
                .map(|(_, d)| d)
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Some(SendHours {
            start,
            end,
            days,
            tz,
            text,
        }))
    }

    /// `None` when messages may leave at `now`; otherwise when they may next.
    pub fn closed_until(&self, now: Timestamp) -> Option<Timestamp> {
        let today = now.to_zoned_datetime(self.tz.clone()).date();
        let mut next: Option<Timestamp> = None;
        for offset in -1..=8i32 {
            let Ok(day) = today.checked_add(offset.days()) else {
                continue;
            };
            let Some((open, close)) = self.window(day) else {
                continue;
            };
            if open <= now && now < close {
                return None;
            }
            if open > now && next.is_none_or(|n| open < n) {
                next = Some(open);
            }
        }
        next
    }

    /// The window that opens on `day`, if `day` is a send day.
    fn window(&self, day: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days[day.weekday().to_monday_zero_offset() as usize] {
            return None;
        }
        let at = |d: Date, t: Time| d.to_datetime(t).to_zoned_datetime(self.tz.clone()).ok();
        let open = at(day, self.start)?.timestamp();
        // An end at or before the start is the next day's (`22:00-06:00`, `00:00-24:00`).
        let close_day = if self.end <= self.start {
            day.checked_add(1.day()).ok()?
        } else {
            day
        };
        let close = at(close_day, self.end)?.timestamp();
        Some((open, close))
    }

    /// `when` in the send hours' time zone, for people.
    pub fn local(&self, when: Timestamp) -> String {
        when.to_zoned_datetime(self.tz.clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

impl fmt::Display for SendHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The moment send hours are judged at: the wall clock. In a unit test, a test may set where the
/// clock stands ([`test_clock::start_at`]), and tokio's paused clock moves it on from there, so
/// that a test of the dispatch crosses the hours' close without waiting for it.
pub fn now() -> Timestamp {
    #[cfg(test)]
    if let Some(at) = test_clock::now() {
        return at;
    }
    Timestamp::now()
}

/// The clock [`now`] reads in a unit test that set one: per thread, as a paused current-thread
/// runtime runs all its tasks on the test's thread.
#[cfg(test)]
pub(crate) mod test_clock {
    use std::cell::Cell;

    use jiff::{SignedDuration, Timestamp};
    use tokio::time::Instant;

    thread_local! {
        static START: Cell<Option<(Timestamp, Instant)>> = const { Cell::new(None) };
    }

    /// From now on, on this thread, [`super::now`] reads `at` moved on by tokio's clock.
    pub(crate) fn start_at(at: Timestamp) {
        START.set(Some((at, Instant::now())));
    }

    pub(super) fn now() -> Option<Timestamp> {
        let (at, since) = START.get()?;
        let moved = SignedDuration::try_from(since.elapsed()).expect("a test's span");
        Some(at.checked_add(moved).expect("a test's time"))
    }
}

fn parse_hours(s: &str) -> Result<(Time, Time), String> {
    let bad = || format!("`{s}` is not a range of times such as \"09:00-17:00\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let time = |t: &str| -> Result<Time, String> {
        let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h == 24 && m == 0 {
            return Ok(Time::midnight());
        }
        Time::new(h, m, 0, 0).map_err(|_| bad())
    };
    let (start, end) = (time(a)?, time(b)?);
    if start == end && a.trim() != "00:00" {
        return Err(format!(
            "`{s}` is empty: the start and the end are the same"
        ));
    }
    Ok((start, end))
}

fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let day = |d: &str| {
        DAYS.iter()
            .position(|n| d.trim().to_ascii_lowercase().starts_with(n))
            .ok_or_else(|| {
                format!(
                    "`{}` is not a day (mon, tue, wed, thu, fri, sat, sun)",
                    d.trim()
                )
            })
    };
    let mut on = [false; 7];
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (mut i, end) = (day(a)?, day(b)?);
                loop {
                    on[i] = true;
                    if i == end {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => on[day(part)?] = true,
        }
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: &str, d: &str, tz: &str) -> SendHours {
        SendHours::parse(Some(h), Some(d), Some(tz))
            .unwrap()
            .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn inside_the_hours_of_a_send_day_messages_go() {
        let h = hours("09:00-17:00", "mon-fri", "Europe/Berlin");
        // Friday 2026-11-27, 10:00 in Berlin (09:00 UTC).
        assert_eq!(h.closed_until(ts("2026-11-27T09:00:00Z")), None);
        // 17:00 Berlin on Friday is closed: next Monday 09:00 Berlin (08:00 UTC).
        assert_eq!(
            h.closed_until(ts("2026-11-27T16:00:00Z")),
            Some(ts("2026-11-30T08:00:00Z"))
        );
        // Saturday: Monday.
        assert_eq!(
            h.closed_until(ts("2026-11-28T12:00:00Z")),
            Some(ts("2026-11-30T08:00:00Z"))
        );
        // Early Tuesday: the same day at 09:00.
        assert_eq!(
            h.closed_until(ts("2026-12-01T05:00:00Z")),
            Some(ts("2026-12-01T08:00:00Z"))
        );
        assert_eq!(
            h.local(ts("2026-11-30T08:00:00Z")),
            "Mon 2026-11-30 09:00 CET"
        );
    }

    #[test]
    fn windows_follow_daylight_saving_time() {
        let h = hours("09:00-17:00", "mon-sun", "Europe/Berlin");
        // Summer time: 09:00 Berlin is 07:00 UTC.
        assert_eq!(
            h.closed_until(ts("2026-07-01T06:00:00Z")),
            Some(ts("2026-07-01T07:00:00Z"))
        );
        // The night the clocks go forward (2026-03-29): the next day opens at 07:00 UTC.
        assert_eq!(
            h.closed_until(ts("2026-03-28T20:00:00Z")),
            Some(ts("2026-03-29T07:00:00Z"))
        );
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_opens() {
        let h = hours("22:00-06:00", "fri", "UTC");
        // Friday 23:00 and Saturday 05:00 are in Friday's window; Saturday 23:00 is not.
        assert_eq!(h.closed_until(ts("2026-11-27T23:00:00Z")), None);
        assert_eq!(h.closed_until(ts("2026-11-28T05:00:00Z")), None);
        assert_eq!(
            h.closed_until(ts("2026-11-28T23:00:00Z")),
            Some(ts("2026-12-04T22:00:00Z"))
        );
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        for (h, d, tz, key, why) in [
            (
                Some("9-17"),
                None,
                Some("UTC"),
                "hours",
                "such as \"09:00-17:00\"",
            ),
            (Some("09:00-09:00"), None, Some("UTC"), "hours", "is empty"),
            (
                None,
                Some("mon-fry"),
                Some("UTC"),
                "days",
                "`fry` is not a day",
            ),
            (Some("09:00-17:00"), None, None, "timezone", "is required"),
            (
                Some("09:00-17:00"),
                None,
                Some("Berlin"),
                "timezone",
                "not an IANA",
            ),
            (None, None, Some("UTC"), "timezone", "give one of them"),
        ] {
            let (k, e) = SendHours::parse(h, d, tz).unwrap_err();
            assert_eq!(k, key);
            assert!(e.contains(why), "{e}");
        }
    }
}
