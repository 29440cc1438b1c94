//! A new user's first hour, as the README and the tool's own words lead it: every command the
//! tool prints is run as printed (resume, canary, the end-of-run hint), with the flags that shape
//! a rehearsal; rehearsals outside the send hours; the errors that name their fix.
use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("campaign")
}

/// The command printed on the line after `marker` in `stderr`, split as a shell would.
fn printed_after(stderr: &str, marker: &str) -> Vec<String> {
    let line = stderr
        .split(marker)
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("no `{marker}` command: {stderr}"));
    let words = shlex::split(line).unwrap_or_else(|| panic!("not a shell command: {line}"));
    assert_eq!(words[0], "campaign", "{line}");
    words
}

/// A printed command run exactly as printed in `dir`, its `campaign` this build's binary, with
/// no token in the environment (a rehearsal needs none).
fn run_printed(dir: &Path, words: &[String]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .env_remove("INTERCOM_TOKEN")
        .args(&words[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The messages a sandbox log holds, by recipient id.
fn logged(path: &Path) -> HashMap<String, usize> {
    let mut by_id = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = v["request"]["to"]["id"].as_str().unwrap().to_string();
        *by_id.entry(id).or_insert(0) += 1;
    }
    by_id
}

/// A rehearsal's campaign from an admin that only `admins.csv` has (`dana@ourco.example`, 777),
/// of `n` rows at `rate`, with results in a folder of their own.
fn rehearsal_fixture(n: usize, rate: &str, extra_send: &str) -> Fixture {
    let f = Fixture::new(
        &people_csv(n),
        &email_campaign(extra_send)
            .replace("from = 394051", "from = \"dana@ourco.example\"")
            .replace("rate = \"200/s\"", &format!("rate = \"{rate}\"")),
    );
    f.write(
        "admins.csv",
        "id,name,email\n777,Dana Scully,dana@ourco.example\n",
    );
    let mut contacts = String::from("id,email\n");
    for i in 1..=n {
        contacts.push_str(&format!("id-{i},person{i}@example.com\n"));
    }
    f.write("contacts.csv", contacts);
    std::fs::create_dir(f.path("out")).unwrap();
    f
}

const REHEARSAL: [&str; 9] = [
    "send",
    "campaign.toml",
    "--sandbox",
    "--sandbox-admins",
    "admins.csv",
    "--sandbox-contacts",
    "contacts.csv",
    "--results",
    "out/results.csv",
];

#[test]
fn the_resume_command_printed_after_ctrl_c_in_a_rehearsal_continues_it() {
    let f = rehearsal_fixture(30, "10/s", "");
    let child = Command::new(bin())
        .current_dir(f.dir.path())
        .env_remove("INTERCOM_TOKEN")
        .args(REHEARSAL)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted mid-run: once some messages are in the sandbox's log (the handler for Ctrl-C
    // is in place by then), with most rows still to go at 10/s.
    let started = std::time::Instant::now();
    let lines = || {
        std::fs::read_to_string(f.path("out/.campaign/results.csv.sandbox.jsonl"))
            .unwrap_or_default()
            .matches('\n')
            .count()
    };
    while lines() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rehearsal never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let words = printed_after(&err, "To continue: ");
    for flag in ["--sandbox-admins", "--sandbox-contacts", "--results"] {
        assert!(words.iter().any(|w| w == flag), "{flag} missing: {words:?}");
    }
    let again = run_printed(f.dir.path(), &words);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let rows = read_results(&f.path("out/results.csv"));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
    let log = logged(&f.path("out/.campaign/results.csv.sandbox.jsonl"));
    assert_eq!(log.len(), 30, "every recipient messaged");
    assert!(log.values().all(|&n| n == 1), "nobody twice: {log:?}");
}

/// Send hours that are closed now: one minute, twelve hours from now (UTC).
fn closed_hours() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = (now / 3600 + 12) % 24;
    format!("hours = \"{hour:02}:00-{hour:02}:01\"\ntimezone = \"UTC\"\n")
}

#[test]
fn a_canarys_continue_command_runs_as_printed_and_a_rehearsal_may_ignore_the_send_hours() {
    let f = rehearsal_fixture(8, "50/s", &closed_hours());
    let out = f
        .cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(REHEARSAL)
        .args(["--ignore-hours", "--canary", "3"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!err.contains("outside the send hours"), "{err}");
    let words = printed_after(&err, "Then continue: ");
    assert!(words.iter().any(|w| w == "--ignore-hours"), "{words:?}");
    let again = run_printed(f.dir.path(), &words);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let rows = read_results(&f.path("out/results.csv"));
    assert_eq!(rows.iter().filter(|r| r["status"] == "sent").count(), 8);
    assert_eq!(
        logged(&f.path("out/.campaign/results.csv.sandbox.jsonl")).len(),
        8
    );

    // A real send keeps the hours: the flag is refused without --sandbox.
    f.cmd()
        .args(["send", "campaign.toml", "--dry-run", "--ignore-hours"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--sandbox"));
}

#[test]
fn the_end_of_run_hint_for_failed_rows_runs_as_printed_until_every_row_is_sent() {
    let f = rehearsal_fixture(20, "100/s", "");
    let mut words: Vec<String> = std::iter::once("campaign")
        .chain(REHEARSAL)
        .chain(["--fail-rate", "0.3", "--max-attempts", "1", "--seed", "5"])
        .map(String::from)
        .collect();
    let mut hints = 0;
    loop {
        let out = run_printed(f.dir.path(), &words);
        let err = stderr(&out);
        match out.status.code() {
            Some(0) => break,
            Some(1) => {
                words = printed_after(&err, "`failed` rows are sent again by: ");
                hints += 1;
                assert!(hints < 20, "the hint never got every row out: {err}");
            }
            other => panic!("exit {other:?}: {err}"),
        }
    }
    assert!(hints > 0, "the faults failed no row: nothing was tried");
    let rows = read_results(&f.path("out/results.csv"));
    assert!(rows.iter().all(|r| r["status"] == "sent"), "{rows:?}");
    let log = logged(&f.path("out/.campaign/results.csv.sandbox.jsonl"));
    assert_eq!(log.len(), 20);
    assert!(log.values().all(|&n| n == 1), "nobody twice: {log:?}");
}

/// The command between backticks after `marker` in `text` (a report's advice), split as a shell
/// would.
fn quoted_after(text: &str, marker: &str) -> Vec<String> {
    let command = text
        .split(marker)
        .nth(1)
        .and_then(|s| s.split('`').next())
        .unwrap_or_else(|| panic!("no `{marker}` command: {text}"));
    let words = shlex::split(command).unwrap_or_else(|| panic!("not a shell command: {command}"));
    assert_eq!(words[0], "campaign", "{command}");
    words
}

/// A rehearsal of 20 rows whose sandbox drops half the connections after making the message:
/// its stderr and the rows it left `unknown`.
/// `edit` changes the campaign file first.
fn rehearsal_with_dropped_answers(
    edit: impl Fn(String) -> String,
) -> (Fixture, String, Vec<String>) {
    let f = rehearsal_fixture(20, "100/s", "");
    let c = std::fs::read_to_string(f.path("campaign.toml")).unwrap();
    f.write("campaign.toml", edit(c));
    let words: Vec<String> = std::iter::once("campaign")
        .chain(REHEARSAL)
        .chain(["--drop-rate", "0.5", "--seed", "4"])
        .map(String::from)
        .collect();
    let out = run_printed(f.dir.path(), &words);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let mut unknown: Vec<String> = read_results(&f.path("out/results.csv"))
        .into_iter()
        .filter(|r| r["status"] == "unknown")
        .map(|r| r["row"].clone())
        .collect();
    assert!(unknown.len() >= 2, "too few answers dropped: {err}");
    // In row order, as `report` lists them: the results file has them as their answers came,
    // and a dropped answer can come after a later row's.
    unknown.sort_by_key(|row| row.parse::<u64>().unwrap());
    (f, err, unknown)
}

fn status_of(f: &Fixture, row: &str) -> (String, String) {
    let r = read_results(&f.path("out/results.csv"))
        .into_iter()
        .find(|r| r["row"] == row)
        .unwrap();
    (r["status"].clone(), r["error_code"].clone())
}

#[test]
fn the_end_of_run_hints_for_unknown_rows_run_as_printed() {
    let (f, err, unknown) = rehearsal_with_dropped_answers(|c| c);
    // No resume is offered as if it sent them: only on purpose, with --retry-unknown.
    assert!(!err.contains("`failed` rows are sent again by"), "{err}");
    // Intercom cannot be asked: these messages have no conversation until a reply.
    assert!(!err.contains("campaign track"), "{err}");
    let mark = printed_after(&err, "record the messages you found: ");
    assert_eq!(mark[1], "mark");
    let out = run_printed(f.dir.path(), &mark);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for row in &unknown {
        assert_eq!(
            status_of(&f, row),
            ("sent".to_string(), "marked_sent".to_string())
        );
    }

    let (f, err, unknown) = rehearsal_with_dropped_answers(|c| c);
    let again = printed_after(&err, "Or send those not found again, on purpose: ");
    for flag in [
        "--sandbox-admins",
        "--sandbox-contacts",
        "--results",
        "--retry-unknown",
    ] {
        assert!(again.iter().any(|w| w == flag), "{flag} missing: {again:?}");
    }
    // The faults are the rehearsal's: the same seed drops answers again.
    let out = run_printed(f.dir.path(), &again);
    let err = stderr(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    let rows = read_results(&f.path("out/results.csv"));
    assert_eq!(rows.len(), 20);
    for row in &unknown {
        // A rehearsal's log says which messages were made: those rows are `sent` now.
        assert_eq!(status_of(&f, row).0, "sent", "{err}");
    }
    let log = logged(&f.path("out/results.csv.sandbox.jsonl"));
    assert!(log.values().all(|&n| n == 1), "nobody twice: {log:?}");
}

#[test]
fn the_reports_advice_for_an_unknown_row_runs_as_printed_with_the_rehearsals_flags() {
    let (f, _, unknown) = rehearsal_with_dropped_answers(|c| c);
    let out = run_printed(
        f.dir.path(),
        &["campaign", "report", "out/results.csv", "--json"].map(String::from),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let advice: Vec<String> = report["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["advice"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(advice.len(), unknown.len());
    let mark = quoted_after(&advice[0], "record it with `");
    let out = run_printed(f.dir.path(), &mark);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        status_of(&f, &unknown[0]),
        ("sent".to_string(), "marked_sent".to_string())
    );
    let again = quoted_after(&advice[1], "send it again with `");
    for flag in [
        "--sandbox",
        "--sandbox-admins",
        "--sandbox-contacts",
        "--results",
    ] {
        assert!(again.iter().any(|w| w == flag), "{flag} missing: {again:?}");
    }
    assert!(
        again.ends_with(&["--retry-unknown".to_string(), unknown[1].clone()]),
        "{again:?}"
    );
    let out = run_printed(f.dir.path(), &again);
    let err = stderr(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    assert_eq!(status_of(&f, &unknown[1]).0, "sent", "{err}");
    let log = logged(&f.path("out/results.csv.sandbox.jsonl"));
    assert!(log.values().all(|&n| n == 1), "nobody twice: {log:?}");
}

#[test]
fn the_settle_command_printed_for_a_rehearsals_unknown_rows_runs_as_printed() {
    let at_once = |c: String| {
        c.replace(
            "[to]",
            "create_conversation_without_contact_reply = true\n[to]",
        )
    };
    // `track` searches by the sender's id: with an e-mail in `from` it is not offered.
    let (_, err, _) = rehearsal_with_dropped_answers(at_once);
    assert!(!err.contains("campaign track"), "{err}");
    let (f, err, unknown) = rehearsal_with_dropped_answers(|c| {
        at_once(c).replace("from = \"dana@ourco.example\"", "from = 777")
    });
    let track = printed_after(
        &err,
        "Or let Intercom say which were made (each message has its conversation): ",
    );
    assert_eq!(track[1], "track");
    for flag in ["--settle", "--sandbox", "--sandbox-log", "--campaign"] {
        assert!(track.iter().any(|w| w == flag), "{flag} missing: {track:?}");
    }
    let out = run_printed(f.dir.path(), &track);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for row in &unknown {
        assert_eq!(
            status_of(&f, row),
            ("sent".to_string(), "settled_by_track".to_string())
        );
    }
    // Without --sandbox-log, track finds the log the rehearsal kept beside its --results.
    let out = f
        .cmd()
        .env_remove("INTERCOM_TOKEN")
        .args([
            "track",
            "out/results.csv",
            "--campaign",
            "campaign.toml",
            "--sandbox",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("20 sent rows"), "{}", stderr(&out));
}

#[test]
fn an_unknown_admin_in_a_rehearsal_names_sandbox_admins() {
    let f = rehearsal_fixture(2, "50/s", "");
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--sandbox"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("dana@ourco.example"))
        .stderr(predicates::str::contains("--sandbox-admins FILE"));
    assert!(!f
        .path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl")
        .exists());
}

/// A CRM-like export's headers: capitals, spaces.
const CRM_HEADERS: &str = "Email,First name,Plan,Intercom ID\n";

#[test]
fn every_header_gets_its_snake_case_name_and_a_name_answers_as_written_too() {
    let f = Fixture::new(
        &format!("{CRM_HEADERS}ada@example.com,Ada,pro,id-1\n"),
        &email_campaign("")
            .replace("Hello {{ first_name }}", "{{ plan }} for {{ first_name }}")
            .replace(
                "<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>",
                "<p>{{ email }} / {{ Email }} / {{ Plan }}</p>",
            ),
    );
    f.cmd().args(["check", "campaign.toml"]).assert().success();
    let out = f
        .cmd()
        .args(["preview", "campaign.toml", "--json"])
        .assert()
        .success();
    let body: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(body["subject"], "pro for Ada");
    assert_eq!(
        body["body"],
        "<p>ada@example.com / ada@example.com / pro</p>"
    );
    assert_eq!(body["to"]["id"], "id-1");

    let out = f
        .cmd()
        .args(["check", "campaign.toml", "--columns"])
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for line in [
        "column 1: `Email`  →  {{ email }} or {{ Email }}",
        "column 2: `First name`  →  {{ first_name }}",
        "column 3: `Plan`  →  {{ plan }} or {{ Plan }}",
        "column 4: `Intercom ID`  →  {{ intercom_id }}",
    ] {
        assert!(listed.contains(line), "{line} not in: {listed}");
    }
}

#[test]
fn two_headers_with_one_name_are_an_error_naming_both() {
    let f = Fixture::new(
        "Email,email,intercom_id,first_name,plan\na@x.test,b@x.test,id-1,Ada,pro\n",
        &email_campaign(""),
    );
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "headers `Email` (column 1) and `email` are both `email` in templates",
        ));
}

#[test]
fn dates_from_the_csv_are_written_as_the_template_says_and_a_cell_that_is_none_is_named() {
    let csv = "intercom_id,first_name,plan,renewal\nid-1,Ada,pro,2026-07-01\nid-2,Bo,pro,2026-12-24T09:30:00Z\n";
    let toml = email_campaign("").replace(
        "<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>",
        "<p>Renews on {{ renewal | date(format=\\\"%B %-d, %Y\\\") }}.</p>",
    );
    let f = Fixture::new(csv, &toml);
    let out = f
        .cmd()
        .args(["preview", "campaign.toml", "--json"])
        .assert()
        .success();
    let bodies: Vec<String> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["body"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        bodies,
        [
            "<p>Renews on July 1, 2026.</p>",
            "<p>Renews on December 24, 2026.</p>"
        ]
    );
    f.write("people.csv", format!("{csv}id-3,Cy,pro,next spring\n"));
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("people.csv: record 3, line 4"))
        .stderr(predicates::str::contains("`next spring` is not a date"));
}

/// Five rows, the fourth addressing the second's recipient again.
fn with_a_duplicate() -> String {
    "intercom_id,first_name,plan\nid-1,Ada,pro\nid-2,Bo,pro\nid-3,Cy,pro\nid-2,Bo,pro\nid-5,Di,pro\n"
        .to_string()
}

#[test]
fn skip_duplicates_sends_the_first_row_of_a_recipient_records_the_rest_and_ends_with_exit_0() {
    let f = Fixture::new(&with_a_duplicate(), &email_campaign(""));
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "addresses the same recipient as record 2",
        ))
        .stderr(predicates::str::contains("--skip-duplicates"));
    f.cmd()
        .args(["check", "campaign.toml", "--skip-duplicates"])
        .assert()
        .success()
        .stderr(predicates::str::contains("recorded `skipped` (duplicate)"));
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--dry-run", "--skip-duplicates"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "dry run: 4 messages would be sent to",
        ))
        .stdout(predicates::str::contains(
            "1 duplicate row would be recorded `skipped`",
        ));
    let out = f
        .cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--sandbox", "--skip-duplicates"])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!err.contains("--resume"), "no resume advised: {err}");
    let rows = read_results(&f.path("campaign.sandbox.results.csv"));
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows.iter()
            .find(|r| r["row"] == "4")
            .map(|r| (r["status"].as_str(), r["error_code"].as_str())),
        Some(("skipped", "duplicate")),
        "{status:?}"
    );
    assert_eq!(rows.iter().filter(|r| r["status"] == "sent").count(), 4);
    let log = logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl"));
    assert_eq!(
        log.get("id-2"),
        Some(&1),
        "the duplicate's recipient once: {log:?}"
    );
    assert_eq!(log.values().sum::<usize>(), 4);

    // The campaign file says the same, and a resume has nothing to do.
    f.write("campaign.toml", email_campaign("duplicates = \"skip\""));
    f.cmd().args(["check", "campaign.toml"]).assert().success();
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--sandbox", "--resume"])
        .assert()
        .success();
    assert_eq!(
        logged(&f.path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl"))
            .values()
            .sum::<usize>(),
        4
    );
}

#[test]
fn test_to_takes_an_email_looked_up_as_the_campaign_would() {
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    f.write(
        "contacts.csv",
        "id,email\nid-1,a@x.test\nid-2,b@x.test\nid-3,c@x.test\ntester-1,Tester@OurCo.example\n",
    );
    let test = |to: &str| {
        let mut cmd = f.cmd();
        cmd.env_remove("INTERCOM_TOKEN").args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--sandbox-contacts",
            "contacts.csv",
            "--test-to",
            to,
            "--row",
            "2",
        ]);
        cmd
    };
    test("tester@ourco.example").assert().success();
    let log = std::fs::read_to_string(
        f.path(".campaign/campaign.sandbox.results.csv.sandbox.tests.jsonl"),
    )
    .unwrap();
    let sent: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 1, "{log}");
    assert_eq!(sent[0]["request"]["to"]["id"], "tester-1");
    assert_eq!(sent[0]["request"]["subject"], "[TEST] Hello Person2");
    let tests = read_results(&f.path(".campaign/campaign.sandbox.results.csv.tests.csv"));
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0]["status"], "sent");
    assert!(!f.path("campaign.sandbox.results.csv").exists());

    test("nobody@ourco.example")
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--test-to nobody@ourco.example: no user has this e-mail",
        ));
    // An id is taken as before.
    test("tester-1").assert().success();
    let log = std::fs::read_to_string(
        f.path(".campaign/campaign.sandbox.results.csv.sandbox.tests.jsonl"),
    )
    .unwrap();
    assert_eq!(log.lines().count(), 2);
}

