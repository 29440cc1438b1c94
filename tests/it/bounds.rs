//! What a template or an input file can make `check` spend is bounded before it is spent: a
//! filter that would build gigabytes is refused naming the row and the filter, with the process
//! held to a memory cap it must not reach (under `prlimit`, so that an abort would show); files
//! that are devices or pipes are refused instead of read forever.
use crate::common;

use common::*;
use predicates::prelude::*;

/// The body line of `inapp_campaign`.
const BODY: &str = r#"body = "<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>""#;

/// The peak memory the README promises for `check`, as an address-space cap: an allocation past
/// it fails, and the process aborts (exit 134) instead of answering.
const CAP_BYTES: u64 = 512 << 20;

fn hostile_fixture(body: &str, rows: usize, cell: usize) -> Fixture {
    let mut csv = String::from("intercom_id,first_name,note\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "id-{i},{},{}\n",
            "x".repeat(cell),
            "@".repeat(cell)
        ));
    }
    let campaign = inapp_campaign("").replace(BODY, &format!("body = '''{body}'''"));
    assert!(campaign.contains(body), "{campaign}");
    Fixture::new(&csv, &campaign)
}

/// `campaign check` under the memory cap.
fn capped_check(f: &Fixture) -> Option<assert_cmd::assert::Assert> {
    let prlimit = require_tool("PRLIMIT", "prlimit")?;
    let mut cmd = assert_cmd::Command::new(prlimit);
    cmd.current_dir(f.dir.path())
        .arg(format!("--as={CAP_BYTES}"))
        .arg(assert_cmd::cargo::cargo_bin("campaign"))
        .args(["check", "campaign.toml"])
        .timeout(std::time::Duration::from_secs(120));
    Some(cmd.assert())
}

#[test]
fn a_filter_that_would_build_gigabytes_is_refused_naming_row_and_filter() {
    // 30,000 `@`s each replaced by a 30,000-byte name: 900 MB a row, within the record bound.
    let f = hostile_fixture("{{ note | replace(from=\"@\", to=first_name) }}", 8, 30_000);
    let Some(assert) = capped_check(&f) else {
        return;
    };
    assert.code(2).stderr(
        predicate::str::contains("people.csv: record 1, line 2, template ")
            .and(predicate::str::contains(
                "the filter `replace` at line 1, column 1 would build a value of 900000000 bytes",
            ))
            .and(predicate::str::contains("record 8, line 9")),
    );
}

#[test]
fn growth_by_join_concatenation_chains_and_filter_sections_is_refused() {
    for (body, says) in [
        (
            "{{ note | split(pat=\"\") | join(sep=first_name) }}",
            "the filter `join` at line 1, column 1 would build a value of 900060000 bytes",
        ),
        (
            "{{ note | replace(from=\"@\", to=\"&\") | escape | escape | escape | escape | escape | escape | escape | escape | escape | escape }}",
            "the filter `escape` at line 1, column 1 would build a value of",
        ),
        (
            "{% set a = note ~ note ~ note ~ note %}{% set b = a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a %}{{ b }}",
            "the concatenation (`~`) at line 1, column 40 builds a value of more than 1048576 bytes",
        ),
        (
            "{% filter upper %}{% for i in range(end=10000) %}{{ note }}{% endfor %}{% endfilter %}",
            "the `filter` section at line 1, column 1 writes more than 1048576 bytes",
        ),
    ] {
        let f = hostile_fixture(body, 2, 30_000);
        let Some(assert) = capped_check(&f) else {
            return;
        };
        let out = assert.code(2).get_output().clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("record 1, line 2"), "{body}: {stderr}");
        assert!(stderr.contains(says), "{body}: {stderr}");
    }
}

#[test]
fn a_long_concatenation_and_a_section_in_a_section_are_refused_before_any_row() {
    let long = vec!["first_name"; 17].join(" ~ ");
    let f = hostile_fixture(&format!("{{{{ {long} }}}}"), 1, 3);
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the concatenation (`~`) joins 17 values; at most 16 can be joined in one expression",
        ));
    let f = hostile_fixture(
        "{% filter upper %}{% filter trim %}x{% endfilter %}{% endfilter %}",
        1,
        3,
    );
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "a `filter` section inside another is not supported",
        ));
}

#[test]
fn devices_and_pipes_are_refused_not_read() {
    let f = Fixture::new(&people_csv(2), &inapp_campaign(""));
    let body = f.campaign();
    let text = std::fs::read_to_string(&body).unwrap();
    f.write("zero.toml", text.replace(BODY, "body_file = \"/dev/zero\""));
    f.cmd()
        .args(["check", "zero.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "body_file: /dev/zero is a device, not a regular file: give the path of a file",
        ));
    let fifo = f.path("fifo.csv");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    f.write(
        "fifo.toml",
        text.replace("recipients = \"people.csv\"", "recipients = \"fifo.csv\""),
    );
    f.cmd()
        .args(["check", "fifo.toml"])
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the recipients file: fifo.csv is a pipe (FIFO), not a regular file",
        ));
}

#[test]
fn a_device_as_the_sandboxs_contacts_is_refused_not_read() {
    let campaign = inapp_campaign("")
        .replace("type = \"user\"", "type = \"contact\"")
        .replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\"");
    let f = Fixture::new("email,first_name,plan\na@x.test,A,p\n", &campaign);
    f.cmd()
        .args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--results",
            "results.csv",
        ])
        .args(["--sandbox-contacts", "/dev/zero", "--yes"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "/dev/zero is a device, not a regular file",
        ));
}

#[test]
fn a_subject_device_a_body_pipe_and_a_body_past_its_bound_are_refused_naming_the_file() {
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    let text = std::fs::read_to_string(f.campaign()).unwrap();
    let subject = "subject = \"Hello {{ first_name }}\"";
    assert!(text.contains(subject) && text.contains(BODY), "{text}");
    f.write(
        "zero.toml",
        text.replace(subject, "subject_file = \"/dev/zero\""),
    );
    f.write("pipe.toml", text.replace(BODY, "body_file = \"body.fifo\""));
    f.write("big.toml", text.replace(BODY, "body_file = \"big.html\""));
    assert!(std::process::Command::new("mkfifo")
        .arg(f.path("body.fifo"))
        .status()
        .unwrap()
        .success());
    f.write("big.html", "x".repeat((1 << 20) + 1));
    for (toml, says) in [
        ("zero.toml", "/dev/zero is a device, not a regular file"),
        (
            "pipe.toml",
            "body.fifo is a pipe (FIFO), not a regular file",
        ),
        ("big.toml", "big.html is over 1048576 bytes"),
    ] {
        f.cmd()
            .args(["check", toml])
            .timeout(std::time::Duration::from_secs(20))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}
