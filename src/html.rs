//! A light check that an HTML body's tags are balanced: enough to catch a template that forgot a
//! `</a>` or cut a tag in half, without a full HTML parser. Its findings are warnings.

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
/// Elements whose end tag HTML lets an author leave out.
const OPTIONAL_END: &[&str] = &[
    "p", "li", "td", "th", "tr", "option", "dt", "dd", "thead", "tbody", "tfoot",
];

fn is(list: &[&str], name: &str) -> bool {
    list.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// The first imbalance found, described for a person; `None` when the tags balance. It runs on
/// every row's body, so it allocates nothing unless it has something to say.
pub fn unbalanced(html: &str) -> Option<String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix("!--") {
            match after.find("-->") {
                Some(end) => rest = &after[end + 3..],
                None => return Some("an HTML comment `<!--` is never closed".into()),
            }
            continue;
        }
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?')
        {
            continue; // a bare `<` in text, as in `a < b`
        }
        let Some(end) = rest.find('>') else {
            return Some("a tag is opened with `<` but never closed with `>`".into());
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
            while let Some(top) = stack.pop() {
                if top.eq_ignore_ascii_case(name) {
                    break;
                }
                if !is(OPTIONAL_END, top) {
                    return Some(format!(
                        "`</{}>` closes `<{}>`",
                        name.to_ascii_lowercase(),
                        top.to_ascii_lowercase()
                    ));
                }
            }
        } else if !tag.trim_end().ends_with('/') && !is(VOID, name) {
            stack.push(name);
        }
    }
    stack
        .into_iter()
        .rev()
        .find(|t| !is(OPTIONAL_END, t))
        .map(|t| format!("`<{}>` is never closed", t.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::unbalanced;

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
    }
}
