//! Who a campaign comes from, and test sends: `campaign admins` lists
//! the workspace's admins; `send` names its admin before the first request, takes `from` as an
//! e-mail, and refuses an admin the workspace does not have; `send --test-to` sends chosen rows
//! to one test contact, marked, recorded apart from the campaign's results. Against the sandbox
//! (in-process, or `campaign sandbox`-like via the library) and the scripted server.
use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{email_campaign, inapp_campaign, ok_reply, people_csv, Fixture, TestServer};
use predicates::prelude::*;
use serde_json::Value;

const ADMINS_CSV: &str =
    "id,name,email,away\n111,Ann Example,ann@example.com,\n222,Bo Away,bo@example.com,true\n";

/// The requests the sandbox logged, in order.
fn logged(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["request"].clone())
        .collect()
}

fn sandbox_send(f: &Fixture, extra: &[&str]) -> assert_cmd::assert::Assert {
    f.cmd()
        .args(["send", "campaign.toml", "--sandbox"])
        .args(extra)
        .assert()
}

// ---- campaign admins -----------------------------------------------------------------------------

#[test]
fn admins_lists_the_sandbox_admins_as_a_table_or_json() {
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    f.write("admins.csv", ADMINS_CSV);
    let out = f
        .cmd()
        .args(["admins", "--sandbox", "--sandbox-admins", "admins.csv"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    for (header, want) in [
        ("id", "111"),
        ("name", "Ann Example"),
        ("e-mail", "ann@example.com"),
    ] {
        assert!(lines[1].contains(header), "{table}");
        assert!(lines[3].contains(want), "{table}");
    }
    assert!(
        lines[4].contains("Bo Away") && lines[4].contains("away"),
        "{table}"
    );
    assert!(!lines[3].contains("away"), "{table}");

    let out = f
        .cmd()
        .args(["admins", "--sandbox", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"id": "394051", "name": "Sandbox Admin", "email": "admin394051@sandbox.invalid", "away": false},
            {"id": "814860", "name": "Sandbox Teammate", "email": "admin814860@sandbox.invalid", "away": false}
        ])
    );
}

/// A workspace's strings are outside the binary: an admin's name of 60,000 characters is shown
/// cut to 1,000 (the table's layout costs the square of a cell's length), and the list comes out.
#[test]
fn admins_shows_a_huge_admin_name_cut() {
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    let name = "N".repeat(60_000);
    f.write(
        "admins.csv",
        format!("id,name,email\n111,{name},ann@example.com\n"),
    );
    let out = f
        .cmd()
        .args(["admins", "--sandbox", "--sandbox-admins", "admins.csv"])
        .timeout(Duration::from_secs(120))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let shown = table.matches('N').count();
    assert_eq!(shown, 1_000, "{}", &table[..table.len().min(2000)]);
    assert!(table.contains("ann@example.com"));
}

#[test]
fn admins_asks_the_api_with_the_token_and_version_and_never_prints_the_token() {
    // A server that answers GET /admins itself: the scripted server's stand-in workspace.
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    f.cmd()
        .args(["admins", "--api-base", &server.url()])
        .assert()
        .success()
        .stdout(predicate::str::contains("394051").and(predicate::str::contains("Ann Example")));
    f.cmd()
        .args([
            "admins",
            "--api-base",
            &server.url(),
            "--intercom-version",
            "2.13",
        ])
        .assert()
        .success();
    let asked = server.admin_requests();
    assert_eq!(asked.len(), 2);
    assert_eq!(
        asked[0]["authorization"],
        format!("Bearer {}", common::TOKEN)
    );
    assert_eq!(asked[0]["intercom-version"], "2.16");
    assert_eq!(asked[1]["intercom-version"], "2.13");
    assert_eq!(asked[0]["accept"], "application/json");
    assert!(server.requests().is_empty());
    // Nothing listening: the error says what failed, exit 2, and no token anywhere.
    let closed = closed_port();
    f.cmd()
        .args(["admins", "--api-base", &closed])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("GET /admins: could not connect")
                .and(predicate::str::contains(common::TOKEN).not()),
        );
    f.cmd()
        .args(["admins", "--api-base", &server.url()])
        .env_remove("INTERCOM_TOKEN")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no access token"));
}

fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

// ---- send names, resolves and checks its admin ----------------------------------------------------

#[test]
fn send_names_the_admin_before_the_first_request() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    f.send(&server, &[])
        .success()
        .stderr(predicate::str::contains(
            "from Ann Example <ann@example.com> (admin 394051)",
        ));
    assert_eq!(server.admin_requests().len(), 1, "looked up once");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn from_may_be_an_admins_email_resolved_to_its_id() {
    let toml = email_campaign("").replace("from = 394051", "from = \"Bo@Example.com\"");
    let f = Fixture::new(&people_csv(2), &toml);
    f.write("admins.csv", ADMINS_CSV);
    sandbox_send(&f, &["--sandbox-admins", "admins.csv"])
        .success()
        .stderr(predicate::str::contains(
            "from Bo Away <bo@example.com> (admin 222)",
        ));
    let sent = logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl"));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r["from"]["id"] == 222), "{sent:?}");
}

#[test]
fn an_email_that_several_admins_share_is_refused_naming_their_ids() {
    // The same address, or one differing only in case: which admin is meant is for the id to say.
    let toml = email_campaign("").replace("from = 394051", "from = \"ann@example.com\"");
    let f = Fixture::new(&people_csv(2), &toml);
    f.write(
        "admins.csv",
        "id,name,email\n111,Ann Example,ann@example.com\n222,Bo,bo@example.com\n333,Ann Again,ANN@Example.com\n444,Ann Too,ann@example.com\n",
    );
    sandbox_send(&f, &["--sandbox-admins", "admins.csv"])
        .code(2)
        .stderr(predicate::str::contains(
            "campaign.toml: [message] from: `ann@example.com` is the e-mail of 3 admins, 111 (Ann Example <ann@example.com>), 333 (Ann Again <ANN@Example.com>), 444 (Ann Too <ann@example.com>): set `from` to the admin's id (`from = 111`); nothing was sent",
        ));
    assert!(!f.path("campaign.sandbox.results.csv").exists());
    assert!(logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl")).is_empty());
}

#[test]
fn send_refuses_an_admin_the_workspace_does_not_have_and_sends_nothing() {
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    f.write("admins.csv", ADMINS_CSV);
    sandbox_send(&f, &["--sandbox-admins", "admins.csv"])
        .code(2)
        .stderr(predicate::str::contains(
            "campaign.toml: [message] from: admin 394051 is not an admin of this workspace; its admins are 111 (Ann Example <ann@example.com>), 222 (Bo Away <bo@example.com>)",
        ));
    let toml = email_campaign("").replace("from = 394051", "from = \"nobody@example.com\"");
    f.write("campaign.toml", toml);
    sandbox_send(&f, &["--sandbox-admins", "admins.csv"])
        .code(2)
        .stderr(predicate::str::contains(
            "admin nobody@example.com is not an admin of this workspace",
        ));
    assert!(!f.path("campaign.sandbox.results.csv").exists());
    assert!(logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl")).is_empty());
}

#[test]
fn an_admin_list_that_cannot_be_had_is_a_warning_for_an_id_and_an_error_for_an_email() {
    let closed = closed_port();
    let f = Fixture::new(&people_csv(1), &email_campaign("max_attempts = 1"));
    f.send_to(&closed, &[])
        .code(1)
        .stderr(predicate::str::contains(
            "warning: cannot check the sending admin 394051: GET /admins: could not connect",
        ));
    let toml = email_campaign("").replace("from = 394051", "from = \"ann@example.com\"");
    let f = Fixture::new(&people_csv(1), &toml);
    f.send_to(&closed, &[]).code(2).stderr(predicate::str::contains(
        "[message] from: cannot look up the admin `ann@example.com`: GET /admins: could not connect",
    ));
    assert!(!f.results().exists());
}

#[test]
fn a_dry_run_says_the_admin_is_not_looked_up() {
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    f.cmd()
        .args(["send", "campaign.toml", "--dry-run"])
        .env_remove("INTERCOM_TOKEN")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "dry run: the sending admin (admin 394051) is not looked up",
        ));
}

