//! The sealed template's syntax tree rewritten for rendering: every loop body starts with a call
//! of the iteration hook, every `set`'s value ends with the value hook (both with their tag's
//! place, for their messages), and `default` is routed so that it also covers an empty cell.
//! Every bounded filter is given its place, every concatenation is followed by its bound, and
//! what a `{% filter %}` section's body writes is counted.
use std::collections::HashMap;

use tera::ast::{Expr, ExprVal, FunctionCall, Node, WS};

use super::outputs::BOUNDED;
use super::{Places, AT, CONCAT, EMIT, EMIT_TEXT, OR_ELSE, TICK, VALUE};

/// Where a hook says it is, for its error message.
fn place_text(at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => format!("line {line}, column {column}"),
        None => "in the template".into(),
    }
}

fn place_expr(at: Option<(usize, usize)>) -> Expr {
    Expr::new(ExprVal::String(place_text(at)))
}

fn hook_call(name: &str, at: Option<(usize, usize)>) -> FunctionCall {
    FunctionCall {
        name: name.to_string(),
        args: HashMap::from([(AT.to_string(), place_expr(at))]),
    }
}

/// Routes `default` (see `route_default`), puts a `TICK` first in every loop's body and a
/// `VALUE` last on every `set`'s value. Walks in the order `rules::check` does, for the places.
pub(super) fn instrument(nodes: &mut [Node], places: &mut Places<'_, '_>, hooks: &mut bool) {
    for node in nodes {
        match node {
            Node::VariableBlock(_, expr) => {
                let at = places.next("{{");
                route_default(expr, at);
            }
            Node::Set(_, set) => {
                let at = places.next("set");
                route_default(&mut set.value, at);
                set.value.filters.push(hook_call(VALUE, at));
                *hooks = true;
            }
            Node::If(node, _) => {
                for (i, (_, cond, body)) in node.conditions.iter_mut().enumerate() {
                    let at = places.next(if i == 0 { "if" } else { "elif" });
                    route_default(cond, at);
                    instrument(body, places, hooks);
                }
                if let Some((_, body)) = &mut node.otherwise {
                    instrument(body, places, hooks);
                }
            }
            Node::Forloop(_, f, _) => {
                let at = places.next("for");
                route_default(&mut f.container, at);
                let tick = Expr::new(ExprVal::FunctionCall(hook_call(TICK, at)));
                instrument(&mut f.body, places, hooks);
                f.body.insert(0, Node::VariableBlock(WS::default(), tick));
                if let Some(body) = &mut f.empty_body {
                    instrument(body, places, hooks);
                }
                *hooks = true;
            }
            Node::FilterSection(_, section, _) => {
                let at = places.next("filter");
                section
                    .filter
                    .args
                    .values_mut()
                    .for_each(|a| route_default(a, at));
                if section.filter.name == "default" {
                    section.filter.name = OR_ELSE.to_string();
                }
                place_filter(&mut section.filter, at);
                instrument(&mut section.body, places, hooks);
                count_emitted(&mut section.body, at);
                *hooks = true;
            }
            Node::Break(_) => {
                places.next("break");
            }
            Node::Continue(_) => {
                places.next("continue");
            }
            // Refused by `rules::check` before this runs.
            _ => {}
        }
    }
}

/// Gives a bounded filter its place, for its message.
fn place_filter(call: &mut FunctionCall, at: Option<(usize, usize)>) {
    if BOUNDED.contains(&call.name.as_str()) {
        call.args.insert(AT.to_string(), place_expr(at));
    }
}

/// Makes what `nodes` (a `{% filter %}` section's body) write counted: Tera writes a section's
/// body into a buffer of its own, which the rendering's bounded writer does not see. Every
/// `{{ }}` gets `EMIT` last, and every text is followed by `EMIT_TEXT` with its length. `rules`
/// refuses a section in a section, so the nodes met here are the body's own.
fn count_emitted(nodes: &mut Vec<Node>, at: Option<(usize, usize)>) {
    let mut i = 0;
    while i < nodes.len() {
        let text = match &mut nodes[i] {
            Node::Text(t) => Some(t.len()),
            Node::Raw(_, t, _) => Some(t.len()),
            Node::VariableBlock(_, expr) => {
                expr.filters.push(hook_call(EMIT, at));
                None
            }
            Node::If(node, _) => {
                for (_, _, body) in &mut node.conditions {
                    count_emitted(body, at);
                }
                if let Some((_, body)) = &mut node.otherwise {
                    count_emitted(body, at);
                }
                None
            }
            Node::Forloop(_, f, _) => {
                count_emitted(&mut f.body, at);
                if let Some(body) = &mut f.empty_body {
                    count_emitted(body, at);
                }
                None
            }
            _ => None,
        };
        if let Some(len) = text {
            let mut call = hook_call(EMIT_TEXT, at);
            call.args
                .insert("n".to_string(), Expr::new(ExprVal::Int(len as i64)));
            let emit = Node::VariableBlock(WS::default(), Expr::new(ExprVal::FunctionCall(call)));
            nodes.insert(i + 1, emit);
            i += 1;
        }
        i += 1;
    }
}

/// Tera's `default` only replaces a variable that is missing, and only as the first filter; a
/// CSV column is always there, empty or not. Users expect `default` to cover an empty cell: each
/// `default` filter is followed by `OR_ELSE`, which replaces an empty string (or a null) with the
/// same value. Tera keeps handling a missing variable, and skips `default` otherwise. Only the
/// syntax tree changes: text, string literals and `raw` blocks reach customers as written.
fn route_default(expr: &mut Expr, at: Option<(usize, usize)>) {
    if matches!(expr.val, ExprVal::StringConcat(_)) {
        expr.filters.insert(0, hook_call(CONCAT, at));
    }
    let name = match &expr.val {
        ExprVal::Ident(name) => Some(name.clone()),
        _ => None,
    };
    let mut i = 0;
    while i < expr.filters.len() {
        let call = &mut expr.filters[i];
        call.args.values_mut().for_each(|a| route_default(a, at));
        place_filter(call, at);
        if call.name == "default" {
            let mut args = call.args.clone();
            // The value's name, for the preview to say which cell was empty.
            if let Some(name) = &name {
                args.insert(
                    crate::template::filters::DEFAULT_OF.to_string(),
                    Expr::new(ExprVal::String(name.clone())),
                );
            }
            let or_else = FunctionCall {
                name: OR_ELSE.to_string(),
                args,
            };
            expr.filters.insert(i + 1, or_else);
            i += 1;
        }
        i += 1;
    }
    match &mut expr.val {
        ExprVal::Math(m) => {
            route_default(&mut m.lhs, at);
            route_default(&mut m.rhs, at);
        }
        ExprVal::Logic(l) => {
            route_default(&mut l.lhs, at);
            route_default(&mut l.rhs, at);
        }
        ExprVal::In(i) => {
            route_default(&mut i.lhs, at);
            route_default(&mut i.rhs, at);
        }
        ExprVal::Test(t) => t.args.iter_mut().for_each(|a| route_default(a, at)),
        ExprVal::FunctionCall(f) => f.args.values_mut().for_each(|a| route_default(a, at)),
        ExprVal::MacroCall(m) => m.args.values_mut().for_each(|a| route_default(a, at)),
        ExprVal::Array(items) => items.iter_mut().for_each(|a| route_default(a, at)),
        ExprVal::StringConcat(c) => {
            for v in &mut c.values {
                if let ExprVal::FunctionCall(f) = v {
                    f.args.values_mut().for_each(|a| route_default(a, at));
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
