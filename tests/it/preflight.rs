//! Bad input never reaches a customer. Each case under `tests/broken/` is a small campaign with
//! one problem; `campaign send` against a local server must refuse it (exit 2), name the file, the
//! record and line, and the column or template, and send nothing. The positive cases (`bom-is-fine`,
//! `blank-lines-skipped`, ...) must pass `check`. Also: `--skip-invalid`, HTML escaping, and the
//! token never appearing in anything the tool prints or writes.
use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use predicates::prelude::*;

/// A copy of `tests/broken/<case>` in a temporary directory, so that the paths the tool prints
/// are the short relative ones (`people.csv`, `templates/body.html`) and results land there too.
fn case(name: &str) -> Fixture {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/broken")
        .join(name);
    assert!(src.is_dir(), "no case {}", src.display());
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    Fixture { dir }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn ok_server() -> TestServer {
    TestServer::start(Arc::new(|r, _| ok_reply(r)))
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// `send` exits 2, says every one of `expected` on stderr, sends nothing and writes no results;
/// `check` exits 2 and says the same.
fn assert_refused(name: &str, expected: &[&str]) -> String {
    let server = ok_server();
    let f = case(name);
    let a = f.send(&server, &[]).code(2);
    let err = stderr_of(&a);
    for e in expected {
        assert!(err.contains(e), "{name}: send's stderr lacks {e:?}:\n{err}");
    }
    assert!(
        server.requests().is_empty(),
        "{name}: the server received a request"
    );
    assert!(
        !f.results().exists() || f.result_rows().is_empty(),
        "{name}: results were recorded"
    );
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let check_err = stderr_of(&a);
    for e in expected {
        assert!(
            check_err.contains(e),
            "{name}: check's stderr lacks {e:?}:\n{check_err}"
        );
    }
    err
}

/// `check` exits 0; returns its stdout and stderr.
fn assert_passes_check(name: &str) -> (Fixture, String, String) {
    let f = case(name);
    let a = f.cmd().args(["check", "campaign.toml"]).assert().success();
    let (out, err) = (stdout_of(&a), stderr_of(&a));
    (f, out, err)
}

// ---- CSV ----------------------------------------------------------------------------------------

#[test]
fn bom_is_ignored_and_the_first_column_works_as_a_variable() {
    let (f, out, _) = assert_passes_check("bom-is-fine");
    assert!(out.contains("2 rows, 2 recipients"), "{out}");
    let server = ok_server();
    f.send(&server, &[]).success();
    let mut ids: Vec<String> = server.requests().iter().map(|r| r.to_id()).collect();
    ids.sort();
    assert_eq!(ids, ["id-1", "id-2"]);
}

#[test]
fn semicolons_without_delimiter_warn_and_suggest_the_setting() {
    let err = assert_refused(
        "semicolon-without-delimiter",
        &[
            "warning: people.csv: line 1:",
            "delimiter = \";\"",
            "campaign.toml [to] id, variable `intercom_id`",
            "is not a column of people.csv",
        ],
    );
    assert!(err.contains("campaign.toml [message] body, variable `first_name`"));
}

#[test]
fn semicolons_with_delimiter_set_pass() {
    let (f, out, err) = assert_passes_check("semicolon-with-delimiter");
    assert!(out.contains("2 rows, 2 recipients"), "{out}");
    assert!(!err.contains("delimiter"), "{err}");
    let server = ok_server();
    f.send(&server, &[]).success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let ada = reqs.iter().find(|r| r.to_id() == "id-1").unwrap();
    assert_eq!(ada.body["subject"], "Hello Ada");
}

#[test]
fn empty_header_name_is_an_error() {
    assert_refused(
        "empty-header",
        &["error: people.csv: line 1, column 2: empty header name"],
    );
}

#[test]
fn duplicate_header_name_is_an_error() {
    assert_refused(
        "duplicate-header",
        &["error: people.csv: line 1, column 3: duplicate header name `first_name`"],
    );
}

#[test]
fn header_with_spaces_is_a_warning_naming_it() {
    let (f, out, err) = assert_passes_check("header-with-spaces");
    assert!(
        err.contains("warning: people.csv: line 1, column 2: header ` first_name `"),
        "{err}"
    );
    assert!(out.contains("ok, 1 warning"), "{out}");
    // The trimmed name is the variable.
    let server = ok_server();
    f.send(&server, &[]).success();
    assert_eq!(server.requests()[0].body["subject"], "Hello Ada");
}

#[test]
fn too_many_fields_is_an_error_at_its_line() {
    assert_refused(
        "too-many-fields",
        &["error: people.csv: record 2, line 3: has 3 fields, the header has 2"],
    );
}

#[test]
fn too_few_fields_is_an_error_at_its_line() {
    assert_refused(
        "too-few-fields",
        &["error: people.csv: record 2, line 3: has 1 fields, the header has 2"],
    );
}

#[test]
fn bytes_that_are_not_utf8_are_an_error_naming_the_column() {
    assert_refused(
        "not-utf8",
        &["error: people.csv: record 2, line 3, column `first_name`: bytes that are not UTF-8"],
    );
}

#[test]
fn unterminated_quote_is_an_error_at_the_line_it_starts_on() {
    assert_refused(
        "unterminated-quote",
        &[
            "error: people.csv: record 2, line 3: unterminated quote",
            "starts on line 3",
        ],
    );
}

#[test]
fn blank_lines_are_skipped() {
    let (f, out, err) = assert_passes_check("blank-lines-skipped");
    assert!(out.contains("2 rows, 2 recipients"), "{out}");
    assert!(!err.contains("error"), "{err}");
    let server = ok_server();
    f.send(&server, &[]).success();
    assert_eq!(server.requests().len(), 2);
    let rows = f.result_rows();
    let mut numbered: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["row"].clone(), r["recipient"].clone()))
        .collect();
    numbered.sort();
    assert_eq!(
        numbered,
        [
            ("1".to_string(), "id-1".to_string()),
            ("2".to_string(), "id-2".to_string())
        ]
    );
}