#[test]
fn check_refuses_what_send_would_refuse_offline_and_never_says_nothing_was_sent() {
    let f = Fixture::new(
        &people_csv(2),
        &(email_campaign("") + "\n[results]\ncolumns = [\"first_name\", \"emial\"]\n"),
    );
    let dry = f
        .cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--dry-run"])
        .assert()
        .code(2);
    let dry_err = String::from_utf8_lossy(&dry.get_output().stderr).into_owned();
    assert!(dry_err.contains("`emial` is not a column"), "{dry_err}");
    let out = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("[results] columns"), "{err}");
    assert!(
        err.contains("`emial` is not a column of people.csv"),
        "{err}"
    );
    assert!(!err.contains("nothing was sent"), "{err}");

    f.write(
        "campaign.toml",
        email_campaign("").replace("Hello {{ first_name }}", "Hello {{ first_name"),
    );
    let out = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("1 template error"), "{err}");
    assert!(!err.contains("nothing was sent"), "{err}");
}

#[test]
fn a_dry_run_leaves_no_file_behind() {
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--dry-run"])
        .assert()
        .success();
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--dry-run", "--sandbox"])
        .assert()
        .success();
    let mut names: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["campaign.toml", "people.csv"]);
}

/// A CRM's export: an upper-case e-mail, a duplicate row, the same e-mail again in lower case, a
/// name with an apostrophe, a company with a comma and quotes, renewal dates.
const CRM_EXPORT: &str = "\
Email,First name,Last name,Company,Plan,Renewal date
ada@example.com,Ada,Lovelace,\"Analytical Engines, Ltd\",pro,2026-07-01
GRACE.HOPPER@EXAMPLE.COM,Grace,Hopper,\"Cobol \"\"Works\"\", Inc\",enterprise,2026-08-15
sean@example.com,Seán,O'Brien,O'Brien & Sons,starter,2026-09-30
alan@example.com,,Turing,Bletchley Systems,pro,2026-10-02T09:00:00Z
ada@example.com,Ada,Lovelace,\"Analytical Engines, Ltd\",pro,2026-07-01
grace.hopper@example.com,Grace,Hopper,\"Cobol \"\"Works\"\", Inc\",enterprise,2026-08-15
";

