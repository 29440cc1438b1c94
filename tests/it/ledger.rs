//! The ledger across runs and people: resumes of a finished run, several processes at once, runs
//! from other folders, files that are not regular, a server that never lets up, the journal on
//! disk before each request, and the printed resume command. Driven against a scripted server.
use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;

fn per_recipient(server: &TestServer) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in server.requests() {
        *n.entry(r.to_id()).or_default() += 1;
    }
    n
}

fn statuses(f: &Fixture) -> Vec<(String, String, String)> {
    f.result_rows()
        .into_iter()
        .map(|r| {
            (
                r["row"].clone(),
                r["status"].clone(),
                r["message_id"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_finished_run_resumed_three_times_changes_nothing_and_sends_nobody_twice() {
    // Every fourth row fails the first time it is sent (a 422), then succeeds.
    let server = TestServer::start(Arc::new(|r, nth| {
        let n: usize = r.to_id()[3..].parse().unwrap();
        if n.is_multiple_of(4) && nth == 0 {
            error_reply(422, "parameter_invalid", "try again", "req-1")
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(40), &email_campaign(""));
    f.send(&server, &[]).code(1);
    f.send(&server, &["--resume"]).success();
    let finished = statuses(&f);
    assert_eq!(finished.len(), 40);
    assert!(finished
        .iter()
        .all(|(_, s, id)| s == "sent" && !id.is_empty()));
    for _ in 0..3 {
        f.send(&server, &["--resume"])
            .success()
            .stderr(predicates::str::contains("when the last run stopped").not());
        assert_eq!(statuses(&f), finished);
    }
    // As the tool would once have advised: nothing is unknown, so nothing goes again.
    f.send(&server, &["--resume", "--retry-unknown"]).success();
    assert_eq!(statuses(&f), finished);
    let counts = per_recipient(&server);
    assert_eq!(counts.len(), 40);
    for (id, n) in counts {
        let expected = if id[3..].parse::<usize>().unwrap() % 4 == 0 {
            2
        } else {
            1
        };
        assert_eq!(n, expected, "{id}");
    }
}

use predicates::prelude::PredicateBooleanExt;

/// Starts `n` sends of the same campaign at once; returns their outputs.
fn at_once(f: &Fixture, url: &str, n: usize, extra: &[&str]) -> Vec<std::process::Output> {
    let children: Vec<_> = (0..n).map(|_| f.spawn_send(url, extra)).collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn two_or_three_runs_started_together_send_each_row_once() {
    let server = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_millis(20), Box::new(ok_reply(r)))
    }));
    for (n, extra) in [(2, &[][..]), (3, &[][..]), (3, &["--resume"][..])] {
        let f = Fixture::new(&people_csv(60), &email_campaign(""));
        if extra.contains(&"--resume") {
            f.send(&server, &["--limit", "10"]).code(3);
        }
        let outs = at_once(&f, &server.url(), n, extra);
        let busy: Vec<String> = outs
            .iter()
            .filter(|o| o.status.code() == Some(2))
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        let ran = outs.iter().filter(|o| o.status.code() == Some(0)).count();
        // The ones that lost the race either found the lock taken, or (starting after the
        // winner ended) found its results and were not told to resume.
        assert_eq!(ran + busy.len(), n, "{outs:?}");
        assert!(ran >= 1);
        for e in &busy {
            assert!(
                (e.contains("another run is using results.csv (pid ") && e.contains(", started "))
                    || e.contains("already holds results"),
                "{e}"
            );
        }
        assert!(f.result_rows().iter().all(|r| r["status"] == "sent"));
        assert_eq!(f.result_rows().len(), 60);
    }
    let counts = per_recipient(&server);
    assert!(counts.values().all(|&n| n == 3), "someone messaged twice");
}

#[test]
fn a_second_run_while_one_is_sending_exits_at_once_naming_it() {
    let server = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_millis(300), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(
        &people_csv(20),
        &email_campaign("").replace("200/s", "20/s"),
    );
    let first = f.spawn_send(&server.url(), &[]);
    while server.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = f
        .send(&server, &["--resume"])
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(
        err.contains(&format!("(pid {}, started ", first.id())) && err.contains("nothing was sent"),
        "{err}"
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(per_recipient(&server).values().all(|&n| n == 1));
}

#[test]
fn the_results_file_is_beside_the_campaign_whatever_the_current_folder() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    let elsewhere = tempfile::tempdir().unwrap();
    let campaign = f.campaign();
    let run = |dir: &std::path::Path, extra: &[&str]| {
        let mut cmd = f.cmd();
        cmd.current_dir(dir)
            .args([
                "send",
                campaign.to_str().unwrap(),
                "--api-base",
                &server.url(),
            ])
            .args(extra);
        cmd.assert()
    };
    run(elsewhere.path(), &["--limit", "2"]).code(3);
    assert!(f.path("campaign.results.csv").exists());
    assert!(!elsewhere.path().join("campaign.results.csv").exists());
    // From the campaign's own folder, or a third one: the same run, not a new one.
    run(f.dir.path(), &[])
        .code(2)
        .stderr(predicates::str::contains("already holds results"));
    let third = tempfile::tempdir().unwrap();
    run(third.path(), &["--resume"]).success();
    assert_eq!(read_results(&f.path("campaign.results.csv")).len(), 5);
    assert!(per_recipient(&server).values().all(|&n| n == 1));
}

#[test]
fn a_results_file_left_in_the_current_folder_by_an_earlier_version_is_not_passed_over() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    std::fs::create_dir(f.path("sub")).unwrap();
    std::fs::rename(f.campaign(), f.path("sub/campaign.toml")).unwrap();
    std::fs::rename(f.path("people.csv"), f.path("sub/people.csv")).unwrap();
    f.write(
        "campaign.results.csv",
        "row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at\n1,id-1,sent,m1,200,,,,1,\n",
    );
    f.cmd()
        .args(["send", "sub/campaign.toml", "--api-base", &server.url()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "continue it with --results campaign.results.csv --resume",
        ));
    assert!(server.requests().is_empty());
}

#[cfg(unix)]
#[test]
fn results_that_are_not_regular_files_are_refused_before_sending() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(3), &email_campaign(""));
    std::os::unix::fs::symlink(f.path("elsewhere.csv"), f.path("link.csv")).unwrap();
    for (results, what) in [
        ("/dev/null", "not a regular file"),
        ("/dev/full", "not a regular file"),
        ("link.csv", "a symbolic link"),
        (".", "a folder"),
    ] {
        let mut cmd = f.cmd();
        cmd.args([
            "send",
            "campaign.toml",
            "--results",
            results,
            "--api-base",
            &server.url(),
        ]);
        cmd.assert().code(2).stderr(
            predicates::str::contains(what).and(predicates::str::contains("must be regular files")),
        );
    }
    assert!(server.requests().is_empty());
    assert!(!f.path("elsewhere.csv").exists());
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_server_that_answers_429_forever_stops_the_run_with_exit_3() {
    for reset_ahead in [1, 86_400] {
        let server = TestServer::start(Arc::new(move |_, _| {
            Reply::JsonWithHeaders(
                429,
                json!({"type": "error.list", "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}]}),
                vec![("X-RateLimit-Reset", (unix_now() + reset_ahead).to_string())],
            )
        }));
        let f = Fixture::new(&people_csv(4), &email_campaign(""));
        let out = f.send(&server, &["--stall-timeout", "3s"]).code(3);
        let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(
            err.contains("past the stall bound of 3s") && err.contains("--resume"),
            "{err}"
        );
        // Nothing was created by a 429: those rows are not `unknown`.
        assert!(
            f.result_rows().iter().all(|r| r["status"] != "unknown"),
            "{err}"
        );
    }
}

#[test]
fn an_error_after_requests_left_is_a_resumable_stop_not_nothing_sent() {
    let server = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_millis(200), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(&people_csv(6), &email_campaign("").replace("200/s", "10/s"));
    let child = f.spawn_send(&server.url(), &[]);
    while server.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The results file becomes a folder under the running process: settling it at the end fails.
    std::fs::remove_file(f.results()).unwrap();
    std::fs::create_dir(f.results()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("nothing was sent"), "{err}");
    assert!(err.contains("the run stopped"), "{err}");
}

#[test]
fn the_printed_resume_command_runs_as_printed() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(
        &(people_csv(6) + ",Person7,pro,Company 7\n"),
        &email_campaign(""),
    );
    let token_file = f.write("my token", TOKEN);
    let args = [
        "send",
        "campaign.toml",
        "--results",
        "out dir/results.csv",
        "--api-base",
        &server.url(),
        "--token-file",
        token_file.to_str().unwrap(),
        "--intercom-version",
        "2.11",
        "--skip-invalid",
        "--max-attempts",
        "3",
        "--limit",
        "2",
    ];
    std::fs::create_dir(f.path("out dir")).unwrap();
    let out = f
        .cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(args)
        .assert()
        .code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let printed = err
        .split("To continue: ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or_else(|| panic!("no resume command: {err}"));
    let words = shlex::split(printed).unwrap();
    assert_eq!(words[0], "campaign");
    for flag in [
        "--api-base",
        "--token-file",
        "--intercom-version",
        "--skip-invalid",
        "--max-attempts",
    ] {
        assert!(words.iter().any(|w| w == flag), "{flag} missing: {printed}");
    }
    assert!(!words.iter().any(|w| w == "--limit"), "{printed}");
    let out = Command::new(assert_cmd::cargo::cargo_bin("campaign"))
        .current_dir(f.dir.path())
        .env_remove("INTERCOM_TOKEN")
        .args(&words[1..])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = read_results(&f.path("out dir/results.csv"));
    assert_eq!(rows.len(), 7);
    assert_eq!(rows.iter().filter(|r| r["status"] == "sent").count(), 6);
    assert_eq!(rows.iter().filter(|r| r["status"] == "skipped").count(), 1);
    assert!(server.requests().iter().all(|r| r
        .headers
        .get("intercom-version")
        .map(String::as_str)
        == Some("2.11")));
    assert_eq!(server.requests().len(), 6);
}

/// The system calls `filter` names of one `send` of the fixture's campaign to `server` (with
/// `args`), as strace writes them (every thread, descriptors with their paths); the send must
/// succeed.
#[cfg(target_os = "linux")]
fn traced_send(
    strace: &std::path::Path,
    f: &Fixture,
    server: &TestServer,
    filter: &str,
    args: &[&str],
) -> String {
    let options = ["-f", "-ttt", "-yy", "-s", "1048576", "-e", filter];
    traced(strace, &options, f, server, args)
}

/// A send under strace with these options, which must succeed; its trace.
#[cfg(target_os = "linux")]
fn traced(
    strace: &std::path::Path,
    options: &[&str],
    f: &Fixture,
    server: &TestServer,
    args: &[&str],
) -> String {
    let trace = f.path("trace.txt");
    let out = Command::new(strace)
        .args(options)
        .arg("-o")
        .arg(&trace)
        .arg(assert_cmd::cargo::cargo_bin("campaign"))
        .args([
            "send",
            "campaign.toml",
            "--results",
            "results.csv",
            "--api-base",
            &server.url(),
        ])
        .args(args)
        .current_dir(f.dir.path())
        .env("INTERCOM_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&trace).unwrap()
}

/// Reads a trace of `write,writev,sendto,sendmsg,fdatasync,fsync`: asserts that the number of
/// `POST /messages` written to a socket never passes the number of journal lines an
/// `fdatasync` has completed for, and returns the posts and the journal's syncs.
#[cfg(target_os = "linux")]
fn posts_after_their_journal_sync(text: &str) -> (usize, usize) {
    let (mut written, mut synced, mut posts, mut syncs) = (0usize, 0usize, 0usize, 0usize);
    let mut syncing: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        let journal = line.contains(".journal>");
        // strace cuts a string longer than `-s` and marks it `"..."...`: its lines would be
        // miscounted.
        assert!(
            !(journal && line.contains("\"...")),
            "a journal write cut short in the trace: {line}"
        );
        if journal && line.contains("write(") {
            written += line.matches("\\n").count();
        }
        if journal && (line.contains("fdatasync(") || line.contains("fsync(")) {
            syncing.insert(pid.clone(), written);
            syncs += 1;
        }
        let sync_done = (line.contains("fdatasync") || line.contains("fsync"))
            && line.trim_end().ends_with("= 0")
            && (journal || line.contains("resumed>"));
        if sync_done {
            if let Some(n) = syncing.remove(&pid) {
                synced = synced.max(n);
            }
        }
        if line.contains("<TCP") && line.contains("POST /messages") && !line.contains("resumed>") {
            posts += 1;
            assert!(
                posts <= synced,
                "request {posts} written with {synced} journal lines synced ({written} written): {line}"
            );
        }
    }
    (posts, syncs)
}

/// Each request's journal line is on stable storage before the request leaves: read off the
/// system calls, the number of `POST /messages` written to a socket never passes the number of
/// journal lines an `fdatasync` has completed for.
#[cfg(target_os = "linux")]
#[test]
fn the_journal_is_synced_before_each_request_is_written() {
    let Some(strace) = require_tool("STRACE", "strace") else {
        return;
    };
    let server = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_millis(5), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(&people_csv(40), &email_campaign(""));
    let text = traced_send(
        &strace,
        &f,
        &server,
        "trace=write,writev,sendto,sendmsg,fdatasync,fsync",
        &[],
    );
    let (posts, _) = posts_after_their_journal_sync(&text);
    assert_eq!(posts, 40, "every request seen in the trace");
}

/// With places to spare (`auto`), a message leaves a lead after its turn, and the turns of a
/// tenth of a second share one journal write and sync: at 50/s, 100 messages take about 20
/// syncs, not 100, each line still synced before its request is written, and the requests
/// leave at the rate, no second holding more than its 50. (Read where they leave, off the
/// trace: at the server, the first request comes a connection's set-up later than it left,
/// which under strace can put 51 into its second there.)
#[cfg(target_os = "linux")]
#[test]
fn turns_that_come_apart_share_a_journal_sync_and_leave_at_the_rate() {
    let Some(strace) = require_tool("STRACE", "strace") else {
        return;
    };
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(100), &email_campaign(""));
    let text = traced_send(
        &strace,
        &f,
        &server,
        "trace=write,writev,sendto,sendmsg,fdatasync,fsync",
        &["--rate", "50/s", "--concurrency", "auto"],
    );
    let (posts, syncs) = posts_after_their_journal_sync(&text);
    assert_eq!(posts, 100, "every request seen in the trace");
    assert!(
        syncs <= 40,
        "{syncs} journal syncs for 100 messages at 50/s: turns are not gathered"
    );
    assert_eq!(server.requests().len(), 100);
    // When each request was written: `-ttt`'s seconds, the second field of its line.
    let mut at: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("<TCP") && l.contains("POST /messages") && !l.contains("resumed>"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(at.len(), 100);
    at.sort_by(f64::total_cmp);
    for (i, t) in at.iter().enumerate() {
        let within = at[i..].iter().take_while(|u| **u - t < 1.0).count();
        assert!(
            within <= 50,
            "{within} requests within a second from request {i}"
        );
    }
}

/// A run the server holds back (above 1,706/s, no lead; a fixed `--concurrency`; answers slower
/// than the rate): while synced messages wait for a request to end, the next rows gather behind
/// one journal sync instead of a sync for each answer's place: 240 messages at `--concurrency 8`,
/// each held 30 to 60 ms, take at most half as many syncs (a sync an answer was about 225), each
/// line still synced before its request is written, and the server never holds more than 8 at
/// once.
#[cfg(target_os = "linux")]
#[test]
fn rows_waiting_for_the_wire_share_a_journal_sync() {
    let Some(strace) = require_tool("STRACE", "strace") else {
        return;
    };
    let hold = Duration::from_millis(30);
    let n = std::sync::atomic::AtomicU64::new(0);
    let server = TestServer::start(Arc::new(move |r, _| {
        let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reply::Delay(
            hold + Duration::from_millis(k * 7 % 30),
            Box::new(ok_reply(r)),
        )
    }));
    let f = Fixture::new(&people_csv(240), &email_campaign(""));
    let text = traced_send(
        &strace,
        &f,
        &server,
        "trace=write,writev,sendto,sendmsg,fdatasync,fsync",
        &["--rate", "5000/s", "--concurrency", "8"],
    );
    let (posts, syncs) = posts_after_their_journal_sync(&text);
    assert_eq!(posts, 240, "every request seen in the trace");
    assert!(
        syncs <= 120,
        "{syncs} journal syncs for 240 messages, 8 at a time: rows waiting for the wire do not share one"
    );
    let mut at: Vec<std::time::Instant> = server.requests().iter().map(|r| r.at).collect();
    at.sort();
    let times: Vec<Duration> = at.iter().map(|t| *t - at[0]).collect();
    assert_eq!(
        busiest(&times, hold),
        8,
        "the most requests the server got within {hold:?}"
    );
}

/// The run log says how long the slowest journal sync took (a run slower than its rate with a
/// slow sync was held back by the disk): at least as long as strace timed the journal's longest
/// `fdatasync`, and within the run.
#[cfg(target_os = "linux")]
#[test]
fn the_run_log_holds_the_slowest_journal_sync() {
    let Some(strace) = require_tool("STRACE", "strace") else {
        return;
    };
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(30), &email_campaign(""));
    let options = ["-f", "-T", "-yy", "-e", "trace=fdatasync"];
    let text = traced(&strace, &options, &f, &server, &[]);
    // `-f` splits a call another thread interrupts into `<unfinished ...>` and `resumed>`
    // lines of the same pid: the path is on the first, the time on the last.
    let (mut journal_of, mut longest, mut syncs) = (HashMap::new(), 0.0f64, 0);
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap_or("");
        let journal = if line.contains("resumed>") {
            journal_of.remove(pid).unwrap_or(false)
        } else {
            line.contains(".journal>")
        };
        if line.contains("<unfinished") {
            journal_of.insert(pid.to_string(), journal);
            continue;
        }
        let took = line
            .rsplit_once('<')
            .and_then(|(_, t)| t.trim_end_matches('>').parse::<f64>().ok());
        if let (true, Some(secs)) = (journal, took) {
            syncs += 1;
            longest = longest.max(secs * 1000.0);
        }
    }
    assert!(syncs > 0, "no journal sync in the trace:\n{text}");
    let runs = std::fs::read_to_string(f.path(".campaign/results.csv.runs.jsonl")).unwrap();
    let run: serde_json::Value = serde_json::from_str(runs.lines().last().unwrap()).unwrap();
    let logged = run["slowest_journal_sync_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no slowest_journal_sync_ms: {run}"));
    let ms = |key: &str| {
        let at: jiff::Timestamp = run[key].as_str().unwrap().parse().unwrap();
        at.as_millisecond() as f64
    };
    assert!(
        logged >= longest && logged <= ms("ended_at") - ms("started_at") + 1.0,
        "logged {logged} ms; longest journal fdatasync {longest} ms over {syncs}; {run}"
    );
}

/// The lock is held until the ledger is settled after the run: read off the system calls, the
/// flocked descriptor of `.campaign/results.csv.lock` is closed (or the process ends) only after
/// the last write to the results file, its journal and its run log, and after the last rename. A
/// second run that took the lock while the first still settled would read a ledger in the middle of
/// being rewritten.
#[cfg(target_os = "linux")]
#[test]
fn the_lock_is_held_until_the_ledger_is_settled_after_the_run() {
    let Some(strace) = require_tool("STRACE", "strace") else {
        return;
    };
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    let text = traced_send(
        &strace,
        &f,
        &server,
        "trace=flock,close,write,writev,pwrite64,rename,renameat,renameat2",
        &[],
    );
    let lines: Vec<&str> = text.lines().collect();
    let fd_of = |line: &str| -> Option<String> {
        let args = line.split_once('(')?.1;
        Some(args.split('<').next()?.to_string())
    };
    let locked = lines
        .iter()
        .position(|l| l.contains("flock(") && l.contains(".lock>") && l.contains("LOCK_EX"))
        .expect("the lock is taken");
    let fd = fd_of(lines[locked]).unwrap();
    let released = lines[locked..]
        .iter()
        .position(|l| {
            l.contains(&format!("close({fd}<")) && l.contains(".lock>")
                || l.contains(&format!("flock({fd}<")) && l.contains("LOCK_UN")
        })
        .map_or(lines.len(), |i| locked + i);
    let ledger_work = |l: &&str| {
        let writes = (l.contains("write(") || l.contains("writev(") || l.contains("pwrite64("))
            && l.contains("results.csv")
            && !l.contains(".lock>");
        writes || l.contains("rename")
    };
    let last = lines
        .iter()
        .rposition(ledger_work)
        .expect("the run wrote its ledger");
    assert!(
        lines[..=last].iter().any(|l| l.contains("runs.jsonl>")),
        "the run log was written"
    );
    assert!(
        last < released,
        "the lock was let go at line {released} of the trace, before the ledger's last change at line {last}: {}",
        lines[last]
    );
}

#[test]
fn a_results_file_that_lost_rows_after_a_run_is_refused_not_sent_again() {
    // As after a power cut that lost the file's last writes, or a copy put back by hand.
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    f.send(&server, &[]).success();
    let text = std::fs::read_to_string(f.results()).unwrap();
    let header = text.lines().next().unwrap().to_string();
    std::fs::write(f.results(), header + "\n").unwrap();
    f.send(&server, &["--resume"]).code(2).stderr(
        predicates::str::contains(
            "holds 0 rows, but 5 rows were recorded in it after the last run",
        )
        .and(predicates::str::contains("Restore it from a copy")),
    );
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn a_results_file_without_its_journal_is_refused() {
    // A rehearsal's results renamed to be the real campaign's: without the journal nothing says
    // they were rehearsed, so they must not count as sent to customers.
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.cmd()
        .env_remove("INTERCOM_TOKEN")
        .args(["send", "campaign.toml", "--sandbox", "--limit", "3"])
        .assert()
        .code(3);
    std::fs::rename(f.path("campaign.sandbox.results.csv"), f.results()).unwrap();
    f.send(&server, &["--resume"])
        .code(2)
        .stderr(predicates::str::contains(
            "its journal .campaign/results.csv.journal is missing",
        ));
    assert!(server.requests().is_empty());
    // With the journal brought along, it is refused for what it is: a rehearsal.
    std::fs::rename(
        f.path(".campaign/campaign.sandbox.results.csv.journal"),
        f.path(".campaign/results.csv.journal"),
    )
    .unwrap();
    f.send(&server, &["--resume"])
        .code(2)
        .stderr(predicates::str::contains("records a run against sandbox"));
    assert!(server.requests().is_empty());
}

#[test]
fn a_journal_of_another_campaign_is_refused_before_it_touches_the_results() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(4), &email_campaign(""));
    f.send(&server, &["--limit", "2"]).code(3);
    let before = std::fs::read(f.results()).unwrap();
    f.write(
        ".campaign/results.csv.journal",
        "campaign-journal v2 results_offset=0 settings=deadbeef@sandbox content=0 rows=0\n3\tforeign-id\n",
    );
    f.send(&server, &["--resume"])
        .code(2)
        .stderr(predicates::str::contains("records a run against sandbox"));
    assert_eq!(std::fs::read(f.results()).unwrap(), before);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn removing_the_lock_file_during_a_run_stops_it_and_a_second_resume_keeps_the_ledger() {
    // The usual reflex for a "stale" lock: removed while the run is sending, then a second
    // --resume started beside it. The first must stop without writing the ledger again (its
    // rows in flight are the second's `unknown`), and nobody is messaged twice, then or later.
    let server = TestServer::start(Arc::new(|r, _| {
        Reply::Delay(Duration::from_millis(150), Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(
        &people_csv(60),
        &email_campaign("").replace("200/s", "20/s"),
    );
    let first = f.spawn_send(&server.url(), &[]);
    while server.requests().len() < 5 {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(f.path(".campaign/results.csv.lock")).unwrap();
    let second = f.spawn_send(&server.url(), &["--resume"]);
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{err}");
    assert!(
        err.contains(
            "the lock file .campaign/results.csv.lock was removed or replaced during the run"
        ) && err.contains("this run wrote nothing to the ledger after that"),
        "{err}"
    );
    // The fifth request's answer comes 150 ms after the lock went: at least its outcome is
    // counted but not written, and the summary says how many of its counts those are.
    let unrecorded = err.matches("(not recorded: the lock was lost").count();
    assert!(unrecorded >= 1, "{err}");
    assert!(
        err.contains(&format!(
            "{unrecorded} of the outcomes counted above are not in the results file"
        )),
        "{err}"
    );
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(matches!(second.status.code(), Some(0 | 1)), "{second_err}");
    // Then resumed until nothing is left: the rows in flight at the handover stay `unknown`.
    f.send(&server, &["--resume"]).code(predicates::ord::lt(2));
    f.send(&server, &["--resume"]).code(predicates::ord::lt(2));
    let counts = per_recipient(&server);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "messaged twice: {twice:?}");
    let rows = statuses(&f);
    assert_eq!(rows.len(), 60);
    let sent = rows.iter().filter(|(_, s, _)| s == "sent").count();
    let unknown = rows.iter().filter(|(_, s, _)| s == "unknown").count();
    assert_eq!(sent + unknown, 60, "{rows:?}");
}

#[test]
fn a_closed_stderr_does_not_stop_a_run() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(30), &email_campaign(""));
    let mut child = f.spawn_send(&server.url(), &[]);
    drop(child.stderr.take()); // writes to it now fail with a broken pipe
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(f.result_rows().len(), 30);
}

#[test]
fn a_resume_with_nothing_to_do_leaves_skipped_rows_as_they_are() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(
        &(people_csv(3) + ",Nobody,pro,Company X\n"),
        &email_campaign(""),
    );
    f.send(&server, &["--skip-invalid"]).success();
    let before = std::fs::read(f.results()).unwrap();
    f.send(&server, &["--resume", "--skip-invalid"]).success();
    assert_eq!(std::fs::read(f.results()).unwrap(), before);
}

#[test]
fn a_results_file_saved_with_crlf_line_breaks_resumes() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(4), &email_campaign(""));
    f.send(&server, &["--limit", "2"]).code(3);
    let text = std::fs::read_to_string(f.results()).unwrap();
    std::fs::write(f.results(), text.replace('\n', "\r\n")).unwrap();
    f.send(&server, &["--resume"]).success();
    assert_eq!(server.requests().len(), 4);
}

/// The results file as LibreOffice or Excel saves it: every cell quoted, CRLF line breaks, the
/// spreadsheet-safe `'` kept, and (Excel's "CSV UTF-8") a byte-order mark.
fn spreadsheet_save(path: &std::path::Path) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .unwrap();
    let mut out = String::from("\u{feff}");
    for rec in rdr.records() {
        let cells: Vec<String> = rec
            .unwrap()
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_results_file_saved_by_a_spreadsheet_resumes_and_reports_the_same_rows() {
    // A recipient that is a formula to a spreadsheet: written `'=…`, read back exactly.
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let csv = people_csv(6).replace("id-2,", "=id-2,");
    let f = Fixture::new(&csv, &email_campaign(""));
    f.send(&server, &["--limit", "3"]).code(3);
    let before = statuses(&f);
    assert!(std::fs::read_to_string(f.results())
        .unwrap()
        .contains("'=id-2"));
    spreadsheet_save(&f.results());
    f.send(&server, &["--resume"]).success();
    let counts = per_recipient(&server);
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert!(counts.contains_key("=id-2"));
    let after = statuses(&f);
    assert_eq!(after.len(), 6);
    assert_eq!(&after[..3], &before[..]);
    // Saved again after the resume: `report` reads the same rows, the recipient as it was.
    spreadsheet_save(&f.results());
    let out = f
        .cmd()
        .args(["report", "results.csv", "--json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["rows"], 6, "{json}");
    f.send(&server, &["--resume"]).success();
    assert_eq!(server.requests().len(), 6);
}

#[test]
fn a_results_file_edited_into_something_unreadable_is_refused_in_plain_words() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(4), &email_campaign(""));
    f.send(&server, &["--limit", "2"]).code(3);
    let text = std::fs::read_to_string(f.results()).unwrap();
    std::fs::write(f.results(), text.replacen(",sent,", ",Sent ok,", 1)).unwrap();
    let said =
        "column `status`: `Sent ok` is not one of sent, failed, unknown or skipped. Fix that cell";
    f.send(&server, &["--resume"]).code(2).stderr(
        predicates::str::contains("results.csv: line 2 (row ").and(predicates::str::contains(said)),
    );
    f.cmd()
        .args(["report", "results.csv"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("line 2 (row ").and(predicates::str::contains(said)));
    assert_eq!(server.requests().len(), 2);
}

/// The command between the first pair of backticks after `after` in `text`, as words.
fn printed_command(text: &str, after: &str) -> Vec<String> {
    let rest = &text[text.find(after).expect(after) + after.len()..];
    let start = rest.find('`').unwrap() + 1;
    let end = start + rest[start..].find('`').unwrap();
    shlex::split(&rest[start..end]).unwrap()
}

/// Runs a command the tool printed, exactly as printed, in the fixture's folder.
fn run_printed(f: &Fixture, words: &[String]) -> assert_cmd::assert::Assert {
    assert_eq!(words[0], "campaign");
    f.cmd().args(&words[1..]).assert()
}

#[test]
fn a_copied_campaign_file_or_results_elsewhere_is_refused_naming_the_ledger_that_sent() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(6), &email_campaign(""));
    f.send(&server, &["--limit", "4"]).code(3);
    assert_eq!(server.requests().len(), 4);
    // The campaign file copied (its results would go beside the copy), and --results elsewhere.
    std::fs::copy(f.campaign(), f.path("copy.toml")).unwrap();
    let url = server.url();
    let copied = f
        .cmd()
        .args(["send", "copy.toml", "--api-base", &url, "--yes"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&copied.get_output().stderr).to_string();
    let results = std::fs::canonicalize(f.results()).unwrap();
    assert!(
        err.contains(&format!(
            "another ledger of this campaign (the same templates, settings and target) already records 4 rows sent (or perhaps sent: `unknown`): {}",
            results.display()
        )) && err.contains("add --new-ledger"),
        "{err}"
    );
    let elsewhere = |extra: &[&str]| {
        f.cmd()
            .args([
                "send",
                "campaign.toml",
                "--results",
                "elsewhere.csv",
                "--api-base",
                &url,
            ])
            .args(extra)
            .assert()
    };
    elsewhere(&[])
        .code(2)
        .stderr(predicates::str::contains("already records 4 rows sent"));
    assert_eq!(server.requests().len(), 4, "nothing sent by a refused run");
    // The command it names continues that ledger, as printed: the two rows left, nobody twice.
    run_printed(&f, &printed_command(&err, "Continue that one with ")).success();
    let counts = per_recipient(&server);
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    // Asked for on purpose, a new ledger starts (and messages everyone again, as said).
    elsewhere(&["--new-ledger"]).success();
    assert_eq!(server.requests().len(), 12);
}

#[test]
fn results_and_journal_deleted_with_the_run_log_left_are_refused_not_sent_again() {
    let server = TestServer::start(Arc::new(|r, _| ok_reply(r)));
    let f = Fixture::new(&people_csv(5), &email_campaign(""));
    f.send(&server, &[]).success();
    let kept = (
        std::fs::read(f.results()).unwrap(),
        std::fs::read(f.path(".campaign/results.csv.journal")).unwrap(),
    );
    std::fs::remove_file(f.results()).unwrap();
    std::fs::remove_file(f.path(".campaign/results.csv.journal")).unwrap();
    let refused = f.send(&server, &[]).code(2);
    let err = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(
        err.contains("results.csv has no rows, but its run log .campaign/results.csv.runs.jsonl says earlier runs sent 5 messages (or may have: `unknown`)")
            && err.contains("add --new-ledger"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 5);
    // Put back, the printed command continues it: nothing left, nobody twice.
    std::fs::write(f.results(), kept.0).unwrap();
    std::fs::write(f.path(".campaign/results.csv.journal"), kept.1).unwrap();
    run_printed(&f, &printed_command(&err, "continue with ")).success();
    assert_eq!(server.requests().len(), 5);
    // The results file deleted alone is refused too (the journal says it had rows).
    std::fs::remove_file(f.results()).unwrap();
    f.send(&server, &["--resume"]).code(2);
    assert_eq!(server.requests().len(), 5);
}

/// A ledger an earlier version started keeps working after the upgrade. That version kept the
/// journal, lock and run log beside the results file: its lock, held by a run of it, is honoured
/// as a lock; then a resume moves the files into the hidden folder, records the rows that
/// version's killed run left in flight `unknown`, and sends only the rows no run sent.
#[test]
fn a_ledger_an_earlier_version_left_beside_the_results_is_resumed_without_messaging_anyone_twice() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    // While `slow`, answers take a minute: the rows are in flight when the run is killed.
    let slow = Arc::new(AtomicBool::new(false));
    let held_back = Arc::clone(&slow);
    let server = TestServer::start(Arc::new(move |r, _| match held_back.load(SeqCst) {
        true => Reply::Delay(Duration::from_secs(60), Box::new(ok_reply(r))),
        false => ok_reply(r),
    }));
    let f = Fixture::new(
        &people_csv(8),
        &email_campaign("").replace("concurrency = 4", "concurrency = 1"),
    );
    f.send(&server, &["--limit", "2"]).code(3);
    slow.store(true, SeqCst);
    let mut killed = f.spawn_send(&server.url(), &["--resume"]);
    while server.requests().len() < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    slow.store(false, SeqCst);
    let in_flight = server.requests().len() - 2;
    // What that version left: its files beside the results file (the register beside the CSV),
    // no hidden folder.
    for name in [
        "results.csv.journal",
        "results.csv.lock",
        "results.csv.runs.jsonl",
        "people.csv.ledgers.jsonl",
    ] {
        std::fs::rename(f.path(&format!(".campaign/{name}")), f.path(name)).unwrap();
    }
    std::fs::remove_dir(f.path(".campaign")).unwrap();

    // A run of that version holds its lock: refused, nothing sent, nothing moved.
    let older_run = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path("results.csv.lock"))
        .unwrap();
    older_run.try_lock().unwrap();
    f.send(&server, &["--resume"])
        .code(2)
        .stderr(predicates::str::contains("another run is using"));
    assert_eq!(server.requests().len(), 2 + in_flight);
    assert!(f.path("results.csv.journal").is_file());
    drop(older_run);

    // That run gone, the resume: the rows it journaled `unknown` (the one in flight among
    // them), the others sent, nobody twice.
    let out = f.send(&server, &["--resume"]).code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let twice: Vec<_> = per_recipient(&server)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "messaged twice: {twice:?}");
    let rows = statuses(&f);
    let count = |s: &str| rows.iter().filter(|(_, status, _)| status == s).count();
    let unknown = count("unknown");
    assert!(unknown >= in_flight && in_flight >= 1, "{rows:?}");
    assert_eq!(count("sent") + unknown, 8, "{rows:?}");
    assert_eq!(server.requests().len(), 8 - unknown + in_flight);
    assert!(
        err.contains(&format!(
            "{unknown} unknown, 0 skipped ({unknown} were in flight when the last run stopped)"
        )),
        "{err}"
    );
    // Its files are in the hidden folder now, the run log holding that version's run and this one.
    for suffix in [".journal", ".lock", ".runs.jsonl"] {
        assert!(
            !f.path(&format!("results.csv{suffix}")).exists(),
            "{suffix}"
        );
        assert!(
            f.path(&format!(".campaign/results.csv{suffix}")).is_file(),
            "{suffix}"
        );
    }
    let runs = std::fs::read_to_string(f.path(".campaign/results.csv.runs.jsonl")).unwrap();
    assert_eq!(runs.lines().count(), 2, "{runs}");
    // The register, found where that version kept it, moved in: a copy of the campaign is
    // still refused for the ledger that sent.
    assert!(!f.path("people.csv.ledgers.jsonl").exists());
    std::fs::copy(f.campaign(), f.path("copy.toml")).unwrap();
    f.cmd()
        .args(["send", "copy.toml", "--api-base", &server.url(), "--yes"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("another ledger of this campaign"));
    // And nothing is left to send.
    f.send(&server, &["--resume"]).code(1);
    assert_eq!(server.requests().len(), 8);
}

/// Settling keeps what it knows of each row in a temporary file in `.campaign/` (memory does not
/// grow with the rows): after a send and a resume that settled a `failed` row, the folder holds
/// the ledger's own files only.
#[test]
fn settling_leaves_no_file_of_its_own_behind() {
    let server = TestServer::start(Arc::new(|r, nth| {
        if r.to_id() == "id-7" && nth == 0 {
            error_reply(422, "parameter_invalid", "try again", "req-1")
        } else {
            ok_reply(r)
        }
    }));
    let f = Fixture::new(&people_csv(12), &email_campaign(""));
    f.send(&server, &[]).code(1);
    f.send(&server, &["--resume"]).success();
    assert_eq!(statuses(&f).len(), 12);
    let mut names: Vec<String> = std::fs::read_dir(f.path(".campaign"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let known = [".journal", ".lock", ".runs.jsonl", ".ledgers.jsonl"];
    assert!(
        names.iter().all(|n| known.iter().any(|k| n.ends_with(k))),
        "{names:?}"
    );
}
