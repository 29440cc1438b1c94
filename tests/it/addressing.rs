//! Campaigns addressed by e-mail or external id, against the sandbox: every row's
//! outcome and reason, the cost in search requests, kills and resumes, the campaign file's rules.
use crate::common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn campaign(to: &str, send: &str) -> String {
    format!(
        r#"recipients = "people.csv"

[message]
message_type = "email"
template = "plain"
from = 394051
subject = "Hello {{{{ first_name }}}}"
body = "<p>Hi {{{{ first_name }}}}.</p>"

[to]
{to}

[send]
rate = "100000/min"
{send}
"#
    )
}

/// What row `i` (1-based) of the 2,000-row campaign is, by `i % 50`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Missing,
    Ambiguous,
    Unsubscribed,
    Suppressed,
    OddCase,
    Bounced,
    /// Addresses row `i - 2`'s contact, in another case.
    Duplicate,
    Plain,
}

fn kind(i: usize) -> Kind {
    match i % 50 {
        0 => Kind::Missing,
        1 => Kind::Ambiguous,
        2 => Kind::Unsubscribed,
        3 => Kind::Suppressed,
        4 => Kind::OddCase,
        5 => Kind::Bounced,
        6 => Kind::Duplicate,
        _ => Kind::Plain,
    }
}

/// The CSV, the sandbox's contacts and the suppression list of a campaign of `n` rows.
fn email_fixture(n: usize, to: &str) -> Fixture {
    let mut csv = String::from("email,first_name\n");
    let mut contacts = String::from(
        "id,email,external_id,role,unsubscribed_from_emails,has_hard_bounced,marked_email_as_spam\n",
    );
    let mut suppress = String::from("email\n");
    for i in 1..=n {
        let email = format!("p{i}@x.test");
        let cell = match kind(i) {
            Kind::OddCase => format!("  P{i}@X.Test "),
            Kind::Duplicate => format!("P{}@x.test", i - 2),
            _ => email.clone(),
        };
        csv.push_str(&format!("\"{cell}\",Person{i}\n"));
        let (unsub, bounced) = (kind(i) == Kind::Unsubscribed, kind(i) == Kind::Bounced);
        match kind(i) {
            Kind::Missing | Kind::Duplicate => {}
            _ => contacts.push_str(&format!("c{i},{email},,user,{unsub},{bounced},false\n")),
        }
        if kind(i) == Kind::Ambiguous {
            contacts.push_str(&format!("l{i},{email},,lead,false,false,false\n"));
        }
        if kind(i) == Kind::Suppressed {
            suppress.push_str(&format!("{}\n", email.to_uppercase()));
        }
    }
    // The `Duplicate` rows are an earlier row's e-mail in another case, which `check` finds as it
    // finds any duplicate; allowed here, they reach the lookup, which messages a contact once.
    let f = Fixture::new(
        &csv,
        &campaign(to, "suppress = \"suppress.csv\"\nduplicates = \"allow\""),
    );
    f.write("contacts.csv", contacts);
    f.write("suppress.csv", suppress);
    f
}

fn sandbox_send(f: &Fixture, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = f.cmd();
    cmd.args([
        "send",
        "campaign.toml",
        "--sandbox",
        "--results",
        "results.csv",
    ]);
    cmd.args(["--sandbox-log", "sandbox.jsonl"]);
    cmd.args(extra);
    cmd.timeout(Duration::from_secs(300)).assert()
}

