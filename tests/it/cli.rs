//! The command line teaches itself: `--help` with examples, exit codes and
//! the environment, checked against tests/snapshots/; completions and a man page; flags that
//! would be ignored are errors; messages that say the fix, in users' words, once.
use crate::common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use predicates::prelude::*;

const SECRET: &str = "tok-8d0c1e5a-never-shown";

/// `campaign ARGS` outside any campaign, with both tokens set to the secret.
fn campaign(args: &[&str]) -> assert_cmd::assert::Assert {
    assert_cmd::Command::cargo_bin("campaign")
        .unwrap()
        .env("INTERCOM_TOKEN", SECRET)
        .env("SANDBOX_TOKEN", SECRET)
        .args(args)
        .timeout(Duration::from_secs(60))
        .assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// Every command, as the command line defines them: a new one cannot be left out.
fn commands() -> Vec<String> {
    use clap::CommandFactory;
    campaign::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|name| name != "help")
        .collect()
}
/// Each `--help` as checked in: a change to the flags or their words shows in review.
/// `UPDATE_SNAPSHOTS=1 cargo test --test it cli::help` rewrites them.
#[test]
fn help_matches_the_snapshots() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    let top = [None];
    let commands = commands();
    for command in top.into_iter().chain(commands.iter().map(Some)) {
        let (name, args) = match command {
            None => ("campaign".to_string(), vec!["--help"]),
            Some(c) => (format!("campaign-{c}"), vec![c.as_str(), "--help"]),
        };
        let help = stdout(&campaign(&args).success());
        assert!(!help.contains(SECRET), "{name} --help shows the token");
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &help).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(help.as_str()) {
            stale.push(format!("{}:\n{help}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "--help changed; if intended, run UPDATE_SNAPSHOTS=1 cargo test --test it cli::help and review the diff:\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_help_has_examples_and_exit_codes_and_send_names_its_environment() {
    for c in commands() {
        let help = stdout(&campaign(&[&c, "--help"]).success());
        assert!(help.contains("Examples:\n  campaign "), "{c}: {help}");
        assert!(help.contains("Exit codes:\n  0"), "{c}: {help}");
    }
    let send = stdout(&campaign(&["send", "--help"]).success());
    assert!(send.contains("[env: INTERCOM_TOKEN]"), "{send}");
    for code in ["  1 ", "  2 ", "  3 ", "  4 ", "  130 "] {
        assert!(send.contains(code), "exit code {code} missing: {send}");
    }
    for flag in [
        "--rate-limit",
        "--latency",
        "--fail-rate",
        "--fail-after-rate",
        "--drop-rate",
        "--seed",
        "--no-validate",
    ] {
        let line = send.lines().find(|l| l.contains(flag)).unwrap();
        assert!(line.contains("With --sandbox:"), "{line}");
    }
    let sandbox = stdout(&campaign(&["sandbox", "--help"]).success());
    assert!(sandbox.contains("[env: SANDBOX_TOKEN]"), "{sandbox}");
    // The sandbox's own fault flags need no --sandbox.
    assert!(!sandbox.contains("With --sandbox"), "{sandbox}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&campaign(&["completions", shell]).success());
        assert!(script.contains("--retry-unknown"), "{shell}");
        assert!(script.contains("completions"), "{shell}");
    }
    campaign(&["completions", "tcsh"])
        .code(2)
        .stderr(predicate::str::contains("possible values: bash"));
}

#[test]
fn man_pages_are_printed_for_campaign_and_each_command() {
    let page = stdout(&campaign(&["man"]).success());
    assert!(page.starts_with(".ie"), "{page}");
    assert!(page.contains(".TH campaign 1"), "{page}");
    assert!(page.contains("campaign\\-send(1)"), "{page}");
    assert!(page.contains("Exit codes:"), "{page}");
    let send = stdout(&campaign(&["man", "send"]).success());
    assert!(send.contains(".TH campaign-send 1"), "{send}");
    assert!(send.contains("\\-\\-retry\\-unknown"), "{send}");
    assert!(send.contains("INTERCOM_TOKEN"), "{send}");
    assert!(!send.contains(SECRET));
    campaign(&["man", "sned"])
        .code(2)
        .stderr(predicate::str::contains(
            "campaign has no command `sned`: use one of check, preview, send",
        ));
}

#[test]
fn a_fault_flag_without_sandbox_is_refused_and_nothing_is_sent() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    for flag in [
        &["--rate-limit", "10/s"][..],
        &["--latency", "5ms"],
        &["--fail-rate", "0.5"],
        &["--drop-rate", "0.5"],
        &["--seed", "7"],
        &["--no-validate"],
    ] {
        f.send(&server, flag).code(2).stderr(
            predicate::str::contains("required arguments were not provided")
                .and(predicate::str::contains("--sandbox")),
        );
    }
    assert!(server.requests().is_empty());
    assert!(!f.results().exists());
    // With --sandbox they are taken.
    f.cmd()
        .args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--fail-rate",
            "0",
            "--seed",
            "7",
        ])
        .assert()
        .success();
}

