//! Templates as customers see them: text reaches them as written, spreadsheet headers are usable
//! names, and templates are sealed (no environment, no other templates) and bounded (depth,
//! iterations, sizes), each refusal an exit 2 that names the template and line and sends nothing.
//! Also: random templates render through the sealed and instrumented syntax tree exactly as plain
//! Tera renders their source.
use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use campaign::check::{self, Loaded};
use campaign::input::recipients::Recipients;
use common::*;
use proptest::prelude::*;

fn ok_server() -> TestServer {
    TestServer::start(Arc::new(|r, _| ok_reply(r)))
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// An email campaign over `csv` with an inline subject and recipient id, and `body` in
/// `body.html`.
fn campaign(csv: &str, subject: &str, body: &str, to_id: &str) -> Fixture {
    let toml = format!(
        "recipients = \"people.csv\"\n\n[message]\nmessage_type = \"email\"\ntemplate = \"plain\"\nfrom = 394051\nsubject = {}\nbody_file = \"body.html\"\n\n[to]\ntype = \"user\"\nid = {}\n\n[send]\nrate = \"200/s\"\n",
        toml_string(subject),
        toml_string(to_id),
    );
    let f = Fixture::new(csv, &toml);
    f.write("body.html", body);
    f
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

const PEOPLE: &str = "intercom_id,first_name\nid-1,Ada\nid-2,\n";

/// A body over `PEOPLE`.
fn with_body(body: &str) -> Fixture {
    campaign(PEOPLE, "Hello", body, "{{ intercom_id }}")
}

/// `send` and `check` exit 2 and say each of `expected`; nothing reaches the server, nothing is
/// recorded, and the token appears nowhere. Returns check's stderr.
fn assert_refused(f: &Fixture, expected: &[&str]) -> String {
    let server = ok_server();
    let a = f.send(&server, &[]).code(2);
    let send_err = stderr_of(&a);
    assert!(server.requests().is_empty(), "a request was sent");
    assert!(!f.results().exists() || f.result_rows().is_empty());
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let check_err = stderr_of(&a);
    for err in [&send_err, &check_err] {
        for e in expected {
            assert!(err.contains(e), "stderr lacks {e:?}:\n{err}");
        }
        assert!(!err.contains(TOKEN), "the token was printed:\n{err}");
    }
    check_err
}

/// Sends the campaign to a server that accepts everything; the bodies it received, by recipient.
fn sent(f: &Fixture) -> HashMap<String, serde_json::Value> {
    let server = ok_server();
    f.send(&server, &[]).success();
    server
        .requests()
        .into_iter()
        .map(|r| (r.to_id(), r.body))
        .collect()
}

// ---- 15.2: text reaches customers as written ------------------------------------------------

#[test]
fn text_literals_and_raw_blocks_reach_customers_as_written() {
    let f = campaign(
        PEOPLE,
        "Plans: basic | default | custom",
        "<p>Plans: basic | default | custom. {{ \"x | default\" }} {% raw %}{{ a | default }}{% endraw %} Hi {{ first_name | default(value=\"there\") }}.</p>",
        "{{ intercom_id }}",
    );
    let bodies = sent(&f);
    assert_eq!(bodies["id-1"]["subject"], "Plans: basic | default | custom");
    assert_eq!(
        bodies["id-1"]["body"],
        "<p>Plans: basic | default | custom. x | default {{ a | default }} Hi Ada.</p>"
    );
    // `default` still covers an empty cell.
    assert_eq!(
        bodies["id-2"]["body"],
        "<p>Plans: basic | default | custom. x | default {{ a | default }} Hi there.</p>"
    );
}

#[test]
fn default_covers_an_empty_cell_wherever_it_is_in_the_chain() {
    let f = with_body(
        "<p>{{ first_name | default(value=\"friend\") | upper }} {{ first_name | upper | default(value=\"pal\") }}{% if first_name | default(value=\"\") %} set{% endif %}</p>",
    );
    let bodies = sent(&f);
    assert_eq!(bodies["id-1"]["body"], "<p>ADA ADA set</p>");
    assert_eq!(bodies["id-2"]["body"], "<p>FRIEND pal</p>");
}

#[test]
fn tags_inside_text_raw_or_strings_are_not_taken_for_macros() {
    let f = with_body(
        "<p>{% raw %}{% macro m() %}{% import \"x\" as y %}{% endraw %} {{ \"{% import\" }}</p>",
    );
    let bodies = sent(&f);
    assert_eq!(
        bodies["id-1"]["body"],
        "<p>{% macro m() %}{% import \"x\" as y %} {% import</p>"
    );
}

// ---- 15.5: columns as spreadsheets name them ------------------------------------------------

const SPREADSHEET: &str =
    "Intercom ID,First name,user.name,Prénom,2024 spend\nid-1,Ada,ada.l,Adèle,12\n";

#[test]
fn spreadsheet_headers_are_usable_by_their_derived_names_and_exactly() {
    let f = campaign(
        SPREADSHEET,
        "Hi {{ first_name }} ({{ prenom }})",
        "<p>{{ user_name }} = {{ columns[\"user.name\"] }}; {{ columns[\"Intercom ID\"] }}; {{ _2024_spend }}</p>",
        "{{ intercom_id }}",
    );
    f.cmd().args(["check", "campaign.toml"]).assert().success();
    let bodies = sent(&f);
    assert_eq!(bodies["id-1"]["subject"], "Hi Ada (Adèle)");
    assert_eq!(bodies["id-1"]["body"], "<p>ada.l = ada.l; id-1; 12</p>");
    // Preview renders the same.
    let a = f
        .cmd()
        .args(["preview", "campaign.toml", "--json"])
        .assert()
        .success();
    let preview: serde_json::Value =
        serde_json::from_slice(a.get_output().stdout.split(|b| *b == b'\n').next().unwrap())
            .unwrap();
    assert_eq!(preview["body"], bodies["id-1"]["body"]);
}

#[test]
fn did_you_mean_suggests_a_name_a_template_can_use() {
    let f = campaign(
        SPREADSHEET,
        "Hi {{ frist_name }}",
        "<p>{{ user.name }}</p>",
        "{{ intercom_id }}",
    );
    assert_refused(
        &f,
        &[
            "campaign.toml [message] subject, variable `frist_name` at column 7 of the value: `frist_name` is not a column of people.csv; did you mean `first_name`?",
            "body.html: line 1, column 7, variable `user`: `user` is not a column of people.csv; did you mean `user_name`?",
        ],
    );
    let f = campaign(
        SPREADSHEET,
        "Hi",
        "<p>{{ zzzzzzzz }}</p>",
        "{{ intercom_id }}",
    );
    assert_refused(
        &f,
        &["the columns are: intercom_id, first_name, user_name, prenom, _2024_spend"],
    );
}

#[test]
fn two_headers_with_one_name_are_an_error() {
    let f = campaign(
        "intercom_id,First name,first_name\nid-1,Ada,Grace\n",
        "Hi {{ first_name }}",
        "<p>Hi</p>",
        "{{ intercom_id }}",
    );
    assert_refused(
        &f,
        &["error: people.csv: line 1, column 3: headers `First name` (column 2) and `first_name` are both `first_name` in templates; rename one of them"],
    );
}

// ---- 15.8: sealed -------------------------------------------------------------------------

#[test]
fn templates_cannot_read_the_environment() {
    let f = campaign(
        PEOPLE,
        "Hello",
        "<p>Hi</p>\n{% if first_name %}{{ get_env(name=\"INTERCOM_TOKEN\") }}{% endif %}",
        "{{ intercom_id }}",
    );
    assert_refused(
        &f,
        &["error: body.html: line 2, column 20: `get_env` is not available: a template may not read the environment"],
    );
    let f = campaign(PEOPLE, "{{ now() }}", "<p>Hi</p>", "{{ intercom_id }}");
    assert_refused(
        &f,
        &["error: campaign.toml [message] subject: line 1, column 1: unknown function `now`"],
    );
}

#[test]
fn templates_cannot_include_other_templates_or_themselves() {
    let f = with_body("<p>Hi</p>\n  {% include \"body.html\" %}");
    assert_refused(
        &f,
        &["error: body.html: line 2, column 3: `include` is not supported in message templates"],
    );
    let f = with_body("{% import \"body.html\" as m %}<p>{{ m::x() }}</p>");
    assert_refused(
        &f,
        &["error: body.html: line 1, column 1: `import` is not supported in message templates"],
    );
}

#[test]
fn unknown_filters_are_found_before_any_row() {
    let f = with_body("<p>{{ first_name | titel }}</p>");
    assert_refused(
        &f,
        &["error: body.html: line 1, column 4: unknown filter `titel`; did you mean `title`?"],
    );
}

// ---- 15.8: bounded ------------------------------------------------------------------------

#[test]
fn deep_nesting_is_refused_where_it_goes_too_deep() {
    let deep = format!(
        "<p>\n{}x{}</p>",
        "{% if first_name %}".repeat(5000),
        "{% endif %}".repeat(5000)
    );
    let f = with_body(&deep);
    assert_refused(
        &f,
        &["error: body.html: line 2, column 609: tags nest deeper than 32 levels"],
    );
}

#[test]
fn nested_loops_stop_at_the_iteration_bound() {
    let f = with_body(
        "<p>{% for a in range(end=100) %}{% for b in range(end=100) %}{% for c in range(end=100) %}.{% endfor %}{% endfor %}{% endfor %}</p>",
    );
    assert_refused(
        &f,
        &[
            "error: people.csv: record 1, line 2, template body.html: the loop at line 1, column ",
            "goes round more than 10000 times in one message",
        ],
    );
}

#[test]
fn a_value_that_doubles_stops_at_the_size_bound() {
    let f = with_body(
        "{% set_global s = \"ab\" %}{% for i in range(end=64) %}{% set_global s = s ~ s %}{% endfor %}<p>{{ s | length }}</p>",
    );
    assert_refused(
        &f,
        &["error: people.csv: record 1, line 2, template body.html: the concatenation (`~`) at line 1, column 54 builds a value of more than 1048576 bytes"],
    );
    // Without a loop, one `set` after another.
    let f = with_body(&format!(
        "{{% set s = \"abcdefgh\" %}}{}<p>{{{{ s | length }}}}</p>",
        "{% set s = s ~ s %}".repeat(40)
    ));
    assert_refused(&f, &["builds a value of more than 1048576 bytes"]);
}

#[test]
fn a_rendering_stops_at_the_output_bound() {
    let f = with_body(&format!(
        "<p>{{% for i in range(end=10000) %}}{}{{% endfor %}}</p>",
        "x".repeat(200)
    ));
    assert_refused(
        &f,
        &["error: people.csv: record 1, line 2, template body.html: the rendering is over 1048576 bytes"],
    );
}

#[test]
fn templates_within_the_bounds_render() {
    let f = with_body(
        "<p>{% set_global n = 0 %}{% set words = \"a b c\" | split(pat=\" \") %}{% for w in words %}{% set_global n = n + 1 %}{{ w }}{% endfor %} {{ n }} {% for i in range(end=3) %}{{ i }}{% endfor %}</p>",
    );
    let bodies = sent(&f);
    assert_eq!(bodies["id-1"]["body"], "<p>abc 3 012</p>");
}

// ---- The HTML check, on what is rendered ------------------------------------------------------

#[test]
fn the_html_check_judges_each_rendering() {
    let csv = "intercom_id,first_name,company\nid-1,Ada,\nid-2,Bob,<b\n";
    let check = |body: &str| {
        let f = campaign(csv, "Hi", body, "{{ intercom_id }}");
        let a = f.cmd().args(["check", "campaign.toml"]).assert().success();
        stderr_of(&a)
    };
    assert_eq!(
        check("<p>Hi {{ first_name }} <a href=\"x/{{ company }}\">x</a></p>"),
        ""
    );
    let err = check("{% if company %}<i>{% else %}<b>{% endif %}</b>");
    assert!(
        err.contains("warning: people.csv: record 2, line 3, body: the body's HTML does not balance: `</b>` closes `<i>`"),
        "{err}"
    );
    assert!(!err.contains("record 1"), "{err}");
    // A value that makes a tag, unescaped.
    let err = check("<p>{{ company | safe }}>x</p>");
    assert!(
        err.contains("warning: people.csv: record 2, line 3, body: the body's HTML does not balance: `</p>` closes `<b>`"),
        "{err}"
    );
}

// ---- Sealed rendering is Tera's rendering ------------------------------------------------------

const COLUMNS: [&str; 4] = ["intercom_id", "first_name", "plan", "company"];

/// Cell values that exercise escaping, trimming, case and emptiness.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("ada lovelace".to_string()),
        Just("<b>Bold & \"quoted\" 'it's' a/b</b>".to_string()),
        Just("ÉCOLE élève ß".to_string()),
        Just("0".to_string()),
        Just("12.5".to_string()),
        Just("--".to_string()),
        "[a-zA-Z <>&'\"/é]{0,12}",
    ]
}

