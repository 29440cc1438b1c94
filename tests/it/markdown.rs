//! Markdown bodies: the template's Markdown reaches Intercom as HTML; a cell adds neither Markdown
//! structure nor HTML.
use crate::common;

use std::sync::Arc;

use common::*;

fn markdown_campaign(body_keys: &str) -> String {
    email_campaign("")
        .replace(
            "subject = \"Hello {{ first_name }}\"",
            "subject = \"Hello\"",
        )
        .replace(
            "body = \"<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>\"",
            body_keys,
        )
}

const CSV: &str = "intercom_id,first_name,plan,company\n\
id-1,Ann,pro,Acme\n\
id-2,\"**Bob** <script>alert(1)</script> [x](https://evil.example)\n\n# Boss\",pro,Acme\n";

#[test]
fn a_markdown_body_file_is_sent_as_html_and_cells_stay_text() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(CSV, &markdown_campaign("body_file = \"welcome.md\""));
    f.write(
        "welcome.md",
        "# Welcome, {{ first_name }}\n\nYour plan: **{{ plan }}**.\n\n- [Docs](https://docs.example.com)\n",
    );
    f.send(&server, &["--allow-duplicates"]).success();
    let bodies: Vec<String> = {
        let mut r = server.requests();
        r.sort_by_key(|r| r.to_id());
        r.iter()
            .map(|r| r.body["body"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        bodies[0],
        "<h1>Welcome, Ann</h1>\n<p>Your plan: <strong>pro</strong>.</p>\n<ul>\n<li><a href=\"https://docs.example.com\">Docs</a></li>\n</ul>"
    );
    let evil = &bodies[1];
    assert!(
        evil.starts_with("<h1>Welcome, **Bob** &lt;script&gt;"),
        "{evil}"
    );
    for made_by_the_cell in [
        "<script",
        "<strong>Bob",
        "<a href=\"https://evil",
        "<h1>Boss",
    ] {
        assert!(
            !evil.contains(made_by_the_cell),
            "{made_by_the_cell} in {evil}"
        );
    }
    // The cell's text, line breaks and all, inside the template's heading: as written.
    assert!(
        evil.contains("[x](https://evil.example)\n\n# Boss</h1>"),
        "{evil}"
    );
}

#[test]
fn a_value_reads_as_written_in_code_spans_links_and_html_blocks() {
    let f = Fixture::new(
        "intercom_id,first_name,plan,company\nid-1,Anne-Marie,AB-12_x.y,\"Smith & Sons, Ltd.\"\n",
        &markdown_campaign("body_file = \"welcome.md\""),
    );
    f.write(
        "welcome.md",
        "<p>Dear {{ first_name }}, {{ company }}</p>\n\nYour code: `{{ plan }}`\n\n[page](https://x.example/u?c={{ plan }})\n",
    );
    let out = f
        .cmd()
        .args(["preview", "campaign.toml", "--json", "--row", "1"])
        .assert()
        .success();
    let line = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let body = v["body"].as_str().unwrap();
    assert!(
        body.contains("<p>Dear Anne-Marie, Smith &amp; Sons, Ltd.</p>"),
        "{body}"
    );
    assert!(body.contains("<code>AB-12_x.y</code>"), "{body}");
    assert!(
        body.contains("href=\"https://x.example/u?c=AB-12_x.y\""),
        "{body}"
    );
    assert!(
        !body.contains('\\'),
        "no backslash reaches the customer: {body}"
    );
}

#[test]
fn body_format_markdown_works_inline_and_preview_shows_the_html() {
    let f = Fixture::new(
        CSV,
        &markdown_campaign("body = \"Hi *{{ first_name }}*\"\nbody_format = \"markdown\""),
    );
    let out = f
        .cmd()
        .args(["preview", "campaign.toml", "--json", "--row", "1"])
        .assert()
        .success();
    let line = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["body"], "<p>Hi <em>Ann</em></p>");
}

#[test]
fn unbalanced_html_in_a_markdown_template_is_checked_on_the_final_html() {
    let f = Fixture::new(
        "intercom_id,first_name,plan,company\nid-1,Ann,pro,Acme\n",
        &markdown_campaign("body = \"Hi <b>{{ first_name }}\"\nbody_format = \"markdown\""),
    );
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "the body's HTML does not balance",
        ));
}
