//! The lookup stage and the dispatcher together, on tokio's paused clock with the send hours'
//! clock moved by it ([`crate::input::hours::test_clock`]): a day of waits in no time. What is
//! asserted is what the server heard, and when by the hours' clock.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::dispatcher::{self, LOOKUP_WINDOW};
use super::lookup;
use super::{Counters, Item, Job, Retries, Says, Shared, Stop};
use crate::input::config::{Address, Concurrency, OnMany};
use crate::input::hours::{test_clock, SendHours};
use crate::intercom::client::{Client, Token};
use crate::intercom::pace::Pace;
use crate::lookup::Rules;
use crate::results::{Journal, JournalHeader, ResultRow, RowStatus, RunLock};

/// A request the server heard: its path, its body, and the hours' clock when it came.
type HeardRequest = (String, Value, Timestamp);
/// A row's line, and what it says of the run.
type Ended = (ResultRow, Says);
type Heard = Arc<Mutex<Vec<HeardRequest>>>;

/// How the test's server answers: searches find a user for each e-mail asked, `unsubscribed`
/// unsubscribed from `from` on (by the hours' clock); messages are made, the first one answered
/// 429 (`Retry-After: 60`, nothing made) if `first_message_429`, each answered
/// `message_delay` after it came.
#[derive(Clone, Copy)]
struct Script {
    unsubscribed: &'static str,
    from: &'static str,
    first_message_429: bool,
    message_delay: Duration,
}

impl Script {
    /// Nobody unsubscribes, every message is made and answered at once.
    const PLAIN: Script = Script {
        unsubscribed: "",
        from: "2026-12-07T12:00:00Z",
        first_message_429: false,
        message_delay: Duration::ZERO,
    };
}

