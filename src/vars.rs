//! The variables a template reads, found by walking Tera's syntax tree: every branch, taken or not,
//! so that a misspelt column inside an `{% if %}` is found before any row is rendered.
use std::collections::BTreeSet;

use tera::ast::{Expr, ExprVal, Node};

/// Names a template reads from the context, less those it binds itself (loop variables, `set`).
pub fn free_variables(ast: &[Node]) -> BTreeSet<String> {
    let mut w = Walker::default();
    w.nodes(ast);
    w.used.retain(|v| !w.bound.contains(v));
    w.used
}

#[derive(Default)]
struct Walker {
    used: BTreeSet<String>,
    /// Names the template binds. Tera scopes them, but a name bound anywhere is taken as bound
    /// everywhere: that can miss a misuse, never invent one.
    bound: BTreeSet<String>,
}

/// `user.name` and `items[0]` read `user` and `items`.
fn root(ident: &str) -> &str {
    ident.split(['.', '[']).next().unwrap_or(ident)
}

impl Walker {
    fn ident(&mut self, ident: &str) {
        let r = root(ident);
        // Tera's own names.
        if !matches!(r, "loop" | "__tera_context" | "") {
            self.used.insert(r.to_string());
        }
    }

    fn nodes(&mut self, nodes: &[Node]) {
        for n in nodes {
            self.node(n);
        }
    }

    fn node(&mut self, n: &Node) {
        match n {
            Node::VariableBlock(_, e) => self.expr(e),
            Node::Set(_, set) => {
                self.bound.insert(set.key.clone());
                self.expr(&set.value);
            }
            Node::FilterSection(_, section, _) => {
                section.filter.args.values().for_each(|e| self.expr(e));
                self.nodes(&section.body);
            }
            Node::Block(_, block, _) => self.nodes(&block.body),
            Node::Forloop(_, f, _) => {
                self.expr(&f.container);
                if let Some(k) = &f.key {
                    self.bound.insert(k.clone());
                }
                self.bound.insert(f.value.clone());
                self.nodes(&f.body);
                if let Some(empty) = &f.empty_body {
                    self.nodes(empty);
                }
            }
            Node::If(i, _) => {
                for (_, cond, body) in &i.conditions {
                    self.expr(cond);
                    self.nodes(body);
                }
                if let Some((_, body)) = &i.otherwise {
                    self.nodes(body);
                }
            }
            Node::MacroDefinition(_, m, _) => {
                m.args.keys().for_each(|a| {
                    self.bound.insert(a.clone());
                });
                self.nodes(&m.body);
            }
            _ => {}
        }
    }

    fn expr(&mut self, e: &Expr) {
        self.val(&e.val);
        for f in &e.filters {
            f.args.values().for_each(|a| self.expr(a));
        }
    }

    fn val(&mut self, v: &ExprVal) {
        match v {
            ExprVal::Ident(i) => self.ident(i),
            ExprVal::Math(m) => {
                self.expr(&m.lhs);
                self.expr(&m.rhs);
            }
            ExprVal::Logic(l) => {
                self.expr(&l.lhs);
                self.expr(&l.rhs);
            }
            ExprVal::In(i) => {
                self.expr(&i.lhs);
                self.expr(&i.rhs);
            }
            // `x is defined` asks whether `x` exists: that is not a use of it.
            ExprVal::Test(t) => {
                if !matches!(t.name.as_str(), "defined" | "undefined") {
                    self.ident(&t.ident);
                }
                t.args.iter().for_each(|a| self.expr(a));
            }
            ExprVal::MacroCall(m) => m.args.values().for_each(|a| self.expr(a)),
            ExprVal::FunctionCall(f) => f.args.values().for_each(|a| self.expr(a)),
            ExprVal::Array(items) => items.iter().for_each(|a| self.expr(a)),
            ExprVal::StringConcat(c) => {
                for v in &c.values {
                    self.val(v);
                }
            }
            ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_) | ExprVal::Bool(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(src: &str) -> Vec<String> {
        let mut tera = tera::Tera::default();
        tera.add_raw_template("t", src).unwrap();
        free_variables(&tera.templates["t"].ast)
            .into_iter()
            .collect()
    }

    #[test]
    fn finds_variables_in_every_branch() {
        assert_eq!(
            vars("{% if plan == 'pro' %}{{ frist_name }}{% elif x %}{{ a.b }}{% else %}{{ c[0] | default(value=d) }}{% endif %}"),
            ["a", "c", "d", "frist_name", "plan", "x"]
        );
    }

    #[test]
    fn leaves_out_what_the_template_binds() {
        assert_eq!(
            vars(
                "{% set n = first %}{{ n }}{% for i in items %}{{ i }}{{ loop.index }}{% endfor %}"
            ),
            ["first", "items"]
        );
        assert_eq!(
            vars("{% if nick is defined %}{{ nick }}{% endif %}{{ 'a' ~ b }}"),
            ["b", "nick"]
        );
    }
}