// ---- Templates ----------------------------------------------------------------------------------

#[test]
fn template_syntax_error_names_the_file_line_and_column() {
    let err = assert_refused(
        "template-syntax-error-in-file",
        &[
            "error: templates/body.html: line 3, column ",
            "syntax error",
        ],
    );
    let at = err.find("line 3, column ").unwrap() + "line 3, column ".len();
    let col: String = err[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    assert!(col.parse::<u32>().unwrap() > 0, "{err}");
}

#[test]
fn unknown_variable_names_it_and_the_closest_column() {
    assert_refused(
        "unknown-variable",
        &[
            "error: campaign.toml [message] body, variable `frist_name` at column 10 of the value: ",
            "did you mean `first_name`?",
        ],
    );
}

#[test]
fn unknown_variable_in_a_branch_no_row_takes_is_found_before_any_row() {
    assert_refused(
        "unknown-variable-in-branch",
        &[
            // The value's own lines: the campaign file's are not the template's.
            "error: campaign.toml [message] body, variable `frist_name` at line 2, column 10 of the value: ",
            "did you mean `first_name`?",
        ],
    );
}

#[test]
fn a_quote_closed_mid_field_is_flagged() {
    // `"Ada` opens a quote that `"Bob"` closes: rows 1 and 2 merge into one cell, and each of
    // its lines reads as a row: Ada's message would carry Bob's row, and Bob none. Refused.
    assert_refused(
        "quote-closed-mid-field",
        &["error: people.csv: record 1, line 2, column `first_name`: the cell runs from line 2 to line 3, and each of those lines reads as a whole row"],
    );
}

#[test]
fn empty_cell_is_empty_and_default_covers_it() {
    let (f, _, _) = assert_passes_check("empty-cell-with-default");
    let a = f
        .cmd()
        .args(["preview", "campaign.toml", "--json"])
        .assert()
        .success();
    let lines: Vec<serde_json::Value> = stdout_of(&a)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["subject"], "Hello friend");
    assert_eq!(lines[0]["body"], "<p>Hi there</p>");
    assert_eq!(lines[1]["subject"], "Hello Ada");
    assert_eq!(lines[1]["body"], "<p>Hi Ada</p>");
}

// ---- Rendered values ----------------------------------------------------------------------------

#[test]
fn empty_recipient_id_is_an_error() {
    assert_refused(
        "empty-recipient-id",
        &["error: people.csv: record 2, line 3, [to] id: the recipient id renders empty"],
    );
}

#[test]
fn empty_subject_is_an_error() {
    assert_refused(
        "empty-subject",
        &["error: people.csv: record 2, line 3, subject: the subject renders empty"],
    );
}

#[test]
fn multiline_subject_is_an_error() {
    assert_refused(
        "multiline-subject",
        &["error: people.csv: record 2, line 3, subject: the subject must be one line"],
    );
}

