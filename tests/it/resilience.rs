//! Never twice, never lost: retries only where safe, 429 honoured, stops when pointless, Ctrl-C,
//! `unknown` rows, and resume refusing a changed campaign. Driven against a scripted server.
use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use predicates::prelude::*;
use serde_json::json;

type Rows = [std::collections::HashMap<String, String>];

fn row(rows: &Rows, n: u64) -> &std::collections::HashMap<String, String> {
    rows.iter()
        .find(|r| r["row"] == n.to_string())
        .unwrap_or_else(|| panic!("row {n} missing: {rows:?}"))
}

#[test]
fn only_a_shed_503_is_retried_and_counted_in_attempts() {
    // id-2: 503 shed (Retry-After, no body) twice, then created. id-3: shed every time (gives up
    // after max_attempts: nothing was created, so `failed`). id-4: a 503 with an `error.list`
    // body, id-5: a 503 with no body but no Retry-After: neither proves anything, so `unknown`.
    let shed = || Reply::Empty(503, vec![("retry-after", "0".to_string())]);
    let server = TestServer::start(Arc::new(move |r, nth| match (r.to_id().as_str(), nth) {
        ("id-2", 0 | 1) | ("id-3", _) => shed(),
        ("id-4", 0) => error_reply(503, "service_unavailable", "try later", "r-503"),
        ("id-5", 0) => Reply::Empty(503, vec![]),
        _ => ok_reply(r),
    }));
    let f = Fixture::new(&people_csv(5), &email_campaign("max_attempts = 3"));
    f.send(&server, &[]).code(1);
    let rows = f.result_rows();
    assert_eq!(row(&rows, 2)["status"], "sent");
    assert_eq!(row(&rows, 2)["attempts"], "3");
    assert_eq!(row(&rows, 3)["status"], "failed");
    assert_eq!(row(&rows, 3)["attempts"], "3");
    assert_eq!(row(&rows, 3)["http_status"], "503");
    for n in [4, 5] {
        assert_eq!(row(&rows, n)["status"], "unknown", "row {n}");
        assert_eq!(row(&rows, n)["attempts"], "1", "row {n}");
    }
    let count = |id: &str| server.requests().iter().filter(|r| r.to_id() == id).count();
    assert_eq!(count("id-3"), 3, "a shed 503 is retried up to max_attempts");
    assert_eq!((count("id-4"), count("id-5")), (1, 1));
}

/// A gateway's 500, 502, 503 or 504 can come after the service behind it made the message: the
/// row is `unknown` at once, never retried by the run nor by a `--resume`, and the run says to
/// look it up.
#[test]
fn a_gateway_error_after_the_message_was_made_is_unknown_and_never_retried() {
    let f = Fixture::new(&people_csv(16), &email_campaign("max_attempts = 3"));
    let log = f.path("gateway.jsonl");
    let sb = start_sandbox(
        &assert_cmd::cargo::cargo_bin("campaign"),
        &[
            "--fail-after-rate".as_ref(),
            "1".as_ref(),
            "--seed".as_ref(),
            "5".as_ref(),
            "--log".as_ref(),
            log.as_os_str(),
        ],
    );
    let send = |extra: &[&str]| {
        let mut cmd = assert_cmd::Command::cargo_bin("campaign").unwrap();
        cmd.current_dir(f.dir.path())
            .env("INTERCOM_TOKEN", TOKEN)
            .args(["send", "campaign.toml", "--results", "results.csv"])
            .args(["--api-base", &sb.url])
            .args(extra);
        cmd.assert()
    };
    send(&[])
        .code(1)
        .stderr(predicate::str::contains("16 rows are `unknown`"));
    let rows = f.result_rows();
    let statuses: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["http_status"].as_str()).collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["500", "502", "503", "504"],
        "the seed draws every status"
    );
    assert!(
        rows.iter()
            .all(|r| r["status"] == "unknown" && r["attempts"] == "1"),
        "{rows:?}"
    );
    send(&["--resume"])
        .code(1)
        .stderr(predicate::str::contains("16 rows are `unknown`"));
    // One message per customer, whatever the gateway said.
    std::thread::sleep(Duration::from_millis(300));
    let logged = std::fs::read_to_string(&log).unwrap();
    let mut to: Vec<String> = logged
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["request"]["to"]["id"].to_string()
        })
        .collect();
    to.sort();
    to.dedup();
    assert_eq!((logged.lines().count(), to.len()), (16, 16));
}

