//! A light check that an HTML body's tags are balanced: enough to catch a template that forgot a
//! `</a>` or cut a tag in half, without a full HTML parser. Its findings are warnings.

/// Elements that have no end tag.
fn is_void(name: &str) -> bool {
    matches!(
        lowercase(name).as_ref().map(|b| &b[..name.len()]),
        Some(
            b"area"
                | b"base"
                | b"br"
                | b"col"
                | b"embed"
                | b"hr"
                | b"img"
                | b"input"
                | b"link"
                | b"meta"
                | b"param"
                | b"source"
                | b"track"
                | b"wbr"
        )
    )
}

/// Elements whose end tag HTML lets an author leave out.
fn has_optional_end(name: &str) -> bool {
    matches!(
        lowercase(name).as_ref().map(|b| &b[..name.len()]),
        Some(
            b"p" | b"li"
                | b"td"
                | b"th"
                | b"tr"
                | b"option"
                | b"dt"
                | b"dd"
                | b"thead"
                | b"tbody"
                | b"tfoot"
        )
    )
}

/// A short tag name in lower case, on the stack (this runs for every tag of every row); `None`
/// for a name longer than any in the lists above.
fn lowercase(name: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    out.get_mut(..name.len())?.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    Some(out)
}

/// The first imbalance found, described for a person; `None` when the tags balance. It runs on
/// every row's body, so it allocates only its stack of open tags, and a message if it has one.
pub(crate) fn unbalanced(html: &str) -> Option<String> {
    unbalanced_at(html).map(|(_, why)| why)
}

/// The same, with the byte offset of the `<` it is about: to point at a template's line.
pub(crate) fn unbalanced_at(html: &str) -> Option<(usize, String)> {
    let mut stack: Vec<(&str, usize)> = Vec::new();
    let mut rest = html;
    // `memchr` (SIMD) rather than `str::find`: this scan is most of the check's time per row.
    while let Some(i) = memchr::memchr(b'<', rest.as_bytes()) {
        rest = &rest[i + 1..];
        let at = html.len() - rest.len() - 1;
        if let Some(after) = rest.strip_prefix("!--") {
            match memchr::memmem::find(after.as_bytes(), b"-->") {
                Some(end) => rest = &after[end + 3..],
                None => return Some((at, "an HTML comment `<!--` is never closed".into())),
            }
            continue;
        }
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?')
        {
            continue; // a bare `<` in text, as in `a < b`
        }
        let Some(end) = memchr::memchr(b'>', rest.as_bytes()) else {
            return Some((
                at,
                "a tag is opened with `<` but never closed with `>`".into(),
            ));
        };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let closing = tag.starts_with('/');
        let name = tag.trim_start_matches('/');
        let len = name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(name.len());
        let name = &name[..len];
        if name.is_empty() {
            continue; // a bare `<` in text, as in `a < b`
        }
        if closing {
            while let Some((top, _)) = stack.pop() {
                if top.eq_ignore_ascii_case(name) {
                    break;
                }
                if !has_optional_end(top) {
                    return Some((
                        at,
                        format!(
                            "`</{}>` closes `<{}>`",
                            name.to_ascii_lowercase(),
                            top.to_ascii_lowercase()
                        ),
                    ));
                }
            }
        } else if !tag.trim_end().ends_with('/') && !is_void(name) {
            stack.push((name, at));
        }
    }
    stack
        .into_iter()
        .rev()
        .find(|(t, _)| !has_optional_end(t))
        .map(|(t, at)| {
            (
                at,
                format!("`<{}>` is never closed", t.to_ascii_lowercase()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::{unbalanced, unbalanced_at};

    /// The offset is the `<` the finding is about: the wrong end tag, or the tag never closed.
    #[test]
    fn points_at_the_tag_it_is_about() {
        let html = "<p>a</p>\n<p>b <b>c</p>";
        assert_eq!(
            unbalanced_at(html),
            Some((html.rfind("</p>").unwrap(), "`</p>` closes `<b>`".into()))
        );
        let html = "<div>\n<a href=x>y";
        assert_eq!(
            unbalanced_at(html),
            Some((html.find("<a").unwrap(), "`<a>` is never closed".into()))
        );
        assert_eq!(unbalanced_at("<p>x</p><br>"), None);
    }

    #[test]
    fn balanced_html_passes() {
        assert_eq!(
            unbalanced("<p>Hi <b>Ada</b><br>see <a href=\"x\">this</a></p><!-- c --><img src=x/>"),
            None
        );
        assert_eq!(unbalanced("<ul><li>one<li>two</ul> 1 < 2"), None);
    }

    #[test]
    fn finds_imbalance() {
        assert!(unbalanced("<p>Hi <a href=x>there</p>")
            .unwrap()
            .contains("<a>"));
        assert!(unbalanced("<div>open").unwrap().contains("never closed"));
        assert!(unbalanced("<b").is_some());
        assert!(
            unbalanced("<DIV><P>x</div>").is_none(),
            "tag names are case-insensitive"
        );
        assert_eq!(unbalanced("<DIV>x").unwrap(), "`<div>` is never closed");
        assert_eq!(
            unbalanced("<P>one<BR><Img src=x><table><TBODY><tr><td>x</table>"),
            None,
            "void and optional-end elements, in any case"
        );
        assert_eq!(
            unbalanced("<blockquote>q").unwrap(),
            "`<blockquote>` is never closed"
        );
    }
}