#[test]
fn subject_longer_than_255_is_an_error() {
    assert_refused(
        "subject-too-long",
        &["error: people.csv: record 2, line 3, subject: the subject has 300 characters, more than 255"],
    );
}

#[test]
fn empty_body_is_an_error() {
    assert_refused(
        "empty-body",
        &["error: people.csv: record 2, line 3, body: the body renders empty"],
    );
}

#[test]
fn unbalanced_html_is_a_warning() {
    let (_, out, err) = assert_passes_check("unbalanced-html");
    assert!(
        err.contains("warning: campaign.toml [message] body: line 1: the body's HTML does not balance: `</p>` closes `<a>` (in 1 row)"),
        "{err}"
    );
    assert!(out.contains("ok, 1 warning"), "{out}");
}

#[test]
fn unknown_campaign_key_is_named() {
    assert_refused(
        "unknown-campaign-key",
        &["campaign.toml", "unknown field `subjet`", "9 | subjet"],
    );
}

#[test]
fn many_problems_show_fifty_in_full_then_counts_per_kind() {
    let err = assert_refused(
        "many-problems",
        &[
            "error: people.csv: record 1, line 2: has 1 fields, the header has 2",
            "error: people.csv: record 50, line 51, [to] id: the recipient id renders empty",
            "... and 10 more; all problems by kind:",
            "30 csv errors",
            "30 value errors",
        ],
    );
    let full = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(full, 50, "{err}");
    assert!(!err.contains("record 51,"), "{err}");
}

// ---- Duplicate recipients -----------------------------------------------------------------------

/// Eight rows: `bob` on records 3, 5 and 7 (and on record 6, which is invalid and so no recipient),
/// `ada` on records 2 and 8.
fn csv_with_duplicates() -> String {
    let mut csv = String::from("intercom_id,first_name,plan,company\n");
    for (i, id) in ["id-1", "ada", "bob", "id-4", "bob", "bob", "bob", "ada"]
        .iter()
        .enumerate()
    {
        let n = i + 1;
        let extra = if n == 6 { ",one too many" } else { "" };
        csv.push_str(&format!("{id},Person{n},pro,Company {n}{extra}\n"));
    }
    csv
}

#[test]
fn duplicates_name_the_first_record_of_their_recipient_in_record_order() {
    let f = Fixture::new(&csv_with_duplicates(), &email_campaign(""));
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let refuses = " (send refuses duplicates: --skip-duplicates sends the first row of each recipient and records the others `skipped`, --allow-duplicates sends them all)";
    assert_eq!(
        stderr_of(&a),
        format!(
            "error: people.csv: record 6, line 7: has 5 fields, the header has 4\n\
             error: people.csv: record 5: addresses the same recipient as record 3{refuses}\n\
             error: people.csv: record 7: addresses the same recipient as record 3{refuses}\n\
             error: people.csv: record 8: addresses the same recipient as record 2{refuses}\n\
             campaign.toml: 8 rows, 4 recipients, email from admin 394051 to users: 4 errors, 0 warnings.\n"
        )
    );
    assert_eq!(stdout_of(&a), "");

    let a = f
        .cmd()
        .args(["check", "campaign.toml", "--allow-duplicates"])
        .assert()
        .code(2);
    assert_eq!(
        stderr_of(&a),
        "error: people.csv: record 6, line 7: has 5 fields, the header has 4\n\
         warning: people.csv: record 5: addresses the same recipient as record 3\n\
         warning: people.csv: record 7: addresses the same recipient as record 3\n\
         warning: people.csv: record 8: addresses the same recipient as record 2\n\
         campaign.toml: 8 rows, 4 recipients, email from admin 394051 to users: 1 error, 3 warnings.\n"
    );

    // Without the invalid row, duplicates alone: refused, or allowed with warnings.
    let valid = csv_with_duplicates().replace(",one too many", "");
    f.write("people.csv", valid);
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains(&format!(
            "error: people.csv: record 6: addresses the same recipient as record 3{refuses}\n"
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            "campaign.toml: 8 rows, 4 recipients, email from admin 394051 to users: 4 errors, 0 warnings.\n"
        ),
        "{err}"
    );
    let a = f
        .cmd()
        .args(["check", "campaign.toml", "--allow-duplicates"])
        .assert()
        .success();
    assert_eq!(
        stderr_of(&a),
        "warning: people.csv: record 5: addresses the same recipient as record 3\n\
         warning: people.csv: record 6: addresses the same recipient as record 3\n\
         warning: people.csv: record 7: addresses the same recipient as record 3\n\
         warning: people.csv: record 8: addresses the same recipient as record 2\n"
    );
    assert_eq!(
        stdout_of(&a),
        "campaign.toml: 8 rows, 4 recipients, email from admin 394051 to users: ok, 4 warnings.\n"
    );
}

