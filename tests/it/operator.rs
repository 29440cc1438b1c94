//! The operator's tools around a live send: a canary, settling `unknown` rows one by one (by
//! name with --retry-unknown, by hand with `campaign mark`, or from a rehearsal's sandbox log).
use crate::common;

use std::sync::Arc;

use common::*;
use predicates::prelude::*;

#[test]
fn a_canary_sends_the_first_rows_then_stops_resumably() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(10), &email_campaign(""));
    f.send(&server, &["--canary", "3"]).code(3).stderr(
        predicate::str::contains("canary: 3 sent, 7 rows wait")
            .and(predicate::str::contains("--resume")),
    );
    let ids: Vec<String> = server.requests().iter().map(|r| r.to_id()).collect();
    assert_eq!(ids.len(), 3);
    assert!(["id-1", "id-2", "id-3"]
        .iter()
        .all(|i| ids.contains(&i.to_string())));
    f.send(&server, &["--resume"]).success();
    assert_eq!(server.requests().len(), 10);
    f.send(&server, &["--canary", "3", "--limit", "2"])
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

/// Rows 2, 4 and 6 are answered 500 (unknown) the first time.
fn unknown_server() -> TestServer {
    TestServer::start(Arc::new(|r, nth| {
        if ["id-2", "id-4", "id-6"].contains(&r.to_id().as_str()) && nth == 0 {
            error_reply(500, "server_error", "oops", "req-9")
        } else {
            ok_reply(r)
        }
    }))
}

fn status_of(f: &Fixture, row: &str) -> (String, String) {
    let r = f
        .result_rows()
        .into_iter()
        .find(|r| r["row"] == row)
        .unwrap();
    (r["status"].clone(), r["error_code"].clone())
}

#[test]
fn retry_unknown_can_name_the_rows_it_sends_again() {
    let server = unknown_server();
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.send(&server, &[]).code(1);
    f.send(&server, &["--resume", "--retry-unknown", "4,6"])
        .code(1)
        .stderr(predicate::str::contains("rows are `unknown` (rows 2)"));
    let count = |id: &str| server.requests().iter().filter(|r| r.to_id() == id).count();
    assert_eq!((count("id-2"), count("id-4"), count("id-6")), (1, 2, 2));
    assert_eq!(status_of(&f, "2").0, "unknown");
    assert_eq!(status_of(&f, "4").0, "sent");
    // Without --resume the flag would be ignored: it is refused instead.
    f.send(&server, &["--retry-unknown"])
        .code(2)
        .stderr(predicate::str::contains("--resume"));
}

#[test]
fn retry_unknown_names_the_rows_it_names_that_are_not_unknown() {
    let server = unknown_server();
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.send(&server, &["--limit", "5"]).code(1);
    // Rows 2 and 4 are unknown, 1, 3 and 5 sent, 6 not attempted (it goes, and is unknown), 99
    // not in the file.
    f.send(&server, &["--resume", "--retry-unknown", "99,3,1,4,6"])
        .code(1)
        .stderr(predicate::str::contains(
            "--retry-unknown: rows 6, 99 are not in the results; rows 1, 3 are sent: they are not sent again\n",
        ));
    let count = |id: &str| server.requests().iter().filter(|r| r.to_id() == id).count();
    assert_eq!(
        (
            count("id-1"),
            count("id-2"),
            count("id-3"),
            count("id-4"),
            count("id-6")
        ),
        (1, 1, 1, 2, 1)
    );
    // Every unknown row named, or `all`: nothing more is said.
    f.send(&server, &["--resume", "--retry-unknown", "2,6"])
        .success()
        .stderr(predicate::str::contains("--retry-unknown:").not());
    f.send(&server, &["--resume", "--retry-unknown"])
        .success()
        .stderr(predicate::str::contains("--retry-unknown:").not());
}

#[test]
fn mark_records_what_the_operator_found_and_resume_follows_it() {
    let server = unknown_server();
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.send(&server, &[]).code(1);
    let mark = |rows: &str, status: &str| {
        let mut cmd = f.cmd();
        cmd.args([
            "mark",
            "results.csv",
            "--rows",
            rows,
            "--as",
            status,
            "--note",
        ]);
        cmd.arg(format!("checked in Intercom: {status}"));
        cmd.assert()
    };
    mark("2,4", "sent")
        .success()
        .stderr(predicate::str::contains("marked 2 rows as `sent`"));
    mark("6", "failed").success();
    // A sent row keeps its message id: it cannot be marked.
    mark("1", "failed")
        .code(2)
        .stderr(predicate::str::contains("row 1 is `sent`"));
    mark("99", "sent")
        .code(2)
        .stderr(predicate::str::contains("no line for row 99"));
    assert_eq!(status_of(&f, "2"), ("sent".into(), "marked_sent".into()));
    assert_eq!(
        status_of(&f, "6"),
        ("failed".into(), "marked_failed".into())
    );
    let note = f
        .result_rows()
        .into_iter()
        .find(|r| r["row"] == "4")
        .unwrap();
    assert_eq!(note["error_message"], "checked in Intercom: sent");
    // The resume sends row 6 only.
    f.send(&server, &["--resume"]).success();
    let count = |id: &str| server.requests().iter().filter(|r| r.to_id() == id).count();
    assert_eq!((count("id-2"), count("id-4"), count("id-6")), (1, 1, 2));
}