/// `--retry-unknown` and `--allow-changed` mean nothing without `--resume`: a user who gives one
/// alone is told, rather than sending a fresh run they did not ask for.
#[test]
fn resume_flags_without_resume_are_refused() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    for flag in ["--retry-unknown", "--allow-changed"] {
        f.send(&server, &[flag]).code(2).stderr(
            predicate::str::contains("required arguments were not provided")
                .and(predicate::str::contains("--resume")),
        );
    }
    assert!(server.requests().is_empty());
}

#[test]
fn the_token_flag_is_the_environment_variable_and_is_never_printed() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    let a = f
        .send_cmd(&server.url(), &["--token", SECRET])
        .env_remove("INTERCOM_TOKEN")
        .assert()
        .success();
    assert!(!stderr(&a).contains(SECRET) && !stdout(&a).contains(SECRET));
    assert_eq!(
        server.requests()[0].headers["authorization"],
        format!("Bearer {SECRET}")
    );
}

#[test]
fn every_send_key_with_a_flag_has_one() {
    // The README's [send] keys that it says have flags of the same name.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let help = stdout(&campaign(&["send", "--help"]).success());
    for key in [
        "rate",
        "concurrency",
        "max_attempts",
        "max_failures",
        "max_failure_share",
        "retry_not_found_for",
        "request_timeout",
        "stall_timeout",
    ] {
        assert!(readme.contains(&format!("# {key} = ")) || readme.contains(&format!("\n{key} = ")));
        let flag = format!("--{} <", key.replace('_', "-"));
        assert!(help.contains(&flag), "no {flag} in send --help");
    }
}

