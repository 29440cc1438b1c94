//! The sandbox over real HTTP on 127.0.0.1: every rule of the contract, faults, the log, and the
//! `campaign sandbox` binary. Every request has a timeout; nothing leaves the machine.
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use campaign::sandbox::{start, FaultSettings, RunningSandbox, SandboxConfig};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

fn faults() -> FaultSettings {
    FaultSettings {
        rate_limit: "10000/min".parse().unwrap(),
        latency: None,
        fail_rate: 0.0,
        fail_after_rate: 0.0,
        drop_rate: 0.0,
        seed: Some(1),
        no_validate: false,
        conversations: Default::default(),
    }
}

struct Harness {
    sandbox: RunningSandbox,
    client: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

async fn harness(configure: impl FnOnce(&mut SandboxConfig, &std::path::Path)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sandbox.jsonl");
    let mut config = SandboxConfig {
        token: None,
        faults: faults(),
        contacts: None,
        invent_contacts: false,
        missing: Vec::new(),
        admins: None,
        log: Some(log.clone()),
    };
    configure(&mut config, dir.path());
    let sandbox = start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    // no_proxy: a proxy from the environment must never see these requests.
    crate::common::crypto();
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .unwrap();
    Harness {
        sandbox,
        client,
        log,
        _dir: dir,
    }
}

impl Harness {
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        self.post_version(body, "2.16")
    }

