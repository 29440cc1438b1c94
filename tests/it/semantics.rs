//! Nothing an operator did not look at changes meaning: rows a killed run left in flight stay
//! `unknown` through the `mark --rows all` or bare `--retry-unknown` that found them; a `failed`
//! row that carries a message id is not sent again without consent; a row marked `skipped` is
//! never sent. Each printed command is run as printed.
use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use predicates::prelude::*;

/// Rows 1 and 2 answered 500 (`unknown`) the first time; rows 3, 4 and 5 answered only after a
/// minute the first time (a kill finds them in flight, their messages made); all fine after.
fn server() -> TestServer {
    TestServer::start(Arc::new(|r, nth| match (r.to_id().as_str(), nth) {
        ("id-1" | "id-2", 0) => error_reply(500, "server_error", "oops", "req-1"),
        ("id-3" | "id-4" | "id-5", 0) => {
            Reply::Delay(Duration::from_secs(60), Box::new(ok_reply(r)))
        }
        _ => ok_reply(r),
    }))
}

/// The first send, killed with SIGKILL once rows 1 and 2 are recorded and rows 3 to 5 are in
/// flight (their requests arrived).
fn killed_with_three_in_flight(f: &Fixture, server: &TestServer) {
    let mut child = f.spawn_send(&server.url(), &["--concurrency", "8"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = std::fs::read_to_string(f.results())
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if server.requests().len() == 5 && recorded == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not get there");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn count(server: &TestServer, id: &str) -> usize {
    server.requests().iter().filter(|r| r.to_id() == id).count()
}

fn counts(server: &TestServer) -> Vec<usize> {
    (1..=5).map(|i| count(server, &format!("id-{i}"))).collect()
}

fn status(f: &Fixture, row: u64) -> (String, String) {
    let r = f
        .result_rows()
        .into_iter()
        .find(|r| r["row"] == row.to_string())
        .unwrap_or_else(|| panic!("row {row} missing"));
    (r["status"].clone(), r["error_code"].clone())
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The command a line of stderr prints after `marker`, run as printed in the fixture's folder
/// (`campaign` is this build).
fn run_printed(f: &Fixture, err: &str, marker: &str) -> assert_cmd::assert::Assert {
    let line = err
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?}: {err}"));
    let at = line.find("campaign send ").expect("a command in the line");
    let words = shlex::split(&line[at..]).expect("a shell command");
    assert_eq!(words[0], "campaign");
    let mut cmd = f.cmd();
    cmd.args(&words[1..]);
    cmd.assert()
}

#[test]
fn mark_all_after_a_kill_leaves_the_rows_found_in_flight_unknown() {
    let server = server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let mark = || {
        let mut cmd = f.cmd();
        cmd.args(["mark", "results.csv", "--rows", "all", "--as", "failed"])
            .args(["--note", "not in Intercom"]);
        cmd.assert()
    };
    let out = mark().success();
    let err = stderr(&out);
    assert!(
        err.contains("marked 2 rows as `failed` (marked_failed): 1, 2"),
        "{err}"
    );
    assert!(
        err.contains("rows 3, 4, 5 were in flight when the last run stopped, and became `unknown` just now: left `unknown`"),
        "{err}"
    );
    assert_eq!(status(&f, 1), ("failed".into(), "marked_failed".into()));
    for row in 3..=5 {
        assert_eq!(status(&f, row), ("unknown".into(), "interrupted".into()));
    }
    // The resume sends what the operator looked at and found missing, and nothing else.
    f.send(&server, &["--resume"])
        .code(1)
        .stderr(predicate::str::contains(
            "3 rows are `unknown` (rows 3, 4, 5)",
        ));
    assert_eq!(counts(&server), [2, 2, 1, 1, 1]);
    // Marked again, `all` now covers them: they were `unknown` before this command.
    mark().success().stderr(predicate::str::contains(
        "marked 3 rows as `failed` (marked_failed): 3, 4, 5",
    ));
}

/// The command printed after `marker` on its line in `err`, split as a shell would.
fn command_after(err: &str, marker: &str) -> Vec<String> {
    let line = err
        .split(marker)
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("no command after {marker:?}: {err}"));
    let words = shlex::split(line).expect("a shell command");
    assert_eq!(words[0], "campaign", "{line}");
    words
}

#[test]
fn the_commands_a_resume_prints_for_unknown_rows_run_as_printed() {
    // Recorded: each row found in Intercom.
    let server = server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let err = stderr(&f.send(&server, &["--resume"]).code(1));
    assert!(
        err.contains("5 rows are `unknown` (rows 1, 2, 3, 4, 5)"),
        "{err}"
    );
    let mark = command_after(&err, "then record the messages you find: ");
    let mut cmd = f.cmd();
    cmd.args(&mark[1..]).assert().success();
    for row in 1..=5 {
        assert_eq!(status(&f, row), ("sent".into(), "marked_sent".into()));
    }
    f.send(&server, &["--resume"]).success();
    assert_eq!(counts(&server), [1, 1, 1, 1, 1]);

    // Sent again on purpose: each row not found.
    let server = self::server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let err = stderr(&f.send(&server, &["--resume"]).code(1));
    let again = command_after(&err, "Or send them again, on purpose: ");
    assert!(
        again.ends_with(&["--retry-unknown".into(), "1-5".into()]),
        "{again:?}"
    );
    let mut cmd = f.cmd();
    cmd.args(&again[1..]).assert().success();
    assert_eq!(counts(&server), [2, 2, 2, 2, 2]);
    assert!(f.result_rows().iter().all(|r| r["status"] == "sent"));
}

#[test]
fn mark_all_prints_the_command_that_records_the_rows_found_in_flight_and_it_runs_as_printed() {
    let server = server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let mut cmd = f.cmd();
    cmd.args(["mark", "results.csv", "--rows", "all", "--as", "failed"])
        .args(["--note", "not in Intercom"]);
    let err = stderr(&cmd.assert().success());
    let words = command_after(&err, "(`--as failed` for those not there): ");
    assert_eq!(
        words[..5],
        ["campaign", "mark", "results.csv", "--rows", "3-5"]
    );
    let mut cmd = f.cmd();
    cmd.args(&words[1..]).assert().success();
    for row in 3..=5 {
        assert_eq!(status(&f, row), ("sent".into(), "marked_sent".into()));
    }
}

#[test]
fn mark_by_row_refuses_a_row_found_in_flight_just_now_then_takes_it_when_run_again() {
    let server = server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let mark = || {
        let mut cmd = f.cmd();
        cmd.args(["mark", "results.csv", "--rows", "2-4", "--as", "sent"])
            .args(["--note", "found in Intercom"]);
        cmd.assert()
    };
    mark().code(2).stderr(predicate::str::contains(
        "rows 3, 4 were in flight when the last run stopped, and became `unknown` just now, as this command settled",
    ).and(predicate::str::contains("nothing was marked")));
    assert_eq!(status(&f, 2).0, "unknown");
    assert_eq!(status(&f, 3).0, "unknown");
    // Looked up, the same command again.
    mark().success().stderr(predicate::str::contains(
        "marked 3 rows as `sent` (marked_sent): 2, 3, 4",
    ));
    assert_eq!(status(&f, 3), ("sent".into(), "marked_sent".into()));
}

#[test]
fn a_bare_retry_unknown_after_a_kill_retries_only_the_rows_unknown_before_it() {
    let server = server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let out = f.send(&server, &["--resume", "--retry-unknown"]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "3 rows became unknown just now (in flight when the last run stopped: rows 3, 4, 5)"
        ),
        "{err}"
    );
    assert!(err.contains("--retry-unknown 3-5"), "{err}");
    // Rows 1 and 2 were `unknown` before the run: sent on purpose. Rows 3 to 5 were not.
    assert_eq!(counts(&server), [2, 2, 1, 1, 1]);
    for row in 3..=5 {
        assert_eq!(status(&f, row).0, "unknown");
    }
    // Looked up in Intercom (here: not arrived), the printed command sends them.
    run_printed(&f, &err, "became unknown just now").success();
    assert_eq!(counts(&server), [2, 2, 2, 2, 2]);
    assert!(f.result_rows().iter().all(|r| r["status"] == "sent"));
}

