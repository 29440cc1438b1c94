//! The templates most campaigns have, rendered without Tera's per-row machinery: text, columns,
//! `row`, filters with literal arguments, and `if`/`elif`/`else` on a column.
//!
//! For every row Tera builds a `Context` (a `String` key and a JSON value per column, in a map),
//! clones it into a call stack and walks the template: about 3 µs a row for the sample, more than
//! reading, checking and hashing it together. A `Compiled` template walks Tera's own syntax tree
//! once, up front, and then renders straight from the CSV record, calling Tera's own filter
//! objects and escaping the way Tera does, so the output is Tera's byte for byte
//! (`tests/compiled.rs` compares the two on random templates and rows). A template with anything
//! else (`set`, loops, tests, comparisons, math, functions) is not compiled and Tera renders it;
//! a row whose compiled rendering fails (a filter's error) is rendered again by Tera, so its error
//! message is Tera's.
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

use tera::ast::{Expr, ExprVal, Node};
use tera::{Filter, Tera, Value};

/// A template turned into parts that render from a row's fields.
pub struct Compiled<'t> {
    parts: Vec<Part<'t>>,
    size_hint: usize,
    /// For an HTML body whose every value is escaped: the HTML check's finding for each path
    /// through its `if`s (see `html_verdict`).
    html: Option<HtmlVerdicts>,
}

/// The branches a rendering took, in the order it met them: one nibble each (the branch's index
/// plus one, so the key is unambiguous), for up to 15 `if`s.
#[derive(Debug, Default, Clone, Copy)]
pub struct Path {
    bits: u64,
    len: u32,
    overflow: bool,
}

impl Path {
    fn push(&mut self, choice: usize) {
        if choice >= 15 || self.len >= 15 {
            self.overflow = true;
        } else {
            self.bits |= (choice as u64 + 1) << (4 * self.len);
            self.len += 1;
        }
    }

    fn key(&self) -> Option<u64> {
        (!self.overflow).then_some(self.bits)
    }

    fn choices(key: u64) -> impl Iterator<Item = usize> {
        let mut bits = key;
        std::iter::from_fn(move || {
            let nibble = bits & 15;
            bits >>= 4;
            (nibble != 0).then(|| nibble as usize - 1)
        })
    }
}

/// The HTML check of a body, per path. Escaped values hold no `<`, `>` or `/`, so where they sit
/// (`html::verdict_of_skeleton` decides) they cannot change which tags the check sees: its
/// finding is that of the template's text along the path, the same for every row that takes it.
enum HtmlVerdicts {
    /// A body without `if`s has one path.
    Fixed(Option<Option<String>>),
    ByPath(OnceTable<u64, Option<Option<String>>>),
}

/// Slots for paths; a path that finds no room is checked row by row.
const HTML_PATHS: usize = 512;

enum Part<'t> {
    Text(&'t str),
    Value(Var<'t>),
    If {
        branches: Vec<(Condition<'t>, Vec<Part<'t>>)>,
        otherwise: Vec<Part<'t>>,
    },
}

struct Condition<'t> {
    var: Var<'t>,
    negated: bool,
}

/// `{{ column | filter(arg=literal) | ... }}`.
struct Var<'t> {
    source: Source,
    filters: Vec<Applied<'t>>,
    /// Whether Tera would escape a string result: the template autoescapes, the last filter is
    /// not `safe`, and the last filter applied is not one that declares its output safe.
    escape: bool,
    memo: Memo,
    /// `{{ column | default(value="text") }}` (the only filter): the text for an empty cell, the
    /// cell otherwise. Written without calling the filter: its input would be copied into a JSON
    /// value for every row, and a column such as a company name has too many values to remember.
    or_else: Option<String>,
}

/// A value as written, and its truth for `if`.
#[derive(Clone)]
struct Resolved {
    /// `None` for a list or a map, which this module leaves to Tera.
    text: Option<Box<str>>,
    truthy: bool,
}

/// Filters are pure functions of their input, and the columns they are used on (a plan, a
/// country) tend to have few distinct values: a filtered value is remembered, up to a bound.
/// Tera's `title` alone runs a Unicode regex that costs more than the rest of a row.
type Memo = OnceTable<Box<str>, Resolved>;

/// Slots per variable and the longest input remembered.
const MEMO_SLOTS: usize = 1024;
const MEMO_INPUT_BYTES: usize = 64;

/// A table that remembers what every row of every thread reads: fixed slots, each set once and
/// never changed, so that a read takes no lock and writes nothing (a lock's counter, written by
/// both cores for every row, kept moving its cache line between them). A key whose few probed
/// slots hold other keys is not remembered.
struct OnceTable<K, V> {
    slots: Box<[OnceLock<(K, V)>]>,
    hasher: foldhash::fast::FixedState,
}

