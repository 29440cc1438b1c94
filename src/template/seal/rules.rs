//! What a message template may use, checked on its parsed syntax tree: no `include`, `extends`,
//! `import`, `macro`, `block` or `super()`, no macro calls, only the functions `range` and
//! `throw` (`get_env` refused with its reason), only Tera's known filters (with the closest name
//! for a typo), no `{% filter %}` section inside another, and no concatenation (`~`) of more than
//! `MAX_CONCAT` values that are not literals (each may hold up to the value bound, and Tera joins
//! them before anything can look). Every problem is kept, each with its tag's place where the walk and the scanned
//! tags agree.
use tera::ast::{Expr, ExprVal, FunctionCall, Node};
use tera::Template;

use super::Places;
use crate::template::tags::Tag;
use crate::template::TemplateError;

/// Values in one concatenation (`a ~ b ~ ...`) besides string and number literals.
const MAX_CONCAT: usize = 16;

/// The functions a template may call.
const FUNCTIONS: &[&str] = &["range", "throw"];

/// Filters a template may use besides Tera's bounded ones ([`super::outputs::BOUNDED`]): the two
/// Tera's renderer handles itself (`default`, `safe`) and this crate's (`title`, and `date` over
/// jiff). One list of Tera's names, so that no filter is allowed without its output bound.
const OWN_FILTERS: &[&str] = &["title", "default", "safe", "date"];

/// Every filter name a template may use.
fn filters() -> impl Iterator<Item = &'static str> {
    super::outputs::BOUNDED.iter().chain(OWN_FILTERS).copied()
}

/// Every use in `template` of what a message template may not use, each with its place; or,
/// when there is none, whether the walk met the scanned `tags` in order (their places hold).
pub(super) fn check(
    origin: &str,
    tags: &[Tag<'_>],
    template: &Template,
) -> Result<bool, Vec<TemplateError>> {
    let mut checker = Checker {
        origin,
        places: Places {
            tags,
            next: 0,
            aligned: true,
        },
        errors: Vec::new(),
        in_section: false,
    };
    checker.nodes(&template.ast);
    if template.parent.is_some() && checker.errors.is_empty() {
        checker.refuse(
            None,
            "`extends` is not supported in message templates".into(),
        );
    }
    if checker.errors.is_empty() {
        Ok(checker.places.aligned)
    } else {
        Err(checker.errors)
    }
}

struct Checker<'t, 's> {
    origin: &'t str,
    places: Places<'t, 's>,
    errors: Vec<TemplateError>,
    /// Whether the nodes walked are in a `{% filter %}` section's body.
    in_section: bool,
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
                if self.in_section {
                    self.refuse(
                        at,
                        "a `filter` section inside another is not supported; apply the filters to the values: {{ x | upper | trim }}".into(),
                    );
                }
                self.call(&section.filter, at, true);
                let outer = std::mem::replace(&mut self.in_section, true);
                self.nodes(&section.body);
                self.in_section = outer;
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
            ExprVal::StringConcat(c) => {
                let values = c
                    .values
                    .iter()
                    .filter(|v| {
                        !matches!(v, ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_))
                    })
                    .count();
                if values > MAX_CONCAT {
                    self.refuse(
                        at,
                        format!("the concatenation (`~`) joins {values} values; at most {MAX_CONCAT} can be joined in one expression: build the text in several `set`s"),
                    );
                }
                c.values.iter().for_each(|v| self.val(v, at));
            }
        }
    }

    /// A filter (`is_filter`) or a function call: its name must be known, its arguments fine.
    fn call(&mut self, call: &FunctionCall, at: Option<(usize, usize)>, is_filter: bool) {
        let name = call.name.as_str();
        if is_filter && !filters().any(|f| f == name) {
            let hint = match crate::template::closest(name, filters()) {
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
