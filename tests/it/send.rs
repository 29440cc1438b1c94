//! `campaign send` end to end against a scripted local server: what the server received, what the
//! results file says, the exit code.
use crate::common;

use std::sync::Arc;

use common::*;
use predicates::prelude::*;

#[test]
fn every_row_arrives_as_the_spec_says_and_is_recorded_with_its_message_id() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(12), &email_campaign(""));
    f.send(&server, &["--intercom-version", "2.11"])
        .success()
        .stdout(predicate::str::contains("sent 12, failed 0"));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 12);
    for r in &reqs {
        assert_valid_request(r, "2.11");
    }
    let r5 = reqs.iter().find(|r| r.to_id() == "id-5").unwrap();
    assert_eq!(r5.body["subject"], "Hello Person5");
    assert_eq!(r5.body["body"], "<p>Hi Person5, welcome to pro.</p>");
    assert_eq!(r5.body["to"]["type"], "user");
    assert_eq!(r5.body["from"]["id"], 394051);
    assert_eq!(r5.body["template"], "plain");

    let rows = f.result_rows();
    assert_eq!(rows.len(), 12);
    let header = std::fs::read_to_string(f.results()).unwrap();
    // The contract's ten columns, then `contact_id` (empty: an `id` campaign resolves nothing).
    assert!(header.starts_with("row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at,contact_id\n"));
    assert!(rows.iter().all(|r| r["contact_id"].is_empty()));
    for row in &rows {
        let n = &row["row"];
        assert_eq!(row["recipient"], format!("id-{n}"));
        assert_eq!(row["status"], "sent");
        assert_eq!(row["message_id"], format!("msg-id-{n}"));
        assert_eq!(row["http_status"], "200");
        assert_eq!(row["attempts"], "1");
        assert!(row["finished_at"].ends_with('Z'));
    }
}

#[test]
fn in_app_requests_carry_no_subject_or_template() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    // "inapp", as Intercom's answers spell it, is taken and sent as the request schema's "in_app".
    let toml = inapp_campaign("").replace("\"in_app\"", "\"inapp\"");
    let f = Fixture::new(&people_csv(3), &toml);
    f.send(&server, &[]).success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_valid_request(r, "2.16");
        assert_eq!(r.body["message_type"], "in_app");
    }
}

#[test]
fn server_errors_become_failed_rows_and_resume_sends_only_those() {
    // Rows 3 and 7 are rejected the first time.
    let server = TestServer::start(Arc::new(|r, nth| {
        if (r.to_id() == "id-3" || r.to_id() == "id-7") && nth == 0 {
            error_reply(
                422,
                "parameter_invalid",
                "User is unsubscribed",
                "req-abc-123",
            )
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(10), &email_campaign(""));
    f.send(&server, &[])
        .code(1)
        .stdout(predicate::str::contains("sent 8, failed 2"));
    let rows = f.result_rows();
    assert_eq!(rows.len(), 10);
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 2);
    for r in &failed {
        assert!(r["row"] == "3" || r["row"] == "7");
        assert_eq!(r["http_status"], "422");
        assert_eq!(r["error_code"], "parameter_invalid");
        assert_eq!(r["error_message"], "User is unsubscribed");
        assert_eq!(r["request_id"], "req-abc-123");
        assert_eq!(r["message_id"], "");
        // 422 is permanent: never retried within a run.
        assert_eq!(r["attempts"], "1");
    }
    assert_eq!(server.requests().len(), 10);

    // A second run without --resume refuses and sends nothing.
    f.send(&server, &[])
        .code(2)
        .stderr(predicate::str::contains("--resume"));
    assert_eq!(server.requests().len(), 10);

    f.send(&server, &["--resume"])
        .success()
        .stdout(predicate::str::contains("sent 2, failed 0"));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 12);
    let resent: Vec<String> = reqs[10..].iter().map(|r| r.to_id()).collect();
    assert!(
        resent.contains(&"id-3".to_string()) && resent.contains(&"id-7".to_string()),
        "{resent:?}"
    );
    let rows = f.result_rows();
    assert_eq!(rows.len(), 10, "one final line per row");
    assert!(rows.iter().all(|r| r["status"] == "sent"));
}

#[test]
fn a_redirect_is_not_followed_and_the_row_fails_saying_where_it_pointed() {
    // Every answer is a 307 to another path, which would accept the post if it were followed.
    let server = TestServer::start(Arc::new(|r, _| {
        if r.path == "/messages" {
            Reply::JsonWithHeaders(
                307,
                serde_json::json!({}),
                vec![("location", "/elsewhere/messages".to_string())],
            )
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    f.send(&server, &[])
        .code(1)
        .stdout(predicate::str::contains("sent 0, failed 2"));
    let reqs = server.requests();
    assert_eq!(
        reqs.len(),
        2,
        "one post per row, none to the redirect's target"
    );
    assert!(reqs.iter().all(|r| r.path == "/messages"));
    for r in f.result_rows() {
        assert_eq!(r["status"], "failed");
        assert_eq!(r["http_status"], "307");
        assert_eq!(r["error_code"], "redirected");
        assert!(
            r["error_message"].contains("`/elsewhere/messages`"),
            "{}",
            r["error_message"]
        );
        assert_eq!(r["attempts"], "1");
    }
}

#[test]
fn a_template_error_sends_nothing_and_exits_2() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(
        &people_csv(5),
        &email_campaign("").replace("{{ plan }}", "{{ plan }"),
    );
    f.send(&server, &[]).code(2).stderr(
        predicate::str::contains("campaign.toml [message] body")
            .and(predicate::str::contains("line 1, column")),
    );
    assert!(server.requests().is_empty());
    assert!(!f.results().exists());
}

#[test]
fn a_broken_csv_sends_nothing_and_exits_2() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let mut csv = people_csv(30);
    csv.push_str("id-31,Ragged\n");
    let f = Fixture::new(&csv, &email_campaign(""));
    f.send(&server, &[])
        .code(2)
        .stderr(predicate::str::contains(
            "people.csv: record 31, line 32: has 2 fields, the header has 4",
        ));
    assert!(server.requests().is_empty());
}

#[test]
fn a_missing_token_is_said_before_anything_else() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    let mut cmd = f.cmd();
    cmd.env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--api-base", &server.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("INTERCOM_TOKEN"));
    assert!(server.requests().is_empty());
    // --dry-run needs no token and sends nothing.
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args([
            "send",
            "campaign.toml",
            "--dry-run",
            "--api-base",
            &server.url(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 messages would be sent"));
    assert!(server.requests().is_empty());
}

#[test]
fn the_spec_check_itself_rejects_what_intercom_rejects() {
    // Guards the guard: a request with a string admin id or a bad enum must fail the check above.
    let v = spec_validator("2.16");
    let good = serde_json::json!({"message_type": "email", "subject": "s", "body": "b", "template": "plain",
        "from": {"type": "admin", "id": 1}, "to": {"type": "user", "id": "x"}});
    assert!(v.is_valid(&good));
    let mut bad = good.clone();
    bad["from"]["id"] = "1".into();
    assert!(!v.is_valid(&bad));
    let mut bad = good.clone();
    bad["to"]["type"] = "contact".into();
    assert!(!v.is_valid(&bad));
}
