//! Message templates sealed and bounded. A template may not read the environment or files, and
//! no template can make a check hang, overflow the stack or exhaust memory:
//!
//! - before parsing, the source's tags are scanned (`tags::scan`): nesting and operators are
//!   bounded, since Tera's parser and renderer recurse once per level;
//! - on the parsed template (`seal`), what a message needs is allowed and the rest refused, each
//!   with its line: no `include`, `extends`, `import`, `macro` or `block` (the recursion Tera does
//!   not bound), only the functions `range` and `throw`, only known filters;
//! - the template's syntax tree is then instrumented: every loop iteration and every `set` calls
//!   a hook that keeps the rendering within `MAX_ITERATIONS`, `MAX_BYTES` and `MAX_RENDER_TIME`,
//!   and the rendering itself is written through `Bounded`, which stops at `MAX_BYTES`.
//!
//! Tera's syntax tree has no positions: the scanner finds the tags in the source, in order, and
//! the walk over the tree meets the same tags in the same order, so the k-th tag the walk meets is
//! the k-th the scanner found. Where the two disagree, the places are left out rather than guessed.
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use tera::ast::{Expr, ExprVal, FunctionCall, Node, WS};
use tera::{Template, Tera, Value};

use crate::template::tags::{closes_block, Tag};
use crate::template::TemplateError;

/// Loop iterations in one rendering of one template, all loops together.
pub const MAX_ITERATIONS: u32 = 10_000;
/// The most a rendering, or a value a template builds with `set`, may hold.
pub const MAX_BYTES: usize = 1 << 20;
/// A rendering that takes longer than this is stopped. Message templates render in microseconds;
/// the bound is there for what the other bounds let through, not for a busy machine.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(2);

/// The functions a template may call.
const FUNCTIONS: &[&str] = &["range", "throw"];

/// Tera 1.20's filters without its `builtins` feature (which this crate leaves off), and the two
/// its renderer handles itself. `Cargo.toml` pins that version.
const FILTERS: &[&str] = &[
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
    "title",
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
    "default",
    "safe",
];

/// The filter `default` is routed to (see `route_default`).
const OR_ELSE: &str = "__campaign_or_else";
/// Called at the start of every loop iteration.
const TICK: &str = "__campaign_tick";
/// Applied to the value of every `set`.
const VALUE: &str = "__campaign_value";

// ---- Checking the parsed template ---------------------------------------------------------------

/// The tag each node of the syntax tree comes from, in the order a walk meets them.
struct Places<'t, 's> {
    tags: &'t [Tag<'s>],
    next: usize,
    /// False once the walk and the scan disagree: places are then unknown.
    aligned: bool,
}

impl Places<'_, '_> {
    /// The place of the next tag, which the walk expects to be `keyword` (`{{` or a keyword).
    fn next(&mut self, keyword: &str) -> Option<(usize, usize)> {
        let tag = self.tags.get(self.next);
        self.next += 1;
        let same = tag.is_some_and(|t| {
            t.keyword == keyword || (keyword == "set" && t.keyword == "set_global")
        });
        self.aligned &= same;
        if self.aligned {
            tag.map(|t| (t.line, t.column))
        } else {
            None
        }
    }
}

/// Tags the walk skips: the scanner sees them, the syntax tree keeps no node for them.
fn unseen(keyword: &str) -> bool {
    matches!(keyword, "else" | "raw" | "endraw") || closes_block(keyword)
}

struct Checker<'t, 's> {
    origin: &'t str,
    places: Places<'t, 's>,
    errors: Vec<TemplateError>,
}

impl Checker<'_, '_> {
    fn refuse(&mut self, at: Option<(usize, usize)>, message: String) {
        self.errors.push(TemplateError {
            origin: self.origin.to_string(),
            position: at,
            message,
        });
    }

    fn nodes(&mut self, nodes: &[Node]) {
        for node in nodes {
            self.node(node);
        }
    }