#[test]
fn distinct_recipients_report_no_duplicates() {
    let f = Fixture::new(&people_csv(8), &email_campaign(""));
    let a = f.cmd().args(["check", "campaign.toml"]).assert().success();
    assert_eq!(stderr_of(&a), "");
    assert_eq!(
        stdout_of(&a),
        "campaign.toml: 8 rows, 8 recipients, email from admin 394051 to users: ok.\n"
    );
}

// ---- --skip-invalid -----------------------------------------------------------------------------

#[test]
fn with_no_valid_row_skip_invalid_is_not_suggested() {
    let csv = "intercom_id,first_name,plan\n,Ada,pro\n,Grace,pro\n";
    let f = Fixture::new(csv, &email_campaign(""));
    let server = ok_server();
    f.send(&server, &[])
        .code(2)
        .stderr(predicate::str::contains("nothing was sent."))
        .stderr(predicate::str::contains("--skip-invalid").not());
    assert!(server.requests().is_empty());
}

#[test]
fn skip_invalid_sends_the_valid_rows_and_records_the_others_as_skipped() {
    let csv = "intercom_id,first_name,subject_line\n\
               id-1,Ada,Hi Ada\n\
               ,Grace,Hi Grace\n\
               id-3,Alan,\n\
               id-4,Barbara\n\
               id-5,Edsger,Hi Edsger\n";
    let toml = email_campaign("")
        .replace("Hello {{ first_name }}", "{{ subject_line }}")
        .replace(", welcome to {{ plan }}", "");
    let f = Fixture::new(csv, &toml);
    let server = ok_server();
    // Without the flag nothing goes out.
    f.send(&server, &[])
        .code(2)
        .stderr(predicate::str::contains("--skip-invalid"));
    assert!(server.requests().is_empty());

    f.send(&server, &["--skip-invalid"]).success();
    let mut sent: Vec<String> = server.requests().iter().map(|r| r.to_id()).collect();
    sent.sort();
    assert_eq!(sent, ["id-1", "id-5"]);
    let rows = f.result_rows();
    assert_eq!(rows.len(), 5);
    let by_row = |n: &str| rows.iter().find(|r| r["row"] == n).unwrap();
    for n in ["1", "5"] {
        assert_eq!(by_row(n)["status"], "sent");
    }
    // Each skipped row names its recipient when the recipient rendered.
    for (n, recipient, reason) in [
        ("2", "", "the recipient id renders empty"),
        ("3", "id-3", "the subject renders empty"),
        ("4", "", "has 2 fields, the header has 3"),
    ] {
        let r = by_row(n);
        assert_eq!(r["status"], "skipped", "{r:?}");
        assert_eq!(r["recipient"], recipient, "{r:?}");
        assert!(r["error_message"].contains(reason), "{r:?}");
    }

    // Fixed in the CSV, rows 2 (recorded without a recipient) and 3 go out on resume (the
    // content changed, so --allow-changed), and nothing else is sent again.
    f.write(
        "people.csv",
        csv.replace("id-3,Alan,", "id-3,Alan,Hi Alan")
            .replace(",Grace,", "id-2,Grace,"),
    );
    f.send(&server, &["--resume", "--skip-invalid"])
        .code(2)
        .stderr(predicate::str::contains("--allow-changed"));
    // Row 4, still invalid, keeps the line it had: a resume records only what it did.
    f.send(&server, &["--resume", "--skip-invalid", "--allow-changed"])
        .success()
        .stdout(predicate::str::contains(
            "sent 2, failed 0, unknown 0, skipped 0",
        ));
    let mut sent: Vec<String> = server.requests().iter().map(|r| r.to_id()).collect();
    sent.sort();
    assert_eq!(sent, ["id-1", "id-2", "id-3", "id-5"]);
    let rows = f.result_rows();
    let last = |n: &str| rows.iter().rev().find(|r| r["row"] == n).unwrap();
    assert_eq!(last("2")["status"], "sent");
    assert_eq!(last("3")["status"], "sent");
    assert_eq!(last("4")["status"], "skipped");
}

