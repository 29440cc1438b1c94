//! The filters and functions templates have besides Tera's own, or in their place: `default`
//! that covers an empty cell, a bounded `range`, a `title` that is Tera's, faster, and a `date`
//! that reads the ISO dates of a CSV's cells (Tera's needs its `builtins` feature, and chrono).
use std::collections::HashMap;
use std::sync::LazyLock;

use tera::{Tera, Value};

use crate::template::seal::MAX_ITERATIONS;

thread_local! {
    /// The values `default` gave its fallback for on this thread since [`take_defaults_used`],
    /// by name: what the preview says of a row whose message has a fallback in it.
    static DEFAULTS_USED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The argument the instrumented `default` passes its value's name in (`first_name`), for the
/// preview to say which cell was empty.
pub(crate) const DEFAULT_OF: &str = "__campaign_of";

/// Names kept per row at most: a row's note names a few, not a template's every value.
const NAMES_KEPT: usize = 8;

/// The names of the values `default` gave its fallback for on this thread since the last call,
/// each once, in the order they came.
pub(crate) fn take_defaults_used() -> Vec<String> {
    DEFAULTS_USED.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

fn default_used(name: &str) {
    DEFAULTS_USED.with(|d| {
        let mut d = d.borrow_mut();
        if d.len() < NAMES_KEPT && !d.iter().any(|n| n == name) {
            d.push(name.to_string());
        }
    });
}

/// `default`'s other half (see `seal::instrument::route_default`): an empty string or a null
/// becomes `value`; anything else is kept.
pub(super) fn or_else(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let empty = match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if empty {
        default_used(
            args.get(DEFAULT_OF)
                .and_then(Value::as_str)
                .unwrap_or("a value"),
        );
        args.get("value")
            .cloned()
            .ok_or_else(|| tera::Error::msg("the `default` filter needs a `value` argument"))
    } else {
        Ok(value.clone())
    }
}

/// Tera's `range`, bounded: `range(end=10000000000)` would build the whole list before a loop
/// starts, and hang the check. No message needs more than `MAX_ITERATIONS` items.
pub(super) fn bounded_range(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let arg = |name: &str, default: Option<u64>| -> tera::Result<u64> {
        match args.get(name) {
            Some(v) => v.as_u64().ok_or_else(|| {
                tera::Error::msg(format!("`range`: `{name}` must be a whole number from 0"))
            }),
            None => default.ok_or_else(|| tera::Error::msg(format!("`range` needs `{name}`"))),
        }
    };
    let start = arg("start", Some(0))?;
    let end = arg("end", None)?;
    let step = arg("step_by", Some(1))?;
    if step == 0 {
        return Err(tera::Error::msg("`range`: `step_by` must be above 0"));
    }
    let len = end.saturating_sub(start).div_ceil(step);
    if len > u64::from(MAX_ITERATIONS) {
        return Err(tera::Error::msg(format!(
            "`range` would have {len} items, more than {MAX_ITERATIONS}"
        )));
    }
    Ok((start..end)
        .step_by(step as usize)
        .collect::<Vec<_>>()
        .into())
}

/// The longest `format` `date` takes: a format is the template's, and no date needs more.
const DATE_FORMAT_CHARS: usize = 200;

/// `date`: a cell holding an ISO 8601 date (`2026-07-01`) or date and time (`2026-07-01T09:30:00Z`,
/// `2026-07-01 09:30`, with or without an offset) written with `format`, strftime's directives as
/// jiff reads them (`%B %-d, %Y` is `July 1, 2026`) [default `%Y-%m-%d`]. A date without a time
/// has no hours for `%H`. Anything else is an error, which the check reports on its row.
pub(super) fn date(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    use jiff::fmt::{strtime::BrokenDownTime, temporal::Pieces};
    let format = match args.get("format") {
        None => "%Y-%m-%d",
        Some(Value::String(f)) if f.chars().count() <= DATE_FORMAT_CHARS => f.as_str(),
        Some(Value::String(_)) => {
            return Err(tera::Error::msg(format!(
                "`date`: the format is longer than {DATE_FORMAT_CHARS} characters"
            )))
        }
        Some(_) => {
            return Err(tera::Error::msg(
                "`date`: `format` must be text, such as format=\"%B %-d, %Y\"",
            ))
        }
    };
    let not_a_date = || {
        let shown: String = match value {
            Value::String(s) => s
                .chars()
                .take(40)
                .collect::<String>()
                .escape_debug()
                .to_string(),
            other => other.to_string().chars().take(40).collect(),
        };
        tera::Error::msg(format!(
            "`date`: `{shown}` is not a date; expected an ISO date such as 2026-07-01, or a date and time such as 2026-07-01T09:30:00Z"
        ))
    };
    let Value::String(text) = value else {
        return Err(not_a_date());
    };
    let pieces = Pieces::parse(text.trim()).map_err(|_| not_a_date())?;
    let mut time = match pieces.time() {
        Some(t) => BrokenDownTime::from(pieces.date().to_datetime(t)),
        None => BrokenDownTime::from(pieces.date()),
    };
    time.set_offset(pieces.to_numeric_offset());
    let mut out = String::new();
    time.format(format, &mut out).map_err(|e| {
        tera::Error::msg(format!("`date`: cannot write `{text}` as `{format}`: {e}"))
    })?;
    Ok(Value::String(out))
}

/// Tera's own filters, for what `title` hands back to Tera.
static TERA: LazyLock<Tera> = LazyLock::new(Tera::default);

/// Tera's `title`, which runs the regex `\b(?P<first>[\w'])(?P<rest>[\w']*)\b` and writes
/// `first` in upper case and `rest` in lower case: a large part of a row's rendering for a
/// template that uses it. On ASCII text the same, without the regex (`title_ascii`; tests compare
/// the two); anything else goes to Tera's.
pub(super) fn title(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    match value {
        Value::String(s) if s.is_ascii() => Ok(Value::String(title_ascii(s))),
        _ => TERA
            .get_filter("title")
            .expect("Tera has `title`")
            .filter(value, args),
    }
}

/// `title` of ASCII text. Where the regex matches: at a character of `[\w']` with a word boundary
/// before it, taking the longest run of `[\w']` after it that ends on a word boundary (a run with
/// none is no match, and the search goes on from the next character).
fn title_ascii(s: &str) -> String {
    let b = s.as_bytes();
    let word = |i: usize| i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_');
    let in_class = |i: usize| word(i) || (i < b.len() && b[i] == b'\'');
    let boundary = |i: usize| (i > 0 && word(i - 1)) != word(i);
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if in_class(i) && boundary(i) {
            let mut end = i + 1;
            while in_class(end) {
                end += 1;
            }
            while end > i + 1 && !boundary(end) {
                end -= 1;
            }
            if boundary(end) {
                out.push_str(&s[copied..i]);
                out.push(b[i].to_ascii_uppercase() as char);
                out.extend(b[i + 1..end].iter().map(|c| c.to_ascii_lowercase() as char));
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn teras_title(s: &str) -> Value {
        TERA.get_filter("title")
            .unwrap()
            .filter(&Value::from(s), &HashMap::new())
            .unwrap()
    }

    #[test]
    fn title_is_teras_on_examples() {
        for s in [
            "",
            "ada lovelace",
            "o'neil's CAFÉ",
            "'quoted' words'",
            "it's_a-b 2nd x'",
            "''",
            "a'",
            "'a",
            "__init__ x9y",
            "ÉCOLE élève",
        ] {
            assert_eq!(
                title(&Value::from(s), &HashMap::new()).unwrap(),
                teras_title(s),
                "{s:?}"
            );
        }
        assert!(title(&Value::from(1), &HashMap::new()).is_err());
    }

    fn date_of(s: &str, format: &str) -> Result<String, String> {
        let args = HashMap::from([("format".to_string(), Value::from(format))]);
        date(&Value::from(s), &args)
            .map(|v| v.as_str().unwrap().to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn date_reads_iso_dates_and_datetimes() {
        let us = "%B %-d, %Y";
        assert_eq!(date_of("2026-07-01", us).unwrap(), "July 1, 2026");
        assert_eq!(date_of(" 2026-12-24 ", "%d/%m/%Y").unwrap(), "24/12/2026");
        assert_eq!(
            date_of("2026-07-01T09:30:00Z", "%Y-%m-%d %H:%M").unwrap(),
            "2026-07-01 09:30"
        );
        assert_eq!(
            date_of("2026-07-01 18:05:00+02:00", "%-d %b %H:%M %z").unwrap(),
            "1 Jul 18:05 +0200"
        );
        assert_eq!(
            date(&Value::from("2026-07-01"), &HashMap::new()).unwrap(),
            "2026-07-01"
        );
        for bad in ["", "soon", "07/01/2026", "2026-13-01", "2026-02-30"] {
            let e = date_of(bad, us).unwrap_err();
            assert!(e.contains("is not a date"), "{bad}: {e}");
        }
        assert!(date_of("2026-07-01", "%H:%M").is_err());
        assert!(date(&Value::from(5), &HashMap::new()).is_err());
    }

    proptest! {
        #[test]
        fn title_is_teras_on_any_ascii(s in "[a-zA-Z0-9_' .,-]{0,24}") {
            prop_assert_eq!(Value::String(title_ascii(&s)), teras_title(&s));
        }
    }
}