#[test]
fn a_500_or_a_dropped_connection_is_unknown_never_resent_unless_asked() {
    let server = TestServer::start(Arc::new(|r, nth| match (r.to_id().as_str(), nth) {
        ("id-2", 0) => error_reply(500, "server_error", "oops", "r-500"),
        ("id-4", 0) => Reply::Drop,
        _ => ok_reply(r),
    }));
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    f.send(&server, &[])
        .code(1)
        .stderr(predicate::str::contains("2 rows are `unknown`"));
    let rows = f.result_rows();
    assert_eq!(row(&rows, 2)["status"], "unknown");
    assert_eq!(row(&rows, 2)["http_status"], "500");
    assert_eq!(row(&rows, 4)["status"], "unknown");
    assert_eq!(row(&rows, 4)["attempts"], "1");
    assert_eq!(
        server.requests().len(),
        5,
        "neither is retried within the run"
    );

    // Resume skips unknown rows, and says so; the campaign is not done, so exit 1.
    f.send(&server, &["--resume"])
        .code(1)
        .stderr(predicate::str::contains("2 rows are `unknown`"));
    assert_eq!(server.requests().len(), 5);
    // --retry-unknown sends them on purpose.
    f.send(&server, &["--resume", "--retry-unknown"])
        .success()
        .stdout(predicate::str::contains("sent 2,"));
    assert_eq!(server.requests().len(), 7);
    let rows = f.result_rows();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["status"] == "sent"));
}

#[test]
fn not_found_is_retried_for_a_while_then_failed() {
    let server = TestServer::start(Arc::new(|r, nth| match (r.to_id().as_str(), nth) {
        ("id-1", 0) => error_reply(404, "not_found", "User Not Found", "r-404a"),
        ("id-2", _) => error_reply(404, "not_found", "User Not Found", "r-404b"),
        _ => ok_reply(r),
    }));
    let f = Fixture::new(
        &people_csv(3),
        &email_campaign("retry_not_found_for = \"2s\""),
    );
    let started = Instant::now();
    f.send(&server, &[]).code(1);
    let rows = f.result_rows();
    assert_eq!(row(&rows, 1)["status"], "sent");
    assert_eq!(row(&rows, 1)["attempts"], "2");
    assert_eq!(row(&rows, 2)["status"], "failed");
    assert_eq!(row(&rows, 2)["error_code"], "not_found");
    let tries: usize = row(&rows, 2)["attempts"].parse().unwrap();
    assert!(tries >= 3, "404 is retried: {tries} attempts");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_429_pauses_every_sender_until_the_reset_and_costs_no_attempt() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let reset_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let reset_at2 = Arc::clone(&reset_at);
    let server = TestServer::start(Arc::new(move |r, _| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if n == 5 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            // The window resets on the second after next.
            let reset = now.as_secs() + 2;
            *reset_at2.lock().unwrap() = Some(Instant::now() + (Duration::from_secs(reset) - now));
            return Reply::JsonWithHeaders(
                429,
                json!({"type": "error.list", "request_id": "r-429", "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit of 167 in 10_seconds"}]}),
                vec![
                    ("X-RateLimit-Limit", "167".into()),
                    ("X-RateLimit-Remaining", "0".into()),
                    ("X-RateLimit-Reset", reset.to_string()),
                ],
            );
        }
        ok_reply(r)
    }));
    let f = Fixture::new(
        &people_csv(12),
        &email_campaign("").replace("concurrency = 4", "concurrency = 1"),
    );
    f.send(&server, &[])
        .success()
        .stdout(predicate::str::contains("sent 12, failed 0"));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 13);
    let limited = &reqs[5];
    let reset = reset_at.lock().unwrap().unwrap();
    // Nothing was sent between the 429 and the window's reset.
    assert!(
        reqs[6].at >= reset,
        "sent {:?} before the reset",
        reset - reqs[6].at
    );
    let rows = f.result_rows();
    let id = limited.to_id();
    let r = rows.iter().find(|r| r["recipient"] == id).unwrap();
    assert_eq!(r["status"], "sent");
    assert_eq!(r["attempts"], "1", "a 429 is not counted as an attempt");
}

#[test]
fn an_invalid_token_stops_the_run_at_once_with_exit_3_and_resume_continues() {
    let ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok2 = Arc::clone(&ok);
    let server = TestServer::start(Arc::new(move |r, _| {
        if ok2.load(Ordering::SeqCst) {
            ok_reply(r)
        } else {
            error_reply(401, "unauthorized", "Access Token Invalid", "r-401")
        }
    }));
    let f = Fixture::new(
        &people_csv(40),
        &email_campaign("").replace("concurrency = 4", "concurrency = 2"),
    );
    f.send(&server, &[]).code(3).stderr(
        predicate::str::contains("access token or the workspace's plan")
            .and(predicate::str::contains("--resume")),
    );
    let first = server.requests().len();
    assert!(first <= 4, "stopped at once, not after {first} requests");
    let rows = f.result_rows();
    assert_eq!(rows.len(), first, "only attempted rows are recorded");
    assert!(rows
        .iter()
        .all(|r| r["status"] == "failed" && r["http_status"] == "401"));

    ok.store(true, Ordering::SeqCst);
    f.send(&server, &["--resume"]).success();
    let rows = f.result_rows();
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r["status"] == "sent"));
    assert_eq!(
        server.requests().len(),
        first + 40,
        "the failed rows once more, the rest once"
    );
}

