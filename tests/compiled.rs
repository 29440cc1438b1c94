//! The compiled templates (`campaign::compiled`) render exactly what Tera renders: the same
//! request, the same warnings, the same errors, for random templates over random rows. Templates
//! built only of what compiles are checked to be compiled, so the comparison is not between Tera
//! and itself.
mod common;

use std::path::Path;

use campaign::check::{self, Loaded, RowRenderer};
use campaign::recipients::Recipients;
use proptest::prelude::*;

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
        Just("https://example.com/a".to_string()),
        Just("12.5".to_string()),
        Just("-".to_string()),
        Just("--".to_string()),
        Just("br".to_string()),
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

/// Filters, with literal arguments; some fail on some values (Tera's errors must come out).
fn filter() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("title"),
        Just("upper"),
        Just("lower"),
        Just("trim"),
        Just("capitalize"),
        Just("default(value=\"friend\")"),
        Just("default(value=\"<you>\")"),
        Just("safe"),
        Just("escape"),
        Just("length"),
        Just("wordcount"),
        Just("truncate(length=3)"),
        Just("replace(from=\"a\", to=\"<&>\")"),
        Just("striptags"),
        Just("split(pat=\" \")"),
        Just("slice(end=1)"),
        Just("round"),
        Just("first"),
    ]
}

/// `{{ var | f | g }}`, with or without whitespace control.
fn expression() -> impl Strategy<Value = String> {
    (
        var(),
        prop::collection::vec(filter(), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(var, filters, left, right)| {
            let mut out = String::from(if left { "{{- " } else { "{{ " });
            out.push_str(var);
            for f in filters {
                out.push_str(" | ");
                out.push_str(f);
            }
            out.push_str(if right { " -}}" } else { " }}" });
            out
        })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Hi ".to_string()),
        Just("<p>".to_string()),
        Just("</p>\n".to_string()),
        Just("  \n ".to_string()),
        Just("a < b & c".to_string()),
        Just("é".to_string()),
        Just("{# a comment #}".to_string()),
        Just("{% raw %}{{ not a var }}{% endraw %}".to_string()),
        // Pieces of tags, so that values land inside tags, names, comments and after a `/`:
        // the HTML check's finding must be the same as on Tera's rendering.
        Just("<a href=\"https://x.test/".to_string()),
        Just("\">".to_string()),
        Just("</a>".to_string()),
        Just("<".to_string()),
        Just("</".to_string()),
        Just("<b".to_string()),
        Just(">".to_string()),
        Just("<!-".to_string()),
        Just("<!-- ".to_string()),
        Just(" -->".to_string()),
        Just("<br /".to_string()),
        Just("<div class=".to_string()),
        Just("</div>".to_string()),
    ]
}

/// A template of text, expressions and `if`s: everything `compiled` handles.
fn compilable() -> impl Strategy<Value = String> {
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
            any::<bool>(),
            inner,
        )
            .prop_map(|(branches, otherwise, trim, after)| {
                let (open, close) = if trim {
                    ("{%- ", " -%}")
                } else {
                    ("{% ", " %}")
                };
                let mut out = String::new();
                for (i, (negated, var, filter, body)) in branches.into_iter().enumerate() {
                    let keyword = if i == 0 { "if" } else { "elif" };
                    let not = if negated { "not " } else { "" };
                    let filter = filter.map(|f| format!(" | {f}")).unwrap_or_default();
                    out.push_str(&format!("{open}{keyword} {not}{var}{filter}{close}{body}"));
                }
                if let Some(body) = otherwise {
                    out.push_str(&format!("{open}else{close}{body}"));
                }
                out.push_str(&format!("{open}endif{close}{after}"));
                out
            })
    })
}

/// Mostly compilable, sometimes with what is not (Tera renders those).
fn any_template() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => compilable(),
        1 => (compilable(), prop_oneof![
            Just("{% set x = first_name %}{{ x }}"),
            Just("{% for c in [1, 2] %}{{ c }}{% endfor %}"),
            Just("{{ plan == \"pro\" }}"),
            Just("{% if plan == \"pro\" %}P{% endif %}"),
            Just("{{ row + 1 }}"),
            Just("{{ not first_name }}"),
            Just("{{ first_name ~ plan }}"),
            Just("{{ first_name | no_such_filter }}"),
        ]).prop_map(|(t, extra)| format!("{t}{extra}")),
    ]
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
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

