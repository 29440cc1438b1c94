//! A scripted Intercom stand-in on 127.0.0.1 for integration tests: it records every request and
//! answers each as the test's responder says. The real binary is driven against it.
#![allow(dead_code)]
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

pub const TOKEN: &str = "test-token-5f2b9c0e7d1a";

/// What the scripted server answers to `GET /admins`: the admin of [`email_campaign`].
pub const ADMIN_LIST: &str = r#"{"type": "admin.list", "admins": [{"type": "admin", "id": "394051", "name": "Ann Example", "email": "ann@example.com", "away_mode_enabled": false}]}"#;

/// Installs ring as rustls's crypto provider, as the binary does: reqwest is built without one
/// (Cargo.toml). Every test shares the process, and a provider can be installed only once, so
/// this does it on the first call (the library may have done it already: that one stays).
pub fn crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub at: std::time::Instant,
}

impl Received {
    pub fn to_id(&self) -> String {
        self.body["to"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub enum Reply {
    Json(u16, Value),
    JsonWithHeaders(u16, Value, Vec<(&'static str, String)>),
    /// A status and headers without a body (as Intercom sheds load: 503, `Retry-After`).
    Empty(u16, Vec<(&'static str, String)>),
    /// Close the connection without answering.
    Drop,
    Delay(Duration, Box<Reply>),
}

/// Decides the answer to a request; `nth` counts earlier requests for the same recipient.
pub type Responder = Arc<dyn Fn(&Received, usize) -> Reply + Send + Sync>;

pub struct TestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    /// The headers of each `GET /admins`, kept apart from `requests`.
    admin_requests: Arc<Mutex<Vec<HashMap<String, String>>>>,
    _runtime: tokio::runtime::Runtime,
}

pub fn ok_reply(r: &Received) -> Reply {
    Reply::Json(
        200,
        json!({"type": "admin_message", "id": format!("msg-{}", r.to_id()), "created_at": 1734537786,
               "body": r.body["body"], "message_type": "email"}),
    )
}

pub fn error_reply(status: u16, code: &str, message: &str, request_id: &str) -> Reply {
    Reply::Json(
        status,
        json!({"type": "error.list", "request_id": request_id, "errors": [{"code": code, "message": message}]}),
    )
}

impl TestServer {
    pub fn start(responder: Responder) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let reqs = Arc::clone(&requests);
        let admin_requests: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
        let admins = Arc::clone(&admin_requests);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let reqs = Arc::clone(&reqs);
                let admins = Arc::clone(&admins);
                let responder = Arc::clone(&responder);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let reqs = Arc::clone(&reqs);
                        let admin_reqs = Arc::clone(&admins);
                        let responder = Arc::clone(&responder);
                        async move {
                            // `send` asks for the sending admin before its first message
                            // (GET /admins); that answer is the workspace's, not the test's,
                            // and does not count among the requests.
                            if req.method() == hyper::Method::GET && req.uri().path() == "/admins" {
                                admin_reqs.lock().unwrap().push(
                                    req.headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            let v = v.to_str().unwrap_or("").to_string();
                                            (k.as_str().to_string(), v)
                                        })
                                        .collect(),
                                );
                                return Ok(Response::builder()
                                    .status(200)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(ADMIN_LIST.to_string())))
                                    .unwrap());
                            }
                            let (parts, body) = req.into_parts();
                            let bytes = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let received = Received {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            v.to_str().unwrap_or("").to_string(),
                                        )
                                    })
                                    .collect(),
                                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                                at: std::time::Instant::now(),
                            };
                            let nth = {
                                let mut all = reqs.lock().unwrap();
                                let nth =
                                    all.iter().filter(|r| r.to_id() == received.to_id()).count();
                                all.push(received.clone());
                                nth
                            };
                            let mut reply = responder(&received, nth);
                            while let Reply::Delay(d, next) = reply {
                                tokio::time::sleep(d).await;
                                reply = *next;
                            }
                            let (status, body, headers) = match reply {
                                Reply::Json(s, b) => (s, b.to_string(), vec![]),
                                Reply::JsonWithHeaders(s, b, h) => (s, b.to_string(), h),
                                Reply::Empty(s, h) => (s, String::new(), h),
                                Reply::Drop => return Err("drop the connection".to_string()),
                                Reply::Delay(..) => unreachable!(),
                            };
                            let mut resp = Response::builder()
                                .status(status)
                                .header("content-type", "application/json");
                            for (k, v) in headers {
                                resp = resp.header(k, v);
                            }
                            Ok(resp.body(Full::new(Bytes::from(body))).unwrap())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer {
            addr,
            requests,
            admin_requests,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// The headers of each `GET /admins` the server answered.
    pub fn admin_requests(&self) -> Vec<HashMap<String, String>> {
        self.admin_requests.lock().unwrap().clone()
    }
}

/// `send campaign.toml --results results.csv --api-base URL`, as every send in the tests starts.
fn send_args(url: &str) -> [&str; 6] {
    [
        "send",
        "campaign.toml",
        "--results",
        "results.csv",
        "--api-base",
        url,
    ]
}

/// A campaign in a temporary directory: the CSV, the campaign file and its templates.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(csv: &str, campaign_toml: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), csv).unwrap();
        std::fs::write(dir.path().join("campaign.toml"), campaign_toml).unwrap();
        Fixture { dir }
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn campaign(&self) -> PathBuf {
        self.path("campaign.toml")
    }