/// The README's section "From a CRM export to a first rehearsal in five minutes", run as written:
/// each `campaign` line of its shell blocks in order, its HTML block as the message.
#[test]
fn the_readmes_crm_export_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## From a CRM export to a first rehearsal in five minutes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README has the section");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm-export.csv"), CRM_EXPORT).unwrap();
    let mut outputs: HashMap<String, Output> = HashMap::new();
    let mut blocks = section.split("```").skip(1).step_by(2);
    let mut ran = 0;
    for block in blocks.by_ref() {
        let (lang, body) = block.split_once('\n').unwrap();
        match lang {
            "sh" => {
                for line in body.lines().filter(|l| l.starts_with("campaign ")) {
                    let command = line.split("  #").next().unwrap().trim();
                    let words = shlex::split(command).unwrap();
                    let out = run_printed(dir.path(), &words);
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "{command}: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        stderr(&out)
                    );
                    outputs.insert(command.to_string(), out);
                    ran += 1;
                }
            }
            "html" => std::fs::write(dir.path().join("renewal/message.html"), body).unwrap(),
            other => panic!("a block of {other}"),
        }
    }
    assert_eq!(ran, 6, "the section's commands");
    let stdout = |key: &str| String::from_utf8_lossy(&outputs[key].stdout).into_owned();
    assert!(
        stdout("campaign init renewal --from-csv crm-export.csv")
            .contains("[to] email = \"{{ email }}\""),
        "{}",
        stdout("campaign init renewal --from-csv crm-export.csv")
    );
    let columns = stdout("campaign check renewal/campaign.toml --columns");
    assert!(
        columns.contains("`Renewal date`  →  {{ renewal_date }}"),
        "{columns}"
    );
    assert!(stdout("campaign preview renewal/campaign.toml").contains("renews on July 1, 2026"));

    // The rehearsal: each customer once, the duplicates skipped, the cells as written.
    let log = std::fs::read_to_string(
        dir.path()
            .join("renewal/.campaign/campaign.sandbox.results.csv.sandbox.jsonl"),
    )
    .unwrap();
    let bodies: Vec<String> = log
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["request"]["body"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    for expected in [
        "<p>Hi Ada,</p>\n<p>Your Pro plan for Analytical Engines, Ltd renews on July 1, 2026.</p>",
        "Cobol &quot;Works&quot;, Inc renews on August 15, 2026.",
        "<p>Hi Seán,</p>\n<p>Your Starter plan for O&#x27;Brien &amp; Sons renews on September 30, 2026.</p>",
        "<p>Hi there,</p>\n<p>Your Pro plan for Bletchley Systems renews on October 2, 2026.</p>",
    ] {
        assert!(bodies.iter().any(|b| b.contains(expected)), "{expected} not in {bodies:#?}");
    }
    let rows = read_results(&dir.path().join("renewal/campaign.sandbox.results.csv"));
    let by_row: HashMap<&str, (&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["row"].as_str(),
                (r["status"].as_str(), r["error_code"].as_str()),
            )
        })
        .collect();
    assert_eq!(by_row["5"], ("skipped", "duplicate"), "{by_row:?}");
    assert_eq!(by_row["6"], ("skipped", "duplicate"), "{by_row:?}");
    assert_eq!(rows.iter().filter(|r| r["status"] == "sent").count(), 4);
    let report = stdout("campaign report renewal/campaign.sandbox.results.csv");
    assert!(report.contains("rehearsal"), "{report}");
}

