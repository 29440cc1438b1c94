//! A server that misbehaves on purpose: it echoes the token (whole, cut at every offset around the
//! tool's cuts, cut short by itself), writes formulas into the cells a spreadsheet opens, and
//! sends answers that are huge or never end. The binary is driven against it and judged by its
//! results file, its output and what the server could write.
use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

/// A realistic token (Intercom's are base64): long, and with no `<` or `>`.
const TOKEN: &str = "c2FuZGJveDpub3RyZWFsXzk4NzY1NDMyMTBfYWJjZGVm";
/// What the tool keeps of an error body that is not JSON (src/intercom/answer.rs).
const TEXT_CHARS: usize = 200;
/// What it keeps of each string in a JSON error (src/intercom/answer.rs).
const FIELD_CHARS: usize = 1_000;

type Rows = [HashMap<String, String>];

fn row(rows: &Rows, n: usize) -> &HashMap<String, String> {
    rows.iter()
        .find(|r| r["row"] == n.to_string())
        .unwrap_or_else(|| panic!("row {n} missing: {rows:?}"))
}

/// A campaign that goes on however many rows fail, one request at a time.
fn patient_campaign(extra: &str) -> String {
    email_campaign(&format!(
        "max_failures = 1000\nmax_failure_share = 1.0\n{extra}"
    ))
    .replace("concurrency = 4", "concurrency = 1")
}

// ---- a raw HTTP/1.1 server ------------------------------------------------------------------

/// What the raw server answers to one request.
enum Answer {
    /// A whole answer with a `Content-Length`.
    Plain {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// `start`, then `fill` bytes of filler, then `end`, announced by its `Content-Length`.
    Long {
        status: u16,
        start: Vec<u8>,
        fill: usize,
        end: Vec<u8>,
    },
    /// A 200 without a length: `start`, then a space every 50 ms, forever.
    Trickle { start: Vec<u8> },
}

/// Per recipient id, whether the server managed to write its whole answer.
type Written = Arc<Mutex<HashMap<String, bool>>>;

struct RawServer {
    addr: SocketAddr,
    written: Written,
}

impl RawServer {
    fn start(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let written: Written = Arc::default();
        let w = Arc::clone(&written);
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (w, answer) = (Arc::clone(&w), Arc::clone(&answer));
                std::thread::spawn(move || {
                    if let Some(to) = read_request(&stream) {
                        let whole = write_answer(&stream, answer(&to)).is_ok();
                        w.lock().unwrap().insert(to, whole);
                    }
                });
            }
        });
        RawServer { addr, written }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn wrote_whole(&self, to: &str) -> Option<bool> {
        self.written.lock().unwrap().get(to).copied()
    }
}

/// Reads one request; returns its `to.id`.
fn read_request(stream: &TcpStream) -> Option<String> {
    let mut r = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(v["to"]["id"].as_str()?.to_string())
}

fn head(status: u16, length: Option<usize>, headers: &[(&str, String)]) -> String {
    let mut h = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nConnection: close\r\n"
    );
    if let Some(n) = length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h + "\r\n"
}

fn write_answer(mut s: &TcpStream, answer: Answer) -> std::io::Result<()> {
    match answer {
        Answer::Plain {
            status,
            headers,
            body,
        } => {
            s.write_all(head(status, Some(body.len()), &headers).as_bytes())?;
            s.write_all(&body)
        }
        Answer::Long {
            status,
            start,
            fill,
            end,
        } => {
            let length = start.len() + fill + end.len();
            s.write_all(head(status, Some(length), &[]).as_bytes())?;
            s.write_all(&start)?;
            let block = vec![b'x'; 64 << 10];
            let mut left = fill;
            while left > 0 {
                let n = left.min(block.len());
                s.write_all(&block[..n])?;
                left -= n;
            }
            s.write_all(&end)?;
            s.flush()
        }
        Answer::Trickle { start } => {
            s.write_all(head(200, None, &[]).as_bytes())?;
            s.write_all(&start)?;
            loop {
                std::thread::sleep(Duration::from_millis(50));
                s.write_all(b" ")?;
            }
        }
    }
}