    pub fn results(&self) -> PathBuf {
        self.path("results.csv")
    }

    /// `campaign ARGS` run in the fixture's directory with the test token set.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("campaign").unwrap();
        cmd.current_dir(self.dir.path())
            .env("INTERCOM_TOKEN", TOKEN)
            .env_remove("SANDBOX_TOKEN")
            .timeout(Duration::from_secs(120));
        cmd
    }

    /// `campaign send campaign.toml --results results.csv --api-base URL` plus `extra`, to adjust
    /// (an environment variable, say) before it runs.
    pub fn send_cmd(&self, url: &str, extra: &[&str]) -> assert_cmd::Command {
        let mut cmd = self.cmd();
        cmd.args(send_args(url));
        cmd.args(extra);
        cmd
    }

    pub fn send_to(&self, url: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
        self.send_cmd(url, extra).assert()
    }

    pub fn send(&self, server: &TestServer, extra: &[&str]) -> assert_cmd::assert::Assert {
        self.send_to(&server.url(), extra)
    }

    /// The same send as a child process, for tests that signal or kill it. Stderr is piped.
    pub fn spawn_send(&self, url: &str, extra: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("campaign"))
            .current_dir(self.dir.path())
            .env("INTERCOM_TOKEN", TOKEN)
            .env_remove("SANDBOX_TOKEN")
            .args(send_args(url))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn result_rows(&self) -> Vec<HashMap<String, String>> {
        read_results(&self.results())
    }
}

