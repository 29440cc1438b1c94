//! Which path through the templates' `if`s a row takes, without reaching into the renderer: each
//! `{% if %}`, `{% elif %}` and `{% else %}` tag of the campaign's own template sources gets a
//! marker (a private-use character) right after it, the marked templates are compiled with the
//! same public `Templates::compile` the real ones use, and the markers a row's rendering emits
//! are its path. Two rows with the same markers took the same branches; loops count a branch
//! once. The markers never reach a message: the real rendering uses the unmarked templates.
use std::collections::BTreeSet;

use crate::input::config::{Campaign, TemplateSource};
use crate::template::{BoundTemplates, Templates};

/// First private-use code point of plane 15: no CSV or template has a reason to hold one, and
/// HTML autoescaping leaves them alone.
const MARK_BASE: u32 = 0xF0000;
/// Markers per campaign at most (plane 15 holds 65,534 usable code points).
const MAX_MARKS: u32 = 60_000;

/// A row's path: the branches it took, by marker number. Empty when the templates have no `if`.
pub type Path = BTreeSet<u32>;

/// The campaign's templates, marked; `None` when they have no `if` (every row takes one path)
/// or when the marked copy does not compile (then rows are not told apart).
pub struct Variants {
    templates: Option<Templates>,
    /// Each marked tag, by marker number: where it is and what it says.
    pub tags: Vec<Tag>,
}

/// A branch tag as the template's author wrote it, for telling paths apart on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The template's origin (`templates/welcome.html`, `welcome.toml [message] subject`).
    pub origin: String,
    /// 1-based line of the tag in its template.
    pub line: usize,
    /// The tag itself, `{% if plan == "pro" %}`.
    pub text: String,
}

impl Variants {
    pub fn new(campaign: &Campaign) -> Variants {
        let mut marked = campaign.clone();
        let mut tags = Vec::new();
        if let Some(subject) = &mut marked.subject {
            mark_source(subject, &mut tags);
        }
        mark_source(&mut marked.body, &mut tags);
        mark_source(&mut marked.to_id, &mut tags);
        let templates = if tags.is_empty() {
            None
        } else {
            Templates::compile(&marked).ok()
        };
        if templates.is_none() {
            tags.clear();
        }
        Variants { templates, tags }
    }

    /// A plan for a CSV with these columns, or `None` when every row takes the same path.
    pub fn plan(&self, columns: &[String]) -> Option<BoundTemplates<'_>> {
        self.templates.as_ref().map(|t| t.plan(columns))
    }
}

/// The path a row takes; `None` when the row does not render (its errors say why).
pub fn path_of(plan: Option<&BoundTemplates<'_>>, fields: &[&str], row: u64) -> Option<Path> {
    let Some(plan) = plan else {
        return Some(Path::new());
    };
    let rendered = plan.render(fields, row).ok()?;
    let texts = rendered
        .subject
        .iter()
        .chain([&rendered.body, &rendered.to_id]);
    Some(
        texts
            .flat_map(|t| t.chars())
            .filter_map(|c| (c as u32).checked_sub(MARK_BASE))
            .filter(|n| *n < MAX_MARKS)
            .collect(),
    )
}

fn mark_source(src: &mut TemplateSource, tags: &mut Vec<Tag>) {
    let origin = src.origin.clone();
    let source = std::mem::take(&mut src.source);
    src.source = mark(&source, &mut |at, text| {
        tags.push(Tag {
            origin: origin.clone(),
            line: source[..at].matches('\n').count() + 1,
            text: text.to_string(),
        });
        tags.len() as u32 - 1
    });
}

/// `source` with a marker after every branch tag; `found(offset, tag)` numbers each tag. A tag
/// is `{%`, optional `-`, spaces, then `if`, `elif` or `else` as a whole word, up to the first
/// `%}`.
fn mark(source: &str, found: &mut dyn FnMut(usize, &str) -> u32) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        let Some(close) = rest[open..].find("%}").map(|c| open + c + 2) else {
            break;
        };
        let at = source.len() - rest.len() + open;
        out.push_str(&rest[..close]);
        let inner = rest[open + 2..close - 2]
            .trim_start_matches('-')
            .trim_start();
        let word = inner
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        if matches!(word, "if" | "elif" | "else") {
            let n = found(at, &rest[open..close]);
            if n < MAX_MARKS {
                out.extend(char::from_u32(MARK_BASE + n));
            }
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(s: &str) -> Vec<u32> {
        s.chars()
            .filter_map(|c| (c as u32).checked_sub(MARK_BASE))
            .collect()
    }

    #[test]
    fn marks_each_branch_tag_and_nothing_else() {
        let mut found = Vec::new();
        let src = "{% if a %}A{%- elif b -%}B{% else %}C{% endif %}{% for x in y %}{{x}}{% endfor %}{%iffy%}";
        let out = mark(src, &mut |at, tag| {
            found.push((at, tag.to_string()));
            found.len() as u32 - 1
        });
        assert_eq!(
            found,
            vec![
                (0, "{% if a %}".to_string()),
                (11, "{%- elif b -%}".to_string()),
                (26, "{% else %}".to_string())
            ]
        );
        assert_eq!(marks(&out), vec![0, 1, 2]);
        let plain: String = out.chars().filter(|c| (*c as u32) < MARK_BASE).collect();
        assert_eq!(plain, src);
    }

    #[test]
    fn an_unclosed_tag_is_left_as_it_is() {
        assert_eq!(mark("{% if a", &mut |_, _| unreachable!()), "{% if a");
    }
}