fn plain(status: u16, body: impl Into<Vec<u8>>) -> Answer {
    Answer::Plain {
        status,
        headers: vec![],
        body: body.into(),
    }
}

fn json_error(status: u16, code: &str, message: &str, request_id: &str) -> Answer {
    plain(
        status,
        json!({"type": "error.list", "request_id": request_id,
               "errors": [{"code": code, "message": message}]})
        .to_string(),
    )
}

// ---- 10: the token, whole or in part, never shown -------------------------------------------

/// What of the token `text` shows: a run of 8 of its bytes anywhere.
fn token_run_in(text: &str) -> Option<&'static str> {
    TOKEN
        .as_bytes()
        .windows(8)
        .map(|w| std::str::from_utf8(w).unwrap())
        .find(|w| text.contains(w))
}

/// The token's first 4 or more bytes at the end of a cell, or its last 4 or more at the start.
fn token_edge_in(cell: &str) -> Option<usize> {
    (4..=TOKEN.len())
        .find(|&n| cell.ends_with(&TOKEN[..n]) || cell.starts_with(&TOKEN[TOKEN.len() - n..]))
}

#[test]
fn the_token_never_shows_whole_or_in_part() {
    // Rows 1..=N: an HTML error page that echoes the header with the token starting at every
    // offset from well before the 200-character cut to past it. Then a JSON message with the
    // token across its 1,000-character bound, an echo the server cut itself, the token in a
    // redirect's Location, in a JSON error's every field, and last a 401 (which stops the run
    // and is printed) whose page is cut across the token.
    let offsets: Vec<usize> = (TEXT_CHARS - TOKEN.len() - 12..TEXT_CHARS + 2).collect();
    let n = offsets.len();
    let extra_rows = 6;
    let prefix = "Authorization: Bearer ";
    let offs = offsets.clone();
    let server = RawServer::start(move |to| {
        let i: usize = to.trim_start_matches("id-").parse().unwrap();
        let token_at = |offset: usize| {
            let pad = "x".repeat(offset - prefix.len());
            format!("{pad}{prefix}{TOKEN}</pre>")
        };
        match i.checked_sub(n) {
            None | Some(0) => plain(400, token_at(offs[i - 1])),
            Some(1) => json_error(
                422,
                "parameter_invalid",
                &format!("{}{TOKEN}", "m".repeat(FIELD_CHARS - 20)),
                "req-1",
            ),
            Some(2) => plain(502, format!("upstream said: {prefix}{}", &TOKEN[..6])),
            Some(3) => Answer::Plain {
                status: 307,
                headers: vec![(
                    "Location",
                    format!("https://elsewhere.example/login?auth={TOKEN}"),
                )],
                body: vec![],
            },
            Some(4) => json_error(400, TOKEN, &format!("bad {TOKEN}"), &format!("req-{TOKEN}")),
            Some(5) => plain(
                500,
                format!("{} token was {TOKEN}", &TOKEN[TOKEN.len() - 5..]),
            ),
            _ => plain(401, token_at(TEXT_CHARS - 10)),
        }
    });
    let f = Fixture::new(
        &people_csv(n + extra_rows),
        &patient_campaign("max_attempts = 1"),
    );
    let a = f
        .send_cmd(&server.url(), &[])
        .env("INTERCOM_TOKEN", TOKEN)
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    let stdout = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(stderr.contains("401"), "{stderr}");

    let rows = f.result_rows();
    assert_eq!(rows.len(), n + extra_rows, "{rows:?}");
    for r in &rows {
        for (column, cell) in r {
            if let Some(run) = token_run_in(cell) {
                panic!(
                    "row {}: `{column}` shows {run:?} of the token: {cell:?}",
                    r["row"]
                );
            }
            if let Some(k) = token_edge_in(cell) {
                panic!(
                    "row {}: `{column}` shows {k} bytes of the token at an edge: {cell:?}",
                    r["row"]
                );
            }
        }
    }
    for (what, text) in [
        ("stderr", stderr.as_str()),
        ("stdout", stdout.as_str()),
        (
            "the results file",
            &std::fs::read_to_string(f.results()).unwrap(),
        ),
        (
            "the journal",
            &std::fs::read_to_string(f.path(".campaign/results.csv.journal")).unwrap(),
        ),
    ] {
        assert_eq!(token_run_in(text), None, "{what}:\n{text}");
    }

    // What is kept is still the server's text, struck and bounded.
    let first = &row(&rows, 1)["error_message"];
    assert!(
        first.starts_with("xxxx") && first.chars().count() <= TEXT_CHARS,
        "{first}"
    );
    assert!(
        rows.iter()
            .any(|r| r["error_message"].ends_with("Bearer <redacted>")),
        "no row kept the echo up to the token: {rows:?}"
    );
    let json = &row(&rows, n + 1)["error_message"];
    assert!(
        json.starts_with("mmmm") && json.chars().count() <= FIELD_CHARS,
        "{json}"
    );
    assert_eq!(
        row(&rows, n + 2)["error_message"],
        "upstream said: Authorization: Bearer <redacted>"
    );
    let redirect = &row(&rows, n + 3);
    assert_eq!(redirect["error_code"], "redirected");
    assert!(
        redirect["error_message"].contains("`https://elsewhere.example/login?auth=<redacted>`"),
        "{redirect:?}"
    );
    let fields = row(&rows, n + 4);
    assert_eq!(
        [
            &fields["error_code"],
            &fields["error_message"],
            &fields["request_id"]
        ],
        ["<redacted>", "bad <redacted>", "req-<redacted>"]
    );
    assert_eq!(
        row(&rows, n + 5)["error_message"],
        "<redacted> token was <redacted>"
    );
}