#[test]
fn max_failure_share_from_the_command_line_stops_the_run() {
    // Every other row is refused: half the last 100, which the default (0.5) lets through.
    let server = TestServer::start(Arc::new(|r, _| {
        let n: u64 = r.to_id().trim_start_matches("id-").parse().unwrap();
        if n.is_multiple_of(2) {
            error_reply(400, "parameter_invalid", "no", "req-1")
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(150), &email_campaign(""));
    f.send(
        &server,
        &["--max-failure-share", "0.3", "--concurrency", "1"],
    )
    .code(3)
    .stderr(predicate::str::contains("of the last 100 rows failed"));
    assert!(server.requests().len() < 150);
    f.send(&server, &["--max-failure-share", "0"])
        .code(2)
        .stderr(predicate::str::contains(
            "`0`: expected a share above 0 and at most 1",
        ));
}

#[test]
fn retry_not_found_for_and_request_timeout_from_the_command_line_are_used() {
    let server = TestServer::start(Arc::new(|_, _| {
        error_reply(404, "not_found", "User Not Found", "req-404")
    }));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    // The default would retry each 404 for 60 s.
    f.send(&server, &["--retry-not-found-for", "0s"]).code(1);
    assert_eq!(server.requests().len(), 2);
    assert!(f.result_rows().iter().all(|r| r["status"] == "failed"));

    let slow = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_secs(30), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    f.send(&slow, &["--request-timeout", "1s", "--max-attempts", "1"])
        .code(1);
    assert_eq!(f.result_rows()[0]["status"], "unknown");
}

#[test]
fn the_dry_run_shows_concurrency_as_written_not_as_rust_debug() {
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    for (flag, shown) in [("4", "concurrency 4)"), ("auto", "concurrency auto)")] {
        f.cmd()
            .args(["send", "campaign.toml", "--dry-run", "--concurrency", flag])
            .assert()
            .success()
            .stdout(predicate::str::contains(shown).and(predicate::str::contains("Fixed").not()));
    }
}

#[test]
fn a_dry_run_with_skip_invalid_counts_the_rows_it_would_skip() {
    let csv = format!("{},Nobody,pro,Co\n,Noone,pro,Co\n", people_csv(3));
    let f = Fixture::new(&csv, &email_campaign(""));
    f.cmd()
        .args(["send", "campaign.toml", "--dry-run", "--skip-invalid"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "dry run: 3 messages would be sent to https://api.intercom.io (rate 200/s, concurrency 4), 2 invalid rows would be recorded `skipped`; nothing was sent.",
        ));
}

#[test]
fn the_closing_hint_speaks_of_failed_rows_only_when_some_failed() {
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    let a = f
        .cmd()
        .args(["send", "campaign.toml", "--sandbox", "--drop-rate", "1"])
        .args(["--max-attempts", "1", "--request-timeout", "5s"])
        .assert()
        .code(1);
    let err = stderr(&a);
    assert!(err.contains("0 failed, 3 unknown"), "{err}");
    assert!(
        err.contains("Or send those not found again, on purpose: campaign send campaign.toml --results campaign.sandbox.results.csv --resume"),
        "{err}"
    );
    assert!(err.contains("--retry-unknown 1-3"), "{err}");
    assert!(!err.contains("`failed` rows are sent again by"), "{err}");
}

#[test]
fn a_header_only_csv_is_an_error() {
    let f = Fixture::new(
        "intercom_id,first_name,plan,company\n\n",
        &email_campaign(""),
    );
    f.cmd().args(["check", "campaign.toml"]).assert().code(2).stderr(
        predicate::str::contains(
            "error: people.csv: line 1: the file has a header row but no records: add one row per recipient below it",
        ),
    );
    f.cmd()
        .args(["send", "campaign.toml", "--sandbox"])
        .assert()
        .code(2);
    assert!(!f.path("campaign.sandbox.results.csv").exists());
}

#[test]
fn a_base_url_with_a_path_is_refused_before_sending() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    f.send_to(&format!("{}/v2", server.url()), &[])
        .code(2)
        .stderr(predicate::str::contains(format!(
            "error: --api-base: the API base URL `{}/v2` has a path: it must be the API's root, such as {}",
            server.url(),
            server.url()
        )));
    let with_path =
        email_campaign("") + "\n[intercom]\nbase_url = \"https://api.eu.intercom.io/messages\"\n";
    let g = Fixture::new(&people_csv(2), &with_path);
    g.cmd()
        .args(["send", "campaign.toml", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: campaign.toml [intercom] base_url: the API base URL `https://api.eu.intercom.io/messages` has a path: it must be the API's root, such as https://api.eu.intercom.io",
        ));
    assert!(server.requests().is_empty());
}

#[test]
fn a_missing_from_says_what_to_add() {
    let toml = email_campaign("").replace("from = 394051\n", "");
    let f = Fixture::new(&people_csv(1), &toml);
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(
        predicate::str::contains("missing field `from`").and(predicate::str::contains(
            "add `from = <admin id>` under [message]: the id of the admin the messages come from",
        )),
    );
}

#[test]
fn double_quotes_inside_a_double_quoted_string_say_the_fix() {
    let toml = email_campaign("").replace(
        "subject = \"Hello {{ first_name }}\"",
        "subject = \"Hello from \"Acme\", {{ first_name }}\"",
    );
    let f = Fixture::new(&people_csv(1), &toml);
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    let err = stderr(&a);
    assert!(
        err.contains("campaign.toml: TOML parse error at line 7"),
        "{err}"
    );
    assert!(
        err.contains("a double-quoted string ends at its next `\"`: write quotes inside it as single quotes (subject = \"Welcome to 'Acme'\"), or escape them as \\\""),
        "{err}"
    );
    // The file is named once.
    assert_eq!(err.matches("campaign.toml").count(), 1, "{err}");
}

#[test]
fn an_html_warning_from_the_template_is_reported_once_at_its_line() {
    let toml = email_campaign("").replace(
        "body = \"<p>Hi {{ first_name }}, welcome to {{ plan }}.</p>\"",
        "body_file = \"body.html\"",
    );
    let f = Fixture::new(&people_csv(30), &toml);
    f.write(
        "body.html",
        "<p>Hi {{ first_name }},</p>\n<p>welcome to <b>{{ plan }}.</p>\n",
    );
    let a = f.cmd().args(["check", "campaign.toml"]).assert().success();
    let err = stderr(&a);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).collect::<Vec<_>>(),
        ["warning: body.html: line 2: the body's HTML does not balance: `</p>` closes `<b>` (in 30 rows)"],
        "{err}"
    );

    // A value that breaks the tags (`| safe`) is the row's own: said at the row.
    f.write(
        "body.html",
        "<p>Hi {{ first_name }}, {{ company | safe }}</p>\n",
    );
    let csv = people_csv(2).replace("Company 2", "<i>Company 2");
    f.write("people.csv", csv);
    let a = f.cmd().args(["check", "campaign.toml"]).assert().success();
    let err = stderr(&a);
    assert!(
        err.contains("warning: people.csv: record 2, line 3, body: the body's HTML does not balance: `</p>` closes `<i>`"),
        "{err}"
    );
}