/// Slots probed per key.
const PROBES: usize = 8;

impl<K: Hash + Eq, V> OnceTable<K, V> {
    fn new(slots: usize) -> Self {
        OnceTable {
            slots: (0..slots).map(|_| OnceLock::new()).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    /// The value for `key`, or the empty slot where it would go (`None`: no room).
    fn find<Q>(&self, key: &Q) -> Result<&V, Option<&OnceLock<(K, V)>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let start = self.hasher.hash_one(key) as usize;
        for i in 0..PROBES {
            let slot = &self.slots[(start + i) % self.slots.len()];
            match slot.get() {
                Some((k, v)) if k.borrow() == key => return Ok(v),
                Some(_) => continue,
                None => return Err(Some(slot)),
            }
        }
        Err(None)
    }
}

#[derive(Clone, Copy)]
enum Source {
    Column(usize),
    /// `row`: the record number.
    Row,
}

struct Applied<'t> {
    filter: &'t dyn Filter,
    args: HashMap<String, Value>,
}

/// Why a compiled rendering gave up; the caller renders the row with Tera instead.
#[derive(Debug)]
pub struct Fallback;

impl<'t> Compiled<'t> {
    /// The compiled form of `tera`'s template `name`, or `None` when it uses anything this
    /// module does not render exactly as Tera would.
    pub fn new(tera: &'t Tera, name: &str, columns: &[String], escape: bool) -> Option<Self> {
        let template = tera.templates.get(name)?;
        if !template.parents.is_empty() || !template.blocks.is_empty() {
            return None;
        }
        let compiler = Compiler {
            tera,
            columns,
            escape,
        };
        let parts = compiler.nodes(&template.ast)?;
        let html = (escape && all_escaped(&parts)).then(|| {
            if parts.iter().any(|p| matches!(p, Part::If { .. })) {
                HtmlVerdicts::ByPath(OnceTable::new(HTML_PATHS))
            } else {
                HtmlVerdicts::Fixed(verdict_along(&parts, 0))
            }
        });
        Some(Compiled {
            size_hint: size(&parts),
            parts,
            html,
        })
    }

    /// A starting capacity for a rendering: the template's text and a little per value.
    pub fn size_hint(&self) -> usize {
        self.size_hint
    }

    /// Appends the row's rendering to `out`, and says which branches it took (for
    /// `html_verdict`). On `Err`, `out` holds a partial rendering.
    pub fn render(&self, fields: &[&str], row: u64, out: &mut String) -> Result<Path, Fallback> {
        let mut path = Path::default();
        self.render_parts(&self.parts, fields, row, out, &mut path)?;
        Ok(path)
    }

    /// What `html::unbalanced` finds in any rendering that took `path`: `Some(None)` when the
    /// tags balance. `None` when it cannot be known without the rendering: a body that is not
    /// HTML, a value that is not escaped or that sits where it could change a tag, too many paths.
    pub fn html_verdict(&self, path: &Path) -> Option<Option<String>> {
        let verdicts = match self.html.as_ref()? {
            HtmlVerdicts::Fixed(verdict) => return verdict.clone(),
            HtmlVerdicts::ByPath(verdicts) => verdicts,
        };
        let key = path.key()?;
        match verdicts.find(&key) {
            Ok(known) => known.clone(),
            Err(empty) => {
                let verdict = verdict_along(&self.parts, key);
                if let Some(slot) = empty {
                    let _ = slot.set((key, verdict.clone()));
                }
                verdict
            }
        }
    }

    fn render_parts(
        &self,
        parts: &[Part<'t>],
        fields: &[&str],
        row: u64,
        out: &mut String,
        path: &mut Path,
    ) -> Result<(), Fallback> {
        for part in parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Value(var) => self.write_var(var, fields, row, out)?,
                Part::If {
                    branches,
                    otherwise,
                } => {
                    let choice = branches
                        .iter()
                        .position(|(cond, _)| condition_holds(cond, fields, row));
                    path.push(choice.unwrap_or(branches.len()));
                    let taken = choice.map_or(otherwise, |i| &branches[i].1);
                    self.render_parts(taken, fields, row, out, path)?;
                }
            }
        }
        Ok(())
    }

    fn write_var(
        &self,
        var: &Var<'t>,
        fields: &[&str],
        row: u64,
        out: &mut String,
    ) -> Result<(), Fallback> {
        // The common cases, a bare column or one with a default text, straight from the record.
        if let Source::Column(i) = var.source {
            let text = *fields.get(i).ok_or(Fallback)?;
            let written = match &var.or_else {
                _ if var.filters.is_empty() => Some(text),
                Some(default) if text.is_empty() => Some(default.as_str()),
                Some(_) => Some(text),
                None => None,
            };
            if let Some(text) = written {
                push_maybe_escaped(out, text, var.escape);
                return Ok(());
            }
        }
        let text = var.with_resolved(fields, row, |r| {
            r.text.as_deref().map(|text| out.push_str(text))
        })?;
        text.ok_or(Fallback)
    }
}