// ---- 11: cells a spreadsheet opens as text ---------------------------------------------------

/// The characters that make a spreadsheet run a cell.
const FORMULA_FIRST: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Every cell of the results file as written (header included), and the value it holds.
fn cells(path: &std::path::Path) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    rdr.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn value(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

#[test]
fn results_open_safely_in_a_spreadsheet_and_resume_reads_them_back_exactly() {
    let recipients = ["=1+1", "+15550100", "-5", "@admin", "'quoted", "plain"];
    let mut csv = String::from("intercom_id,first_name,plan,company\n");
    for r in recipients {
        csv.push_str(&format!("\"{}\",Ann,pro,Acme\n", r.replace('"', "\"\"")));
    }
    let f = Fixture::new(&csv, &patient_campaign(""));
    let first_run = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let first = Arc::clone(&first_run);
    let server = TestServer::start(Arc::new(move |r, _| {
        let to = r.to_id();
        if !first.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::Json(
                200,
                json!({"type": "admin_message", "id": format!("m{to}")}),
            );
        }
        match to.as_str() {
            "=1+1" => Reply::Json(200, json!({"type": "admin_message", "id": "-1001"})),
            "+15550100" => error_reply(422, "+bad", "=cmd|' /C calc'!A0", "@req-1"),
            "-5" => error_reply(422, "parameter_invalid", "\t=1+1", "-req-2"),
            "@admin" => error_reply(400, "parameter_invalid", "\r=HYPERLINK(\"http://x\")", "r3"),
            "'quoted" => Reply::Json(200, json!({"type": "admin_message", "id": "'m"})),
            _ => ok_reply(r),
        }
    }));
    f.send(&server, &[]).code(1);

    let mut written = cells(&f.results());
    written[1..].sort_by_key(|l| l[0].parse::<u32>().unwrap());
    for line in &written {
        for cell in line {
            assert!(
                !cell.starts_with(FORMULA_FIRST),
                "a spreadsheet would run {cell:?} in {line:?}"
            );
        }
    }
    // Each value reads back as it was: the recipient as rendered, the server's text as sent.
    let rows = &written[1..];
    let got: Vec<[&str; 5]> = rows
        .iter()
        .map(|l| [1, 3, 5, 6, 7].map(|i| value(&l[i])))
        .collect();
    assert_eq!(
        got,
        [
            ["=1+1", "-1001", "", "", ""],
            ["+15550100", "", "+bad", "=cmd|' /C calc'!A0", "@req-1"],
            ["-5", "", "parameter_invalid", "\t=1+1", "-req-2"],
            [
                "@admin",
                "",
                "parameter_invalid",
                "\r=HYPERLINK(\"http://x\")",
                "r3"
            ],
            ["'quoted", "'m", "", "", ""],
            ["plain", "msg-plain", "", "", ""],
        ]
    );

    // Resume compares the recipients it reads back with freshly rendered ones: any difference
    // would refuse the resume. It sends the three failed rows again, and only those.
    first_run.store(false, std::sync::atomic::Ordering::SeqCst);
    let before = server.requests().len();
    f.send(&server, &["--resume"]).success();
    let again: Vec<String> = server.requests()[before..]
        .iter()
        .map(|r| r.to_id())
        .collect();
    assert_eq!(again, ["+15550100", "-5", "@admin"]);
    let mut after = cells(&f.results());
    // Compacting keeps each row's last line where it was written: the resumed rows come last.
    after[1..].sort_by_key(|l| l[0].parse::<u32>().unwrap());
    let statuses: Vec<(&str, &str)> = after[1..]
        .iter()
        .map(|l| (value(&l[1]), l[2].as_str()))
        .collect();
    assert_eq!(
        statuses,
        recipients.iter().map(|r| (*r, "sent")).collect::<Vec<_>>()
    );
}

