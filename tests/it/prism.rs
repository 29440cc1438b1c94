//! The requests checked by an outside validator: Stoplight Prism mocks Intercom's OpenAPI files
//! and answers 422 (with the reasons in `sl-violations`) to any request they do not accept.
//! `.ci/run` installs Prism and sets `PRISM`; without it this test says it was skipped, and under
//! `CI=true` it fails.
use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct Prism(Child);

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prism(bin: &Path, spec: &Path) -> (Prism, String) {
    let port = free_port();
    // -d: answers generated from the response schema. Prism's stored 2.11 example lacks `subject`,
    // which 2.11's own response schema requires, so with --errors it would answer its own example
    // with a 500.
    let mut child = Command::new(bin)
        .args([
            "mock",
            "-d",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--errors",
        ])
        .arg(spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prism");
    let stdout = child.stdout.take().unwrap();
    let prism = Prism(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Prism is listening") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(90))
        .expect("prism did not start");
    (prism, format!("http://127.0.0.1:{port}"))
}

/// A raw POST, to see the status and `sl-violations` Prism gives a request.
fn post(url: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn prism_accepts_every_request_the_tool_sends_for_2_11_and_2_16() {
    // .ci/run installs Prism and sets PRISM; under CI=true a missing Prism fails the test.
    let Some(bin) = require_tool("PRISM", "prism") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for version in ["2.11", "2.16"] {
        let (_prism, url) = start_prism(
            &bin,
            &root.join(format!("openapi/messages-only-{version}.yaml")),
        );
        // The validator itself rejects what Intercom's schema rejects.
        let (status, text) = post(
            &url,
            r#"{"message_type":"email","subject":"s","body":"b","template":"plain","from":{"type":"admin","id":"1"},"to":{"type":"user","id":"x"}}"#,
        );
        assert_eq!(status, 422, "{text}");
        assert!(text.contains("from.id must be integer"), "{text}");

        for toml in [email_campaign(""), inapp_campaign("")] {
            let f = Fixture::new(&people_csv(25), &toml);
            f.send_to(&url, &["--intercom-version", version]).success();
            let rows = f.result_rows();
            assert_eq!(rows.len(), 25);
            for r in &rows {
                assert_eq!(
                    r["status"], "sent",
                    "Prism refused a request for {version}: {r:?}"
                );
            }
        }
    }
}

/// The contact searches of an e-mail campaign, through `campaign resolve` against Prism serving
/// the 2.16 description of `POST /contacts/search`: Prism checks each search's method, path,
/// headers and body. (That description's body schema is loose: Prism takes `{}` too, so the
/// sandbox also checks every search against the schema with the documented limits.)
#[test]
fn prism_accepts_every_contact_search_the_tool_sends() {
    let Some(bin) = require_tool("PRISM", "prism") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (_prism, url) = start_prism(&bin, &root.join("openapi/contacts-search-2.16.yaml"));
    let mut csv = String::from("email,first_name\n");
    for i in 1..=320 {
        csv.push_str(&format!("person{i}@example.com,P{i}\n"));
    }
    let toml = inapp_campaign("").replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\"");
    let f = Fixture::new(&csv, &toml);
    let out = f
        .cmd()
        .args([
            "resolve",
            "campaign.toml",
            "--api-base",
            &url,
            "--out",
            "found.csv",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0 or 1: every row looked up (Prism's made-up contacts rarely match); never a refusal.
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{stderr}");
    assert!(
        !stderr.contains("422") && !stderr.contains("lookup_failed"),
        "{stderr}"
    );
    let rows = read_results(&f.path("found.csv"));
    assert_eq!(rows.len(), 320);
    assert!(
        rows.iter().all(|r| r["lookup_status"] != "lookup_failed"),
        "{rows:?}"
    );
}

/// The conversation searches of `campaign track` (320 sent rows: three batches of ids), against
/// Prism serving the 2.16 description of `POST /conversations/search`: Prism checks each
/// search's method, path and headers (it passes any body to this operation, as to the contact
/// search: the sandbox checks every body against the schema and the documented limits).
#[test]
fn prism_accepts_every_conversation_search_the_tool_sends() {
    let Some(bin) = require_tool("PRISM", "prism") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (_prism, url) = start_prism(&bin, &root.join("openapi/conversations-search-2.16.yaml"));
    // The messages are sent to a sandbox (Prism makes up ids); their ids are searched at Prism.
    let f = Fixture::new(&people_csv(320), &email_campaign(""));
    let sandbox = start_sandbox(
        &assert_cmd::cargo::cargo_bin("campaign"),
        &[std::ffi::OsStr::new("--seed"), std::ffi::OsStr::new("1")],
    );
    f.send_to(&sandbox.url, &[]).success();
    let out = f
        .cmd()
        .args([
            "track",
            "results.csv",
            "--campaign",
            "campaign.toml",
            "--api-base",
            &url,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("422"), "{stderr}");
    let tracked = read_results(&f.path("results.tracking.csv"));
    assert_eq!(tracked.len(), 320);
}
