//! Self-contained HTML pages (`preview --html`, `report --html`): one file that fetches nothing,
//! under a strict Content-Security-Policy, with every value from a CSV, a template or Intercom
//! escaped on its way in. Escaping is the first defence; the policy is the second, so that a value
//! that somehow got through still cannot run script or load anything.

use std::fmt::Write as _;

/// No script at all, no fetches; inline styles (the page's own `<style>` and e-mail bodies'
/// `style` attributes) and `data:` images only. `frame-src 'self'` covers the bodies' `srcdoc`
/// frames; `base-uri`/`form-action` are not covered by `default-src`, so they are closed too.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                       frame-src 'self'; base-uri 'none'; form-action 'none'";

/// `text` escaped for HTML text and for a double- or single-quoted attribute value (a `srcdoc`
/// included): the five characters that can end a text run or an attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The shared look of both pages: readable on a laptop and in a screenshot, no web fonts.
const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f4f5f7}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{font-size:18px;margin:0}
header p{margin:4px 0 0;color:#c9ced8}
main{padding:16px 24px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:0 0 16px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;font-size:13px}
th,td{text-align:left;padding:3px 10px 3px 0;vertical-align:top;border-bottom:1px solid #eef0f3}
th{color:#5b6475;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;margin-right:4px}
.sent{background:#dff5e3;color:#14532d}.failed{background:#fde2e1;color:#7f1d1d}
.unknown{background:#fff1c2;color:#713f12}.skipped{background:#e5e7eb;color:#374151}
.warn{color:#8a5300}.err{color:#b42318}
.note{color:#5b6475}
.msg{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px}
.msg iframe{width:100%;height:240px;border:1px solid #dde1e7;border-radius:4px;background:#fff;resize:vertical}
.msg pre{white-space:pre-wrap;border:1px solid #dde1e7;border-radius:4px;padding:10px;margin:0;background:#fff}
.fields caption{text-align:left}
.fields td:first-child{color:#5b6475;white-space:nowrap}
.fields td{word-break:break-word}
.examples{white-space:nowrap}
ul.problems{margin:8px 0 0;padding-left:18px}
";

/// A whole page: `<head>` with the policy first (before anything it governs), then `body`, which
/// the caller has built from escaped parts.
pub fn page(title: &str, subtitle: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title}</h1><p>{subtitle}</p></header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        csp = escape(CSP),
        title = escape(title),
        subtitle = escape(subtitle),
    );
    out
}

/// Writes a page next to where the user asked, creating nothing else.
pub fn write_page(path: &std::path::Path, html: &str) -> anyhow::Result<()> {
    // A control character from outside is shown, never passed on raw (see `inert`).
    std::fs::write(path, crate::inert(html).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: cannot write the page: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_ends_text_or_an_attribute() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn the_policy_comes_before_the_style_it_governs() {
        let html = page("t", "s", "<p>x</p>");
        let csp = html.find("Content-Security-Policy").unwrap();
        assert!(csp < html.find("<style>").unwrap());
        assert!(html.contains("default-src &#39;none&#39;"));
    }
}
