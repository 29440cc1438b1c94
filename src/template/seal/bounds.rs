//! The bounds on one rendering: loop iterations (all loops together), the size of the output and
//! of any value a `set` builds, and time. The hooks the instrumented tree calls spend a per-thread
//! budget; the output goes through a writer that refuses more than `MAX_BYTES`; what a
//! `{% filter %}` section's body writes (which Tera keeps in a buffer of its own) is counted
//! against the same bound; a concatenation (`~`) holds at most `MAX_BYTES`, and every filter's
//! output too ([`super::outputs`]); and a hook's refusal is reported in its own words, not Tera's.
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use tera::{Tera, Value};

use super::{AT, CONCAT, EMIT, EMIT_TEXT, OR_ELSE, TICK, VALUE};

/// Loop iterations in one rendering of one template, all loops together.
pub(crate) const MAX_ITERATIONS: u32 = 10_000;
/// The most a rendering, or a value a template builds with `set`, may hold.
pub(super) const MAX_BYTES: usize = 1 << 20;
/// A rendering that takes longer than this is stopped. Message templates render far faster; the
/// bound is there for what the other bounds let through, not for a busy machine.
const MAX_RENDER_TIME: Duration = Duration::from_secs(2);

/// What one rendering may still spend; kept per thread, since a rendering runs on one.
#[derive(Clone, Copy)]
struct Budget {
    iterations: u32,
    started: Instant,
    time: Duration,
    /// Bytes the bodies of `{% filter %}` sections have written so far.
    emitted: usize,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
    /// Why a hook stopped the rendering: Tera wraps a hook's error in its own words.
    static STOPPED: Cell<Option<String>> = const { Cell::new(None) };
}

/// The functions and filters every campaign's `Tera` has, and those it must not have.
pub(crate) fn register(tera: &mut Tera) {
    tera.register_filter(OR_ELSE, crate::template::filters::or_else);
    tera.register_filter("title", crate::template::filters::title);
    tera.register_filter("date", crate::template::filters::date);
    tera.register_filter(VALUE, value_hook);
    tera.register_filter(CONCAT, concat_hook);
    tera.register_filter(EMIT, emit_hook);
    tera.register_function(EMIT_TEXT, emit_text_hook);
    tera.register_function(TICK, tick_hook);
    tera.register_function("range", crate::template::filters::bounded_range);
    // `rules::check` refuses a template that calls it; this is in case something ever gets past.
    tera.register_function("get_env", |_: &HashMap<String, Value>| {
        Err(tera::Error::msg("templates may not read the environment"))
    });
}

fn at_arg(args: &HashMap<String, Value>) -> &str {
    args.get(AT).and_then(Value::as_str).unwrap_or("")
}

/// A hook's refusal: remembered for `render`, which reports it in its own words.
pub(super) fn stop(message: String) -> tera::Error {
    let error = tera::Error::msg(&message);
    STOPPED.with(|s| s.set(Some(message)));
    error
}

fn tick_hook(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let Some(mut budget) = BUDGET.with(Cell::get) else {
        return Ok(Value::String(String::new()));
    };
    if budget.iterations == 0 {
        return Err(stop(format!(
            "the loop at {} goes round more than {MAX_ITERATIONS} times in one message (all loops together); no message needs that many",
            at_arg(args)
        )));
    }
    budget.iterations -= 1;
    BUDGET.with(|b| b.set(Some(budget)));
    out_of_time(args)?;
    Ok(Value::String(String::new()))
}

fn value_hook(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    if size_over(value, MAX_BYTES) {
        return Err(stop(format!(
            "the `set` at {} builds a value of more than {MAX_BYTES} bytes; no message needs that much",
            at_arg(args)
        )));
    }
    out_of_time(args)?;
    Ok(value.clone())
}

/// After a concatenation (`~`): its pieces are each bounded, their sum is checked here.
fn concat_hook(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    if size_over(value, MAX_BYTES) {
        return Err(stop(format!(
            "the concatenation (`~`) at {} builds a value of more than {MAX_BYTES} bytes; no message needs that much",
            at_arg(args)
        )));
    }
    Ok(value.clone())
}

/// Counts `bytes` written by a `{% filter %}` section's body at `args`' place.
fn emitted(bytes: usize, args: &HashMap<String, Value>) -> tera::Result<()> {
    let Some(mut budget) = BUDGET.with(Cell::get) else {
        return Ok(());
    };
    budget.emitted = budget.emitted.saturating_add(bytes);
    BUDGET.with(|b| b.set(Some(budget)));
    if budget.emitted > MAX_BYTES {
        return Err(stop(format!(
            "the `filter` section at {} writes more than {MAX_BYTES} bytes, more than any message needs",
            at_arg(args)
        )));
    }
    out_of_time(args)
}

/// After every `{{ }}` in a `{% filter %}` section's body.
fn emit_hook(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    emitted(approx_len(value), args)?;
    Ok(value.clone())
}

/// After every text in a `{% filter %}` section's body: `n` is the text's length.
fn emit_text_hook(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let n = args.get("n").and_then(Value::as_u64).unwrap_or(0);
    emitted(usize::try_from(n).unwrap_or(usize::MAX), args)?;
    Ok(Value::String(String::new()))
}

fn out_of_time(args: &HashMap<String, Value>) -> tera::Result<()> {
    match BUDGET.with(Cell::get) {
        Some(budget) if budget.started.elapsed() >= budget.time => Err(stop(format!(
            "rendering took more than {} (stopped at {}); no message needs that long",
            crate::input::rate::format_duration(budget.time),
            at_arg(args)
        ))),
        _ => Ok(()),
    }
}