// ---- Escaping -----------------------------------------------------------------------------------

const HOSTILE_CSV: &str = "intercom_id,first_name,link\n\
                           id-1,<script>alert(1)</script>,\"<a href=\"\"http://x\"\">x</a>\"\n";

#[test]
fn html_body_escapes_csv_values_unless_safe() {
    let toml = email_campaign("")
        .replace("Hello {{ first_name }}", "Hi {{ first_name }} {{ link }}")
        .replace(
            "<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>",
            "<p>{{ first_name }} {{ link }} {{ link | safe }}</p>",
        );
    let f = Fixture::new(HOSTILE_CSV, &toml);
    let server = ok_server();
    f.send(&server, &[]).success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].body["body"].as_str().unwrap();
    assert!(body.starts_with("<p>&lt;script&gt;alert(1)&lt;"), "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&lt;a href=&quot;http:"), "{body}");
    // `| safe` opts in.
    assert!(body.ends_with(" <a href=\"http://x\">x</a></p>"), "{body}");
    // The subject is plain text: not escaped.
    assert_eq!(
        reqs[0].body["subject"],
        "Hi <script>alert(1)</script> <a href=\"http://x\">x</a>"
    );
}

#[test]
fn text_bodies_are_not_escaped() {
    let hostile = "<script>alert(1)</script> <a href=\"http://x\">x</a>";
    // By the body file's extension.
    let toml = email_campaign("").replace(
        "body = \"<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>\"",
        "body_file = \"body.txt\"",
    );
    let f = Fixture::new(HOSTILE_CSV, &toml);
    f.write("body.txt", "{{ first_name }} {{ link }}\n");
    let server = ok_server();
    f.send(&server, &[]).success();
    assert_eq!(server.requests()[0].body["body"], hostile);

    // By body_format, for an inline body.
    let toml = email_campaign("").replace(
        "body = \"<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>\"",
        "body = \"{{ first_name }} {{ link }}\"\nbody_format = \"text\"",
    );
    let f = Fixture::new(HOSTILE_CSV, &toml);
    let server = ok_server();
    f.send(&server, &[]).success();
    assert_eq!(server.requests()[0].body["body"], hostile);

    // And body_format = "html" escapes even a .txt file.
    let toml = email_campaign("").replace(
        "body = \"<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>\"",
        "body_file = \"body.txt\"\nbody_format = \"html\"",
    );
    let f = Fixture::new(HOSTILE_CSV, &toml);
    f.write("body.txt", "<p>{{ first_name }}</p>\n");
    let server = ok_server();
    f.send(&server, &[]).success();
    assert_eq!(
        server.requests()[0].body["body"],
        "<p>&lt;script&gt;alert(1)&lt;&#x2F;script&gt;</p>"
    );
}

// ---- Secrets ------------------------------------------------------------------------------------

const SECRET: &str = "tok-SECRET-9f8e7d6c5b4a-do-not-print";

/// Every file under `dir` (but `skip`), as lossy text.
fn written_files(dir: &Path, skip: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            written_files(&p, skip, out);
        } else if p != skip {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            out.push((p.display().to_string(), text));
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "the token appears in {what}:\n{text}"
    );
    assert!(
        !text.contains("9f8e7d6c5b4a"),
        "part of the token appears in {what}:\n{text}"
    );
}

/// One row rejected 422, then a 401 (whose message, with `echo`, repeats the Authorization header
/// as a careless proxy might), the rest fine.
fn failing_server(echo: bool) -> TestServer {
    TestServer::start(Arc::new(move |r, _| match r.to_id().as_str() {
        "id-2" => error_reply(422, "parameter_invalid", "User is unsubscribed", "req-2"),
        "id-4" => error_reply(
            401,
            "token_unauthorized",
            &if echo {
                format!(
                    "Access Token Invalid: {}",
                    r.headers.get("authorization").cloned().unwrap_or_default()
                )
            } else {
                "Access Token Invalid".to_string()
            },
            "req-4",
        ),
        _ => ok_reply(r),
    }))
}

#[test]
fn the_token_never_appears_in_output_results_journal_or_preview() {
    token_stays_secret(false);
}

/// A server or proxy that echoes the Authorization header in its error message must not put the
/// token on stderr or in the results file: it is struck first (src/intercom/redact.rs).
#[test]
fn the_token_is_redacted_from_server_error_messages() {
    token_stays_secret(true);
}

