//! No input file makes the tool panic: random CSV bytes, templates and campaign files go through
//! the library's loading, parsing and rendering, and each comes back as a result or an error.
use crate::common;

use std::path::Path;

use campaign::check;
use campaign::input::config::Campaign;
use proptest::prelude::*;

/// Bytes biased towards what trips CSV readers: delimiters, quotes, line ends, a BOM, bytes that
/// are not UTF-8, and the column names the templates use.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"\xe9".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"intercom_id".to_vec()),
        Just(b"first_name".to_vec()),
        Just(b"id-1".to_vec()),
        Just(b"<script>".to_vec()),
        "[a-z0-9]{1,4}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    let body = prop::collection::vec(piece, 0..40).prop_map(|v| v.concat());
    // Half the time, a sensible header first, so that rows get rendered too.
    (any::<bool>(), body).prop_map(|(header, body)| {
        let mut out = if header {
            b"intercom_id,first_name\n".to_vec()
        } else {
            Vec::new()
        };
        out.extend(body);
        out
    })
}

/// Strings biased towards Tera syntax, valid and not.
fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{ "),
        Just(" }}"),
        Just("{% "),
        Just(" %}"),
        Just("{#"),
        Just("#}"),
        Just("if "),
        Just("endif"),
        Just("for x in "),
        Just("endfor"),
        Just("else"),
        Just(" | "),
        Just("default(value=\"x\")"),
        Just("default"),
        Just("safe"),
        Just("upper"),
        Just("first_name"),
        Just("intercom_id"),
        Just("row"),
        Just("nope"),
        Just("("),
        Just(")"),
        Just("\""),
        Just("'"),
        Just("."),
        Just("["),
        Just("]"),
        Just("<p>"),
        Just("</p>"),
        Just("<a href='x'>"),
        Just("\n"),
        Just(" "),
        Just("é"),
        Just("\u{7}"),
    ];
    let simple = prop::collection::vec(piece, 0..16).prop_map(|v| v.concat());
    prop_oneof![
        4 => simple,
        1 => "\\PC{0,24}",
    ]
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Writes a campaign into `dir` and runs it through load and preflight, as `check` does.
fn run_campaign(
    dir: &Path,
    csv: &[u8],
    subject: &str,
    body: &str,
    body_ext: &str,
    to_id: &str,
    delimiter: &str,
) {
    std::fs::write(dir.join("people.csv"), csv).unwrap();
    std::fs::write(dir.join("subject.txt"), subject).unwrap();
    let body_file = format!("body.{body_ext}");
    std::fs::write(dir.join(&body_file), body).unwrap();
    let toml = format!(
        "recipients = \"people.csv\"\ndelimiter = {}\n\n[message]\nmessage_type = \"email\"\ntemplate = \"plain\"\nfrom = 1\nsubject_file = \"subject.txt\"\nbody_file = {}\n\n[to]\ntype = \"user\"\nid = {}\n",
        toml_string(delimiter),
        toml_string(&body_file),
        toml_string(to_id),
    );
    let path = dir.join("campaign.toml");
    std::fs::write(&path, toml).unwrap();
    let loaded = match check::load(&path) {
        Ok(loaded) => loaded,
        Err(check::LoadError::Invalid(report)) => {
            assert!(report.has_errors());
            let _ = report.render();
            return;
        }
        Err(e @ check::LoadError::Campaign(_)) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut seen = 0u64;
    let pre = check::preflight(
        &loaded,
        campaign::input::config::Duplicates::Refuse,
        &mut |_, rendered| {
            seen += 1;
            assert!(!rendered.to_id.is_empty(), "a valid row has a recipient");
            None
        },
    );
    let _ = pre.report.render();
    // Every row is counted once: valid (rendered) or invalid.
    assert!(pre.rows >= pre.invalid_rows);
    if pre.rendered {
        assert_eq!(seen, pre.rows - pre.invalid_rows);
    } else {
        assert_eq!(seen, 0);
        assert!(pre.report.has_errors());
    }
    assert!(pre.rows <= csv.len() as u64 + 1);
}

proptest! {
    // 64 cases each by default; FUZZ_CASES=5000 for a longer hunt (common::fuzz_cases).
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(64), ..ProptestConfig::default() })]

    #[test]
    fn random_csv_files_never_panic(csv in csv_bytes(), delimiter in prop_oneof![Just(","), Just(";"), Just("\t")]) {
        let dir = tempfile::tempdir().unwrap();
        run_campaign(
            dir.path(),
            &csv,
            "Hello {{ first_name }}",
            "<p>Hi {{ first_name | default(value=\"there\") }}</p>",
            "html",
            "{{ intercom_id }}",
            delimiter,
        );
    }

    #[test]
    fn random_templates_never_panic(
        subject in template(),
        body in template(),
        to_id in template(),
        html in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        run_campaign(
            dir.path(),
            b"intercom_id,first_name\nid-1,<b>Ada</b>\nid-2,\n\"id-3\",\"Gr\"\"ace\"\n",
            &subject,
            &body,
            if html { "html" } else { "txt" },
            &to_id,
            ",",
        );
    }

    #[test]
    fn random_csv_and_templates_together_never_panic(csv in csv_bytes(), body in template()) {
        let dir = tempfile::tempdir().unwrap();
        run_campaign(dir.path(), &csv, "Hi {{ first_name }}", &body, "html", "{{ intercom_id }}", ",");
    }

    #[test]
    fn random_campaign_files_never_panic(text in "\\PC{0,200}", lines in prop::collection::vec(prop_oneof![
        Just("recipients = \"people.csv\""),
        Just("delimiter = \";;\""),
        Just("delimiter = \"\""),
        Just("[message]"),
        Just("message_type = \"email\""),
        Just("message_type = \"in_app\""),
        Just("template = \"plain\""),
        Just("from = 1"),
        Just("from = \"99999999999999999999999\""),
        Just("from = -1"),
        Just("subject = \"{{ x }}\""),
        Just("body = \"b\""),
        Just("body_format = \"xml\""),
        Just("[to]"),
        Just("type = \"user\""),
        Just("id = \"{{ intercom_id }}\""),
        Just("[send]"),
        Just("rate = \"0/s\""),
        Just("rate = \"99999999999999999999/s\""),
        Just("concurrency = 0"),
        Just("concurrency = \"auto\""),
        Just("max_failure_share = 1e309"),
        Just("retry_not_found_for = \"9999999999999999h\""),
        Just("request_timeout = \"-1s\""),
        Just("[intercom]"),
        Just("version = \"9.9\""),
    ], 0..20)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), "intercom_id,x\nid-1,a\n").unwrap();
        for content in [text.clone(), lines.join("\n")] {
            let path = dir.path().join("campaign.toml");
            std::fs::write(&path, content).unwrap();
            let _ = Campaign::load(&path);
            if let Ok(loaded) = check::load(&path) {
                let _ = check::preflight(&loaded, campaign::input::config::Duplicates::Allow, &mut |_, _| None);
            }
        }
    }
}