    fn node(&mut self, node: &Node) {
        let not_supported = |what: &str| {
            format!("`{what}` is not supported in message templates: a campaign's templates cannot include, extend or call other templates; write the text in this one")
        };
        match node {
            Node::Text(_) | Node::Raw(..) | Node::Comment(..) => {}
            Node::VariableBlock(_, expr) => {
                let at = self.places.next("{{");
                self.expr(expr, at);
            }
            Node::Super => {
                let at = self.places.next("{{");
                self.refuse(at, not_supported("super()"));
            }
            Node::Set(_, set) => {
                let at = self.places.next("set");
                self.expr(&set.value, at);
            }
            Node::If(node, _) => {
                for (i, (_, cond, body)) in node.conditions.iter().enumerate() {
                    let at = self.places.next(if i == 0 { "if" } else { "elif" });
                    self.expr(cond, at);
                    self.nodes(body);
                }
                if let Some((_, body)) = &node.otherwise {
                    self.nodes(body);
                }
            }
            Node::Forloop(_, f, _) => {
                let at = self.places.next("for");
                self.expr(&f.container, at);
                self.nodes(&f.body);
                if let Some(body) = &f.empty_body {
                    self.nodes(body);
                }
            }
            Node::FilterSection(_, section, _) => {
                let at = self.places.next("filter");
                self.call(&section.filter, at, true);
                self.nodes(&section.body);
            }
            Node::Break(_) => {
                self.places.next("break");
            }
            Node::Continue(_) => {
                self.places.next("continue");
            }
            Node::Extends(..) => {
                let at = self.places.next("extends");
                self.refuse(at, not_supported("extends"));
            }
            Node::Include(..) => {
                let at = self.places.next("include");
                self.refuse(at, not_supported("include"));
            }
            Node::ImportMacro(..) => {
                let at = self.places.next("import");
                self.refuse(at, not_supported("import"));
            }
            Node::MacroDefinition(_, m, _) => {
                let at = self.places.next("macro");
                self.refuse(at, not_supported("macro"));
                self.nodes(&m.body);
            }
            Node::Block(_, block, _) => {
                let at = self.places.next("block");
                self.refuse(at, not_supported("block"));
                self.nodes(&block.body);
            }
        }
    }

    fn expr(&mut self, expr: &Expr, at: Option<(usize, usize)>) {
        self.val(&expr.val, at);
        for filter in &expr.filters {
            self.call(filter, at, true);
        }
    }

    fn val(&mut self, val: &ExprVal, at: Option<(usize, usize)>) {
        match val {
            ExprVal::String(_)
            | ExprVal::Int(_)
            | ExprVal::Float(_)
            | ExprVal::Bool(_)
            | ExprVal::Ident(_) => {}
            ExprVal::Math(m) => {
                self.expr(&m.lhs, at);
                self.expr(&m.rhs, at);
            }
            ExprVal::Logic(l) => {
                self.expr(&l.lhs, at);
                self.expr(&l.rhs, at);
            }
            ExprVal::In(i) => {
                self.expr(&i.lhs, at);
                self.expr(&i.rhs, at);
            }
            ExprVal::Test(t) => t.args.iter().for_each(|a| self.expr(a, at)),
            ExprVal::MacroCall(m) => {
                self.refuse(
                    at,
                    format!("calling the macro `{}::{}` is not supported in message templates: a campaign's templates have no macros", m.namespace, m.name),
                );
            }
            ExprVal::FunctionCall(f) => self.call(f, at, false),
            ExprVal::Array(items) => items.iter().for_each(|a| self.expr(a, at)),
            ExprVal::StringConcat(c) => c.values.iter().for_each(|v| self.val(v, at)),
        }
    }