impl Var<'_> {
    /// Calls `f` with the variable's value for this row, remembered or computed.
    fn with_resolved<R>(
        &self,
        fields: &[&str],
        row: u64,
        f: impl FnOnce(&Resolved) -> R,
    ) -> Result<R, Fallback> {
        let input = match self.source {
            Source::Column(i) => Some(*fields.get(i).ok_or(Fallback)?),
            Source::Row => None,
        };
        let mut empty = None;
        if let Some(key) = input.filter(|s| s.len() <= MEMO_INPUT_BYTES) {
            match self.memo.find(key) {
                Ok(hit) => return Ok(f(hit)),
                Err(slot) => empty = slot.map(|slot| (key, slot)),
            }
        }
        let value = match input {
            Some(text) => Value::String(text.to_string()),
            None => Value::from(row),
        };
        let resolved = self.resolve(value)?;
        if let Some((key, slot)) = empty {
            // Another thread may have set the slot meanwhile, for this input or another: then
            // this one is not remembered, and the next row computes it again.
            let _ = slot.set((key.into(), resolved.clone()));
        }
        Ok(f(&resolved))
    }

    /// The value after the filters, as Tera would write it and judge it in an `if`.
    fn resolve(&self, mut value: Value) -> Result<Resolved, Fallback> {
        for applied in &self.filters {
            value = applied
                .filter
                .filter(&value, &applied.args)
                .map_err(|_| Fallback)?;
        }
        let truthy = truthy(&value);
        // As Tera's `ValueRender` writes values, and `eval_expression` escapes them.
        let text: Option<Box<str>> = match value {
            Value::String(s) if self.escape && needs_escaping(&s) => {
                Some(tera::escape_html(&s).into())
            }
            Value::String(s) => Some(s.into()),
            Value::Number(n) => Some(
                if let Some(v) = n.as_i64() {
                    v.to_string()
                } else if let Some(v) = n.as_u64() {
                    v.to_string()
                } else if let Some(v) = n.as_f64() {
                    v.to_string()
                } else {
                    return Err(Fallback);
                }
                .into(),
            ),
            Value::Bool(b) => Some(if b { "true" } else { "false" }.into()),
            Value::Null => Some("".into()),
            Value::Array(_) | Value::Object(_) => None,
        };
        Ok(Resolved { text, truthy })
    }
}

/// `html::verdict_of_skeleton` of the template along the path `key`.
fn verdict_along(parts: &[Part<'_>], key: u64) -> Option<Option<String>> {
    let mut skeleton = String::new();
    skeleton_of(parts, &mut Path::choices(key), &mut skeleton)?;
    crate::html::verdict_of_skeleton(&skeleton)
}

/// The template's text along the branches `choices` names, with `html::MARK` where each value
/// goes; `None` if the choices do not fit the template.
fn skeleton_of(
    parts: &[Part<'_>],
    choices: &mut impl Iterator<Item = usize>,
    out: &mut String,
) -> Option<()> {
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Value(_) => out.push(crate::html::MARK),
            Part::If {
                branches,
                otherwise,
            } => {
                let choice = choices.next()?;
                let taken = match branches.get(choice) {
                    Some((_, body)) => body,
                    None if choice == branches.len() => otherwise,
                    None => return None,
                };
                skeleton_of(taken, choices, out)?;
            }
        }
    }
    Some(())
}

/// Whether every value the template writes is escaped (and its text free of `html::MARK`), so
/// that `html_verdict` can judge it from its text.
fn all_escaped(parts: &[Part<'_>]) -> bool {
    parts.iter().all(|p| match p {
        Part::Text(text) => !text.contains(crate::html::MARK),
        Part::Value(var) => var.escape,
        Part::If {
            branches,
            otherwise,
        } => branches.iter().all(|(_, body)| all_escaped(body)) && all_escaped(otherwise),
    })
}

/// The text's length, and a little per value; the longest branch of an `if`.
fn size(parts: &[Part<'_>]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.len(),
            Part::Value(_) => 16,
            Part::If {
                branches,
                otherwise,
            } => branches
                .iter()
                .map(|(_, body)| size(body))
                .chain([size(otherwise)])
                .max()
                .unwrap_or(0),
        })
        .sum()
}