pub fn read_results(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| {
            headers
                .iter()
                .zip(r.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// `n` people: `id-1..id-n`, names and plans.
pub fn people_csv(n: usize) -> String {
    let mut s = String::from("intercom_id,first_name,plan,company\n");
    for i in 1..=n {
        s.push_str(&format!(
            "id-{i},Person{i},{},Company {i}\n",
            ["starter", "pro"][i % 2]
        ));
    }
    s
}

/// The in-app twin of [`email_campaign`]: no subject, no template.
pub fn inapp_campaign(extra_send: &str) -> String {
    email_campaign(extra_send)
        .replace("message_type = \"email\"", "message_type = \"in_app\"")
        .replace("template = \"plain\"\n", "")
        .replace("subject = \"Hello {{ first_name }}\"\n", "")
}

pub fn email_campaign(extra_send: &str) -> String {
    format!(
        r#"recipients = "people.csv"

[message]
message_type = "email"
template = "plain"
from = 394051
subject = "Hello {{{{ first_name }}}}"
body = "<p>Hi {{{{ first_name }}}}, welcome to {{{{ plan }}}}.</p>"

[to]
type = "user"
id = "{{{{ intercom_id }}}}"

[send]
rate = "200/s"
concurrency = 4
{extra_send}
"#
    )
}

/// Intercom's `create_message_request` schema from the OpenAPI file for `version`, compiled.
pub fn spec_validator(version: &str) -> jsonschema::Validator {
    let file = match version {
        "2.11" => "openapi/messages-only-2.11.yaml",
        _ => "openapi/messages-only-2.16.yaml",
    };
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let spec: Value = serde_saphyr::from_str(&text).unwrap();
    let mut schema = spec["components"]["schemas"]["create_message_request"].clone();
    schema["components"] = spec["components"].clone();
    jsonschema::validator_for(&schema).unwrap()
}

/// Checks one received request against the spec and the per-type rules the schema leaves out.
pub fn assert_valid_request(r: &Received, version: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/messages");
    assert_eq!(
        r.headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        r.headers.get("accept").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        r.headers.get("intercom-version").map(String::as_str),
        Some(version)
    );
    let v = spec_validator(version);
    let errors: Vec<String> = v.iter_errors(&r.body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "request {} violates the {version} schema: {errors:?}",
        r.body
    );
    let b = &r.body;
    assert!(b["from"]["id"].is_u64(), "from.id must be an integer: {b}");
    assert_eq!(b["from"]["type"], "admin");
    match b["message_type"].as_str() {
        Some("email") => {
            assert!(
                b["subject"].is_string() && b["template"].is_string(),
                "email needs subject and template: {b}"
            );
            assert!(["plain", "personal"].contains(&b["template"].as_str().unwrap()));
        }
        Some("in_app") => assert!(
            b.get("subject").is_none() && b.get("template").is_none(),
            "in_app sends no subject/template: {b}"
        ),
        other => panic!("unexpected message_type {other:?}"),
    }
    let allowed = [
        "message_type",
        "subject",
        "body",
        "template",
        "from",
        "to",
        "create_conversation_without_contact_reply",
    ];
    for k in b.as_object().unwrap().keys() {
        assert!(allowed.contains(&k.as_str()), "unexpected field {k}");
    }
}

/// Cases per property test: `default`, or `FUZZ_CASES` (e.g. 5000 for a longer hunt).
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An outside tool a test needs (strace, Chromium, Prism): its path from the environment variable
/// `env` or from `PATH`. Without it the test is skipped locally, saying so, and fails under
/// `CI=true`, where `.ci/run` installs it: a test that checks nothing must not pass in CI.
pub fn require_tool(env: &str, name: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os(env).map(PathBuf::from);
    let found = from_env.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is needed by this test and is missing (set {env} or install it)");
        }
        eprintln!("skipped: {name} not found (set {env} or install it)");
    }
    found
}

/// The repository's samples and templates, copied into a temporary directory.
pub fn sample_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["samples", "templates"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() && is_source(&e.file_name().to_string_lossy()) {
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    dir
}

/// Whether a file in samples/ is one of the samples, not what a run of them left there (the
/// README's first command rehearses samples/welcome.toml in place): results, journals, logs,
/// locks, test sends, the ledger register, hidden files and folders are not copied, so every
/// test starts clean.
fn is_source(name: &str) -> bool {
    !(name.starts_with('.')
        || name.contains(".results.")
        || name.ends_with(".results.csv")
        || name.ends_with(".jsonl"))
}

/// `campaign sandbox` as a process of its own on a free loopback port; killed when dropped.
pub struct SandboxProcess {
    child: std::process::Child,
    pub url: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin sandbox --listen 127.0.0.1:0 ARGS` and reads the address it prints first.
pub fn start_sandbox(bin: &Path, args: &[&std::ffi::OsStr]) -> SandboxProcess {
    try_start_sandbox(bin, "127.0.0.1:0", args).unwrap_or_else(|line| {
        panic!("the sandbox did not start: {line:?}");
    })
}

/// Starts `bin sandbox --listen LISTEN ARGS`; its URL, or the line it printed instead.
pub fn try_start_sandbox(
    bin: &Path,
    listen: &str,
    args: &[&std::ffi::OsStr],
) -> Result<SandboxProcess, String> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(bin)
        .args(["sandbox", "--listen", listen])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    // A sandbox that did not start would leave every request refused, and nothing checked.
    if !url.starts_with("http://127.0.0.1:") {
        let _ = child.wait();
        return Err(line);
    }
    Ok(SandboxProcess { child, url })
}

/// The most requests in any half-open span of `span`, `times` sorted.
pub fn busiest(times: &[Duration], span: Duration) -> usize {
    let (mut most, mut first) = (0, 0);
    for (i, t) in times.iter().enumerate() {
        while times[first] + span <= *t {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}
