//! The sealed template's syntax tree rewritten for rendering: every loop body starts with a call
//! of the iteration hook, every `set`'s value ends with the value hook (both with their tag's
//! place, for their messages), and `default` is routed so that it also covers an empty cell.
use std::collections::HashMap;

use tera::ast::{Expr, ExprVal, FunctionCall, Node, WS};

use super::{Places, OR_ELSE, TICK, VALUE};

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
/// `VALUE` last on every `set`'s value. Walks in the order `rules::check` does, for the places.
pub(super) fn instrument(nodes: &mut [Node], places: &mut Places<'_, '_>, hooks: &mut bool) {
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
            // Refused by `rules::check` before this runs.
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