fn var() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("first_name"),
        Just("plan"),
        Just("company"),
        Just("intercom_id"),
        Just("row"),
    ]
}

/// Filters with literal arguments; some fail on some values (both must fail then).
fn filter() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("title"),
        Just("upper"),
        Just("trim"),
        Just("capitalize"),
        Just("default(value=\"friend\")"),
        Just("default(value=\"<you>\")"),
        Just("safe"),
        Just("escape"),
        Just("length"),
        Just("truncate(length=3)"),
        Just("replace(from=\"a\", to=\"<&>\")"),
        Just("split(pat=\" \")"),
        Just("round"),
        Just("first"),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (var(), prop::collection::vec(filter(), 0..3), any::<bool>()).prop_map(
        |(var, filters, trim)| {
            let mut out = String::from(if trim { "{{- " } else { "{{ " });
            out.push_str(var);
            for f in filters {
                out.push_str(" | ");
                out.push_str(f);
            }
            out.push_str(" }}");
            out
        },
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Hi ".to_string()),
        Just("<p>".to_string()),
        Just("</p>\n".to_string()),
        Just("  \n ".to_string()),
        Just("a < b & c".to_string()),
        Just("{# a comment #}".to_string()),
        Just("{% raw %}{{ not a var }}{% endraw %}".to_string()),
        Just("{% set x = first_name | upper %}{{ x }}".to_string()),
        Just("{% for w in plan | split(pat=\" \") %}[{{ w }}]{% endfor %}".to_string()),
        Just("{% for i in range(end=3) %}{{ i }}{% if loop.last %}.{% endif %}{% endfor %}".to_string()),
        Just("{% set_global n = 1 %}{% for c in [1, 2] %}{% set_global n = n + c %}{% endfor %}{{ n }}".to_string()),
        Just("{% filter upper %}up {{ company }}{% endfilter %}".to_string()),
    ]
}