/// A server on the test's runtime, answering as `script` says.
async fn serve(heard: Heard, script: Script) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let heard = Arc::clone(&heard);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let heard = Arc::clone(&heard);
                    async move {
                        let path = req.uri().path().to_string();
                        let body = http_body_util::BodyExt::collect(hyper::Request::into_body(req))
                            .await?
                            .to_bytes();
                        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let at = crate::input::hours::now();
                        let answer = {
                            let mut heard = heard.lock().unwrap();
                            let first = !heard.iter().any(|(p, ..)| p == "/messages");
                            let answer = answer(&path, &body, at, first, script);
                            heard.push((path.clone(), body, at));
                            answer
                        };
                        if path == "/messages" {
                            tokio::time::sleep(script.message_delay).await;
                        }
                        Ok::<_, hyper::Error>(answer)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn answer(
    path: &str,
    body: &Value,
    at: Timestamp,
    first_message: bool,
    script: Script,
) -> hyper::Response<http_body_util::Full<Bytes>> {
    let json = |status: u16, v: Value| {
        hyper::Response::builder()
            .status(status)
            .header("retry-after", "60")
            .body(http_body_util::Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    if path == "/messages" {
        if first_message && script.first_message_429 {
            return json(
                429,
                json!({"type": "error.list", "errors": [{"code": "rate_limit_exceeded", "message": "slow down"}]}),
            );
        }
        return json(
            200,
            json!({"type": "admin_message", "id": format!("m-{}", body["to"]["id"].as_str().unwrap_or_default())}),
        );
    }
    let late = at >= script.from.parse::<Timestamp>().unwrap();
    let data: Vec<Value> = searched(body)
        .into_iter()
        .map(|e| json!({"type": "contact", "id": format!("c-{e}"), "role": "user", "email": e, "unsubscribed_from_emails": late && e == script.unsubscribed}))
        .collect();
    json(
        200,
        json!({"type": "list", "data": data, "total_count": data.len()}),
    )
}

/// The e-mails a search asked for.
fn searched(body: &Value) -> Vec<String> {
    body["query"]["value"][0]["value"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn job(row: u64, email: &str) -> Item {
    let body = json!({"message_type": "inapp", "body": "Hi", "from": {"type": "admin", "id": "1"}, "to": {"type": "user", "email": email}});
    Item::Job(Job {
        row,
        recipient: email.into(),
        body: Bytes::from(body.to_string()),
        contact_id: String::new(),
        looked_up: None,
        extra: Vec::new(),
    })
}

/// Rows addressed by e-mail, looked up and sent at `rate` with one request in flight within
/// `hours` (UTC), from `start` by the hours' clock: what the server heard, and each row's outcome.
fn run(
    rate: &str,
    hours: &str,
    start: &str,
    emails: &[&str],
    script: Script,
) -> (Vec<HeardRequest>, Vec<ResultRow>) {
    run_with(Concurrency::Fixed(1), rate, hours, start, emails, script)
}

/// [`run`] with `concurrency` in flight.
fn run_with(
    concurrency: Concurrency,
    rate: &str,
    hours: &str,
    start: &str,
    emails: &[&str],
    script: Script,
) -> (Vec<HeardRequest>, Vec<ResultRow>) {
    let (heard, ends) = run_stopped(concurrency, rate, hours, start, emails, script, None);
    (heard, ends.into_iter().map(|(row, _)| row).collect())
}

/// [`run_with`], the run stopped (as by Ctrl-C) `stop_after` its start, if given.
fn run_stopped(
    concurrency: Concurrency,
    rate: &str,
    hours: &str,
    start: &str,
    emails: &[&str],
    script: Script,
    stop_after: Option<Duration>,
) -> (Vec<HeardRequest>, Vec<Ended>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let heard: Heard = Arc::default();
    let rows = rt.block_on(async {
        test_clock::start_at(start.parse().unwrap());
        let url = serve(Arc::clone(&heard), script).await;
        let token = Token::new("test-token".into()).unwrap();
        let client = Client::new(&url, &token, "2.11", Duration::from_secs(30), 4).unwrap();
        let stop = Stop::default();
        let shared = Arc::new(Shared {
            pace: Pace::new(client, rate.parse().unwrap(), concurrency, stop.token()),
            stop,
            hours: SendHours::parse(Some(hours), None, Some("UTC")).unwrap(),
            counters: Counters::default(),
            retries: Retries {
                max_attempts: 1,
                retry_not_found_for: Duration::ZERO,
            },
            rows_in_flight: Mutex::new(HashMap::new()),
            slowest_sync_us: Default::default(),
        });
        let rules = Arc::new(Rules {
            address: Address::Email,
            role: "user".into(),
            on_many: OnMany::Fail,
            respect_unsubscribed: true,
            suppress: Default::default(),
        });
        let lock = Arc::new(
            RunLock::acquire(&dir.path().join("lock"), &dir.path().join("results")).unwrap(),
        );
        let header = JournalHeader {
            results_offset: 0,
            settings: "s".into(),
            content: "c".into(),
            rows: 0,
        };
        let journal =
            Journal::start(&dir.path().join("journal"), &header, Arc::clone(&lock)).unwrap();
        let (job_tx, job_rx) = mpsc::channel(4);
        let (looked_up_tx, looked_up_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel::<super::RowEnd>(16);
        let stage = lookup::stage(
            Arc::clone(&shared),
            Arc::clone(&rules),
            lookup::Earlier::default(),
            false,
            job_rx,
            looked_up_tx,
        );
        tokio::spawn(stage);
        tokio::spawn(dispatcher::dispatch(
            Arc::clone(&shared),
            dispatcher::Recorder { journal },
            Some(rules),
            looked_up_rx,
            out_tx,
        ));
        if let Some(after) = stop_after {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                shared.stop.set(super::StopReason::Interrupted);
            });
        }
        let jobs = (1..).zip(emails).map(|(row, e)| job(row, e)).collect();
        job_tx.send(jobs).await.unwrap();
        drop(job_tx);
        let mut rows = Vec::new();
        // A week of paused time: a run that waits for nothing it could get ends the test.
        let all = async {
            while let Some(super::RowEnd { row, says }) = out_rx.recv().await {
                rows.push((row, says));
            }
        };
        tokio::time::timeout(Duration::from_secs(7 * 86_400), all)
            .await
            .expect("the run ended");
        rows
    });
    let heard = heard.lock().unwrap().clone();
    (heard, rows)
}

/// The messages the server heard, to whom and when; asserting that none came while the hours
/// were closed (from `close` to `open`) nor on a lookup older than the window.
fn messages_within_the_hours_and_the_window(
    heard: &[HeardRequest],
    close: &str,
    open: &str,
) -> Vec<(String, Timestamp)> {
    let (close, open): (Timestamp, Timestamp) = (close.parse().unwrap(), open.parse().unwrap());
    let messages: Vec<(String, Timestamp)> = heard
        .iter()
        .filter(|(path, ..)| path == "/messages")
        .map(|(_, body, at)| (body["to"]["id"].as_str().unwrap().to_string(), *at))
        .collect();
    for (to, at) in &messages {
        assert!(
            *at < close || *at >= open,
            "{to} left at {at}, the hours closed"
        );
        // The last search that asked for this contact, before the message left.
        let email = to.trim_start_matches("c-");
        let looked_up = heard
            .iter()
            .filter(|(path, body, t)| {
                path == "/contacts/search" && t <= at && searched(body).iter().any(|e| e == email)
            })
            .map(|(.., t)| *t)
            .max()
            .expect("looked up before it left");
        let age = at.duration_since(looked_up);
        assert!(
            age <= jiff::SignedDuration::try_from(LOOKUP_WINDOW).unwrap(),
            "{to} left on a lookup {age:?} old"
        );
    }
    messages
}

#[test]
fn a_message_the_limiter_holds_past_the_hours_close_waits_for_them_and_its_contact_is_looked_up_again(
) {
    // At 1/min, the search takes 02:36:06's turn, a's message 02:37:06's, and b's would leave at
    // 02:38:06, after the hours close at 02:38. It waits for them (the next day, 00:00); by then
    // its lookup is 21 hours old, and b has unsubscribed: looked up again, b is not messaged.
    let (heard, rows) = run(
        "1/min",
        "00:00-02:38",
        "2026-12-07T02:36:06Z",
        &["a@x.test", "b@x.test", "c@x.test"],
        Script {
            unsubscribed: "b@x.test",
            from: "2026-12-07T12:00:00Z",
            first_message_429: false,
            message_delay: Duration::ZERO,
        },
    );
    let messages = messages_within_the_hours_and_the_window(
        &heard,
        "2026-12-07T02:38:00Z",
        "2026-12-08T00:00:00Z",
    );
    let to: Vec<&str> = messages.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(to, ["c-a@x.test", "c-c@x.test"], "{heard:#?}");
    let b = rows.iter().find(|r| r.row == 2).unwrap();
    assert_eq!(
        (b.status, b.error_code.as_str()),
        (RowStatus::Skipped, "unsubscribed_from_emails"),
        "{rows:#?}"
    );
    assert_eq!(rows.len(), 3);
}

#[test]
fn a_retry_held_by_a_429_past_the_hours_close_waits_for_them_and_looks_its_contact_up_again() {
    // a's message at 02:37:30 is answered 429 for a minute: its retry's turn comes at 02:38:30,
    // after the close. It waits for the next opening; by then its lookup is 21 hours old, and a
    // has unsubscribed: looked up again, a is not messaged. b goes on a fresh lookup.
    let (heard, rows) = run(
        "1/min",
        "00:00-02:38",
        "2026-12-07T02:36:30Z",
        &["a@x.test", "b@x.test"],
        Script {
            unsubscribed: "a@x.test",
            from: "2026-12-07T12:00:00Z",
            first_message_429: true,
            message_delay: Duration::ZERO,
        },
    );
    let messages = messages_within_the_hours_and_the_window(
        &heard,
        "2026-12-07T02:38:00Z",
        "2026-12-08T00:00:00Z",
    );
    let to: Vec<&str> = messages.iter().map(|(to, _)| to.as_str()).collect();
    // The first is the 429 (nothing made), before the close.
    assert_eq!(to, ["c-a@x.test", "c-b@x.test"], "{heard:#?}");
    let at = |row: u64| rows.iter().find(|r| r.row == row).unwrap();
    assert_eq!(
        (at(1).status, at(1).error_code.as_str()),
        (RowStatus::Skipped, "unsubscribed_from_emails"),
        "{rows:#?}"
    );
    assert_eq!(at(2).status, RowStatus::Sent, "{rows:#?}");
}

#[test]
fn a_message_whose_lead_would_end_after_the_hours_close_waits_for_them() {
    // At 10/s with places to spare, a message leaves a lead (300 ms) after its turn: the turns
    // that come in the last 300 ms before 02:38 would leave after it, so they wait for the
    // next opening (and their contacts are looked up again then).
    let emails: Vec<String> = (0..30).map(|i| format!("p{i}@x.test")).collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (heard, rows) = run_with(
        Concurrency::Auto,
        "10/s",
        "00:00-02:38",
        "2026-12-07T02:37:58.5Z",
        &emails,
        Script::PLAIN,
    );
    let (_, messages) = some_before_the_close(&heard, 30);
    assert_eq!(messages.len(), 30, "{heard:#?}");
    assert!(
        rows.iter().all(|r| r.status == RowStatus::Sent),
        "{rows:#?}"
    );
}

#[test]
fn a_message_short_of_places_leaves_no_earlier_than_the_hours_open() {
    // At 1/min with one place, b's turn comes after the close; it waits for the opening. Short
    // of places it leaves as soon as it is synced, so the wait must end at the opening itself,
    // not a lead before it.
    let (heard, _rows) = run(
        "1/min",
        "00:00-02:38",
        "2026-12-07T02:36:06Z",
        &["a@x.test", "b@x.test", "c@x.test"],
        Script {
            unsubscribed: "",
            from: "2026-12-07T12:00:00Z",
            first_message_429: false,
            message_delay: Duration::ZERO,
        },
    );
    let messages = messages_within_the_hours_and_the_window(
        &heard,
        "2026-12-07T02:38:00Z",
        "2026-12-08T00:00:00Z",
    );
    assert_eq!(messages.len(), 3, "{heard:#?}");
    // Every request after the close, searches too, waits for the opening.
    let (close, open): (Timestamp, Timestamp) = (
        "2026-12-07T02:38:00Z".parse().unwrap(),
        "2026-12-08T00:00:00Z".parse().unwrap(),
    );
    for (path, _, at) in &heard {
        assert!(*at < close || *at >= open, "{path} at {at}");
    }
}

/// 20 rows at 10/s from 02:37:57, the hours closing at 02:38, each message answered 5 s after
/// it came, the run stopped `stop_after` its start if given. `auto` sizes the requests on the
/// wire by the latency, 200 ms until one is measured, and its places by that and the lead: the
/// rows whose turns came at 02:37:57 beyond the first few are journaled and wait for a request
/// to end, at 02:38:02, after the close. What the server heard before the close, after the next
/// opening (asserting nothing between), and the rows' lines.
fn held_on_the_wire_past_the_close(
    stop_after: Option<Duration>,
) -> (usize, Vec<(String, Timestamp)>, Vec<Ended>) {
    let emails: Vec<String> = (0..20).map(|i| format!("p{i}@x.test")).collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (heard, rows) = run_stopped(
        Concurrency::Auto,
        "10/s",
        "00:00-02:38",
        "2026-12-07T02:37:57Z",
        &emails,
        Script {
            message_delay: Duration::from_secs(5),
            ..Script::PLAIN
        },
        stop_after,
    );
    let (before, messages) = some_before_the_close(&heard, 20);
    // Searches too: none leaves while the hours are closed, however long it waited to.
    let (close, open): (Timestamp, Timestamp) = (
        "2026-12-07T02:38:00Z".parse().unwrap(),
        "2026-12-08T00:00:00Z".parse().unwrap(),
    );
    for (path, _, at) in &heard {
        assert!(*at < close || *at >= open, "{path} at {at}");
    }
    (before, messages, rows)
}

/// With the hours closing at 02:38 (until the next day): the messages, none while the hours
/// were closed, and how many of the `rows` left before the close, asserting that some did and
/// some did not.
fn some_before_the_close(heard: &[HeardRequest], rows: usize) -> (usize, Vec<(String, Timestamp)>) {
    let messages = messages_within_the_hours_and_the_window(
        heard,
        "2026-12-07T02:38:00Z",
        "2026-12-08T00:00:00Z",
    );
    let close: Timestamp = "2026-12-07T02:38:00Z".parse().unwrap();
    let before = messages.iter().filter(|(_, at)| *at < close).count();
    assert!(
        before > 0 && before < rows,
        "{before} of {rows} before the close"
    );
    (before, messages)
}

#[test]
fn a_message_waiting_for_a_request_to_end_leaves_no_later_than_the_hours_close() {
    let (_, messages, rows) = held_on_the_wire_past_the_close(None);
    assert_eq!(messages.len(), 20);
    assert!(
        rows.iter().all(|(r, _)| r.status == RowStatus::Sent),
        "{rows:#?}"
    );
}

#[test]
fn a_run_stopped_while_a_journaled_message_waits_for_the_hours_records_it_not_sent() {
    // Stopped at 02:38:10: the rows journaled and held back by the close were never sent. Each
    // is `failed` `outside_send_hours` with no attempt, so that `--resume` sends it, and says
    // nothing of the API; the rows whose turns never came have no line.
    let (before, messages, rows) = held_on_the_wire_past_the_close(Some(Duration::from_secs(13)));
    assert_eq!(messages.len(), before, "nothing after the close");
    let sent = rows.iter().filter(|(r, _)| r.status == RowStatus::Sent);
    assert_eq!(sent.count(), before, "{rows:#?}");
    let held: Vec<_> = rows
        .iter()
        .filter(|(r, _)| r.status != RowStatus::Sent)
        .collect();
    assert!(!held.is_empty(), "{rows:#?}");
    never_sent(&held, "outside_send_hours");
}

/// Rows held at the door and never sent: each `failed` with `code`, no attempt, no message id
/// (so that `--resume` sends it), and saying nothing of the API (the failure bound skips it).
fn never_sent(held: &[&Ended], code: &str) {
    assert!(!held.is_empty());
    for (r, says) in held {
        let line = (
            r.status,
            r.error_code.as_str(),
            r.attempts,
            r.message_id.as_str(),
        );
        assert_eq!(line, (RowStatus::Failed, code, 0, ""), "{r:#?}");
        assert_eq!(*says, Says::Nothing, "{r:#?}");
    }
}

/// 10 rows at 10/s from 02:37:00, with places to spare (each message leaves a lead after its
/// turn), the first message answered 429 with `Retry-After: 60`; the run stopped `stop_after`
/// its start if given. The messages (when, to whom) and the rows' lines.
fn messages_behind_a_429(stop_after: Option<Duration>) -> (Vec<(Timestamp, String)>, Vec<Ended>) {
    let emails: Vec<String> = (0..10).map(|i| format!("p{i}@x.test")).collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (heard, rows) = run_stopped(
        Concurrency::Auto,
        "10/s",
        "00:00-12:00",
        "2026-12-07T02:37:00Z",
        &emails,
        Script {
            first_message_429: true,
            ..Script::PLAIN
        },
        stop_after,
    );
    let messages = heard
        .iter()
        .filter(|(path, ..)| path == "/messages")
        .map(|(_, body, at)| (*at, body["to"]["id"].as_str().unwrap().to_string()))
        .collect();
    (messages, rows)
}

#[test]
fn a_429_holds_back_the_messages_waiting_out_their_lead() {
    // The messages whose turns came before the 429 and that had not left yet wait for the
    // pause with everyone (a new turn after it), instead of each collecting a 429 of its own.
    let (messages, rows) = messages_behind_a_429(None);
    let (limited, _) = messages[0];
    let pause_ends = limited + jiff::SignedDuration::from_secs(60);
    for (at, to) in &messages[1..] {
        assert!(
            *at >= pause_ends,
            "{to} left at {at}, in the pause from {limited}"
        );
    }
    assert_eq!(
        messages.len(),
        11,
        "the 429's row again, and each other once"
    );
    assert!(
        rows.iter()
            .all(|(r, _)| r.status == RowStatus::Sent && r.attempts == 1),
        "{rows:#?}"
    );
}

#[test]
fn a_run_stopped_during_a_pause_records_the_held_messages_not_sent() {
    // Stopped 10 s into the pause: the messages held at the door were never sent; each is
    // `failed` `rate_limit_pause` with no attempt, so that `--resume` sends it, and says nothing
    // of the API. The rows whose turns never came have no line.
    let (messages, rows) = messages_behind_a_429(Some(Duration::from_secs(10)));
    assert_eq!(messages.len(), 1, "{messages:?}");
    let held: Vec<_> = rows.iter().filter(|(r, _)| r.row != 1).collect();
    assert!(!held.is_empty(), "{rows:#?}");
    never_sent(&held, "rate_limit_pause");
    // The row the 429 answered waited in its retry: it keeps that answer, as any row stopped
    // before its next attempt does.
    let (first, _) = rows.iter().find(|(r, _)| r.row == 1).expect("row 1's line");
    assert_eq!(
        (first.status, first.http_status, first.attempts),
        (RowStatus::Failed, Some(429), 1),
        "{first:#?}"
    );
    assert!(
        first
            .error_message
            .contains("the run stopped before another attempt"),
        "{first:#?}"
    );
}