// ---- 12: bounded by the sender --------------------------------------------------------------

const MIB: usize = 1 << 20;

#[test]
fn huge_and_endless_answers_are_read_only_up_to_a_bound() {
    let server = RawServer::start(|to| match to {
        // 64 MiB after the id: the message exists; the rest is not read.
        "id-1" => Answer::Long {
            status: 200,
            start: br#"{"type":"admin_message","id":"2001","body":""#.to_vec(),
            fill: 64 * MIB,
            end: br#""}"#.to_vec(),
        },
        // 2 MiB before the id: it is past the bound, so the row's fate is unknown.
        "id-2" => Answer::Long {
            status: 200,
            start: br#"{"type":"admin_message","body":""#.to_vec(),
            fill: 2 * MIB,
            end: br#"","id":"2002"}"#.to_vec(),
        },
        // An id, then a body that never ends: the request's timeout ends it, and the id stands.
        "id-3" => Answer::Trickle {
            start: br#"{"type":"admin_message","id":"2003","body":""#.to_vec(),
        },
        // Endless before any id: unknown.
        "id-4" => Answer::Trickle {
            start: br#"{"type":"admin_message","body":""#.to_vec(),
        },
        // A 64 MiB error page: failed, with the start of the page as the message.
        "id-5" => Answer::Long {
            status: 400,
            start: b"<html>Bad request ".to_vec(),
            fill: 64 * MIB,
            end: b"</html>".to_vec(),
        },
        _ => plain(
            200,
            json!({"type": "admin_message", "id": format!("m-{to}")}).to_string(),
        ),
    });
    let f = Fixture::new(
        &people_csv(6),
        &patient_campaign("request_timeout = \"2s\""),
    );
    f.send_to(&server.url(), &[]).code(1);
    let rows = f.result_rows();
    let outcome = |n: usize| {
        let r = row(&rows, n);
        (
            r["status"].as_str(),
            r["message_id"].as_str(),
            r["error_code"].as_str(),
        )
    };
    assert_eq!(outcome(1), ("sent", "2001", ""));
    assert_eq!(outcome(2), ("unknown", "", "no_answer"));
    assert!(
        row(&rows, 2)["error_message"].contains("without a message id in the answer's first 1 MiB"),
        "{:?}",
        row(&rows, 2)
    );
    assert_eq!(outcome(3), ("sent", "2003", ""));
    assert_eq!(outcome(4), ("unknown", "", "no_answer"));
    assert_eq!(outcome(5), ("failed", "", ""));
    let page = &row(&rows, 5)["error_message"];
    assert!(
        page.starts_with("<html>Bad request xxx") && page.chars().count() <= TEXT_CHARS,
        "{page}"
    );
    assert_eq!(outcome(6), ("sent", "m-id-6", ""));
    // The bound is the sender's: it stopped reading and closed the connection, so the server
    // could not write the 64 MiB answers out (a reader of the whole answer takes them all).
    assert_eq!(server.wrote_whole("id-1"), Some(false));
    assert_eq!(server.wrote_whole("id-5"), Some(false));
    assert_eq!(server.wrote_whole("id-6"), Some(true));
}