#[test]
fn a_run_where_every_request_fails_stops_at_the_threshold() {
    let server = TestServer::start(Arc::new(|_, _| {
        error_reply(422, "parameter_invalid", "Admin not found", "r-422")
    }));
    let f = Fixture::new(
        &people_csv(200),
        &email_campaign("max_failures = 10").replace("concurrency = 4", "concurrency = 1"),
    );
    f.send(&server, &[]).code(3).stderr(
        predicate::str::contains("11 rows in a row failed")
            .and(predicate::str::contains("HTTP 422 parameter_invalid")),
    );
    let n = server.requests().len();
    assert!((11..=13).contains(&n), "{n} requests");
    assert_eq!(f.result_rows().len(), n);
}

#[test]
fn a_connection_that_never_opens_is_retried_then_failed() {
    // A port nothing listens on: the request never reached a server, so retrying is safe.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let f = Fixture::new(&people_csv(2), &email_campaign("max_attempts = 2"));
    f.send_to(&url, &[]).code(1);
    let rows = f.result_rows();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["status"], "failed");
        assert_eq!(r["error_code"], "connection_failed");
        assert_eq!(r["attempts"], "2");
    }
}

#[test]
fn resume_refuses_a_changed_csv_or_template() {
    let server = TestServer::start(Arc::new(|r, nth| {
        if r.to_id() == "id-5" && nth == 0 {
            error_reply(422, "parameter_invalid", "nope", "r")
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.send(&server, &[]).code(1);
    assert_eq!(server.requests().len(), 6);

    // A row's recipient changed: refused, naming the row.
    f.write("people.csv", people_csv(6).replace("id-3,", "id-33,"));
    f.send(&server, &["--resume"]).code(2).stderr(
        predicate::str::contains("people.csv: record 3").and(predicate::str::contains("`id-33`")),
    );
    f.send(&server, &["--resume", "--allow-changed"]).code(2);
    assert_eq!(server.requests().len(), 6);

    // The template changed: refused unless --allow-changed.
    f.write("people.csv", people_csv(6));
    f.write(
        "campaign.toml",
        email_campaign("").replace("Hello", "Hi there"),
    );
    f.send(&server, &["--resume"])
        .code(2)
        .stderr(predicate::str::contains("--allow-changed"));
    assert_eq!(server.requests().len(), 6);
    f.send(&server, &["--resume", "--allow-changed"])
        .success()
        .stdout(predicate::str::contains("sent 1,"));
    assert_eq!(server.requests().len(), 7);
}

#[test]
fn duplicate_recipients_are_reported_and_refused_unless_allowed() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let csv = people_csv(4).replace("id-4,", "id-2,");
    let f = Fixture::new(&csv, &email_campaign(""));
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "people.csv: record 4: addresses the same recipient as record 2",
        ));
    f.send(&server, &[]).code(2);
    assert!(server.requests().is_empty());
    f.send(&server, &["--allow-duplicates"]).success();
    assert_eq!(server.requests().len(), 4);
}

#[cfg(unix)]
#[test]
fn ctrl_c_finishes_the_requests_in_flight_and_exits_130() {
    stop_cleanly_on("INT");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_as_cleanly_as_ctrl_c() {
    stop_cleanly_on("TERM");
}

#[cfg(unix)]
fn stop_cleanly_on(signal: &str) {
    let server = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_millis(400), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(
        &people_csv(200),
        &email_campaign("").replace("rate = \"200/s\"", "rate = \"20/s\""),
    );
    let mut child = f.spawn_send(&server.url(), &[]);
    // Stopped once requests are out (the server holds each 400 ms; 200 rows at 20/s take 10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests().is_empty() {
        assert!(Instant::now() < deadline, "no request reached the server");
        assert!(
            child.try_wait().unwrap().is_none(),
            "send exited before a request"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "did not exit after SIG{signal}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let received = server.requests().len();
    assert!(received > 0 && received < 200, "{received}");
    // Every request that reached the server has its outcome recorded: none left in doubt.
    let rows = f.result_rows();
    assert_eq!(rows.len(), received);
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");

    f.send(&server, &["--resume"]).success();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 200, "each row exactly once across both runs");
    let mut ids: Vec<String> = reqs.iter().map(|r| r.to_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_quits_at_once_and_rows_in_flight_become_unknown() {
    // The first run's answers are held for ten minutes, so that a run that ends at all (within
    // the minute allowed below) is one that did not wait for them; the resume's come at once.
    let slow = Arc::new(AtomicBool::new(true));
    let server = TestServer::start(Arc::new({
        let slow = Arc::clone(&slow);
        move |r, _| match slow.load(Ordering::SeqCst) {
            true => Reply::Delay(Duration::from_secs(600), Box::new(ok_reply(r))),
            false => ok_reply(r),
        }
    }));
    let f = Fixture::new(&people_csv(50), &email_campaign(""));
    let mut child = f.spawn_send(&server.url(), &[]);
    // Wait until requests are in flight (the server holds each).
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests().len() < 4 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The second Ctrl-C goes once send has said it heard the first.
    let stderr = child.stderr.take().unwrap();
    let (heard, first_heard) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut text = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("Ctrl-C again") {
                let _ = heard.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    first_heard
        .recv_timeout(Duration::from_secs(60))
        .expect("send did not acknowledge the first Ctrl-C");
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "did not quit at once: still waiting for the answers"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    slow.store(false, Ordering::SeqCst);
    let in_flight = server.requests().len();
    assert!(!f.results().exists() || f.result_rows().is_empty());

    // Resume: the rows that were in flight are `unknown`, listed, and not sent again.
    f.send(&server, &["--resume"]).code(1).stderr(
        predicate::str::contains(format!(
            "{in_flight} were in flight when the last run stopped"
        ))
        .and(predicate::str::contains("rows are `unknown` (rows 1, 2")),
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 50, "the rows in flight are not sent twice");
    let rows = f.result_rows();
    assert_eq!(rows.len(), 50);
    assert_eq!(
        rows.iter().filter(|r| r["status"] == "unknown").count(),
        in_flight
    );
    assert!(rows
        .iter()
        .filter(|r| r["status"] == "unknown")
        .all(|r| r["error_code"] == "interrupted"));
}

/// A send over `rows` rows at a high rate whose CSV `change` alters in place (same file, same
/// bytes up to the change) when the first request arrives. The reader is then at most about 1,400
/// rows ahead of the requests (16 batches of 64 queued, two in hand, the csv crate's 8 KiB
/// buffer), and the changes lie well beyond.
fn send_while_the_csv_changes(
    rows: usize,
    change: impl Fn(&std::path::Path) + Send + Sync + 'static,
) -> (Fixture, TestServer, assert_cmd::assert::Assert) {
    let f = Fixture::new(&people_csv(rows), &email_campaign(""));
    let csv = f.path("people.csv");
    let changed = std::sync::Once::new();
    let server = TestServer::start(Arc::new(move |r, _| {
        changed.call_once(|| change(&csv));
        ok_reply(r)
    }));
    let out = f.send(&server, &["--rate", "5000/s", "--concurrency", "16"]);
    (f, server, out)
}

/// The byte offset at which record `n` of `people_csv` starts.
fn offset_of_record(csv: &std::path::Path, n: usize) -> u64 {
    let text = std::fs::read_to_string(csv).unwrap();
    text.split_inclusive('\n')
        .take(n)
        .map(|l| l.len() as u64)
        .sum()
}

#[test]
fn a_row_changed_during_the_run_stops_it_before_that_row() {
    let (f, server, out) = send_while_the_csv_changes(4000, |csv| {
        use std::io::{Seek, SeekFrom, Write};
        // Record 3500's recipient, `id-3500`, becomes `zz-3500`: same length, same file.
        let at = offset_of_record(csv, 3500);
        let mut file = std::fs::OpenOptions::new().write(true).open(csv).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(b"zz").unwrap();
    });
    out.code(3).stderr(predicate::str::contains(
        "people.csv changed during the run: record 3500 (line 3501) does not read as it did when it was checked",
    ));
    // Every row before it went out once; neither its old nor its new recipient got anything.
    let mut ids: Vec<String> = server.requests().iter().map(|r| r.to_id()).collect();
    ids.sort_by_key(|id| id[3..].parse::<u64>().unwrap_or(u64::MAX));
    let expected: Vec<String> = (1..3500).map(|i| format!("id-{i}")).collect();
    assert_eq!(ids, expected);
    let rows = f.result_rows();
    assert_eq!(rows.len(), 3499);
    assert!(rows.iter().all(|r| r["status"] == "sent"));
}

#[test]
fn a_file_cut_short_during_the_run_stops_it_and_says_so() {
    let (f, server, out) = send_while_the_csv_changes(4000, |csv| {
        let at = offset_of_record(csv, 2801);
        let file = std::fs::OpenOptions::new().write(true).open(csv).unwrap();
        file.set_len(at).unwrap();
    });
    out.code(3).stderr(predicate::str::contains(
        "people.csv changed during the run: it ends at record 2800, and had 4000 rows when it was checked",
    ));
    assert_eq!(server.requests().len(), 2800);
    assert_eq!(f.result_rows().len(), 2800);
}