#[test]
fn init_without_an_export_writes_a_campaign_that_checks_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let words: Vec<String> = std::iter::once("campaign")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        run_printed(dir.path(), &words)
    };
    let out = run(&["init", "first"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Every command it names next runs as printed (a shell drops each `# comment`).
    let next: Vec<Vec<String>> = stdout
        .split("next:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no next commands: {stdout}"))
        .lines()
        .map(|l| shlex::split(l).unwrap())
        .collect();
    assert_eq!(next.len(), 4, "{stdout}");
    assert_eq!(
        next[3],
        ["campaign", "send", "first/campaign.toml", "--sandbox"]
    );
    for words in &next {
        let out = run_printed(dir.path(), words);
        assert_eq!(out.status.code(), Some(0), "{words:?}: {}", stderr(&out));
    }
    let again = run(&["init", "first"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("first/campaign.toml exists"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn the_man_page_holds_the_campaign_file_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_printed(dir.path(), &["campaign".into(), "man".into()]);
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(page.contains(".SH \"CAMPAIGN FILE\""), "{page}");
    for key in [
        "recipients = \"customers.csv\"",
        "message_type = \"email\"",
        "from = 394051",
        "[to]",
        "duplicates = \"skip\"",
        "base_url = \"https://api.intercom.io\"",
    ] {
        assert!(page.contains(key), "{key} not in the page");
    }
}

#[test]
fn a_lead_not_found_by_a_campaign_of_users_names_type_contact() {
    let f = Fixture::new(
        "email,first_name,plan\nlee@x.test,Lee,pro\n",
        &email_campaign("").replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\""),
    );
    f.write("contacts.csv", "id,email,role\nlead-1,lee@x.test,lead\n");
    f.cmd()
        .args([
            "resolve",
            "campaign.toml",
            "--sandbox",
            "--sandbox-contacts",
            "contacts.csv",
            "--out",
            "resolved.csv",
        ])
        .assert()
        .success();
    let rows = read_results(&f.path("resolved.csv"));
    assert_eq!(rows[0]["lookup_status"], "not_found");
    assert!(
        rows[0]["lookup_reason"].contains("set [to] type = \"contact\""),
        "{rows:?}"
    );
}

#[test]
fn two_rehearsals_into_different_results_files_keep_one_log_each() {
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    for results in ["a.csv", "b.csv"] {
        f.cmd()
            .env_remove("INTERCOM_TOKEN")
            .args(["send", "campaign.toml", "--sandbox", "--results", results])
            .assert()
            .success()
            .stderr(predicates::str::contains(format!(
                ".campaign/{results}.sandbox.jsonl"
            )));
    }
    for log in [
        ".campaign/a.csv.sandbox.jsonl",
        ".campaign/b.csv.sandbox.jsonl",
    ] {
        assert_eq!(logged(&f.path(log)).values().sum::<usize>(), 3, "{log}");
    }
    assert!(!f
        .path(".campaign/campaign.sandbox.results.csv.sandbox.jsonl")
        .exists());
}

#[test]
fn report_csv_prints_the_results_in_row_order() {
    // Replies of random latency: the results file is in the order the outcomes came.
    let server = TestServer::start(std::sync::Arc::new(|r, _| {
        let ms = r
            .to_id()
            .trim_start_matches("id-")
            .parse::<u64>()
            .unwrap_or(0)
            % 7
            * 15;
        Reply::Delay(Duration::from_millis(ms), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(
        &people_csv(30),
        &email_campaign("").replace("concurrency = 4", "concurrency = 16"),
    );
    f.send(&server, &[]).success();
    let out = f
        .cmd()
        .args(["report", "results.csv", "--csv"])
        .assert()
        .success();
    let mut rdr = csv::Reader::from_reader(&out.get_output().stdout[..]);
    let rows: Vec<u64> = rdr
        .deserialize::<HashMap<String, String>>()
        .map(|r| r.unwrap()["row"].parse().unwrap())
        .collect();
    assert_eq!(rows, (1..=30).collect::<Vec<u64>>());
    let file_order: Vec<String> = read_results(&f.results())
        .iter()
        .map(|r| r["row"].clone())
        .collect();
    assert_eq!(file_order.len(), 30);
}

#[test]
fn preview_shows_where_a_default_applies_the_duplicates_and_the_files_true_row_count() {
    let mut csv =
        String::from("intercom_id,first_name,plan\nid-1,Ada,pro\nid-2,,pro\nid-1,Ada,pro\n");
    for i in 4..=30 {
        // Row 17, far past the rows shown, has no name either.
        let name = if i == 17 {
            String::new()
        } else {
            format!("P{i}")
        };
        csv.push_str(&format!("id-{i},{name},pro\n"));
    }
    let f = Fixture::new(
        &csv,
        &email_campaign("duplicates = \"skip\"").replace(
            "Hello {{ first_name }}",
            "Hello {{ first_name | default(value=\\\"there\\\") }}",
        ),
    );
    let out = f
        .cmd()
        .args(["preview", "campaign.toml"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stdout.contains(
            "── row 2 (line 3) ─ to user id-2 ─ a `default` applies: first_name is empty\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("Subject: Hello there"), "{stdout}");
    assert!(
        stdout.contains("── row 3 (line 4) ─ to user id-1 ─ the recipient of row 1\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("── row 1 (line 2) ─ to user id-1 ─"),
        "{stdout}"
    );
    assert!(err.contains("people.csv: 3 of 30 rows shown"), "{err}");
    // Of the whole file, beyond the rows shown.
    assert!(
        err.contains("people.csv: a `default` gives its fallback in 2 rows: row 2 (first_name empty), row 17 (first_name empty)"),
        "{err}"
    );
    assert!(
        err.contains("people.csv: 1 row has the recipient of an earlier row; send sends the first row of each recipient and records the later ones `skipped` ([send] duplicates = \"skip\"):\n  rows 1, 3 (user id-1): row 1 is sent, row 3 recorded `skipped` (duplicate)\n"),
        "{err}"
    );
    let out = f
        .cmd()
        .args([
            "preview",
            "campaign.toml",
            "--html",
            "page.html",
            "--limit",
            "1",
        ])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("page.html: 1 of 30 rows; a `default` gives its fallback in 2 rows; 1 row with the recipient of an earlier row"),
        "{stdout}"
    );
}