#[test]
fn retry_unknown_naming_rows_found_in_flight_just_now_waits_for_a_later_run() {
    let server = server();
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    killed_with_three_in_flight(&f, &server);
    let out = f
        .send(&server, &["--resume", "--retry-unknown", "1,4"])
        .code(1);
    assert!(
        stderr(&out).contains("--retry-unknown 3-5"),
        "{}",
        stderr(&out)
    );
    assert_eq!(counts(&server), [2, 1, 1, 1, 1]);
    f.send(&server, &["--resume", "--retry-unknown", "4"])
        .code(1);
    assert_eq!(counts(&server), [2, 1, 1, 2, 1]);
}

#[test]
fn a_failed_row_with_a_message_id_is_not_sent_again_without_consent() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    f.send(&server, &[]).success();
    // A hand edit: row 2 from `sent` to `failed`, its message id kept.
    let text = std::fs::read_to_string(f.results()).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("2,") {
                l.replacen(",sent,", ",failed,", 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(f.results(), edited.join("\n") + "\n").unwrap();
    assert_eq!(status(&f, 2).0, "failed");
    let out = f.send(&server, &["--resume"]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains("row 2 is `failed` but carries Intercom's message id"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 3, "not sent again");
    // The hint of the end of the run does not promise that a resume sends it.
    assert!(!err.contains("`failed` rows are sent again by"), "{err}");
    run_printed(&f, &err, "carries Intercom's message id").success();
    assert_eq!(count(&server, "id-2"), 2);
    assert_eq!(status(&f, 2).0, "sent");
}

#[test]
fn a_row_marked_skipped_is_never_sent_and_the_campaign_can_close() {
    // id-3 is a contact that does not exist.
    let server = TestServer::start(Arc::new(|r, _| {
        if r.to_id() == "id-3" {
            error_reply(404, "not_found", "User Not Found", "req-4")
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(
        &people_csv(4),
        &email_campaign("retry_not_found_for = \"0s\""),
    );
    let out = f.send(&server, &[]).code(1);
    let err = stderr(&out);
    assert_eq!(status(&f, 3).0, "failed");
    // A 404 comes again on a resend: no resume is offered for it, the command that closes it is.
    assert!(!err.contains("`failed` rows are sent again by"), "{err}");
    assert!(!err.contains("--resume"), "{err}");
    assert!(
        err.contains("row 3 failed in a way that sending again repeats"),
        "{err}"
    );
    let line = err
        .lines()
        .find(|l| l.contains("To close it unsent: "))
        .unwrap_or_else(|| panic!("no command that closes the row: {err}"));
    // The report it names runs as printed, and groups the row by its error.
    let report = err
        .split("`campaign report ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .unwrap_or_else(|| panic!("no report command: {err}"));
    let mut cmd = f.cmd();
    cmd.arg("report")
        .args(shlex::split(report).unwrap())
        .assert()
        .success()
        .stdout(predicate::str::contains("not_found"));
    let words = shlex::split(line.split("To close it unsent: ").nth(1).unwrap()).unwrap();
    assert_eq!(words[..3], ["campaign", "mark", "results.csv"]);
    let mut cmd = f.cmd();
    cmd.args(&words[1..]);
    cmd.assert().success().stderr(predicate::str::contains(
        "marked 1 row as `skipped` (marked_skipped): 3; --resume never sends them",
    ));
    assert_eq!(status(&f, 3), ("skipped".into(), "marked_skipped".into()));
    let before = server.requests().len();
    // Closed: the resume has nothing to do and says the campaign is done.
    f.send(&server, &["--resume"])
        .success()
        .stderr(predicate::str::contains("--resume").not());
    f.send(&server, &["--resume"]).success();
    assert_eq!(server.requests().len(), before);
    assert_eq!(status(&f, 3), ("skipped".into(), "marked_skipped".into()));
    // Only unknown and failed rows can be marked.
    let mut cmd = f.cmd();
    cmd.args(["mark", "results.csv", "--rows", "1", "--as", "skipped"])
        .args(["--note", "x"]);
    cmd.assert()
        .code(2)
        .stderr(predicate::str::contains("row 1 is `sent`"));
}
