//! Markdown bodies (`body_format = "markdown"`, `.md` body files): the template renders Markdown,
//! which becomes the HTML Intercom receives. A cell's value is escaped for both languages, so that
//! it can add neither Markdown structure nor HTML: only the template's own text shapes the message.
use pulldown_cmark::{html, Options, Parser};

/// A value for a Markdown template: HTML's special characters as entities, every other ASCII
/// punctuation mark backslash-escaped (CommonMark allows it for all of them), and line breaks as
/// spaces, since a blank line would start a paragraph, a list or a heading of the cell's making.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / 8);
    for c in value.chars() {
        match c {
            '&' | '<' | '>' | '"' | '\'' => {
                out.push_str(&crate::pages::escape(c.encode_utf8(&mut [0; 4])))
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The HTML of a rendered Markdown body (CommonMark, with tables and strikethrough).
pub fn to_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut out = String::with_capacity(markdown.len() * 5 / 4);
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_templates_markdown_becomes_html() {
        assert_eq!(
            to_html("# Hi\n\nSome *words*, a [link](https://example.com)."),
            "<h1>Hi</h1>\n<p>Some <em>words</em>, a <a href=\"https://example.com\">link</a>.</p>\n"
        );
    }

    proptest! {
        /// Whatever a cell holds, inside a paragraph it stays text: no tag but the paragraph's,
        /// and the text a reader sees is the cell's (line breaks as spaces).
        #[test]
        fn a_cell_adds_no_structure_and_no_html(cell in "\\PC{0,40}|[-*_#>`\\[\\]()!<&\"' \\n0-9a-z.]{0,40}") {
            let html = to_html(&format!("Hello {}", escape(&cell)));
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
            let expected = format!("Hello {}", cell.replace(['\n', '\r'], " "));
            prop_assert_eq!(text.trim_end(), expected.trim_end());
        }
    }
}