/// Inputs the generators found or that are worth keeping as fixed cases.
#[test]
fn known_awkward_inputs_do_not_panic() {
    let csvs: &[&[u8]] = &[
        b"",
        b"\xef\xbb\xbf",
        b"\n\n\n",
        b"\"",
        b"intercom_id,first_name\n\"",
        b"intercom_id,first_name\nid-1,\"a\nb",
        b"intercom_id,first_name\r\nid-1,\xe9\r\n",
        b"intercom_id\xff,first_name\nid-1,a\n",
        b"intercom_id,first_name\nid-1,a,b,c,d\n\n\nid-2\n",
        b",,,\n,,,\n",
    ];
    for csv in csvs {
        let dir = tempfile::tempdir().unwrap();
        run_campaign(
            dir.path(),
            csv,
            "Hello {{ first_name }}",
            "<p>{{ first_name }}</p>",
            "html",
            "{{ intercom_id }}",
            ",",
        );
    }
    let templates = [
        "{{",
        "{{ first_name | default }}",
        "{{ first_name | default(value=first_name) }}",
        "{{ first_name.x.y }}",
        "{{ first_name[0] }}",
        "{% for c in first_name %}{{ c }}{% endfor %}",
        "{{ row / 0 }}",
        "{{ 1 / 0 }}",
        "{{ first_name | truncate(length=-1) }}",
        // A self-calling macro overflowed the stack (an abort, not even a panic).
        "{% macro m() %}{{ self::m() }}{% endmacro m %}{{ self::m() }}",
        // A huge range built the whole list first: a hang.
        "{% for i in range(end=100000000000) %}x{% endfor %}",
        "{% for i in range(start=5, end=1, step_by=0) %}x{% endfor %}",
    ];
    for t in templates {
        let dir = tempfile::tempdir().unwrap();
        run_campaign(
            dir.path(),
            b"intercom_id,first_name\nid-1,Ada\n",
            t,
            t,
            "html",
            t,
            ",",
        );
    }
}
