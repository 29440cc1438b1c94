//! What the check says about the recipients file and the rendered values, as a user sees it:
//! lines counted as an editor counts them whatever the line ends, records and messages within
//! their maximum sizes, and recipient ids that look like something else.
use crate::common;

use std::sync::Arc;

use common::*;

/// An in-app campaign whose body is `body` and whose recipient is the `intercom_id` column.
fn campaign(body: &str) -> String {
    format!(
        r#"recipients = "people.csv"

[message]
message_type = "in_app"
from = 394051
body = "{body}"

[to]
type = "user"
id = "{{{{ intercom_id }}}}"
"#
    )
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn ok_server() -> TestServer {
    TestServer::start(Arc::new(|r, _| ok_reply(r)))
}

/// `send` refuses the campaign (exit 2), says `expected`, sends nothing and records nothing.
fn assert_send_refuses(f: &Fixture, expected: &str) {
    let server = ok_server();
    let a = f.send(&server, &[]).code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains(expected),
        "send's stderr lacks {expected:?}:\n{err}"
    );
    assert!(server.requests().is_empty());
    assert!(!f.results().exists() || f.result_rows().is_empty());
}

#[test]
fn lines_are_counted_alike_in_lf_crlf_and_cr_files() {
    // Line 3 is blank, record 3 (line 5) lacks a field, record 4's cell spans lines 6 and 7.
    let lines = [
        "intercom_id,first_name",
        "id-1,Ann",
        "",
        "id-2,Bob",
        "id-3",
        "id-4,\"Line one{NL}line two\"",
        "id-5,Eve",
        "",
    ];
    for (name, nl) in [("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")] {
        let csv = lines.join(nl).replace("{NL}", nl);
        let f = Fixture::new(&csv, &campaign("<p>Hi {{ first_name }}</p>"));
        let check = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
        let err = stderr_of(&check);
        for expected in [
            "error: people.csv: record 3, line 5: has 1 fields, the header has 2",
            "warning: people.csv: record 4, line 6, column `first_name`: the cell holds a line break: it runs from line 6 to line 7",
        ] {
            assert!(err.contains(expected), "{name}: check lacks {expected:?}:\n{err}");
        }
        let preview = f
            .cmd()
            .args(["preview", "campaign.toml", "--limit", "5"])
            .assert()
            .code(2);
        let out = stdout_of(&preview);
        for expected in [
            "── row 1 (line 2) ─ to user id-1",
            "── row 2 (line 4) ─ to user id-2",
            "── row 4 (line 6) ─ to user id-4",
            "── row 5 (line 8) ─ to user id-5",
        ] {
            assert!(
                out.contains(expected),
                "{name}: preview lacks {expected:?}:\n{out}"
            );
        }
        let err = stderr_of(&preview);
        assert!(
            err.contains("error: people.csv: record 3, line 5: has 1 fields"),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_quote_left_open_that_swallows_a_whole_row_is_an_error_and_nothing_is_sent() {
    // The quote opened on line 3 is never closed there; the one on line 4 closes it. The
    // record has the header's four fields, and row 3 sits inside row 2's `company` cell.
    let csv = "intercom_id,first_name,company,plan\nid-1,Ann,Acme,pro\nid-2,Bob,\"Orbit,pro\nid-3,Cy,\"Kernel Co\",starter\nid-4,Di,Delta,pro\n";
    let f = Fixture::new(
        csv,
        &campaign("<p>Hi {{ first_name }} of {{ company }}</p>"),
    );
    let check = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr_of(&check);
    let expected = "error: people.csv: record 2, line 3, column `company`: the cell runs from line 3 to line 4, and each of those lines reads as a whole row: a quote that opens on line 3 is likely unterminated";
    assert!(err.contains(expected), "check lacks {expected:?}:\n{err}");
    let server = ok_server();
    let send = f.send(&server, &[]).code(2);
    assert!(stderr_of(&send).contains(expected), "{}", stderr_of(&send));
    assert!(server.requests().is_empty(), "a message was sent");
}

#[test]
fn an_unterminated_quote_names_its_line_in_a_cr_file() {
    let csv = "intercom_id,first_name\rid-1,Ann\rid-2,\"Bob\rid-3,Cy\r";
    let f = Fixture::new(csv, &campaign("<p>Hi {{ first_name }}</p>"));
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains("record 2, line 3: unterminated quote: a quoted field that starts on line 3 runs to the end of the file"),
        "{err}"
    );
}

#[test]
fn a_record_over_64_kib_is_an_error_naming_its_cell() {
    let long = "x".repeat(70_000);
    let csv = format!(
        "intercom_id,first_name,notes\r\nid-1,Ann,short\r\nid-2,Bob,{long}\r\nid-3,Cy,short\r\n"
    );
    let f = Fixture::new(&csv, &campaign("<p>Hi {{ first_name }}</p>"));
    let expected = "error: people.csv: record 2, line 3, column `notes`: the record holds 70007 bytes, more than the 65536 (64 KiB) a record may hold";
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr_of(&a);
    assert!(err.contains(expected), "{err}");
    // The other rows are read and checked: one error, three rows.
    assert!(
        err.contains("3 rows, 2 recipients") && err.contains(": 1 error"),
        "{err}"
    );
    assert_send_refuses(&f, expected);
}

#[test]
fn a_quote_never_closed_stops_reading_at_the_record_limit() {
    // The quote opened on line 3 swallows every line after it: far more than a record may hold.
    let mut csv = String::from("intercom_id,first_name\nid-1,Ann\nid-2,\"Bob\n");
    for i in 3..20_000 {
        csv.push_str(&format!("id-{i},Person {i}\n"));
    }
    assert!(csv.len() > 4 * 65_536);
    let f = Fixture::new(&csv, &campaign("<p>Hi {{ first_name }}</p>"));
    let expected = "error: people.csv: record 2, line 3, column `first_name`: the record goes on past the 65536 bytes (64 KiB) a record may hold, and reading stops here; a quote that is never closed makes the rest of the file one cell";
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr_of(&a);
    assert!(err.contains(expected), "{err}");
    assert!(err.contains("2 rows"), "{err}");
    assert_send_refuses(&f, expected);
}

#[test]
fn blank_lines_do_not_count_against_the_record_limit() {
    // 33 bytes before the blank lines: a CR LF straddles every 64 KiB the line count reads.
    let csv = format!(
        "intercom_id,first_name\nid-1,Anna\n{}id-2,Bob\n",
        "\r\n".repeat(50_000)
    );
    let f = Fixture::new(&csv, &campaign("<p>Hi {{ first_name }}</p>"));
    let a = f
        .cmd()
        .args(["preview", "campaign.toml", "--row", "2"])
        .assert()
        .success();
    assert!(
        stdout_of(&a).contains("── row 2 (line 50003) ─ to user id-2"),
        "{}",
        stdout_of(&a)
    );
}

#[test]
fn a_body_over_256_kib_is_an_error() {
    // 60,000 bytes a cell, five times: 300,011 bytes of body.
    let csv = format!(
        "intercom_id,notes\nid-1,{}\nid-2,short\n",
        "y".repeat(60_000)
    );
    let body = "<p>{{ notes }}{{ notes }}{{ notes }}{{ notes }}{{ notes }}</p>";
    let f = Fixture::new(&csv, &campaign(body));
    let expected = "error: people.csv: record 1, line 2, body: the body renders to 300007 bytes, more than the 262144 (256 KiB) a message may have";
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr_of(&a);
    assert!(err.contains(expected), "{err}");
    assert!(err.contains("2 rows, 1 recipient"), "{err}");
    assert_send_refuses(&f, expected);
}

#[test]
fn recipient_ids_that_look_like_addresses_or_phone_numbers_warn() {
    let csv = "intercom_id,first_name\n\
               ann@example.com,Ann\n\
               +44-20-7946-0958,Bob\n\
               (555)123-4567,Cy\n\
               536e564f316c83104c000020,Dee\n\
               1234567890,Eve\n\
               user@localhost,Flo\n";
    let f = Fixture::new(csv, &campaign("<p>Hi {{ first_name }}</p>"));
    let a = f.cmd().args(["check", "campaign.toml"]).assert().success();
    let err = stderr_of(&a);
    for expected in [
        "warning: people.csv: record 1, line 2, [to] id: the recipient id `ann@example.com` looks like an e-mail address, not an Intercom contact id",
        "warning: people.csv: record 2, line 3, [to] id: the recipient id `+44-20-7946-0958` looks like a phone number, not an Intercom contact id",
        "warning: people.csv: record 3, line 4, [to] id: the recipient id `(555)123-4567` looks like a phone number",
        "(POST /contacts/search finds it from an e-mail address)",
    ] {
        assert!(err.contains(expected), "check lacks {expected:?}:\n{err}");
    }
    // An Intercom id, bare digits (some system's id) and an address without a domain pass.
    assert_eq!(err.matches("warning:").count(), 3, "{err}");
    assert!(
        stdout_of(&a)
            .contains("6 rows, 6 recipients, in-app from admin 394051 to users: ok, 3 warnings."),
        "{}",
        stdout_of(&a)
    );
}

#[test]
fn a_phone_number_with_spaces_is_an_error_that_says_what_it_looks_like() {
    let csv = "intercom_id,first_name\n+44 20 7946 0958,Bob\n";
    let f = Fixture::new(csv, &campaign("<p>Hi {{ first_name }}</p>"));
    let expected = "error: people.csv: record 1, line 2, [to] id: the recipient id `+44 20 7946 0958` contains spaces or control characters; it looks like a phone number, not an Intercom contact id";
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    assert!(stderr_of(&a).contains(expected), "{}", stderr_of(&a));
}