fn searches(stderr: &str) -> u64 {
    let at = stderr
        .find(" search requests")
        .unwrap_or_else(|| panic!("no search count in: {stderr}"));
    stderr[..at].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn an_email_campaign_ends_every_row_with_its_reason_for_few_searches() {
    let n = 2000;
    let f = email_fixture(n, "type = \"contact\"\nemail = \"{{ email }}\"");
    let out = sandbox_send(&f, &["--sandbox-contacts", "contacts.csv"]);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let rows = f.result_rows();
    assert_eq!(rows.len(), n, "{stderr}");
    for r in &rows {
        let i: usize = r["row"].parse().unwrap();
        let (status, code) = (r["status"].as_str(), r["error_code"].as_str());
        let expected = match kind(i) {
            Kind::Missing => ("failed", "contact_not_found"),
            Kind::Ambiguous => ("failed", "ambiguous_contact"),
            Kind::Unsubscribed => ("skipped", "unsubscribed_from_emails"),
            Kind::Bounced => ("skipped", "has_hard_bounced"),
            Kind::Suppressed => ("skipped", "suppressed"),
            Kind::Duplicate => ("failed", "duplicate_contact"),
            Kind::OddCase | Kind::Plain => ("sent", ""),
        };
        assert_eq!((status, code), expected, "row {i}: {r:?}");
        if status == "sent" {
            assert_eq!(r["contact_id"], format!("c{i}"), "row {i}");
        }
        if kind(i) == Kind::Ambiguous {
            assert!(
                r["error_message"].contains("2 contacts (1 user, 1 lead)"),
                "{r:?}"
            );
        }
    }
    // `recipient` is what the row addressed (as rendered: trimmed), not the contact found.
    let row4 = rows.iter().find(|r| r["row"] == "4").unwrap();
    assert_eq!(
        (row4["recipient"].as_str(), row4["contact_id"].as_str()),
        ("P4@X.Test", "c4")
    );
    let log = read_log(&f.path("sandbox.jsonl"));
    let sent = rows.iter().filter(|r| r["status"] == "sent").count();
    assert_eq!(log.len(), sent);
    let mut messaged = HashSet::new();
    for e in &log {
        let to = &e["request"]["to"];
        assert_eq!(to["type"], "user", "{e}");
        assert!(
            messaged.insert(to["id"].as_str().unwrap().to_string()),
            "twice: {e}"
        );
    }
    let searched = searches(&stderr);
    assert!(
        searched > 0 && searched * 50 <= sent as u64,
        "{searched} searches for {sent} messages: more than 2%"
    );
}

#[test]
fn a_kill_during_resolution_or_sending_then_resume_messages_nobody_twice() {
    let n = 600;
    let f = email_fixture(
        n,
        "type = \"user\"\nemail = \"{{ email }}\"\non_many = \"user\"",
    );
    // Slow enough to be killed mid-run: 600 rows at 300/s take two seconds.
    let slow = campaign(
        "type = \"user\"\nemail = \"{{ email }}\"\non_many = \"user\"",
        "suppress = \"suppress.csv\"\nduplicates = \"allow\"\nrate = \"300/s\"",
    )
    .replace("rate = \"100000/min\"\n", "");
    f.write("campaign.toml", slow);
    for wait in [150, 900] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("campaign"))
            .current_dir(f.dir.path())
            .args([
                "send",
                "campaign.toml",
                "--sandbox",
                "--results",
                "results.csv",
            ])
            .args([
                "--sandbox-log",
                "sandbox.jsonl",
                "--sandbox-contacts",
                "contacts.csv",
            ])
            .args(if f.path("results.csv").exists() {
                &["--resume"][..]
            } else {
                &[][..]
            })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    sandbox_send(&f, &["--sandbox-contacts", "contacts.csv", "--resume"]);
    let rows = f.result_rows();
    let by_row: HashMap<usize, &HashMap<String, String>> = rows
        .iter()
        .map(|r| (r["row"].parse().unwrap(), r))
        .collect();
    assert_eq!(by_row.len(), n);
    let log = read_log(&f.path("sandbox.jsonl"));
    let mut messaged = HashSet::new();
    for e in &log {
        let id = e["request"]["to"]["id"].as_str().unwrap().to_string();
        assert!(messaged.insert(id.clone()), "{id} messaged twice");
    }
    for (i, r) in &by_row {
        // With on_many = "user", the ambiguous rows go to their user. A row in flight at a kill
        // stays `unknown`: it may have reached its contact, and is not sent again.
        let expect_sent = matches!(kind(*i), Kind::OddCase | Kind::Plain | Kind::Ambiguous);
        let status = r["status"].as_str();
        if expect_sent {
            assert!(status == "sent" || status == "unknown", "row {i}: {r:?}");
        } else {
            assert!(status == "failed" || status == "skipped", "row {i}: {r:?}");
        }
        if status == "sent" {
            assert!(
                messaged.contains(&format!("c{i}")),
                "row {i} never reached its contact"
            );
        }
    }
    let unknown = rows.iter().filter(|r| r["status"] == "unknown").count();
    assert!(
        unknown <= 2 * 64 * 2,
        "{unknown} unknown rows: more than two kills' in flight"
    );
}