/// Text, expressions and `if`s, nested.
fn template() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![2 => text(), 2 => expression()];
    let seq = prop::collection::vec(leaf, 1..6).prop_map(|v| v.concat());
    seq.prop_recursive(2, 24, 4, |inner| {
        (
            prop::collection::vec(
                (
                    any::<bool>(),
                    var(),
                    prop::option::of(filter()),
                    inner.clone(),
                ),
                1..3,
            ),
            prop::option::of(inner.clone()),
            inner,
        )
            .prop_map(|(branches, otherwise, after)| {
                let mut out = String::new();
                for (i, (negated, var, filter, body)) in branches.into_iter().enumerate() {
                    let keyword = if i == 0 { "if" } else { "elif" };
                    let not = if negated { "not " } else { "" };
                    let filter = filter.map(|f| format!(" | {f}")).unwrap_or_default();
                    out.push_str(&format!("{{% {keyword} {not}{var}{filter} %}}{body}"));
                }
                if let Some(body) = otherwise {
                    out.push_str(&format!("{{% else %}}{body}"));
                }
                out.push_str(&format!("{{% endif %}}{after}"));
                out
            })
    })
}

fn write_campaign(
    dir: &Path,
    rows: &[Vec<String>],
    subject: &str,
    body: &str,
    to_id: &str,
    html: bool,
) -> std::path::PathBuf {
    let mut csv = csv::Writer::from_path(dir.join("people.csv")).unwrap();
    csv.write_record(COLUMNS).unwrap();
    for row in rows {
        csv.write_record(row).unwrap();
    }
    csv.flush().unwrap();
    std::fs::write(dir.join("subject.txt"), subject).unwrap();
    let body_file = if html { "body.html" } else { "body.txt" };
    std::fs::write(dir.join(body_file), body).unwrap();
    let toml = format!(
        "recipients = \"people.csv\"\n\n[message]\nmessage_type = \"email\"\ntemplate = \"plain\"\nfrom = 1\nsubject_file = \"subject.txt\"\nbody_file = \"{body_file}\"\n\n[to]\ntype = \"user\"\nid = {}\n",
        toml_string(to_id),
    );
    let path = dir.join("campaign.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// The reference: plain Tera over the source, with `default` routed in the text (which is right
/// for these generated templates, whose text and literals hold no `| default`).
fn reference(
    subject: &str,
    body: &str,
    to_id: &str,
    html: bool,
) -> impl Fn(&[String], u64) -> Result<(String, String, String), ()> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.register_filter(
        "or_else",
        |v: &tera::Value, args: &HashMap<String, tera::Value>| {
            let empty = v.is_null() || v.as_str() == Some("");
            Ok(if empty {
                args["value"].clone()
            } else {
                v.clone()
            })
        },
    );
    let body_name = if html { "body.html" } else { "body.txt" };
    for (name, src) in [
        ("subject.txt", subject),
        (body_name, body),
        ("to_id.txt", to_id),
    ] {
        tera.add_raw_template(name, &src.replace("| default", "| or_else"))
            .unwrap();
    }
    move |fields: &[String], row: u64| {
        let mut ctx = tera::Context::new();
        for (name, value) in COLUMNS.iter().zip(fields) {
            ctx.insert(*name, value);
        }
        ctx.insert("row", &row);
        let render = |name: &str| tera.render(name, &ctx).map_err(|_| ());
        Ok((
            render("subject.txt")?,
            render(body_name)?,
            render("to_id.txt")?.trim().to_string(),
        ))
    }
}

fn load(path: &Path) -> Loaded {
    match check::load(path) {
        Ok(loaded) => loaded,
        Err(check::LoadError::Invalid(report)) => {
            panic!("the templates do not load:\n{}", report.render())
        }
        Err(check::LoadError::Campaign(e)) => panic!("the campaign file: {e:#}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(128), ..ProptestConfig::default() })]

    #[test]
    fn sealed_templates_render_as_tera_renders_their_source(
        rows in prop::collection::vec(prop::collection::vec(cell(), 4), 1..5),
        subject in template(),
        body in template(),
        html in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let to_id = "{{ intercom_id | default(value=\"x\") }}{{ row }}";
        let path = write_campaign(dir.path(), &rows, &subject, &body, to_id, html);
        let loaded = load(&path);
        let expected = reference(&subject, &body, to_id, html);
        let c = &loaded.campaign;
        let (recipients, _) = Recipients::open(&c.recipients, c.delimiter).unwrap();
        let plan = loaded.templates.plan(recipients.columns());
        for (i, row) in rows.iter().enumerate() {
            let fields: Vec<&str> = row.iter().map(String::as_str).collect();
            let number = i as u64 + 1;
            let got = plan
                .render(&fields, number)
                .map(|r| (r.subject.unwrap_or_default(), r.body, r.to_id))
                .map_err(|_| ());
            prop_assert_eq!(got, expected(row, number), "row {}: {:?}", number, row);
        }
    }
}

#[test]
fn the_samples_render() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let loaded = load(&root.join("welcome.toml"));
    let c = &loaded.campaign;
    let (mut recipients, _) = Recipients::open(&c.recipients, c.delimiter).unwrap();
    let renderer = check::RowRenderer::new(&loaded, &recipients);
    let row = recipients.next_row().unwrap().unwrap();
    let (request, warnings) = renderer.render(&row).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(request.subject.as_deref(), Some("Welcome to Pro, Ada"));
    assert_eq!(
        request.body,
        "<p>Hi Ada,</p>\n<p>Thanks for choosing the <b>Pro</b> plan for Analytical Engines Ltd.\nYour workspace is ready, and we are here if you need anything.</p>\n<p>If you have a minute, reply to this email and tell us what you hope to get done first.</p>\n<p>Cheers,<br>The Support Team</p>"
    );
    assert_eq!(request.to.id, "269e0d37f2a74de452e6b438");
}

#[test]
fn assignments_and_loops_render() {
    let f = campaign(
        "intercom_id,first_name,plan\nid-1,Ada,pro\n",
        "{% set x = first_name %}Hi {{ x }}",
        "{% for i in [1, 2] %}{{ i }}{% endfor %} {{ plan }}",
        "{{ intercom_id }}",
    );
    let bodies = sent(&f);
    assert_eq!(bodies["id-1"]["subject"], "Hi Ada");
    assert_eq!(bodies["id-1"]["body"], "12 pro");
}