/// `--message-id` keeps the id of the message the operator found, for one row marked `sent`
/// (so that `track` can follow its conversation); anything else with it is refused, and nothing
/// is marked.
#[test]
fn mark_keeps_the_message_id_the_operator_found_for_one_row() {
    let server = unknown_server();
    let f = Fixture::new(&people_csv(4), &email_campaign(""));
    f.send(&server, &[]).code(1);
    let before = std::fs::read(f.results()).unwrap();
    let mark = |args: &[&str]| {
        let mut cmd = f.cmd();
        cmd.args(["mark", "results.csv", "--note", "found in Intercom"])
            .args(args);
        cmd.assert()
    };
    let one_row = "use it with `--as sent` and one row";
    mark(&["--rows", "2,4", "--as", "sent", "--message-id", "403918316"])
        .code(2)
        .stderr(predicate::str::contains(one_row));
    mark(&["--rows", "all", "--as", "sent", "--message-id", "403918316"])
        .code(2)
        .stderr(predicate::str::contains(one_row));
    mark(&["--rows", "2", "--as", "failed", "--message-id", "403918316"])
        .code(2)
        .stderr(predicate::str::contains(one_row));
    mark(&[
        "--rows",
        "2",
        "--as",
        "sent",
        "--message-id",
        "4039 \u{1b}[2J",
    ])
    .code(2)
    .stderr(predicate::str::contains(
        "--message-id \"4039 \\u{1b}[2J\": a message id is letters and digits",
    ));
    assert_eq!(std::fs::read(f.results()).unwrap(), before);
    mark(&["--rows", "2", "--as", "sent", "--message-id", "403918316"])
        .success()
        .stderr(predicate::str::contains("marked 1 row as `sent`"));
    let row = f
        .result_rows()
        .into_iter()
        .find(|r| r["row"] == "2")
        .unwrap();
    assert_eq!(
        (
            &row["status"][..],
            &row["message_id"][..],
            &row["error_code"][..]
        ),
        ("sent", "403918316", "marked_sent")
    );
}