#[test]
fn an_external_id_campaign_rehearses_without_a_contacts_file() {
    let csv = "uid,first_name\nu-1,Ann\nu-2,Bob\nu-3,Cy\n";
    let f = Fixture::new(
        csv,
        &campaign("type = \"lead\"\nuser_id = \"{{ uid }}\"", ""),
    );
    let out = sandbox_send(&f, &["--sandbox-missing", "u-2"]);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let mut rows = f.result_rows();
    rows.sort_by_key(|r| r["row"].parse::<u64>().unwrap());
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
        .collect();
    assert_eq!(
        status,
        [("sent", ""), ("failed", "contact_not_found"), ("sent", "")],
        "{stderr}"
    );
    let log = read_log(&f.path("sandbox.jsonl"));
    assert_eq!(log.len(), 2);
    for (e, r) in log.iter().zip([&rows[0], &rows[2]]) {
        assert_eq!(e["request"]["to"]["type"], "lead");
        assert_eq!(e["request"]["to"]["id"], r["contact_id"].as_str());
    }
    assert!(
        rows[1]["error_message"].contains("no lead has this external_id"),
        "{:?}",
        rows[1]
    );
}

#[test]
fn the_campaign_file_takes_one_address_and_a_type_that_fits_it() {
    for (to, says) in [
        (
            "type = \"user\"\nid = \"{{ uid }}\"\nemail = \"{{ email }}\"",
            "give exactly one of `id`, `email` or `external_id`",
        ),
        (
            "type = \"contact\"\nid = \"{{ uid }}\"",
            "address it by `email` or `external_id`",
        ),
        (
            "type = \"visitor\"\nemail = \"{{ email }}\"",
            "`visitor` is not one of `user`, `lead`, `contact`",
        ),
        (
            "type = \"user\"\nemail = \"{{ email }}\"\non_many = \"first\"",
            "`first` is not one of",
        ),
        (
            "type = \"user\"\nemail = \"{{ email }}\"\nverify = true",
            "applies to `id` campaigns",
        ),
    ] {
        let f = Fixture::new("uid,email,first_name\n1,a@x.test,A\n", &campaign(to, ""));
        let out = f
            .cmd()
            .args(["send", "campaign.toml", "--dry-run"])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(stderr.contains(says), "{to}: {stderr}");
    }
}