    fn post_version(&self, body: &Value, version: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/messages", self.sandbox.base_url()))
            .bearer_auth("tok")
            .header("Intercom-Version", version)
            .json(body)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = req.send().await.expect("the sandbox answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.expect("a JSON body");
        (status, headers, body)
    }

    /// Stops the sandbox (flushing its log) and returns the logged lines.
    async fn finish(self) -> Vec<Value> {
        self.sandbox.shutdown().await.unwrap();
        let text = std::fs::read_to_string(&self.log).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn email() -> Value {
    json!({
        "message_type": "email", "subject": "Hello", "body": "<p>Hi Ann</p>", "template": "plain",
        "from": {"type": "admin", "id": 394051}, "to": {"type": "user", "id": "c1"}
    })
}

fn inapp() -> Value {
    json!({
        "message_type": "inapp", "body": "Hi Bob",
        "from": {"type": "admin", "id": 394051}, "to": {"type": "user", "id": "c2"}
    })
}

fn assert_error(
    got: &(u16, reqwest::header::HeaderMap, Value),
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    let (s, headers, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["type"], "error.list", "{body}");
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36, "{body}");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    if let Some(field) = field {
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn valid_email_and_inapp_are_created_and_logged() {
    let h = harness(|_, _| {}).await;
    let (status, headers, m) = h.send(h.post(&email())).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-ratelimit-limit"], "1666");
    assert_eq!(m["type"], "admin_message");
    assert_eq!(m["message_type"], "email");
    assert_eq!(m["subject"], "Hello");
    assert_eq!(m["body"], "<p>Hi Ann</p>");
    assert!(m["created_at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(m["owner"]["type"], "admin");
    assert_eq!(m["owner"]["id"], "394051");
    assert_eq!(m["owner"]["away_mode_enabled"], false);
    let email_id = m["id"].as_str().unwrap().to_string();

    let mut in_app = inapp();
    in_app["message_type"] = json!("in_app");
    for body in [inapp(), in_app] {
        let (status, _, m) = h.send(h.post(&body)).await;
        assert_eq!(status, 200, "{m}");
        assert_eq!(m["message_type"], "inapp");
        assert!(m.get("subject").is_none());
        assert_ne!(m["id"], email_id.as_str());
    }

    let log = h.finish().await;
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["id"], email_id.as_str());
    assert_eq!(log[0]["request"], email());
    assert_eq!(log[1]["request"], inapp());
    assert!(log[0]["received_at"].as_str().unwrap().ends_with('Z'));
}

/// The top-level keys of a JSON object, in the order the text has them.
fn keys_in_order(text: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::de::Visitor<'de> for &mut Keys {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                self.0.push(k);
            }
            Ok(())
        }
    }
    let mut keys = Keys(Vec::new());
    serde::Deserializer::deserialize_map(&mut serde_json::Deserializer::from_str(text), &mut keys)
        .expect("an object");
    keys.0
}

#[tokio::test]
async fn the_message_comes_back_in_intercoms_key_order() {
    // `campaign` reads an answer only as far as its `id`; Intercom sends `type` and `id` first
    // (the spec's admin example, the docs' answer), and so must a rehearsal.
    let h = harness(|_, _| {}).await;
    for (body, want) in [
        (
            email(),
            "type id created_at subject body message_type owner",
        ),
        (inapp(), "type id created_at body message_type owner"),
    ] {
        let resp = h.post(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert_eq!(keys_in_order(&text).join(" "), want, "{text}");
        // The owner is the last field: its text runs to the message's closing brace.
        let owner = &text[text.find(r#""owner":"#).unwrap() + 8..text.len() - 1];
        assert_eq!(
            keys_in_order(owner).join(" "),
            "type id name email away_mode_enabled away_mode_reassign"
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn each_rule_gets_intercoms_error() {
    let h = harness(|_, _| {}).await;
    let mut no_subject = email();
    no_subject.as_object_mut().unwrap().remove("subject");
    let mut bad_type = inapp();
    bad_type["message_type"] = json!("sms");
    let mut bad_template = email();
    bad_template["template"] = json!("fancy");
    let mut string_from = email();
    string_from["from"]["id"] = json!("394051");
    let cases = [
        (no_subject, 422, "parameter_not_found", "subject"),
        (bad_type, 400, "parameter_invalid", "message_type"),
        (bad_template, 400, "parameter_invalid", "template"),
        (string_from, 400, "parameter_invalid", "from.id"),
    ];
    for (body, status, code, field) in cases {
        let got = h.send(h.post(&body)).await;
        assert_error(&got, status, code, Some(field));
        // Authenticated errors carry the rate headers too.
        assert!(got.1.contains_key("x-ratelimit-remaining"));
    }
    let got = h.send(h.post_version(&email(), "2.99")).await;
    assert_error(&got, 400, "intercom_version_invalid", None);
    assert!(got.2["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("2.99"));
    // 2.11 has no `whatsapp`; 2.16 arrays of recipients are not 2.11 either.
    let mut arr = inapp();
    arr["to"] = json!([{"type": "user", "id": "c2"}]);
    let got = h.send(h.post_version(&arr, "2.11")).await;
    assert_eq!(got.0, 400, "{}", got.2);
    assert_eq!(h.send(h.post(&arr)).await.0, 200);

    let malformed = h
        .client
        .post(format!("{}/messages", h.sandbox.base_url()))
        .bearer_auth("tok")
        .header("content-type", "application/json")
        .body("{\"message_type\": ");
    assert_error(&h.send(malformed).await, 400, "parameter_invalid", None);

    let log = h.finish().await;
    assert_eq!(log.len(), 1, "only the valid 2.16 array message is created");
}

#[tokio::test]
async fn auth_is_checked_first() {
    let h = harness(|c, _| c.token = Some("secret".into())).await;
    let url = format!("{}/messages", h.sandbox.base_url());
    let missing = h.client.post(&url).json(&json!({"not": "valid"}));
    let got = h.send(missing).await;
    assert_error(&got, 401, "unauthorized", None);
    assert_eq!(got.2["errors"][0]["message"], "Access Token Invalid");
    assert!(!got.1.contains_key("x-ratelimit-remaining"));
    let malformed = h
        .client
        .post(&url)
        .header("authorization", "secret")
        .json(&email());
    assert_error(&h.send(malformed).await, 401, "unauthorized", None);
    let wrong = h.client.post(&url).bearer_auth("other").json(&email());
    assert_error(&h.send(wrong).await, 401, "unauthorized", None);
    let right = h.client.post(&url).bearer_auth("secret").json(&email());
    assert_eq!(h.send(right).await.0, 200);

    // GET /admins needs the token too; unknown paths are 404.
    let admins = h
        .client
        .get(format!("{}/admins", h.sandbox.base_url()))
        .bearer_auth("secret");
    let (status, _, body) = h.send(admins).await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "admin.list");
    assert_eq!(body["admins"][0]["id"], "394051");
    let anon = h.client.get(format!("{}/admins", h.sandbox.base_url()));
    assert_error(&h.send(anon).await, 401, "unauthorized", None);
    let other = h
        .client
        .get(format!("{}/contacts", h.sandbox.base_url()))
        .bearer_auth("secret");
    assert_error(&h.send(other).await, 404, "not_found", None);
    h.finish().await;
}

#[tokio::test]
async fn unknown_contact_is_404() {
    let h = harness(|c, dir| {
        let path = dir.join("contacts.csv");
        std::fs::write(&path, "id,email\nc1,ann@example.test\n").unwrap();
        c.contacts = Some(path);
    })
    .await;
    assert_eq!(h.send(h.post(&email())).await.0, 200);
    let got = h.send(h.post(&inapp())).await; // to c2: not in the file
    assert_error(&got, 404, "not_found", None);
    assert_eq!(got.2["errors"][0]["message"], "User Not Found");
    assert_eq!(h.finish().await.len(), 1);
}

#[tokio::test]
async fn over_the_rate_gets_429() {
    let h = harness(|c, _| c.faults.rate_limit = "3/10s".parse().unwrap()).await;
    // Start early in a 10-second window so that the four requests share one.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    if now.as_secs() % 10 >= 7 {
        tokio::time::sleep(Duration::from_millis(
            10_050 - (now.as_millis() % 10_000) as u64,
        ))
        .await;
    }
    let mut remaining = vec![];
    for _ in 0..3 {
        let (status, headers, _) = h.send(h.post(&inapp())).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        remaining.push(
            headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let got = h.send(h.post(&inapp())).await;
    assert_error(&got, 429, "rate_limit_exceeded", None);
    assert_eq!(
        got.2["errors"][0]["message"],
        "Exceeded rate limit of 3 in 10_seconds"
    );
    assert_eq!(got.1["x-ratelimit-remaining"], "0");
    let reset: u64 = got.1["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset.is_multiple_of(10) && reset > now && reset <= now + 10,
        "reset {reset}, now {now}"
    );
    assert_eq!(h.finish().await.len(), 3);
}

#[tokio::test]
async fn fail_rate_one_answers_5xx_and_creates_nothing() {
    let h = harness(|c, _| c.faults.fail_rate = 1.0).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let resp = h.post(&email()).send().await.unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let body = resp.bytes().await.unwrap();
        seen.insert(status);
        match status {
            // Shed as Intercom sheds load: the proof a sender may retry on.
            503 => {
                assert_eq!(retry_after.unwrap(), "1");
                assert!(body.is_empty(), "{body:?}");
            }
            500 | 502 => {
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["type"], "error.list");
            }
            s => panic!("{s}"),
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [500, 502, 503]);
    // Faults apply only to otherwise valid requests.
    let mut invalid = email();
    invalid["template"] = json!("fancy");
    assert_eq!(h.send(h.post(&invalid)).await.0, 400);
    assert!(h.finish().await.is_empty());
}

#[tokio::test]
async fn fail_after_rate_one_makes_the_message_then_answers_5xx_without_proof() {
    let h = harness(|c, _| {
        c.faults.fail_after_rate = 1.0;
        c.faults.seed = Some(5);
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let resp = h.post(&email()).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(resp.headers().get("retry-after").is_none());
        let body = resp.text().await.unwrap();
        assert!(!body.is_empty());
        if status == 500 {
            assert!(body.contains("error.list"), "{body}");
        } else {
            assert!(body.contains(&format!("<h1>{status} ")), "{body}");
        }
        seen.insert(status);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [500, 502, 503, 504]);
    // Every one of them was made.
    assert_eq!(h.finish().await.len(), 40);
}

#[tokio::test]
async fn drop_rate_one_closes_the_connection_but_creates_the_message() {
    let h = harness(|c, _| c.faults.drop_rate = 1.0).await;
    let err = h.post(&email()).send().await.expect_err("no answer");
    assert!(!err.is_timeout(), "closed, not hung: {err}");
    // At the byte level: hyper closes the connection without writing a single byte of response.
    let raw = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(h.sandbox.addr)
            .await
            .unwrap();
        let body = inapp().to_string();
        let req = format!(
            "POST /messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        answer
    };
    let answer = tokio::time::timeout(TIMEOUT, raw)
        .await
        .expect("closed within the timeout");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let log = h.finish().await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["request"], email());
    assert_eq!(log[1]["request"], inapp());
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let h = harness(|c, _| c.faults.latency = Some("150ms".parse().unwrap())).await;
    let t = std::time::Instant::now();
    assert_eq!(h.send(h.post(&inapp())).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    h.finish().await;
}

#[tokio::test]
async fn no_validate_accepts_anything_but_still_checks_auth() {
    let h = harness(|c, _| c.faults.no_validate = true).await;
    let (status, _, m) = h.send(h.post(&json!({"whatever": 1}))).await;
    assert_eq!(status, 200);
    assert_eq!(m["message_type"], "inapp");
    let anon = h
        .client
        .post(format!("{}/messages", h.sandbox.base_url()))
        .json(&inapp());
    assert_eq!(h.send(anon).await.0, 401);
    assert_eq!(h.finish().await.len(), 1);
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
async fn the_binary_prints_its_address_and_serves() {
    let mut child = Child(
        Command::new(assert_cmd::cargo::cargo_bin("campaign"))
            .args(["sandbox", "--listen", "127.0.0.1:0"])
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
        .expect(&line)
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    crate::common::crypto();
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .unwrap();
    let resp = client
        .post(format!("{base}/messages"))
        .bearer_auth("tok")
        .json(&email())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["message_type"], "email");
}