#[test]
fn a_from_that_is_neither_an_id_nor_an_email_is_refused_naming_the_key() {
    let toml = email_campaign("").replace("from = 394051", "from = \"ann\"");
    let f = Fixture::new(&people_csv(1), &toml);
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "[message] from: expected the sending admin's id, an integer, or the admin's e-mail address",
        ));
}

// ---- send --test-to -------------------------------------------------------------------------------

#[test]
fn a_test_send_goes_to_the_test_contact_marked_and_recorded_apart() {
    let f = Fixture::new(&people_csv(4), &email_campaign(""));
    sandbox_send(&f, &["--test-to", "tester-1", "--row", "2", "--row", "4"])
        .success()
        .stderr(predicate::str::contains(
            "test send: 2 messages (rows 2, 4) to user tester-1",
        ));
    let tests = logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.tests.jsonl"));
    assert_eq!(tests.len(), 2);
    assert_eq!(tests[0]["subject"], "[TEST] Hello Person2");
    assert_eq!(tests[1]["subject"], "[TEST] Hello Person4");
    assert!(tests.iter().all(|r| r["to"]["id"] == "tester-1"));
    let rows = common::read_results(&f.path(".campaign/campaign.sandbox.results.csv.tests.csv"));
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["row"].as_str(),
                r["recipient"].as_str(),
                r["status"].as_str(),
            )
        })
        .collect();
    assert_eq!(got, [("2", "tester-1", "sent"), ("4", "tester-1", "sent")]);
    // Not a row sent: the campaign's results do not exist, and the real run sends every row.
    assert!(!f.path("campaign.sandbox.results.csv").exists());
    assert!(logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl")).is_empty());
    sandbox_send(&f, &[]).success();
    let sent = logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl"));
    // In the order the sandbox accepted them: requests in flight together may land in any order.
    let mut to: Vec<&str> = sent
        .iter()
        .map(|r| r["to"]["id"].as_str().unwrap())
        .collect();
    to.sort_unstable();
    assert_eq!(to, ["id-1", "id-2", "id-3", "id-4"]);
    assert!(sent
        .iter()
        .all(|r| !r["subject"].as_str().unwrap().contains("[TEST]")));
    // A second test after the run appends to the test record and leaves the results alone.
    let before = std::fs::read(f.path("campaign.sandbox.results.csv")).unwrap();
    sandbox_send(&f, &["--test-to", "tester-1", "--limit", "2"]).success();
    assert_eq!(
        common::read_results(&f.path(".campaign/campaign.sandbox.results.csv.tests.csv")).len(),
        4
    );
    assert_eq!(
        std::fs::read(f.path("campaign.sandbox.results.csv")).unwrap(),
        before
    );
}

#[test]
fn an_in_app_test_says_so_at_the_top_of_its_body() {
    let f = Fixture::new(&people_csv(2), &inapp_campaign(""));
    sandbox_send(&f, &["--test-to", "tester-1"]).success();
    let tests = logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.tests.jsonl"));
    assert_eq!(tests.len(), 1, "the first row by default");
    let body = tests[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with("<p><strong>[TEST]</strong></p><p>Hi Person1"),
        "{body}"
    );
    assert!(tests[0].get("subject").is_none());
}

#[test]
fn a_test_send_to_intercom_posts_only_the_marked_test_messages() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    f.send(&server, &["--test-to", "tester-9", "--limit", "3"])
        .success()
        .stderr(predicate::str::contains(
            "from Ann Example <ann@example.com> (admin 394051)",
        ));
    let got = server.requests();
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.to_id(), r.body["subject"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        seen,
        [1, 2, 3].map(|i| ("tester-9".to_string(), format!("[TEST] Hello Person{i}")))
    );
    assert!(!f.results().exists());
    assert!(!f.path(".campaign/results.csv.journal").exists());
    assert_eq!(
        common::read_results(&f.path(".campaign/results.csv.tests.csv")).len(),
        3
    );
}

#[test]
fn a_test_send_of_a_row_that_is_not_there_sends_nothing() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    f.send(&server, &["--test-to", "tester-9", "--row", "1,7"])
        .code(2)
        .stderr(predicate::str::contains(
            "people.csv: --row 7: there is no record 7",
        ));
    assert!(server.requests().is_empty());
    assert!(!f.path(".campaign/results.csv.tests.csv").exists());
}
