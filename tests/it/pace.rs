//! The pace as a server sees it: `concurrency = auto` against a server that answers at once holds
//! the configured rate, and no 10-second span gets more than its share. Asserted on the requests
//! the server received (counts in 10-second spans), not on wall-clock timings: on a machine that
//! others load, the process can be starved for a while and fall behind (never ahead), so the
//! run is long enough for several 10-second spans and the busiest of them must be full, which a
//! pace held back by its in-flight limit (as `auto` was at 64-71/s) never is.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

/// One send of `n` rows at 10000/min with `concurrency` against a server answering at once: the
/// most requests the server got in any 10 seconds.
fn busiest_ten_seconds(n: usize, concurrency: &str) -> usize {
    let server = TestServer::start(Arc::new(|r: &Received, _| ok_reply(r)));
    let f = Fixture::new(
        &people_csv(n),
        &inapp_campaign("")
            .replace("rate = \"200/s\"", "rate = \"10000/min\"")
            .replace("concurrency = 4", &format!("concurrency = {concurrency}")),
    );
    f.send(&server, &[]).success();
    let rows = f.result_rows();
    assert_eq!(rows.iter().filter(|r| r["status"] == "sent").count(), n);
    let mut at: Vec<std::time::Instant> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/messages")
        .map(|r| r.at)
        .collect();
    assert_eq!(at.len(), n);
    at.sort();
    let times: Vec<Duration> = at.iter().map(|t| *t - at[0]).collect();
    let took = times.last().unwrap().as_secs_f64();
    let rate = (n - 1) as f64 / took;
    // Never ahead, whatever the machine's load.
    assert!(rate <= 166.67 * 1.01, "{rate:.1}/s");
    busiest(&times, Duration::from_secs(10))
}

#[test]
fn auto_holds_166_a_second_against_a_server_that_answers_at_once() {
    // Some 10 seconds hold 90 % of the window's share, none more (94-96 % measured with the
    // machine's load at 16 on 2 cores). A machine busy enough to starve the sender for longer
    // than the limiter's tolerance (at load 21-25, 68-75 %) holds no pace back to the rate; there,
    // `auto` must do as well as a fixed limit that does not bind against this server (64 in
    // flight, the benchmark's comparison; with 1,024 allowed, one run on a loaded CI machine
    // ended with 25 rows `unknown`), sending at the same time so that both meet the same load. A
    // pace its in-flight limit holds back (as `auto` was, at 40 %) fails both.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (auto, fixed) = std::thread::scope(|s| {
            let auto = s.spawn(|| busiest_ten_seconds(3000, "\"auto\""));
            let fixed = s.spawn(|| busiest_ten_seconds(3000, "64"));
            (auto.join().unwrap(), fixed.join().unwrap())
        });
        assert!(auto <= 1666, "{auto} requests in 10 s");
        assert!(fixed <= 1666, "{fixed} requests in 10 s");
        if auto >= 1666 * 90 / 100 || auto * 10 >= fixed * 9 {
            return;
        }
        seen.push((auto, fixed));
    }
    panic!(
        "the busiest 10 s held (auto, 64 in flight) {seen:?} of a share of 1666: auto held the pace back"
    );
}

/// `[send]` keys whose send hours open an hour from now (UTC).
fn hours_closed_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = |s: u64| format!("{:02}:{:02}", s / 3600 % 24, s / 60 % 60);
    format!(
        "hours = \"{}-{}\"\ndays = \"mon-sun\"\ntimezone = \"UTC\"",
        minute(now + 3600),
        minute(now + 7200)
    )
}

#[cfg(unix)]
#[test]
fn contacts_are_not_looked_up_while_the_send_hours_are_closed() {
    let server = TestServer::start(Arc::new(|r: &Received, _| ok_reply(r)));
    let mut csv = String::from("email,first_name,plan\n");
    for i in 1..=3 {
        csv.push_str(&format!("p{i}@x.test,P{i},pro\n"));
    }
    let toml = inapp_campaign(&hours_closed_now())
        .replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\"");
    let f = Fixture::new(&csv, &toml);
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
    // Had the lookup run ahead of the hours, its search would be made by now.
    std::thread::sleep(Duration::from_secs(2));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn a_fixed_concurrency_is_the_most_requests_the_server_holds_at_once() {
    // Every message held 300 ms: with `concurrency = 3` the server holds 3 at a time, never 4:
    // in any 300 ms, at most 3 arrive (the next leaves only once one is answered), whatever
    // rows wait their journal sync beside them.
    let hold = Duration::from_millis(300);
    let server = TestServer::start(Arc::new(move |r: &Received, _| {
        Reply::Delay(hold, Box::new(ok_reply(r)))
    }));
    let f = Fixture::new(
        &people_csv(30),
        &inapp_campaign("").replace("concurrency = 4", "concurrency = 3"),
    );
    f.send(&server, &[]).success();
    let mut at: Vec<std::time::Instant> = server.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 30);
    at.sort();
    let times: Vec<Duration> = at.iter().map(|t| *t - at[0]).collect();
    assert_eq!(busiest(&times, hold), 3, "{times:?}");
}
