//! The sandbox knows its workspace's admins: `GET /admins` lists them as Intercom's 2.16
//! `admin.list`, a message from any other admin is refused (404 `admin_not_found`, naming
//! `from.id`), and `--admins FILE` (`campaign sandbox`) or `--sandbox-admins FILE` (`send
//! --sandbox`) replace the default set. Everything runs on 127.0.0.1.
use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use campaign::sandbox::{start, FaultSettings, RunningSandbox, SandboxConfig};
use common::{email_campaign, people_csv, Fixture};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(admins: Option<&Path>) -> SandboxConfig {
    SandboxConfig {
        token: None,
        faults: FaultSettings {
            rate_limit: "10000/min".parse().unwrap(),
            latency: None,
            fail_rate: 0.0,
            fail_after_rate: 0.0,
            drop_rate: 0.0,
            seed: Some(1),
            no_validate: false,
            conversations: Default::default(),
        },
        contacts: None,
        invent_contacts: false,
        missing: Vec::new(),
        admins: admins.map(Path::to_path_buf),
        log: None,
    }
}

async fn sandbox(admins: Option<&Path>) -> RunningSandbox {
    start(config(admins), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    common::crypto();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .unwrap()
}

async fn get_admins(base: &str) -> Value {
    let resp = client()
        .get(format!("{base}/admins"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// `POST /messages` of an in-app message from admin `from`: the status and the body.
async fn post_from(base: &str, from: u64) -> (u16, Value) {
    let body = json!({
        "message_type": "inapp", "body": "Hi",
        "from": {"type": "admin", "id": from}, "to": {"type": "user", "id": "c1"}
    });
    let resp = client()
        .post(format!("{base}/messages"))
        .bearer_auth("tok")
        .header("Intercom-Version", "2.16")
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn ids(list: &Value) -> Vec<&str> {
    list["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

fn assert_admin_not_found(got: &(u16, Value), id: u64) {
    let (status, body) = got;
    assert_eq!(*status, 404, "{body}");
    assert_eq!(body["type"], "error.list");
    let e = &body["errors"][0];
    assert_eq!(e["code"], "admin_not_found", "{body}");
    assert_eq!(e["field"], "from.id", "{body}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains(&format!("from.id {id} ")), "{message}");
}

#[tokio::test]
async fn the_default_admins_are_listed_as_intercoms_admin_list() {
    let s = sandbox(None).await;
    let list = get_admins(&s.base_url()).await;
    assert_eq!(list["type"], "admin.list");
    assert_eq!(ids(&list), ["394051", "814860"]);
    // The fields of the 2.16 description's example, as their types say: ids are strings.
    let first = list["admins"][0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut want = [
        "type",
        "id",
        "name",
        "email",
        "away_mode_enabled",
        "away_mode_reassign",
        "has_inbox_seat",
        "team_ids",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(first["type"], "admin");
    assert_eq!(first["away_mode_enabled"], false);
    assert_eq!(first["team_ids"], json!([]));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_message_from_an_admin_the_sandbox_does_not_know_is_refused() {
    let s = sandbox(None).await;
    assert_admin_not_found(&post_from(&s.base_url(), 999).await, 999);
    let (status, m) = post_from(&s.base_url(), 814860).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["owner"]["id"], "814860");
    assert_eq!(m["owner"]["name"], "Sandbox Teammate");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_admins_file_replaces_the_default_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admins.csv");
    std::fs::write(
        &path,
        "id,name,email,away\r\n111,Ann Admin,ann@example.test,true\r\n222,Bob Admin,bob@example.test,\r\n",
    )
    .unwrap();
    let s = sandbox(Some(&path)).await;
    let list = get_admins(&s.base_url()).await;
    assert_eq!(ids(&list), ["111", "222"]);
    assert_eq!(list["admins"][0]["name"], "Ann Admin");
    assert_eq!(list["admins"][0]["email"], "ann@example.test");
    assert_eq!(list["admins"][0]["away_mode_enabled"], true);
    assert_eq!(list["admins"][1]["away_mode_enabled"], false);
    assert_admin_not_found(&post_from(&s.base_url(), 394051).await, 394051);
    let (status, m) = post_from(&s.base_url(), 111).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["owner"]["name"], "Ann Admin");
    assert_eq!(m["owner"]["away_mode_enabled"], true);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_admins_file_is_refused_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admins.csv");
    let name = path.display().to_string();
    let cases = [
        (
            "id,name,email\n111,Ann,a@x.test\n\nann,Bob,b@x.test\n",
            format!("{name}: record 2, line 4, column `id`: `ann` is not an admin id: an id is a whole number, such as 394051, as `from` in a campaign file"),
        ),
        (
            "id,name,email,away\r111,Ann,a@x.test,maybe\r",
            format!("{name}: record 1, line 2, column `away`: `maybe` is not `true` or `false` (empty is false)"),
        ),
        (
            "id,name,email\n111,Ann,a@x.test\n111,Bob,b@x.test\n",
            format!("{name}: record 2, line 3, column `id`: admin 111 is listed twice"),
        ),
        (
            "id,name\n111,Ann\n",
            format!("{name}: line 1: the admins file needs the columns id, name, email (and optionally away)"),
        ),
        (
            "id,name,email\n",
            format!("{name}: no admins: the sandbox would refuse every message"),
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let err = match start(config(Some(&path)), "127.0.0.1:0".parse().unwrap()).await {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert_eq!(err, expected, "{text:?}");
    }
}

/// Kills the child even when an assertion fails first.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn campaign_sandbox_takes_its_admins_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("admins.csv"),
        "id,name,email\n42,Zoe,z@x.test\n",
    )
    .unwrap();
    let mut child = Child(
        Command::new(assert_cmd::cargo::cargo_bin("campaign"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--admins",
                "admins.csv",
            ])
            .current_dir(dir.path())
            .env_remove("SANDBOX_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::time::timeout(
        TIMEOUT,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        }),
    )
    .await
    .expect("the address within the timeout")
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("sandbox listening on ")
        .expect(&line);
    assert_eq!(ids(&get_admins(base).await), ["42"]);
    assert_admin_not_found(&post_from(base, 394051).await, 394051);
}

/// `send --sandbox --sandbox-admins admins.csv` of two rows from admin 394051.
fn rehearse(admins: &str) -> (Fixture, assert_cmd::assert::Assert) {
    // A 404 is retried for `retry_not_found_for` (a new contact can 404 for a while): not here.
    let f = Fixture::new(
        &people_csv(2),
        &email_campaign("retry_not_found_for = \"0s\""),
    );
    f.write("admins.csv", admins);
    let args = [
        "send",
        "campaign.toml",
        "--sandbox",
        "--sandbox-admins",
        "admins.csv",
    ];
    let a = f
        .cmd()
        .args(args)
        .args(["--results", "results.csv"])
        .assert();
    (f, a)
}

#[test]
fn a_rehearsal_from_an_admin_the_workspace_lacks_is_refused_before_sending() {
    // `send` looks its admin up (GET /admins) before the first message.
    let (f, a) = rehearse("id,name,email\n111,Ann,a@x.test\n");
    a.code(2).stderr(predicates::str::contains(
        "admin 394051 is not an admin of this workspace; its admins are 111 (Ann <a@x.test>)",
    ));
    assert!(!f.results().exists());
    let (f, a) = rehearse("id,name,email\n394051,Wash,w@x.test\n");
    a.success();
    assert!(f.result_rows().iter().all(|r| r["status"] == "sent"));
}

#[test]
fn a_rehearsal_with_a_bad_admins_file_sends_nothing() {
    let (f, a) = rehearse("id,name,email\n394051,Wash,w@x.test,extra\n");
    let err = String::from_utf8_lossy(&a.code(2).get_output().stderr).into_owned();
    assert!(
        err.contains("admins.csv: record 1, line 2: has 4 fields, the header has 3"),
        "{err}"
    );
    assert!(!f.results().exists() || f.result_rows().is_empty());
    assert!(
        !f.path(".campaign/results.csv.sandbox.jsonl").exists()
            || std::fs::read_to_string(f.path(".campaign/results.csv.sandbox.jsonl"))
                .unwrap()
                .is_empty()
    );
}
