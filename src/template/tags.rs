//! The tags of a template's source, found without parsing it: where each `{{ }}` and `{% %}` is
//! (line and column), outside comments and `raw` blocks, and whether tags or brackets nest too
//! deep for Tera's parser and renderer, which recurse once per level (thousands of nested `if`s
//! overflow the stack). Tera's syntax tree has no positions: `seal` takes them from here.
use std::collections::HashMap;

use crate::template::TemplateError;

/// Tags nested in tags (`if` in `for` in `if` ...), and brackets nested in a tag.
const MAX_DEPTH: usize = 32;
/// Operators in one tag: Tera nests `a + b + c ...` one level per operator.
const MAX_OPERATORS: usize = 200;

/// A tag in a template's source: `{{` for an expression, else the statement's keyword.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tag<'s> {
    pub(super) keyword: &'s str,
    pub(super) line: usize,
    pub(super) column: usize,
}

/// Tags that open a body which a matching `end...` tag closes.
fn opens_block(keyword: &str) -> bool {
    matches!(keyword, "if" | "for" | "filter" | "block" | "macro")
}

pub(super) fn closes_block(keyword: &str) -> bool {
    matches!(
        keyword,
        "endif" | "endfor" | "endfilter" | "endblock" | "endmacro"
    )
}

/// Line and column (1-based, in characters) of byte offsets asked in increasing order.
struct Lines<'s> {
    source: &'s str,
    line: usize,
    line_start: usize,
    counted: usize,
}

impl<'s> Lines<'s> {
    fn new(source: &'s str) -> Self {
        Lines {
            source,
            line: 1,
            line_start: 0,
            counted: 0,
        }
    }

    fn at(&mut self, offset: usize) -> (usize, usize) {
        let bytes = &self.source.as_bytes()[self.counted..offset];
        for nl in memchr::memchr_iter(b'\n', bytes) {
            self.line += 1;
            self.line_start = self.counted + nl + 1;
        }
        self.counted = offset;
        let column = self.source[self.line_start..offset].chars().count() + 1;
        (self.line, column)
    }
}

/// The tags of `source` in order, outside comments and `raw` blocks; or the first place where
/// tags nest deeper than `MAX_DEPTH` or a tag holds more than `MAX_OPERATORS` operators. What
/// is not well formed is left for Tera's parser to report.
pub(super) fn scan<'s>(origin: &str, source: &'s str) -> Result<Vec<Tag<'s>>, TemplateError> {
    let bytes = source.as_bytes();
    let mut lines = Lines::new(source);
    let mut tags = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let too_much = |lines: &mut Lines<'_>, at: usize, message: String| TemplateError {
        origin: origin.to_string(),
        position: Some(lines.at(at)),
        message,
    };
    while let Some((at, closer)) = next_tag(bytes, i) {
        let keyword = keyword_of(source, at + 2, closer);
        let end = tag_end(bytes, at + 2, closer).map_err(|problem| {
            let (offset, message) = problem.placed(at);
            too_much(&mut lines, offset, message)
        })?;
        let (line, column) = lines.at(at);
        tags.push(Tag {
            keyword,
            line,
            column,
        });
        i = end;
        if keyword == "raw" {
            i = end_of_raw(bytes, i);
        } else if opens_block(keyword) {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(too_much(
                    &mut lines,
                    at,
                    format!(
                        "tags nest deeper than {MAX_DEPTH} levels here; no message needs that many"
                    ),
                ));
            }
        } else if closes_block(keyword) {
            depth = depth.saturating_sub(1);
        }
    }
    Ok(tags)
}

/// The next tag from `from`: where its opener is and the closer it needs; comments and braces
/// that open no tag are passed over.
fn next_tag(bytes: &[u8], from: usize) -> Option<(usize, &'static [u8])> {
    let mut i = from;
    while let Some(found) = memchr::memchr(b'{', &bytes[i..]) {
        let at = i + found;
        match bytes.get(at + 1) {
            Some(b'#') => i = find(bytes, at + 2, b"#}").map_or(bytes.len(), |end| end + 2),
            Some(b'{') => return Some((at, b"}}")),
            Some(b'%') => return Some((at, b"%}")),
            _ => i = at + 1,
        }
    }
    None
}

