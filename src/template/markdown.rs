//! Markdown bodies (`body_format = "markdown"`, `.md` body files): the template renders Markdown,
//! which becomes the HTML Intercom receives. A cell's value takes no part in the Markdown: while
//! the template renders, each value (after its filters) stands in as a plain marker of letters and
//! digits, which no Markdown or HTML reads as anything; once the Markdown is HTML, each marker
//! becomes its value, HTML-escaped. So a value reaches the customer as written wherever the
//! template puts it (text, a code span, a link, an HTML tag's attribute) and adds neither
//! structure nor markup. (Escaping the value for Markdown instead leaves backslashes in code
//! spans, HTML and links.)
use std::cell::RefCell;

use pulldown_cmark::{html, Options, Parser};

thread_local! {
    /// The values the body's markers stand for, by number, while one body renders.
    static VALUES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Marks a marker's start and end: letters only, so that neither Markdown nor HTML reads it.
const FENCE: &str = "Qzcmpgnv";

/// Starts a body: no value from an earlier one is left.
pub(super) fn begin() {
    VALUES.with_borrow_mut(Vec::clear);
}

/// Tera's escape function for a Markdown body: the value, kept aside, and its marker.
pub(super) fn escape(value: &str) -> String {
    VALUES.with_borrow_mut(|v| {
        v.push(value.to_string());
        format!("{FENCE}{}{FENCE}", v.len() - 1)
    })
}

/// The HTML of a rendered Markdown body (CommonMark, with tables and strikethrough), each marker
/// replaced by its value, HTML-escaped.
pub(super) fn to_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut out = String::with_capacity(markdown.len() * 5 / 4);
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    VALUES.with_borrow(|values| fill(&out, values))
}

/// `html` with each marker replaced by its value, HTML-escaped; in one pass, so that a value that
/// happens to hold a marker stays as it is.
fn fill(html: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(FENCE) {
        let after = &rest[start + FENCE.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let value = after[..digits]
            .parse::<usize>()
            .ok()
            .filter(|_| after[digits..].starts_with(FENCE))
            .and_then(|i| values.get(i));
        match value {
            Some(v) => {
                out.push_str(&rest[..start]);
                out.push_str(&crate::page::escape(v));
                rest = &after[digits + FENCE.len()..];
            }
            None => {
                out.push_str(&rest[..start + FENCE.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A body as the renderer makes it: `template` with `{}` standing for the cell.
    fn body(template: &str, cell: &str) -> String {
        begin();
        to_html(&template.replace("{}", &escape(cell)))
    }

    #[test]
    fn the_templates_markdown_becomes_html() {
        assert_eq!(
            body("# Hi {}\n\nSome *words*, a [link](https://example.com).", "Ann"),
            "<h1>Hi Ann</h1>\n<p>Some <em>words</em>, a <a href=\"https://example.com\">link</a>.</p>\n"
        );
    }

    #[test]
    fn a_value_reads_as_written_in_code_links_and_html() {
        let v = "anne.o-brien+news@example.com";
        assert_eq!(
            body("Code: `{}`", "AB-12_x.y"),
            "<p>Code: <code>AB-12_x.y</code></p>\n"
        );
        assert!(body("[page](https://x.example/u?e={})", v)
            .contains(&format!("href=\"https://x.example/u?e={v}\"")));
        assert!(body("<a href=\"https://x.example/u?e={}\">x</a>", v)
            .contains(&format!("href=\"https://x.example/u?e={v}\"")));
        assert_eq!(
            body("<p>Dear {}</p>", "Smith & Sons, Ltd."),
            "<p>Dear Smith &amp; Sons, Ltd.</p>"
        );
        // A value cannot close the template's code span or link.
        assert_eq!(
            body("Code: `{}` done", "` x"),
            "<p>Code: <code>` x</code> done</p>\n"
        );
        assert!(body("[page](https://x/{})", "x) [evil](http://evil")
            .contains("<a href=\"https://x/x) [evil](http://evil\">page</a>"));
    }

    proptest! {
        /// Whatever a cell holds, inside a paragraph it stays text: no tag but the paragraph's,
        /// and the text a reader sees is the cell's.
        #[test]
        fn a_cell_adds_no_structure_and_no_html(cell in "\\PC{0,40}|[-*_#>`\\[\\]()!<&\"' \\n0-9a-z.]{0,40}") {
            let html = body("Hello {}", &cell);
            let inner = html
                .strip_prefix("<p>")
                .and_then(|h| h.strip_suffix("</p>\n"))
                .unwrap_or_else(|| panic!("not one paragraph: {html:?}"));
            prop_assert!(!inner.contains('<'), "{html:?}");
            let text = inner
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            prop_assert_eq!(text, format!("Hello {cell}"));
        }
    }
}