    /// A filter (`is_filter`) or a function call: its name must be known, its arguments fine.
    fn call(&mut self, call: &FunctionCall, at: Option<(usize, usize)>, is_filter: bool) {
        let name = call.name.as_str();
        if is_filter && !FILTERS.contains(&name) {
            let hint = match closest(name, FILTERS) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "see Tera's list of built-in filters".to_string(),
            };
            self.refuse(at, format!("unknown filter `{name}`; {hint}"));
        } else if !is_filter && name == "get_env" {
            self.refuse(
                at,
                "`get_env` is not available: a template may not read the environment (it would put a secret such as INTERCOM_TOKEN into every message); put the value in the CSV or the template".into(),
            );
        } else if !is_filter && !FUNCTIONS.contains(&name) {
            self.refuse(
                at,
                format!("unknown function `{name}`; message templates can call only `range` and `throw`, and cannot read files or the environment"),
            );
        }
        let mut args: Vec<_> = call.args.iter().collect();
        args.sort_by(|a, b| a.0.cmp(b.0));
        for (_, arg) in args {
            self.expr(arg, at);
        }
    }
}

fn closest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(name, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Checks a parsed template against the rules above and instruments it for `render`. Every
/// problem is returned, each with its place where the tags allow. Returns whether the template
/// has loops or `set`s (whose hooks need a budget while it renders).
pub fn seal(
    origin: &str,
    tags: &[Tag<'_>],
    template: &mut Template,
) -> Result<bool, Vec<TemplateError>> {
    let tags: Vec<Tag<'_>> = tags
        .iter()
        .filter(|t| !unseen(t.keyword))
        .cloned()
        .collect();
    let mut checker = Checker {
        origin,
        places: Places {
            tags: &tags,
            next: 0,
            aligned: true,
        },
        errors: Vec::new(),
    };
    checker.nodes(&template.ast);
    if template.parent.is_some() && checker.errors.is_empty() {
        checker.refuse(
            None,
            "`extends` is not supported in message templates".into(),
        );
    }
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    let mut places = Places {
        tags: &tags,
        next: 0,
        aligned: checker.places.aligned,
    };
    let mut hooks = false;
    instrument(&mut template.ast, &mut places, &mut hooks);
    Ok(hooks)
}

/// Where a hook says it is, for its error message.
fn place_text(at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => format!("line {line}, column {column}"),
        None => "in the template".into(),
    }
}

fn hook_call(name: &str, at: Option<(usize, usize)>) -> FunctionCall {
    FunctionCall {
        name: name.to_string(),
        args: HashMap::from([("at".to_string(), Expr::new(ExprVal::String(place_text(at))))]),
    }
}

/// Routes `default` (see `route_default`), puts a `TICK` first in every loop's body and a
/// `VALUE` last on every `set`'s value. Walks in the order `Checker` does, for the places.
fn instrument(nodes: &mut [Node], places: &mut Places<'_, '_>, hooks: &mut bool) {
    for node in nodes {
        match node {
            Node::VariableBlock(_, expr) => {
                places.next("{{");
                route_default(expr);
            }
            Node::Set(_, set) => {
                let at = places.next("set");
                route_default(&mut set.value);
                set.value.filters.push(hook_call(VALUE, at));
                *hooks = true;
            }
            Node::If(node, _) => {
                for (i, (_, cond, body)) in node.conditions.iter_mut().enumerate() {
                    places.next(if i == 0 { "if" } else { "elif" });
                    route_default(cond);
                    instrument(body, places, hooks);
                }
                if let Some((_, body)) = &mut node.otherwise {
                    instrument(body, places, hooks);
                }
            }
            Node::Forloop(_, f, _) => {
                let at = places.next("for");
                route_default(&mut f.container);
                let tick = Expr::new(ExprVal::FunctionCall(hook_call(TICK, at)));
                instrument(&mut f.body, places, hooks);
                f.body.insert(0, Node::VariableBlock(WS::default(), tick));
                if let Some(body) = &mut f.empty_body {
                    instrument(body, places, hooks);
                }
                *hooks = true;
            }
            Node::FilterSection(_, section, _) => {
                places.next("filter");
                section.filter.args.values_mut().for_each(route_default);
                if section.filter.name == "default" {
                    section.filter.name = OR_ELSE.to_string();
                }
                instrument(&mut section.body, places, hooks);
            }
            Node::Break(_) => {
                places.next("break");
            }
            Node::Continue(_) => {
                places.next("continue");
            }
            // Refused by `seal` before this runs.
            _ => {}
        }
    }
}

/// Tera's `default` only replaces a variable that is missing, and only as the first filter; a
/// CSV column is always there, empty or not. Users expect `default` to cover an empty cell: each
/// `default` filter is followed by `OR_ELSE`, which replaces an empty string (or a null) with the
/// same value. Tera keeps handling a missing variable, and skips `default` otherwise. Only the
/// syntax tree changes: text, string literals and `raw` blocks reach customers as written.
fn route_default(expr: &mut Expr) {
    let mut i = 0;
    while i < expr.filters.len() {
        let call = &mut expr.filters[i];
        call.args.values_mut().for_each(route_default);
        if call.name == "default" {
            let or_else = FunctionCall {
                name: OR_ELSE.to_string(),
                args: call.args.clone(),
            };
            expr.filters.insert(i + 1, or_else);
            i += 1;
        }
        i += 1;
    }
    match &mut expr.val {
        ExprVal::Math(m) => {
            route_default(&mut m.lhs);
            route_default(&mut m.rhs);
        }
        ExprVal::Logic(l) => {
            route_default(&mut l.lhs);
            route_default(&mut l.rhs);
        }
        ExprVal::In(i) => {
            route_default(&mut i.lhs);
            route_default(&mut i.rhs);
        }
        ExprVal::Test(t) => t.args.iter_mut().for_each(route_default),
        ExprVal::FunctionCall(f) => f.args.values_mut().for_each(route_default),
        ExprVal::MacroCall(m) => m.args.values_mut().for_each(route_default),
        ExprVal::Array(items) => items.iter_mut().for_each(route_default),
        ExprVal::StringConcat(c) => {
            for v in &mut c.values {
                if let ExprVal::FunctionCall(f) = v {
                    f.args.values_mut().for_each(route_default);
                }
            }
        }
        ExprVal::String(_)
        | ExprVal::Int(_)
        | ExprVal::Float(_)
        | ExprVal::Bool(_)
        | ExprVal::Ident(_) => {}
    }
}

// ---- Rendering within bounds --------------------------------------------------------------------

/// What one rendering may still spend; kept per thread, since a rendering runs on one.
#[derive(Clone, Copy)]
struct Budget {
    iterations: u32,
    started: Instant,
    time: Duration,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
    /// Why a hook stopped the rendering: Tera wraps a hook's error in its own words.
    static STOPPED: Cell<Option<String>> = const { Cell::new(None) };
}

/// The functions and filters every campaign's `Tera` has, and those it must not have.
pub fn register(tera: &mut Tera) {
    tera.register_filter(OR_ELSE, crate::template::filters::or_else);
    tera.register_filter("title", crate::template::filters::title);
    tera.register_filter(VALUE, value_hook);
    tera.register_function(TICK, tick_hook);
    tera.register_function("range", crate::template::filters::bounded_range);
    // `seal` refuses a template that calls it; this is in case something ever gets past.
    tera.register_function("get_env", |_: &HashMap<String, Value>| {
        Err(tera::Error::msg("templates may not read the environment"))
    });
}

fn at_arg(args: &HashMap<String, Value>) -> &str {
    args.get("at").and_then(Value::as_str).unwrap_or("")
}

/// A hook's refusal: remembered for `render`, which reports it in its own words.
fn stop(message: String) -> tera::Error {
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

fn out_of_time(args: &HashMap<String, Value>) -> tera::Result<()> {
    match BUDGET.with(Cell::get) {
        Some(budget) if budget.started.elapsed() >= budget.time => Err(stop(format!(
            "rendering took more than {} (stopped at {}); no message needs that long",
            humantime::format_duration(budget.time),
            at_arg(args)
        ))),
        _ => Ok(()),
    }
}

/// Whether a value holds more than `limit` bytes of text (its strings and keys; a number or a
/// flag counts as 8), without counting all of a big one.
fn size_over(value: &Value, limit: usize) -> bool {
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
pub fn render(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Tera` with `source` sealed as `t.txt`, and whether it has hooks.
    fn sealed(source: &str) -> (Tera, bool) {
        let mut tera = Tera::default();
        register(&mut tera);
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
