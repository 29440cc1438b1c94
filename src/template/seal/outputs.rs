//! Tera's filters with their outputs bounded. A filter can make a value far larger than its
//! input (`replace` with a long `to`, `join` with a long `sep`, `indent`, `split` into single
//! characters), and Tera builds the whole value before anything could look at it: a few rows of
//! `{{ note | replace(from="@", to=first_name) }}` would claim gigabytes. So the filters that can
//! grow a value have their output's size computed from their arguments and refused before they
//! run; and every filter's output is checked after it, so that a chain of filters that each grow
//! a little (`escape | escape | ...`) stops at the first one over the bound.
use std::collections::HashMap;
use std::sync::LazyLock;

use tera::{Tera, Value};

use super::bounds::{approx_len, size_over, stop, MAX_BYTES};
use super::AT;

/// Tera's own filters: the ones the wrappers call.
static TERA: LazyLock<Tera> = LazyLock::new(Tera::default);

/// Tera's filters that a message template may use and that the renderer does not handle itself.
/// Each is registered in its bounded form under its own name.
pub(super) const BOUNDED: &[&str] = &[
    "upper",
    "lower",
    "trim",
    "trim_start",
    "trim_end",
    "trim_start_matches",
    "trim_end_matches",
    "truncate",
    "wordcount",
    "replace",
    "capitalize",
    "linebreaksbr",
    "indent",
    "striptags",
    "spaceless",
    "escape",
    "escape_xml",
    "addslashes",
    "split",
    "int",
    "float",
    "first",
    "last",
    "nth",
    "join",
    "sort",
    "unique",
    "slice",
    "group_by",
    "filter",
    "map",
    "concat",
    "abs",
    "pluralize",
    "round",
    "length",
    "reverse",
    "json_encode",
    "as_str",
    "get",
];

/// Tera's filter `name`, refused when its output would be over `MAX_BYTES`.
pub(super) struct Bounded {
    name: &'static str,
}

impl Bounded {
    pub(super) fn new(name: &'static str) -> Bounded {
        Bounded { name }
    }

    fn refuse(&self, args: &HashMap<String, Value>, size: usize) -> tera::Error {
        let at = args
            .get(AT)
            .and_then(Value::as_str)
            .unwrap_or("in the template");
        stop(format!(
            "the filter `{}` at {at} would build a value of {size} bytes, more than the {MAX_BYTES} any value may hold; no message needs that much",
            self.name
        ))
    }
}

impl tera::Filter for Bounded {
    fn filter(&self, value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
        if let Some(size) = size_before(self.name, value, args) {
            if size > MAX_BYTES {
                return Err(self.refuse(args, size));
            }
        }
        let out = TERA.get_filter(self.name)?.filter(value, args)?;
        if size_over(&out, MAX_BYTES) {
            return Err(self.refuse(args, approx_len(&out)));
        }
        Ok(out)
    }
}

fn text<'a>(args: &'a HashMap<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// How many bytes the filters that can multiply a value would build, from their input and
/// arguments, counted the way `size_over` counts; `None` for the others (whose outputs are at most
/// a small multiple of their inputs, and are checked after they run).
fn size_before(name: &str, value: &Value, args: &HashMap<String, Value>) -> Option<usize> {
    let s = value.as_str();
    let occurrences = |s: &str, pattern: &str| {
        if pattern.is_empty() {
            s.chars().count() + 1
        } else {
            s.matches(pattern).count()
        }
    };
    match name {
        "replace" => {
            let (s, from, to) = (s?, text(args, "from")?, text(args, "to")?);
            let growth = to.len().saturating_sub(from.len());
            Some(
                s.len()
                    .saturating_add(occurrences(s, from).saturating_mul(growth)),
            )
        }
        "join" => {
            let items = value.as_array()?;
            let sep = text(args, "sep").map_or(0, str::len);
            let seps = items.len().saturating_sub(1).saturating_mul(sep);
            Some(
                items
                    .iter()
                    .map(approx_len)
                    .fold(seps, usize::saturating_add),
            )
        }
        "indent" => {
            let s = s?;
            let prefix = text(args, "prefix").map_or(4, str::len);
            let lines = memchr::memchr_iter(b'\n', s.as_bytes()).count() + 1;
            Some(s.len().saturating_add(lines.saturating_mul(prefix)))
        }
        "split" => {
            let (s, pattern) = (s?, text(args, "pat")?);
            Some(
                s.len()
                    .saturating_add(occurrences(s, pattern).saturating_add(1).saturating_mul(8)),
            )
        }
        "concat" => {
            let with = args.get("with").map_or(0, approx_len);
            Some(approx_len(value).saturating_add(with))
        }
        _ => None,
    }
}

/// Registers every filter of `BOUNDED` in its bounded form.
pub(super) fn register(tera: &mut Tera) {
    for name in BOUNDED {
        tera.register_filter(name, Bounded::new(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &'static str, value: Value, args: &[(&str, Value)]) -> tera::Result<Value> {
        let args: HashMap<String, Value> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tera::Filter::filter(&Bounded::new(name), &value, &args)
    }

    #[test]
    fn every_bounded_filter_is_teras() {
        for name in BOUNDED {
            assert!(TERA.get_filter(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn growth_is_refused_before_it_is_built() {
        let at = Value::from("@".repeat(64 * 1024));
        let to = Value::from("x".repeat(64 * 1024));
        let err = call(
            "replace",
            at.clone(),
            &[
                ("from", "@".into()),
                ("to", to.clone()),
                (AT, "line 2, column 3".into()),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains(
            "the filter `replace` at line 2, column 3 would build a value of 4294967296 bytes"
        ));
        let items = Value::Array(vec![Value::from("a"); 1000]);
        assert!(call("join", items.clone(), &[("sep", to.clone())]).is_err());
        assert_eq!(
            call("join", items, &[("sep", ",".into())])
                .unwrap()
                .as_str()
                .unwrap()
                .len(),
            1999
        );
        let lines = Value::from("\n".repeat(64 * 1024));
        assert!(call("indent", lines, &[("prefix", to.clone())]).is_err());
        assert!(call(
            "split",
            Value::from("x".repeat(200_000)),
            &[("pat", "".into())]
        )
        .is_err());
        assert_eq!(
            call(
                "replace",
                "a@b".into(),
                &[("from", "@".into()), ("to", " at ".into())]
            )
            .unwrap(),
            Value::from("a at b")
        );
    }

    #[test]
    fn a_chain_stops_at_the_first_output_over_the_bound() {
        let mut v = Value::from("&".repeat(64 * 1024));
        let mut refused = false;
        for _ in 0..6 {
            match call("escape", v.clone(), &[]) {
                Ok(out) => v = out,
                Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        assert!(refused);
        assert!(v.as_str().unwrap().len() <= MAX_BYTES);
    }
}