#[test]
fn a_rehearsal_resumed_settles_its_unknown_rows_from_the_sandbox_log() {
    let f = Fixture::new(&people_csv(40), &email_campaign(""));
    let run = |extra: &[&str]| {
        let mut cmd = f.cmd();
        cmd.env_remove("INTERCOM_TOKEN")
            .args(["send", "campaign.toml", "--sandbox", "--seed", "3"])
            .args(extra);
        cmd.assert()
    };
    // Dropped connections: the message is created, the answer never comes.
    run(&["--drop-rate", "0.3"]).code(1);
    let unknown: Vec<String> = read_results(&f.path("campaign.sandbox.results.csv"))
        .into_iter()
        .filter(|r| r["status"] == "unknown")
        .map(|r| r["row"].clone())
        .collect();
    assert!(!unknown.is_empty());
    run(&["--resume"])
        .success()
        .stderr(predicate::str::contains("from the sandbox's log"));
    let rows = read_results(&f.path("campaign.sandbox.results.csv"));
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
    let log =
        std::fs::read_to_string(f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl"))
            .unwrap();
    assert_eq!(log.lines().count(), 40, "nobody twice in the rehearsal");
    for r in rows.iter().filter(|r| unknown.contains(&r["row"])) {
        assert_eq!(r["error_code"], "settled_from_sandbox_log");
        assert!(log.contains(&r["message_id"]));
    }
}

/// `script` gives the command a terminal, and passes what it reads on its stdin to it.
fn under_a_terminal(f: &Fixture, command: &str, typed: &str) -> Option<std::process::Output> {
    let script = require_tool("SCRIPT", "script")?;
    use std::io::Write as _;
    let mut child = std::process::Command::new(script)
        .args(["-qec", command, "/dev/null"])
        .current_dir(f.dir.path())
        .env("INTERCOM_TOKEN", TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // After the screen is up: a line typed before the prompt would be read all the same, but
    // the terminal would echo it first.
    std::thread::sleep(std::time::Duration::from_millis(500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

#[test]
fn on_a_terminal_a_real_send_shows_what_it_will_do_and_asks_first() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    // Row 4 has row 1's recipient: recorded `skipped`, not counted among the messages.
    let csv = people_csv(3) + "id-1,Again,pro,Company 1\n";
    let f = Fixture::new(&csv, &email_campaign("duplicates = \"skip\""));
    let command = format!(
        "{} send campaign.toml --results results.csv --api-base {}",
        assert_cmd::cargo::cargo_bin("campaign").display(),
        server.url()
    );
    let Some(out) = under_a_terminal(&f, &command, "n\n") else {
        return;
    };
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("About to send 3 e-mail messages")
            && screen.contains(
                "not sent 1 duplicate row (an earlier row has the recipient), recorded `skipped`"
            )
            && screen.contains("from     Ann Example <ann@example.com> (admin 394051)")
            && screen.contains("to       users, first user id-1 (row 1)")
            && screen.contains("subject  Hello Person1 (row 1)")
            && !screen.contains("{{")
            && screen.contains("results  results.csv")
            && screen.contains("Send them? [y/N]")
            && screen.contains("not confirmed: nothing was sent"),
        "{screen}"
    );
    // Declined: its own exit code (not 2, "invalid input"), and nothing sent or written.
    assert_eq!(out.status.code(), Some(4), "{screen}");
    assert!(server.requests().is_empty());
    assert!(!f.path("results.csv").exists());
    let out = under_a_terminal(&f, &command, "y\n").unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(server.requests().len(), 3);
    // --yes, or no terminal: no question.
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    let out = under_a_terminal(&f, &format!("{command} --yes"), "").unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("[y/N]"));
    assert_eq!(out.status.code(), Some(0));
    // A resume counts only the rows left, and shows the first of them.
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    let out = under_a_terminal(&f, &format!("{command} --limit 2 --yes"), "").unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = under_a_terminal(&f, &format!("{command} --resume"), "n\n").unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("About to send 3 e-mail messages")
            && screen.contains("not sent 2 rows done by earlier runs")
            && screen.contains("to       users, first user id-3 (row 3)")
            && screen.contains("subject  Hello Person3 (row 3)"),
        "{screen}"
    );
    assert_eq!(out.status.code(), Some(4));
}

/// `[send]` keys whose send hours open an hour from now (UTC), or are open now.
fn hours_keys(open_now: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = |s: u64| format!("{:02}:{:02}", s / 3600 % 24, s / 60 % 60);
    let (from, to) = if open_now {
        (now - 3600, now + 3600)
    } else {
        (now + 3600, now + 7200)
    };
    format!(
        "hours = \"{}-{}\"\ndays = \"mon-sun\"\ntimezone = \"UTC\"",
        minute(from),
        minute(to)
    )
}

#[cfg(unix)]
#[test]
fn outside_the_send_hours_the_sender_waits_and_ctrl_c_stops_it_cleanly() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(3), &email_campaign(&hours_keys(false)));
    let mut child = f.spawn_send(&server.url(), &[]);
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        use std::io::BufRead as _;
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended without waiting"
        );
        if line.contains("outside the send hours") {
            break;
        }
    }
    assert!(
        line.contains("waiting until") && line.contains("UTC"),
        "{line}"
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(server.requests().is_empty());
    // Within them, it sends.
    let f = Fixture::new(&people_csv(3), &email_campaign(&hours_keys(true)));
    f.send(&server, &[]).success();
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn rows_that_share_a_recipient_are_not_settled_from_the_sandbox_log_by_guess() {
    let csv =
        "intercom_id,first_name,plan,company\n".to_string() + &"id-1,Ann,pro,Acme\n".repeat(4);
    let f = Fixture::new(&csv, &email_campaign(""));
    let run = |extra: &[&str]| {
        let mut cmd = f.cmd();
        cmd.env_remove("INTERCOM_TOKEN")
            .args(["send", "campaign.toml", "--sandbox", "--allow-duplicates"])
            .args(extra);
        cmd.assert()
    };
    // Every message created, every answer lost: four `unknown` rows, one recipient.
    run(&["--drop-rate", "1"]).code(1);
    run(&["--resume"]).code(1);
    let rows = read_results(&f.path("campaign.sandbox.results.csv"));
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "unknown" && r["error_code"] != "settled_from_sandbox_log"),
        "{rows:?}"
    );
}

#[test]
fn mark_all_settles_every_unknown_and_failed_row_and_leaves_sent_ones() {
    let server = unknown_server();
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.send(&server, &[]).code(1);
    f.cmd()
        .args([
            "mark",
            "results.csv",
            "--rows",
            "all",
            "--as",
            "failed",
            "--note",
            "not there",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("marked 3 rows as `failed`"));
    assert_eq!(status_of(&f, "1").0, "sent");
    assert_eq!(
        status_of(&f, "2"),
        ("failed".into(), "marked_failed".into())
    );
}
