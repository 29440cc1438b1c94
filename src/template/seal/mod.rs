//! Message templates sealed and bounded. A template may not read the environment or files, and
//! no template can make a check hang, overflow the stack or exhaust memory:
//!
//! - before parsing, the source's tags are scanned (`tags::scan`): nesting and operators are
//!   bounded, since Tera's parser and renderer recurse once per level;
//! - on the parsed template ([`rules`]), what a message needs is allowed and the rest refused,
//!   each with its line: no `include`, `extends`, `import`, `macro` or `block` (the recursion Tera
//!   does not bound), only the functions `range` and `throw`, only known filters;
//! - the template's syntax tree is then instrumented ([`instrument`]): every loop iteration and
//!   every `set` calls a hook that keeps the rendering within the bounds of [`bounds`] (loop
//!   iterations, bytes, time), and the rendering itself is written through a writer that stops at
//!   the byte bound; every filter's output, every concatenation and what a `{% filter %}`
//!   section's body writes are held to the same bound ([`outputs`]).
//!
//! Tera's syntax tree has no positions: the scanner finds the tags in the source, in order, and
//! the walk over the tree meets the same tags in the same order, so the k-th tag the walk meets is
//! the k-th the scanner found. Where the two disagree, the places are left out rather than guessed.
mod bounds;
mod instrument;
mod outputs;
mod rules;

use tera::Template;

use crate::template::tags::{closes_block, Tag};
use crate::template::TemplateError;
pub(super) use bounds::{render, MAX_ITERATIONS};

/// The argument that gives a hook or a bounded filter its tag's place, for its messages.
const AT: &str = "at";
/// Applied to every concatenation (`~`).
const CONCAT: &str = "__campaign_concat";
/// Applied to every `{{ }}` in a `{% filter %}` section's body.
const EMIT: &str = "__campaign_emit";
/// Called after every text in a `{% filter %}` section's body.
const EMIT_TEXT: &str = "__campaign_emit_text";
/// The filter `default` is routed to (see `instrument::route_default`).
const OR_ELSE: &str = "__campaign_or_else";
/// Called at the start of every loop iteration.
const TICK: &str = "__campaign_tick";
/// Applied to the value of every `set`.
const VALUE: &str = "__campaign_value";

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

/// Checks a parsed template against [`rules`] and instruments it for `render`. Every problem is
/// returned, each with its place where the tags allow. Returns whether the template has loops or
/// `set`s (whose hooks need a budget while it renders).
pub(super) fn seal(
    origin: &str,
    tags: &[Tag<'_>],
    template: &mut Template,
) -> Result<bool, Vec<TemplateError>> {
    let tags: Vec<Tag<'_>> = tags
        .iter()
        .filter(|t| !unseen(t.keyword))
        .cloned()
        .collect();
    let aligned = rules::check(origin, &tags, template)?;
    let mut places = Places {
        tags: &tags,
        next: 0,
        aligned,
    };
    let mut hooks = false;
    instrument::instrument(&mut template.ast, &mut places, &mut hooks);
    Ok(hooks)
}

/// Registers every hook and bounded filter a sealed template calls: the bounds' own and the
/// bounded forms of Tera's filters that make output.
pub(super) fn register(tera: &mut tera::Tera) {
    bounds::register(tera);
    outputs::register(tera);
}
