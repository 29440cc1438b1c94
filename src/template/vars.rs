//! The names templates use for CSV columns (each header's, from `input::recipients`), and the
//! variables a template reads, found by walking
//! Tera's syntax tree: every branch, taken or not, so that a misspelt column inside an `{% if %}`
//! is found before any row is rendered.
use std::collections::{BTreeMap, BTreeSet};

use tera::ast::{Expr, ExprVal, Node};

pub(crate) use crate::input::recipients::template_names;

/// Each header's template names with its column (from 0): its snake_case name, and the header as
/// written where that is a name too.
pub(crate) fn names_of(headers: &[String]) -> Vec<(String, usize)> {
    headers
        .iter()
        .enumerate()
        .flat_map(|(i, h)| template_names(h).into_iter().map(move |n| (n, i)))
        .collect()
}

/// Names a template reads from the context, less those it binds itself (loop variables, `set`),
/// each with the first path the template reads it by (`user.name` for `user`): what a header
/// with a dot in it was probably meant by.
pub(crate) fn free_variable_paths(ast: &[Node]) -> BTreeMap<String, String> {
    let mut w = Walker::default();
    w.nodes(ast);
    w.used.retain(|v| !w.bound.contains(v));
    w.used
        .into_iter()
        .map(|root| {
            let path = w.paths.get(&root).cloned().unwrap_or_else(|| root.clone());
            (root, path)
        })
        .collect()
}

/// Every name a template reads or binds: what a rendering's context must hold for it (a name it
/// binds may be read before it is bound).
pub(crate) fn names_read(ast: &[Node]) -> BTreeSet<String> {
    let mut w = Walker::default();
    w.nodes(ast);
    w.used.extend(w.bound);
    w.used
}

#[derive(Default)]
struct Walker {
    used: BTreeSet<String>,
    /// Names the template binds. Tera scopes them, but a name bound anywhere is taken as bound
    /// everywhere: that can miss a misuse, never invent one.
    bound: BTreeSet<String>,
    /// The first path each used name is read by, as written.
    paths: BTreeMap<String, String>,
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
            self.paths
                .entry(r.to_string())
                .or_insert_with(|| ident.to_string());
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
        free_variable_paths(&tera.templates["t"].ast)
            .into_keys()
            .collect()
    }

    #[test]
    fn headers_become_names_by_the_documented_rule() {
        let name = |h: &str| crate::input::recipients::template_name(h);
        assert_eq!(name("first_name").as_deref(), Some("first_name"));
        assert_eq!(name("Plan").as_deref(), Some("plan"));
        assert_eq!(name("Email").as_deref(), Some("email"));
        assert_eq!(name("firstName").as_deref(), Some("first_name"));
        assert_eq!(name("HTTPCode").as_deref(), Some("http_code"));
        assert_eq!(name("EMAIL").as_deref(), Some("email"));
        assert_eq!(name("_x9").as_deref(), Some("x9"));
        assert_eq!(name("Intercom ID").as_deref(), Some("intercom_id"));
        assert_eq!(name("First name").as_deref(), Some("first_name"));
        assert_eq!(name("user.name").as_deref(), Some("user_name"));
        assert_eq!(name("  E-mail (work) ").as_deref(), Some("e_mail_work"));
        assert_eq!(name("Prénom").as_deref(), Some("prenom"));
        assert_eq!(name("Straße").as_deref(), Some("strasse"));
        assert_eq!(name("2024 spend").as_deref(), Some("_2024_spend"));
        assert_eq!(name("9"), Some("_9".to_string()));
        assert_eq!(name("#"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn a_header_that_is_a_name_answers_as_written_too() {
        assert_eq!(template_names("Email"), ["email", "Email"]);
        assert_eq!(template_names("first_name"), ["first_name"]);
        assert_eq!(template_names("First name"), ["first_name"]);
        assert_eq!(template_names("#"), Vec::<String>::new());
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