fn token_stays_secret(echo: bool) {
    for via_file in [false, true] {
        let f = Fixture::new(&people_csv(6), &email_campaign(""));
        let server = failing_server(echo);
        let token_file = f.path("token.txt");
        let mut cmd = f.cmd();
        if via_file {
            std::fs::write(&token_file, format!("{SECRET}\n")).unwrap();
            cmd.env_remove("INTERCOM_TOKEN").args([
                "send",
                "campaign.toml",
                "--token-file",
                "token.txt",
            ]);
        } else {
            cmd.env("INTERCOM_TOKEN", SECRET)
                .args(["send", "campaign.toml"]);
        }
        cmd.args(["--results", "results.csv", "--concurrency", "1"])
            .args(["--api-base", &server.url()]);
        let a = cmd.assert();
        let code = a.get_output().status.code();
        assert!(matches!(code, Some(1) | Some(3)), "exit {code:?}");
        let reqs = server.requests();
        assert!(!reqs.is_empty());
        // The token did go out, in the header only.
        assert_eq!(reqs[0].headers["authorization"], format!("Bearer {SECRET}"));
        assert_no_secret("stdout", &stdout_of(&a));
        assert_no_secret("stderr", &stderr_of(&a));
        assert!(f.results().exists());
        assert!(f.path(".campaign/results.csv.journal").exists());
        let mut files = Vec::new();
        written_files(f.dir.path(), &token_file, &mut files);
        for (name, text) in &files {
            assert_no_secret(name, text);
        }

        // A second run (resume) and a preview, with the token set.
        let a = f
            .send_cmd(&server.url(), &["--resume"])
            .env("INTERCOM_TOKEN", SECRET)
            .assert();
        assert_no_secret("stdout of resume", &stdout_of(&a));
        assert_no_secret("stderr of resume", &stderr_of(&a));
        let a = f
            .cmd()
            .env("INTERCOM_TOKEN", SECRET)
            .args(["preview", "campaign.toml", "--json", "--limit", "10"])
            .assert()
            .success();
        assert_no_secret("preview --json", &stdout_of(&a));
        assert_no_secret("preview's stderr", &stderr_of(&a));
    }
}

#[test]
fn a_token_the_header_cannot_carry_is_not_printed() {
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    let server = ok_server();
    let bad = format!("{SECRET}\u{7}x");
    let a = f
        .send_cmd(&server.url(), &[])
        .env("INTERCOM_TOKEN", &bad)
        .assert();
    assert_ne!(a.get_output().status.code(), Some(0));
    assert_no_secret("stdout", &stdout_of(&a));
    assert_no_secret("stderr", &stderr_of(&a));
    assert!(server.requests().is_empty());
}

// ---- --api-base ---------------------------------------------------------------------------------

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    let server = ok_server();
    f.send_to("http://example.com", &[])
        .code(2)
        .stderr(predicate::str::contains("refusing plain http://"));
    assert!(server.requests().is_empty());
    assert!(!f.results().exists());

    // The loopback test server is fine.
    let url = format!("http://127.0.0.1:{}", server.addr.port());
    f.send_to(&url, &[]).success();
    assert_eq!(server.requests().len(), 2);
}

/// A token file that is not there is named once, with its cause once, by every command that
/// reads one, and nothing is sent.
#[test]
fn a_missing_token_file_is_named_once_with_its_cause() {
    // Addressed by e-mail, so that `resolve` has lookups to do.
    let campaign = email_campaign("").replace(
        "id = \"{{ intercom_id }}\"",
        "email = \"{{ intercom_id }}@x.test\"",
    );
    assert!(campaign.contains("@x.test"));
    let f = Fixture::new(&people_csv(2), &campaign);
    for args in [
        &["send", "campaign.toml", "--results", "results.csv"][..],
        &["admins"][..],
        &["resolve", "campaign.toml"][..],
    ] {
        let a = f
            .cmd()
            .env_remove("INTERCOM_TOKEN")
            .args(args)
            .args(["--token-file", "missing.txt"])
            .assert()
            .code(2);
        let stderr = stderr_of(&a);
        assert!(
            stderr.contains("cannot read the token file: cannot read missing.txt: "),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            stderr.matches("os error 2").count(),
            1,
            "{args:?}: {stderr}"
        );
    }
    assert!(!f.results().exists());
}