fn load(path: &Path) -> Option<Loaded> {
    // `None`: a template Tera cannot parse, so nothing to compare.
    check::load(path).unwrap().ok()
}

/// Renders every row both ways and asserts the results are equal; returns how many templates
/// were compiled.
fn compare(loaded: &Loaded) -> usize {
    let c = &loaded.campaign;
    let (mut recipients, _) = Recipients::open(&c.recipients, c.delimiter).unwrap();
    let (reference, _) = Recipients::open(&c.recipients, c.delimiter).unwrap();
    let compiled = RowRenderer::new(loaded, &recipients);
    let tera = RowRenderer::with_tera_only(loaded, &reference);
    assert!(tera.compiled().is_empty());
    while let Some(row) = recipients.next_row() {
        let row = row.unwrap();
        assert_eq!(
            compiled.render(&row),
            tera.render(&row),
            "row {}: {:?}",
            row.number,
            row.fields
        );
    }
    compiled.compiled().len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(128), ..ProptestConfig::default() })]

    #[test]
    fn compiled_templates_render_as_tera_does(
        rows in prop::collection::vec(prop::collection::vec(cell(), 4), 1..6),
        subject in compilable(),
        body in compilable(),
        html in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_campaign(dir.path(), &rows, &subject, &body, "{{ intercom_id | default(value=\"x\") }}{{ row }}", html);
        if let Some(loaded) = load(&path) {
            // Everything in these templates compiles: the comparison is real.
            prop_assert_eq!(compare(&loaded), 3, "subject {:?}, body {:?}", subject, body);
        }
    }

    #[test]
    fn any_template_renders_as_tera_does(
        rows in prop::collection::vec(prop::collection::vec(cell(), 4), 1..4),
        subject in any_template(),
        body in any_template(),
        to_id in any_template(),
        html in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_campaign(dir.path(), &rows, &subject, &body, &to_id, html);
        if let Some(loaded) = load(&path) {
            compare(&loaded);
        }
    }
}

#[test]
fn the_samples_templates_are_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    for name in ["welcome.toml", "feature-inapp.toml"] {
        let loaded = load(&root.join(name)).expect("the sample loads");
        let templates = if loaded.campaign.subject.is_some() {
            3
        } else {
            2
        };
        assert_eq!(compare(&loaded), templates, "{name}");
    }
}

#[test]
fn templates_with_loops_or_assignments_are_left_to_tera() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![vec!["id-1".into(), "Ada".into(), "pro".into(), "".into()]];
    let path = write_campaign(
        dir.path(),
        &rows,
        "{% set x = first_name %}Hi {{ x }}",
        "{% for i in [1, 2] %}{{ i }}{% endfor %} {{ plan }}",
        "{{ intercom_id }}",
        true,
    );
    let loaded = load(&path).unwrap();
    assert_eq!(compare(&loaded), 1, "only the recipient id compiles");
}

#[test]
fn the_html_check_is_judged_from_the_template_where_values_cannot_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![vec!["id-1".into(), "Ada".into(), "pro".into(), "br".into()]];
    let judged = |body: &str| {
        let path = write_campaign(dir.path(), &rows, "Hi", body, "{{ intercom_id }}", true);
        let loaded = load(&path).unwrap();
        let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        let fields = ["id-1", "Ada", "pro", "br"];
        let plan = loaded.templates.plan(&columns);
        assert_eq!(plan.compiled().len(), 3, "{body}");
        plan.render(&fields, 1).unwrap().html
    };
    // Values between tags and inside attributes: known, per path through the `if`s.
    assert_eq!(
        judged("<p>Hi {{ first_name }} <a href=\"x/{{ plan }}\">x</a></p>"),
        Some(None)
    );
    assert_eq!(
        judged("{% if plan %}<b>{{ plan }}{% else %}<i>{% endif %}</b>"),
        Some(None)
    );
    assert_eq!(
        judged("{% if company %}<i>{% else %}<b>{% endif %}</b>"),
        Some(Some("`</b>` closes `<i>`".into())),
        "`company` is set: the `<i>` path"
    );
    // A value that could change a tag, or is not escaped: the rendering is checked.
    assert_eq!(judged("<{{ company }}>x"), None);
    assert_eq!(judged("<p>{{ first_name | safe }}</p>"), None);
}