/// Whether a value holds more than `limit` bytes of text (its strings and keys; a number or a
/// flag counts as 8), without counting all of a big one.
pub(super) fn size_over(value: &Value, limit: usize) -> bool {
    /// Takes `n` from what is `left`; true when there is not that much.
    fn take(left: &mut usize, n: usize) -> bool {
        match left.checked_sub(n) {
            Some(rest) => {
                *left = rest;
                false
            }
            None => true,
        }
    }
    fn over(value: &Value, left: &mut usize) -> bool {
        match value {
            Value::String(s) => take(left, s.len()),
            Value::Array(items) => take(left, 8) || items.iter().any(|v| over(v, left)),
            Value::Object(map) => {
                take(left, 8)
                    || map
                        .iter()
                        .any(|(k, v)| take(left, k.len()) || over(v, left))
            }
            _ => take(left, 8),
        }
    }
    let mut left = limit;
    over(value, &mut left)
}

/// A writer that refuses to hold more than `MAX_BYTES`.
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
}

impl std::io::Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_BYTES {
            STOPPED.with(|s| {
                s.set(Some(format!(
                    "the rendering is over {MAX_BYTES} bytes, more than any message needs"
                )))
            });
            return Err(std::io::Error::other("the rendering is too long"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `name` into `out` (cleared first) within the bounds. On error, the message a user
/// should see: the bound that stopped it, or Tera's cause.
pub(crate) fn render(
    tera: &Tera,
    name: &str,
    hooks: bool,
    ctx: &tera::Context,
    out: &mut String,
) -> Result<(), String> {
    render_within(tera, name, hooks, ctx, out, MAX_RENDER_TIME)
}

fn render_within(
    tera: &Tera,
    name: &str,
    hooks: bool,
    ctx: &tera::Context,
    out: &mut String,
    time: Duration,
) -> Result<(), String> {
    let mut buf = std::mem::take(out).into_bytes();
    buf.clear();
    if hooks {
        BUDGET.with(|b| {
            b.set(Some(Budget {
                iterations: MAX_ITERATIONS,
                started: Instant::now(),
                time,
                emitted: 0,
            }))
        });
    }
    STOPPED.with(|s| s.set(None));
    let result = tera.render_to(name, ctx, Bounded { out: &mut buf });
    if hooks {
        BUDGET.with(|b| b.set(None));
    }
    match result {
        Ok(()) => {
            // Tera writes only `str`s; this cannot fail, and costs a scan of the bytes.
            *out = String::from_utf8(buf).map_err(|_| "the rendering is not UTF-8".to_string())?;
            Ok(())
        }
        Err(e) => {
            *out = String::new();
            match STOPPED.with(|s| s.take()) {
                Some(message) => Err(message),
                None => {
                    let chain = crate::template::error_chain(&e);
                    // The first line only repeats "Failed to render 'x'"; the cause follows.
                    let cause = chain.lines().skip(1).collect::<Vec<_>>().join(": ");
                    Err(if cause.is_empty() { chain } else { cause })
                }
            }
        }
    }
}

/// A value's size as `size_over` counts it, stopping a little past `MAX_BYTES`.
pub(super) fn approx_len(value: &Value) -> usize {
    fn add(total: &mut usize, value: &Value) {
        if *total > MAX_BYTES {
            return;
        }
        match value {
            Value::String(s) => *total += s.len(),
            Value::Array(items) => {
                *total += 8;
                items.iter().for_each(|v| add(total, v));
            }
            Value::Object(map) => {
                *total += 8;
                for (k, v) in map {
                    *total += k.len();
                    add(total, v);
                }
            }
            _ => *total += 8,
        }
    }
    let mut total = 0;
    add(&mut total, value);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::seal::seal;
    use tera::Template;

    /// A `Tera` with `source` sealed as `t.txt`, and whether it has hooks.
    fn sealed(source: &str) -> (Tera, bool) {
        let mut tera = Tera::default();
        super::super::register(&mut tera);
        let tags = crate::template::tags::scan("t.txt", source).unwrap();
        let mut template = Template::new("t.txt", None, source).unwrap();
        let hooks = seal("t.txt", &tags, &mut template).unwrap();
        tera.templates.insert("t.txt".into(), template);
        (tera, hooks)
    }

    #[test]
    fn a_rendering_stops_at_its_time_bound() {
        let (tera, hooks) = sealed("{% for i in range(end=3) %}{{ i }}{% endfor %}");
        assert!(hooks);
        let ctx = tera::Context::new();
        let mut out = String::new();
        render_within(&tera, "t.txt", hooks, &ctx, &mut out, MAX_RENDER_TIME).unwrap();
        assert_eq!(out, "012");
        let err = render_within(&tera, "t.txt", hooks, &ctx, &mut out, Duration::ZERO).unwrap_err();
        assert_eq!(
            err,
            "rendering took more than 0s (stopped at line 1, column 1); no message needs that long"
        );
    }

    #[test]
    fn counts_sizes_without_walking_everything() {
        let big = Value::String("x".repeat(10));
        assert!(!size_over(&big, 10));
        assert!(size_over(&big, 9));
        let list = Value::Array(vec![big.clone(), big]);
        assert!(size_over(&list, 20));
        assert!(!size_over(&list, 28));
    }
}