/// Tera's `eval_as_bool` for an identifier: a filter's error makes the condition false, negated
/// or not; otherwise the value's truthiness, flipped by `not`.
fn condition_holds(cond: &Condition<'_>, fields: &[&str], row: u64) -> bool {
    match cond.var.with_resolved(fields, row, |r| r.truthy) {
        Ok(truthy) => truthy != cond.negated,
        Err(Fallback) => false,
    }
}

/// Tera's `ValueTruthy`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i != 0
            } else if let Some(u) = n.as_u64() {
                u != 0
            } else {
                n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan())
            }
        }
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn needs_escaping(text: &str) -> bool {
    text.contains(['&', '<', '>', '"', '\'', '/'])
}

/// Tera's `escape_html`, without its allocation when there is nothing to escape.
fn push_maybe_escaped(out: &mut String, text: &str, escape: bool) {
    if escape && needs_escaping(text) {
        out.push_str(&tera::escape_html(text));
    } else {
        out.push_str(text);
    }
}

struct Compiler<'t, 'c> {
    tera: &'t Tera,
    columns: &'c [String],
    escape: bool,
}

impl<'t> Compiler<'t, '_> {
    fn nodes(&self, nodes: &'t [Node]) -> Option<Vec<Part<'t>>> {
        let mut parts = Vec::with_capacity(nodes.len());
        for node in nodes {
            match node {
                Node::Text(text) | Node::Raw(_, text, _) => parts.push(Part::Text(text)),
                Node::Comment(..) => {}
                Node::VariableBlock(_, expr) if !expr.negated => {
                    parts.push(Part::Value(self.var(expr, self.escape)?))
                }
                Node::If(node, _) => {
                    let mut branches = Vec::with_capacity(node.conditions.len());
                    for (_, expr, body) in &node.conditions {
                        let condition = Condition {
                            var: self.var(expr, false)?,
                            negated: expr.negated,
                        };
                        branches.push((condition, self.nodes(body)?));
                    }
                    let otherwise = match &node.otherwise {
                        Some((_, body)) => self.nodes(body)?,
                        None => Vec::new(),
                    };
                    parts.push(Part::If {
                        branches,
                        otherwise,
                    });
                }
                _ => return None,
            }
        }
        Some(parts)
    }

    /// `autoescape`: whether the template escapes what this variable writes.
    fn var(&self, expr: &'t Expr, autoescape: bool) -> Option<Var<'t>> {
        let ExprVal::Ident(name) = &expr.val else {
            return None;
        };
        // `row` is inserted into Tera's context after the columns, so it wins over a column of
        // that name.
        let source = if name == "row" {
            Source::Row
        } else {
            Source::Column(self.columns.iter().position(|c| c == name)?)
        };
        // Tera's own `default` only applies to a missing variable; `render` routes the
        // templates' `default` to `or_else`, so seeing it here means something else is going on.
        if expr.has_default_filter() {
            return None;
        }
        let mut filters = Vec::with_capacity(expr.filters.len());
        // A value straight from the context is escaped; after a filter, unless the filter says
        // its output is safe.
        let mut needs_escape = true;
        for call in &expr.filters {
            if call.name == "safe" {
                continue; // Tera skips it wherever it is; only the last one marks the result.
            }
            let filter = self.tera.get_filter(&call.name).ok()?;
            let mut args = HashMap::with_capacity(call.args.len());
            for (key, arg) in &call.args {
                args.insert(key.clone(), literal(arg)?);
            }
            needs_escape = !filter.is_safe();
            filters.push(Applied { filter, args });
        }
        let mut applied = expr.filters.iter().filter(|call| call.name != "safe");
        let or_else = match (applied.next(), applied.next()) {
            (Some(call), None) if call.name == "or_else" && call.args.len() == 1 => {
                match call.args.get("value").map(literal) {
                    Some(Some(Value::String(text))) => Some(text),
                    _ => None,
                }
            }
            _ => None,
        };
        Some(Var {
            source,
            filters,
            escape: autoescape && needs_escape && !expr.is_marked_safe(),
            memo: Memo::new(MEMO_SLOTS),
            or_else,
        })
    }
}

/// A filter argument that is a plain literal, as Tera would evaluate it.
fn literal(expr: &Expr) -> Option<Value> {
    if expr.negated || !expr.filters.is_empty() {
        return None;
    }
    match &expr.val {
        ExprVal::String(s) => Some(Value::String(s.clone())),
        ExprVal::Int(i) => Some(Value::from(*i)),
        ExprVal::Float(f) => Some(Value::Number(tera::Number::from_f64(*f)?)),
        ExprVal::Bool(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}
