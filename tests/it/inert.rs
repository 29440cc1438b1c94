//! Everything printed is inert: control characters from outside (an admin's display name, a
//! cell) are shown escaped, and every CSV the tool writes opens in a spreadsheet as text.
use crate::common;

use std::time::Duration;

use common::*;
use predicates::prelude::*;

/// An admin whose display name clears the screen and writes the clipboard (OSC 52).
const ADMINS: &str =
    "id,name,email\n394051,\"Eve\u{1b}[2J\u{1b}]52;c;cm0gLXJm\u{7}\u{9b}31m\",eve@x.test\n";

fn no_raw_controls(what: &str, text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{what} holds a raw control character: {text:?}"
    );
}

#[test]
fn an_admins_name_with_escape_sequences_is_shown_escaped() {
    let f = Fixture::new(&people_csv(2), &inapp_campaign(""));
    f.write("admins.csv", ADMINS);
    let out = f
        .cmd()
        .args(["admins", "--sandbox", "--sandbox-admins", "admins.csv"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("admins' table", &stdout);
    assert!(
        stdout.contains("Eve\\u{1b}[2J\\u{1b}]52;c;cm0gLXJm\\u{7}\\u{9b}31m"),
        "{stdout}"
    );
    let out = f
        .cmd()
        .args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--results",
            "results.csv",
        ])
        .args(["--sandbox-admins", "admins.csv", "--yes"])
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    no_raw_controls("send's output", &stderr);
    assert!(stderr.contains("from Eve\\u{1b}[2J"), "{stderr}");
}

#[test]
fn a_cell_with_escapes_is_previewed_escaped_and_resolve_writes_formulas_as_text() {
    let csv =
        "email,first_name,plan\na@x.test,\"=HYPERLINK(\"\"http://evil\"\")\",\"p\u{1b}[31m\"\n";
    let campaign =
        inapp_campaign("").replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\"");
    let f = Fixture::new(csv, &campaign);
    let out = f
        .cmd()
        .args(["preview", "campaign.toml"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("preview", &stdout);
    assert!(stdout.contains("p\\u{1b}[31m"), "{stdout}");
    f.write("contacts.csv", "id,email,role\nc1,a@x.test,user\n");
    f.cmd()
        .args([
            "resolve",
            "campaign.toml",
            "--sandbox",
            "--sandbox-contacts",
            "contacts.csv",
        ])
        .args(["--out", "review.csv"])
        .assert()
        .success();
    let text = std::fs::read_to_string(f.path("review.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let row = rdr.records().next().unwrap().unwrap();
    assert_eq!(&row[1], "'=HYPERLINK(\"http://evil\")", "{text}");
}

#[test]
fn a_results_column_named_like_a_formula_is_refused() {
    let csv = "intercom_id,first_name,plan,=cmd\nid-1,A,p,x\n";
    let f = Fixture::new(csv, &inapp_campaign(""));
    let server = TestServer::start(std::sync::Arc::new(|r, _| ok_reply(r)));
    f.send(&server, &["--results-columns", "=cmd"])
        .code(2)
        .stderr(predicate::str::contains(
            "`=cmd` begins with a character that makes a spreadsheet read it as a formula",
        ));
    assert!(server.requests().is_empty());
}

/// Every string a JSON document holds, however deep.
fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(strings).collect(),
        serde_json::Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn json_output_holds_no_raw_control_and_reads_back_exactly() {
    let name = "Eve\u{1b}[2J\u{1b}]52;c;cm0gLXJm\u{7}\u{9b}31m";
    let f = Fixture::new(&people_csv(2), &inapp_campaign(""));
    f.write("admins.csv", ADMINS);
    let out = f
        .cmd()
        .args(["admins", "--sandbox", "--sandbox-admins", "admins.csv"])
        .arg("--json")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("admins --json", &stdout);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(strings(&list).iter().any(|s| s == name), "{stdout}");

    // A cell with ESC, a C1 CSI and DEL, in the request body preview --json prints.
    let csv = "intercom_id,first_name,plan,company\nid-1,Ann,\"p\u{1b}[31m\u{9b}1m\u{7f}\",Co\n";
    let f = Fixture::new(csv, &inapp_campaign(""));
    let out = f
        .cmd()
        .args(["preview", "campaign.toml", "--json"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("preview --json", &stdout);
    let request: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        request["body"]
            .as_str()
            .unwrap()
            .contains("p\u{1b}[31m\u{9b}1m\u{7f}"),
        "{stdout}"
    );
}

#[test]
fn a_servers_error_message_with_escapes_is_shown_escaped_in_the_report() {
    let said = "no\u{1b}[2J\u{1b}]52;c;cm0gLXJm\u{7}\u{9b}31m\u{7f} such user";
    let server = TestServer::start(std::sync::Arc::new(move |r: &Received, _| {
        if r.path == "/messages" {
            error_reply(400, "parameter_invalid", said, "req-1")
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(2), &inapp_campaign(""));
    let out = f.send(&server, &[]).code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    no_raw_controls("send's output", &stderr);
    let out = f.cmd().args(["report", "results.csv"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("report's table", &stdout);
    assert!(stdout.contains("no\\u{1b}[2J\\u{1b}]52;c;"), "{stdout}");
    let out = f
        .cmd()
        .args(["report", "results.csv", "--json"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("report --json", &stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        strings(&report).iter().any(|s| s.contains(said)),
        "{stdout}"
    );
    let out = f
        .cmd()
        .args(["report", "results.csv", "--csv"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    no_raw_controls("report --csv", &stdout);
    assert!(stdout.contains("no\\u{1b}[2J\\u{1b}]52;c;"), "{stdout}");
}
