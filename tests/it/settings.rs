//! The rate and the `[send]` settings end to end: out-of-range values in the campaign file, the
//! `send` flags and the sandbox's `--rate-limit` are refused with exit 2, naming the key and the
//! range, before anything is sent; a low rate spaces the requests the server receives.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// `send` of `campaign_toml` with `flags` against a server that would accept everything: it
/// must exit 2 having sent nothing and written no results. Returns stderr.
fn refused(campaign_toml: &str, flags: &[&str]) -> String {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(3), campaign_toml);
    let a = f.send(&server, flags).code(2);
    assert!(
        server.requests().is_empty(),
        "sent despite {flags:?}:\n{campaign_toml}"
    );
    assert!(!f.results().exists(), "a results file was written");
    stderr_of(&a)
}

fn assert_names(stderr: &str, what: &[&str]) {
    for w in what {
        assert!(stderr.contains(w), "expected `{w}` in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn send_settings_out_of_range_in_the_campaign_file_are_refused_naming_key_and_range() {
    let with = |from: &str, to: &str| email_campaign("").replace(from, to);
    let extra = |line: &str| email_campaign(line);
    let concurrency = ["[send] concurrency", "from 1 to 1024, or \"auto\""];
    let timeout = ["[send] request_timeout", "from 1s to 10m"];
    let attempts = ["[send] max_attempts", "from 1 to 20"];
    let failures = ["[send] max_failures", "from 1 to 1000000"];
    let not_found = ["[send] retry_not_found_for", "from 0s to 1h"];
    let rate = ["[send] rate", "from 1/h to 1000000/s"];
    for (toml, expected) in [
        // Panicked: a semaphore cannot hold that many permits.
        (
            with("concurrency = 4", "concurrency = 9000000000000000000"),
            &concurrency,
        ),
        (with("concurrency = 4", "concurrency = 1025"), &concurrency),
        (with("concurrency = 4", "concurrency = -3"), &concurrency),
        // Accepted, and every delivered row became `unknown`.
        (extra("request_timeout = \"0s\""), &timeout),
        (extra("request_timeout = \"1ns\""), &timeout),
        (extra("request_timeout = \"11m\""), &timeout),
        // Silently became 1.
        (extra("max_attempts = 0"), &attempts),
        (extra("max_attempts = 21"), &attempts),
        (extra("max_failures = 0"), &failures),
        // Retried a 404 for years.
        (extra("retry_not_found_for = \"5years\""), &not_found),
        (extra("retry_not_found_for = \"61m\""), &not_found),
        (with("rate = \"200/s\"", "rate = \"4294967295/s\""), &rate),
        (with("rate = \"200/s\"", "rate = \"1000001/s\""), &rate),
    ] {
        let stderr = refused(&toml, &[]);
        assert_names(&stderr, &["campaign.toml", expected[0], expected[1]]);
    }
}

#[test]
fn check_refuses_them_too() {
    let f = Fixture::new(&people_csv(3), &email_campaign("max_attempts = 0"));
    let a = f.cmd().args(["check", "campaign.toml"]).assert().code(2);
    assert_names(
        &stderr_of(&a),
        &["campaign.toml", "[send] max_attempts", "from 1 to 20"],
    );
}

#[test]
fn send_flags_out_of_range_are_refused_naming_flag_and_range() {
    let toml = email_campaign("");
    for (flags, expected) in [
        (
            ["--concurrency", "9000000000000000000"],
            ["--concurrency", "from 1 to 1024"],
        ),
        (["--max-attempts", "0"], ["--max-attempts", "from 1 to 20"]),
        (["--max-attempts", "21"], ["--max-attempts", "from 1 to 20"]),
        (
            ["--max-failures", "0"],
            ["--max-failures", "from 1 to 1000000"],
        ),
        // Panicked: the limiter's period came out as zero.
        (
            ["--rate", "4294967295/s"],
            ["--rate", "from 1/h to 1000000/s"],
        ),
        (["--rate", "0/min"], ["--rate", "from 1/h to 1000000/s"]),
    ] {
        let stderr = refused(&toml, &flags);
        assert_names(&stderr, &expected);
    }
}

#[test]
fn the_sandboxs_rate_limit_takes_the_same_range() {
    // A standalone sandbox with an impossible limit would serve forever without limiting.
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    let a = f
        .cmd()
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            "4294967295/s",
        ])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(2);
    assert_names(&stderr_of(&a), &["--rate-limit", "from 1/h to 1000000/s"]);
    let stderr = refused(
        &email_campaign(""),
        &["--sandbox", "--rate-limit", "2000000/s"],
    );
    assert_names(&stderr, &["--rate-limit", "from 1/h to 1000000/s"]);
    // The slowest rate, on both sides: the first request goes at once, and is let through.
    let f = Fixture::new(&people_csv(1), &email_campaign(""));
    f.cmd()
        .args(["send", "campaign.toml", "--sandbox"])
        .args(["--rate", "1/h", "--rate-limit", "1/h"])
        .assert()
        .success();
    assert!(f.path("campaign.sandbox.results.csv").exists());
}

#[test]
fn a_low_rate_spaces_the_requests_the_server_receives_a_period_apart() {
    // 30/min: one request every 2 s, so the fourth leaves no sooner than 6 s after the run
    // starts. Only a lower bound on the whole run, which a loaded machine can only lengthen; the
    // spacing itself is asserted on tokio's paused clock (intercom::pace's tests).
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(4), &email_campaign(""));
    let started = std::time::Instant::now();
    f.send(&server, &["--rate", "30/min"]).success();
    let took = started.elapsed();
    assert_eq!(server.requests().len(), 4);
    assert!(
        took >= Duration::from_secs(6),
        "{took:?} for 4 requests at 30/min"
    );
}

#[test]
fn duration_flags_have_the_campaign_files_ranges() {
    for (flag, value, range) in [
        ("--request-timeout", "0s", "from 1s to 10m"),
        ("--retry-not-found-for", "2h", "from 0s to 1h"),
        ("--stall-timeout", "0s", "from 1s to 24h"),
    ] {
        assert_cmd::Command::cargo_bin("campaign")
            .unwrap()
            .args(["send", "campaign.toml", flag, value])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(range));
    }
}