#[test]
fn a_dry_run_says_which_rows_would_be_looked_up_and_an_address_that_is_no_email_is_refused() {
    let f = Fixture::new(
        "email,first_name\na@x.test,A\nb@x.test,B\n",
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f
        .cmd()
        .args(["send", "campaign.toml", "--dry-run"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.contains("up to 2 rows are looked up by email"),
        "{stdout}"
    );
    let f = Fixture::new(
        "email,first_name\nnot-an-address,A\n",
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f
        .cmd()
        .args(["send", "campaign.toml", "--dry-run"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("is not an e-mail address"), "{stderr}");
}

#[test]
fn the_email_addressed_sample_rehearses_with_the_sandbox_alone() {
    let dir = sample_dir();
    let out = assert_cmd::Command::cargo_bin("campaign")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "samples/email-addressed.toml", "--sandbox"])
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let results = read_results(
        &dir.path()
            .join("samples/email-addressed.sandbox.results.csv"),
    );
    let log = read_log(
        &dir.path()
            .join("samples/.campaign/email-addressed.sandbox.results.csv.sandbox.jsonl"),
    );
    assert!(!results.is_empty());
    assert_eq!(log.len(), results.len(), "{stderr}");
    let messaged: HashSet<&str> = log
        .iter()
        .map(|e| e["request"]["to"]["id"].as_str().unwrap())
        .collect();
    for r in &results {
        assert_eq!(r["status"], "sent", "{r:?}");
        assert!(r["recipient"].contains('@'), "{r:?}");
        assert!(messaged.contains(r["contact_id"].as_str()), "{r:?}");
    }
}

#[test]
fn resolve_writes_each_rows_contact_and_status_and_the_file_sends_as_an_id_campaign() {
    let n = 300;
    let f = email_fixture(n, "type = \"contact\"\nemail = \"{{ email }}\"");
    let out = f
        .cmd()
        .args([
            "resolve",
            "campaign.toml",
            "--sandbox",
            "--sandbox-contacts",
            "contacts.csv",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(stderr.contains("search requests"), "{stderr}");
    let rows = read_results(&f.path("campaign.resolved.csv"));
    assert_eq!(rows.len(), n);
    for (i, r) in (1..=n).zip(&rows) {
        let expected = match kind(i) {
            Kind::Missing => "not_found",
            Kind::Ambiguous => "ambiguous",
            Kind::Unsubscribed | Kind::Bounced => "unsubscribed",
            Kind::Suppressed => "suppressed",
            Kind::Duplicate => "duplicate",
            Kind::OddCase | Kind::Plain => "found",
        };
        assert_eq!(r["lookup_status"], expected, "row {i}: {r:?}");
        assert_eq!(
            r["first_name"],
            format!("Person{i}"),
            "the row's own cells are kept"
        );
        if expected == "found" {
            assert_eq!(
                (r["contact_id"].as_str(), r["contact_role"].as_str()),
                (format!("c{i}").as_str(), "user")
            );
        }
    }
    // Sent from as an `id` campaign: the found rows, and only they, are messaged.
    f.write(
        "by-id.toml",
        campaign("type = \"user\"\nid = \"{{ contact_id }}\"", "")
            .replace("people.csv", "campaign.resolved.csv"),
    );
    let mut cmd = f.cmd();
    cmd.args([
        "send",
        "by-id.toml",
        "--sandbox",
        "--skip-invalid",
        "--sandbox-log",
        "by-id.jsonl",
    ]);
    cmd.assert().success();
    let log = read_log(&f.path("by-id.jsonl"));
    let found = rows
        .iter()
        .filter(|r| r["lookup_status"] == "found")
        .count();
    assert_eq!(log.len(), found);
}

/// `lookup` is `resolve` by the name `send` gives the stage: the same file, the same statuses.
#[test]
fn lookup_is_resolve_by_another_name() {
    let f = email_fixture(12, "type = \"user\"\nemail = \"{{ email }}\"");
    let mut written = Vec::new();
    for command in ["resolve", "lookup"] {
        let out = f.path(&format!("{command}.csv"));
        let ran = f
            .cmd()
            .args([
                command,
                "campaign.toml",
                "--sandbox",
                "--sandbox-contacts",
                "contacts.csv",
            ])
            .args(["--out", out.to_str().unwrap()])
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&ran.get_output().stderr).to_string();
        assert!(stderr.contains("nothing was sent"), "{command}: {stderr}");
        written.push(std::fs::read_to_string(&out).unwrap());
    }
    assert!(written[0].contains("lookup_status"), "{}", written[0]);
    assert_eq!(written[0], written[1]);
}

#[test]
fn an_id_campaign_with_verify_skips_unsubscribed_contacts_in_one_search() {
    let csv = "uid,first_name\nc1,A\nc2,B\nc3,C\nc4,D\n";
    let contacts = "id,email,role,unsubscribed_from_emails\nc1,a@x.test,user,false\nc2,b@x.test,user,true\nc4,d@x.test,user,false\n";
    for verify in [true, false] {
        let to = format!("type = \"user\"\nid = \"{{{{ uid }}}}\"\nverify = {verify}");
        // An unknown id's 404 fails at once, not after a minute of retries.
        let f = Fixture::new(csv, &campaign(&to, "retry_not_found_for = \"0s\""));
        f.write("contacts.csv", contacts);
        let out = sandbox_send(
            &f,
            &["--sandbox-contacts", "contacts.csv", "--max-attempts", "1"],
        );
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        let mut rows = f.result_rows();
        rows.sort_by_key(|r| r["row"].parse::<u64>().unwrap());
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
            .collect();
        if verify {
            assert_eq!(
                got,
                [
                    ("sent", ""),
                    ("skipped", "unsubscribed_from_emails"),
                    ("failed", "contact_not_found"),
                    ("sent", "")
                ],
                "{stderr}"
            );
            assert_eq!(searches(&stderr), 1, "{stderr}");
        } else {
            // Without it, Intercom would e-mail the unsubscribed contact: the sandbox does.
            assert_eq!(got[1], ("sent", ""), "{stderr}");
        }
    }
}

#[test]
fn a_search_refused_for_its_size_is_split_and_a_failed_one_asked_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let server = TestServer::start(Arc::new(move |r: &Received, _| {
        if r.path != "/contacts/search" {
            return ok_reply(r);
        }
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return error_reply(503, "service_unavailable", "try again", "req-1");
        }
        let keys = r.body["query"]["value"][0]["value"]
            .as_array()
            .unwrap()
            .clone();
        if keys.len() > 40 {
            return error_reply(400, "parameter_invalid", "too many values for IN", "req-2");
        }
        let data: Vec<Value> = keys
            .iter()
            .map(|k| serde_json::json!({"type": "contact", "id": format!("id-{}", k.as_str().unwrap()), "role": "user", "email": k}))
            .collect();
        Reply::Json(
            200,
            serde_json::json!({"type": "list", "data": data, "total_count": keys.len()}),
        )
    }));
    let mut csv = String::from("email,first_name\n");
    for i in 1..=100 {
        csv.push_str(&format!("p{i}@x.test,P{i}\n"));
    }
    let f = Fixture::new(
        &csv,
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f.send(&server, &[]).success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let rows = f.result_rows();
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
    let messages: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/messages")
        .map(|r| r.to_id())
        .collect();
    assert_eq!(messages.len(), 100);
    assert_eq!(messages.iter().collect::<HashSet<_>>().len(), 100);
    assert!(messages.contains(&"id-p7@x.test".to_string()));
    // 503, then 100 keys refused, 2 × 50 refused, 4 × 25 found: the summary counts the
    // searches that failed and were refused too.
    assert_eq!(asked.load(Ordering::SeqCst), 8);
    assert_eq!(searches(&stderr), 8, "{stderr}");
}

#[test]
fn a_contact_a_search_returns_twice_is_one_contact() {
    // Each contact found twice on the page, as a server paging by offset may list it.
    let server = TestServer::start(std::sync::Arc::new(|r: &Received, _| {
        if r.path != "/contacts/search" {
            return ok_reply(r);
        }
        let data: Vec<Value> = r.body["query"]["value"][0]["value"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|k| {
                let c = serde_json::json!({"type": "contact", "id": format!("id-{}", k.as_str().unwrap()), "role": "user", "email": k});
                [c.clone(), c]
            })
            .collect();
        Reply::Json(200, serde_json::json!({"type": "list", "data": data}))
    }));
    let f = Fixture::new(
        &people_csv_by_email(3),
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f.send(&server, &[]).success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(!stderr.contains("2 contacts"), "{stderr}");
    let rows = f.result_rows();
    assert!(
        rows.iter()
            .all(|r| r["status"] == "sent" && r["contact_id"] == format!("id-{}", r["recipient"])),
        "{rows:?}"
    );
    let messages = server
        .requests()
        .iter()
        .filter(|r| r.path == "/messages")
        .count();
    assert_eq!(messages, 3);
    assert_eq!(searches(&stderr), 1, "{stderr}");
}

#[test]
fn resume_looks_up_only_rows_not_sent_and_again_those_not_found() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // p30 is not searchable yet in the first run (a contact made minutes ago), then it is.
    let first_run = Arc::new(AtomicBool::new(true));
    let first = Arc::clone(&first_run);
    let server = TestServer::start(Arc::new(move |r: &Received, _| {
        if r.path != "/contacts/search" {
            return ok_reply(r);
        }
        let data: Vec<Value> = r.body["query"]["value"][0]["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| !(first.load(Ordering::SeqCst) && *k == "p30@x.test"))
            .map(|k| serde_json::json!({"type": "contact", "id": format!("id-{}", k.as_str().unwrap()), "role": "user", "email": k}))
            .collect();
        Reply::Json(200, serde_json::json!({"type": "list", "data": data}))
    }));
    let mut csv = String::from("email,first_name\n");
    for i in 1..=100 {
        csv.push_str(&format!("p{i}@x.test,P{i}\n"));
    }
    let f = Fixture::new(
        &csv,
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    f.send(&server, &["--limit", "60"]);
    let before = server.requests().len();
    first_run.store(false, Ordering::SeqCst);
    f.send(&server, &["--resume"]).success();
    let searched: HashSet<String> = server.requests()[before..]
        .iter()
        .filter(|r| r.path == "/contacts/search")
        .flat_map(|r| {
            r.body["query"]["value"][0]["value"]
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let expected: HashSet<String> = std::iter::once(30)
        .chain(61..=100)
        .map(|i| format!("p{i}@x.test"))
        .collect();
    assert_eq!(
        searched, expected,
        "only rows not sent, and the one not found, are looked up again"
    );
    let messages: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/messages")
        .map(|r| r.to_id())
        .collect();
    assert_eq!(messages.len(), 100);
    assert!(messages.contains(&"id-p30@x.test".to_string()));
}

/// A search server that pages by `per_page` (fewer than asked for), its cursors from `cursor`
/// (the page number after the one answered; `None`: the last page).
fn paging_server(
    contacts: usize,
    per_page: usize,
    cursor: impl Fn(usize) -> Option<String> + Send + Sync + 'static,
) -> TestServer {
    TestServer::start(std::sync::Arc::new(move |r: &Received, _| {
        if r.path != "/contacts/search" {
            return ok_reply(r);
        }
        let page: usize = r.body["pagination"]["starting_after"]
            .as_str()
            .map_or(0, |c| c.trim_start_matches("page-").parse().unwrap());
        let data: Vec<Value> = (page * per_page..((page + 1) * per_page).min(contacts))
            .map(|i| serde_json::json!({"type": "contact", "id": format!("c{}", i + 1), "role": "user", "email": format!("p{}@x.test", i + 1)}))
            .collect();
        let mut body = serde_json::json!({"type": "list", "data": data, "total_count": contacts});
        if let Some(next) = cursor(page) {
            body["pages"] =
                serde_json::json!({"next": {"per_page": per_page, "starting_after": next}});
        }
        Reply::Json(200, body)
    }))
}

#[test]
fn pages_shorter_than_asked_for_are_followed_while_the_cursor_moves() {
    // 150 contacts, 50 a page: three pages, whatever per_page asked.
    let server = paging_server(150, 50, |page| {
        (page < 2).then(|| format!("page-{}", page + 1))
    });
    let f = Fixture::new(
        &people_csv_by_email(150),
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f.send(&server, &[]).success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let rows = f.result_rows();
    assert_eq!(rows.len(), 150);
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
    let requests = server.requests();
    let messaged: HashSet<String> = requests
        .iter()
        .filter(|r| r.path == "/messages")
        .map(|r| r.to_id())
        .collect();
    assert_eq!(messaged.len(), 150);
    assert_eq!(searches(&stderr), 3, "{stderr}");
}

#[test]
fn a_search_whose_cursors_go_in_a_circle_ends_its_rows_lookup_failed_and_counts_its_requests() {
    // Cursors 1, 2, 1, 2, …: the third page names the first's cursor again.
    let server = paging_server(300, 50, |page| Some(format!("page-{}", page % 2 + 1)));
    let f = Fixture::new(
        &people_csv_by_email(10),
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f
        .send_cmd(&server.url(), &[])
        .timeout(Duration::from_secs(120))
        .assert();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let rows = f.result_rows();
    assert_eq!(rows.len(), 10, "{stderr}");
    for r in &rows {
        assert_eq!(r["status"], "failed", "{r:?}");
        assert_eq!(r["error_code"], "lookup_failed", "{r:?}");
        assert!(r["error_message"].contains("went in a circle"), "{r:?}");
    }
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.path != "/messages"));
    let made = requests
        .iter()
        .filter(|r| r.path == "/contacts/search")
        .count();
    assert_eq!(made, 3);
    assert_eq!(searches(&stderr), 3, "{stderr}");
}

#[test]
fn a_search_that_pages_on_and_on_stops_at_the_bound() {
    let server = paging_server(100_000, 1, |page| Some(format!("page-{}", page + 1)));
    let f = Fixture::new(
        &people_csv_by_email(3),
        &campaign("type = \"user\"\nemail = \"{{ email }}\"", ""),
    );
    let out = f
        .send_cmd(&server.url(), &[])
        .timeout(Duration::from_secs(120))
        .assert();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let rows = f.result_rows();
    assert!(
        rows.iter()
            .all(|r| r["error_code"] == "lookup_failed" && r["error_message"].contains("past 20")),
        "{rows:?}"
    );
    assert_eq!(searches(&stderr), 20, "{stderr}");
    assert!(server.requests().iter().all(|r| r.path != "/messages"));
}

fn people_csv_by_email(n: usize) -> String {
    let mut csv = String::from("email,first_name\n");
    for i in 1..=n {
        csv.push_str(&format!("p{i}@x.test,P{i}\n"));
    }
    csv
}