/// Where each name a template reads is first read: its line and column, for an error about it
/// (Tera's syntax tree keeps no positions). Names inside tags, outside comments, `raw` blocks
/// and strings; not an attribute (after `.`), a filter (after `|`), a test (after `is` or
/// `is not`), a function or macro called (before `(`), nor a keyword argument or `set` target
/// (before `=`). One pass over the source, whatever the number of names.
pub(super) fn first_reads(source: &str) -> HashMap<&str, (usize, usize)> {
    let bytes = source.as_bytes();
    let mut lines = Lines::new(source);
    let mut first = HashMap::new();
    let mut i = 0;
    while let Some((at, closer)) = next_tag(bytes, i) {
        // A tag over the limits was refused when the template was compiled.
        let Ok(end) = tag_end(bytes, at + 2, closer) else {
            break;
        };
        reads_in(source, at + 2..end, &mut lines, &mut first);
        i = end;
        if keyword_of(source, at + 2, closer) == "raw" {
            i = end_of_raw(bytes, i);
        }
    }
    first
}

/// What came before a name in a tag, as far as telling a read from other names goes.
#[derive(Clone, Copy, PartialEq)]
enum Before {
    Other,
    Dot,
    Pipe,
    Is,
}

/// The names read in one tag's span (see [`first_reads`]), first places kept.
fn reads_in<'s>(
    source: &'s str,
    span: std::ops::Range<usize>,
    lines: &mut Lines<'s>,
    first: &mut HashMap<&'s str, (usize, usize)>,
) {
    let bytes = source.as_bytes();
    let (mut quote, mut before) = (None, Before::Other);
    let mut i = span.start;
    while i < span.end {
        let b = bytes[i];
        if let Some(q) = quote {
            quote = (b != q).then_some(q);
            i += 1;
            continue;
        }
        if !(b.is_ascii_alphabetic() || b == b'_') {
            before = match b {
                b'"' | b'\'' | b'`' => {
                    quote = Some(b);
                    Before::Other
                }
                b'.' => Before::Dot,
                b'|' => Before::Pipe,
                b if b.is_ascii_whitespace() => before,
                _ => Before::Other,
            };
            i += 1;
            continue;
        }
        let len = bytes[i..span.end]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let word = &source[i..i + len];
        let next = bytes[i + len..span.end]
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .map(|n| i + len + n);
        let called = next.is_some_and(|n| bytes[n] == b'(');
        let assigned = next.is_some_and(|n| bytes[n] == b'=' && bytes.get(n + 1) != Some(&b'='));
        before = match (before, word) {
            (Before::Is, "not") => Before::Is,
            (_, "is") => Before::Is,
            (Before::Other, _) if !called && !assigned => {
                first.entry(word).or_insert_with(|| lines.at(i));
                Before::Other
            }
            _ => Before::Other,
        };
        i += len;
    }
}

/// The tag's keyword: `{{` for an expression (`closer` `}}`), else the statement's first word,
/// after any `-` and spaces from `inner`, the offset after the opener.
fn keyword_of<'s>(source: &'s str, inner: usize, closer: &[u8]) -> &'s str {
    if closer == b"}}" {
        return "{{";
    }
    let bytes = source.as_bytes();
    let start = inner
        + bytes[inner..]
            .iter()
            .take_while(|b| **b == b'-' || b.is_ascii_whitespace())
            .count();
    let len = bytes[start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    &source[start..start + len]
}

/// Why a tag is refused by `tag_end`.
enum TagProblem {
    /// Brackets nest deeper than `MAX_DEPTH`, at this offset.
    Nesting(usize),
    /// More than `MAX_OPERATORS` operators in the tag.
    Operators,
}

impl TagProblem {
    /// The offset to report and the message, for the tag that starts at `tag`.
    fn placed(self, tag: usize) -> (usize, String) {
        match self {
            TagProblem::Nesting(offset) => (
                offset,
                format!(
                    "brackets nest deeper than {MAX_DEPTH} levels; split the expression with `set`"
                ),
            ),
            TagProblem::Operators => (
                tag,
                format!("the tag has more than {MAX_OPERATORS} operators; split it with `set`"),
            ),
        }
    }
}

/// The offset after the tag's closer, skipping strings (Tera's have no escapes); the end of the
/// source if it has none.
fn tag_end(bytes: &[u8], from: usize, closer: &[u8]) -> Result<usize, TagProblem> {
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    let mut operators = 0usize;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if bytes[i..].starts_with(closer) => return Ok(i + closer.len()),
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'(' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(TagProblem::Nesting(i));
                    }
                }
                b')' | b']' => depth = depth.saturating_sub(1),
                b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'~' => {
                    operators += 1
                }
                b if b.is_ascii_alphabetic() => {
                    let len = bytes[i..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    if matches!(&bytes[i..i + len], b"and" | b"or" | b"not" | b"in" | b"is") {
                        operators += 1;
                    }
                    i += len;
                    continue;
                }
                _ => {}
            },
        }
        if operators > MAX_OPERATORS {
            return Err(TagProblem::Operators);
        }
        i += 1;
    }
    Ok(bytes.len())
}

/// After `{% raw %}`: the offset after its `{% endraw %}` (or the end of the source).
fn end_of_raw(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(at) = find(bytes, i, b"{%") {
        let word = at
            + 2
            + bytes[at + 2..]
                .iter()
                .take_while(|b| **b == b'-' || b.is_ascii_whitespace())
                .count();
        if bytes[word..].starts_with(b"endraw") {
            return find(bytes, word, b"%}").map_or(bytes.len(), |end| end + 2);
        }
        i = at + 2;
    }
    bytes.len()
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&bytes[from..], needle).map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(source: &str) -> Vec<(&str, usize, usize)> {
        scan("t", source)
            .unwrap()
            .into_iter()
            .map(|t| (t.keyword, t.line, t.column))
            .collect()
    }

    #[test]
    fn scans_tags_outside_comments_raw_and_strings() {
        assert_eq!(
            keywords("a {{ x }}\n{# {{ no }} #}{%- if y -%}é{{ \"}}\" }}{% raw %}{{ z }}{% endraw %}{% endif %}"),
            [
                ("{{", 1, 3),
                ("if", 2, 15),
                ("{{", 2, 28),
                ("raw", 2, 38),
                ("endif", 2, 66)
            ]
        );
    }

    #[test]
    fn bounds_nesting_and_operators() {
        let deep = "{% if a %}".repeat(MAX_DEPTH + 1);
        let e = scan("t", &deep).unwrap_err();
        assert_eq!(e.position, Some((1, 10 * MAX_DEPTH + 1)));
        assert!(scan("t", &"{% if a %}{% endif %}".repeat(100)).is_ok());
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(40), ")".repeat(40));
        assert!(scan("t", &parens).unwrap_err().message.contains("brackets"));
        let sum = format!("{{{{ 1{} }}}}", " + 1".repeat(MAX_OPERATORS + 1));
        assert!(scan("t", &sum).unwrap_err().message.contains("operators"));
    }

    #[test]
    fn first_reads_are_the_places_names_are_read() {
        let text = "Hi {# don't {{ user }} #} \"user\"\n<p>{{ a.user }} {{ 'user' }} {% if x %}{{ user | upper }}{% endif %}";
        let first = first_reads(text);
        assert_eq!(first.get("user"), Some(&(2, 43)));
        assert_eq!(first.get("x"), Some(&(2, 36)));
        assert_eq!(first.get("upper"), None, "a filter");
        let first =
            first_reads("{% raw %}{{ company }}{% endraw %}{{ company | title }} {{ title }}");
        assert_eq!(first.get("company"), Some(&(1, 38)));
        assert_eq!(first.get("title"), Some(&(1, 60)));
        let first = first_reads(
            "{{ n is not odd }}{{ s | truncate(length=5) }}{% set v = odd %}{{ f(length) }}",
        );
        assert_eq!(first.get("odd"), Some(&(1, 58)));
        assert_eq!(first.get("length"), Some(&(1, 69)));
        assert_eq!(
            (first.get("v"), first.get("f"), first.get("truncate")),
            (None, None, None)
        );
        assert_eq!(first_reads("é {{-user-}}").get("user"), Some(&(1, 6)));
    }
}
