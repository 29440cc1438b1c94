//! `campaign sandbox`: a local Intercom-compatible server for `POST /messages` (and `GET /admins`,
//! `POST /contacts/search`, `POST /conversations/search`) that validates requests against the OpenAPI description and
//! misbehaves on demand.
//!
//! This file owns the server: what it is started with ([`SandboxConfig`], resolved from the
//! flags at the edge, in `cli/sandbox.rs`), start and
//! shutdown, the accept loop, routing and the order of the checks. What each check does lives
//! beside it: [`validate`] (the version and the schemas), [`rules`] (the per-type rules the
//! schemas leave out), [`limits`] (rate windows), [`faults`] (latency, 5xx, drops), [`admins`],
//! [`contacts`], [`conversations`], [`log`] (the message log) and [`errors`] (Intercom's `error.list`).
pub(crate) mod admins;
mod contacts;
mod conversations;
mod errors;
mod faults;
mod limits;
mod log;
mod query;
mod rules;
mod validate;

use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::intercom::client::unix_now;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use admins::{Admin, Admins};
use contacts::Contacts;
pub use conversations::ConversationSettings;
use conversations::Conversations;
use errors::{json_response, ApiError};
pub use faults::FaultSettings;
use faults::{Fate, Faults};
use limits::WindowLimiter;
use log::{LogWriter, MessageLog};
use validate::Schemas;

/// Everything a sandbox needs to start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Accept only this bearer token; `None` accepts any non-empty token.
    pub token: Option<String>,
    pub faults: FaultSettings,
    pub contacts: Option<PathBuf>,
    /// Without `contacts`: `POST /contacts/search` finds a user for every e-mail or external id
    /// it is asked for (a rehearsal of a campaign addressed so), less `missing`.
    pub invent_contacts: bool,
    pub missing: Vec<String>,
    /// A CSV of the workspace's admins (`id,name,email[,away]`); `None` for the default set.
    pub admins: Option<PathBuf>,
    pub log: Option<PathBuf>,
}

/// Larger bodies are refused; a message is a few KiB at most.
const MAX_BODY: usize = 1 << 20;

/// How long `shutdown` waits for requests in flight (such as ones sleeping a `--latency`).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A sandbox serving in the background of this process.
pub struct RunningSandbox {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept_loop: tokio::task::JoinHandle<()>,
    /// Closed (recv gives None) once every connection task has ended: each holds a sender.
    connections_done: mpsc::Receiver<()>,
    log: Option<LogWriter>,
}

impl RunningSandbox {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes the log, and returns once the server is down.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.accept_loop.await;
        // Idle keep-alive connections close at once; requests in flight get DRAIN_TIMEOUT.
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.connections_done.recv()).await;
        if let Some(log) = self.log.take() {
            log.finish().await;
        }
        Ok(())
    }
}

/// What every request handler shares.
struct State {
    token: Option<String>,
    validate: bool,
    schemas: Schemas,
    limiter: WindowLimiter,
    faults: Faults,
    contacts: Option<Contacts>,
    /// Without `contacts`: whether a search invents the contacts it asks for, less `missing`.
    invent_contacts: bool,
    missing: Vec<String>,
    admins: Admins,
    log: Option<MessageLog>,
    conversations: Conversations,
    next_id: AtomicU64,
}

/// Returned by the service to make hyper close the connection without writing a response: the
/// `--drop-rate` case, where the message exists but the sender never hears of it.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (--drop-rate)")]
struct Dropped;

/// Starts a sandbox on `listen` (port 0 picks a free one) and returns once it is listening.
pub async fn start(config: SandboxConfig, listen: SocketAddr) -> anyhow::Result<RunningSandbox> {
    let contacts = config.contacts.as_deref().map(Contacts::load).transpose()?;
    let admins = match &config.admins {
        Some(path) => Admins::load(path)?,
        None => Admins::default(),
    };
    let conversations = Conversations::new(
        (*config.faults.conversations).clone(),
        config.faults.seed.unwrap_or(0),
    );
    for path in config.log.iter().chain(&config.faults.conversations.replay) {
        log::replay(path, |id, body, at| conversations.record(id, body, at))?;
    }
    let (log, writer) = match &config.log {
        Some(path) => {
            let (log, writer) = log::open(path)?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
    let state = Arc::new(State {
        token: config.token,
        validate: !config.faults.no_validate,
        schemas: Schemas::load()?,
        limiter: WindowLimiter::new(config.faults.rate_limit),
        faults: Faults::new(&config.faults),
        contacts,
        invent_contacts: config.invent_contacts,
        missing: config.missing,
        admins,
        log,
        conversations,
        next_id: AtomicU64::new(first_id()),
    });
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let (done_tx, connections_done) = mpsc::channel(1);
    let accept_loop = tokio::spawn(accept_loop(listener, state, stopped, done_tx));
    Ok(RunningSandbox {
        addr,
        stop,
        accept_loop,
        connections_done,
        log: writer,
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).timer(TokioTimer::new());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    crate::say!("sandbox: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_signal(&mut stopped) => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stopped = stopped.clone();
        let done = done.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            // Errors here are clients going away and our own drops: nothing to report.
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop_signal(&mut stopped) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(done);
        });
    }
}

/// Resolves once shutdown was asked for, including before this call.
async fn stop_signal(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let route = match (req.method(), req.uri().path()) {
        (&Method::POST, "/messages") => Route::Messages,
        (&Method::GET, "/admins") => Route::Admins,
        (&Method::POST, "/contacts/search") => Route::Search,
        (&Method::POST, "/conversations/search") => Route::Conversations,
        (method, path) => {
            let e = ApiError::not_found(format!("Resource Not Found: {method} {path}"));
            return Ok(e.response());
        }
    };
    // Auth before anything else, as Intercom: an unauthenticated request is not even counted.
    if let Err(e) = authorize(state.token.as_deref(), req.headers()) {
        return Ok(e.response());
    }
    let admission = state.limiter.admit();
    let reply = if !admission.allowed {
        Reply::Answer(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("Exceeded rate limit of {} in 10_seconds", admission.limit),
            )
            .response(),
        )
    } else {
        match route {
            Route::Admins => {
                Reply::Answer(json_response(StatusCode::OK, &state.admins.list_body()))
            }
            // On a task of its own: a server acts on a request it received whatever becomes of
            // the client, so a sender killed while waiting for the answer (or its latency) still
            // has its message made, as Intercom would make it.
            Route::Messages => {
                let state = Arc::clone(&state);
                tokio::spawn(async move { create_message(&state, req).await })
                    .await
                    .map_err(|_| Dropped)?
                    .unwrap_or_else(|e| Reply::Answer(e.response()))
            }
            Route::Search => search_contacts(&state, req)
                .await
                .unwrap_or_else(|e| Reply::Answer(e.response())),
            Route::Conversations => search_conversations(&state, req)
                .await
                .unwrap_or_else(|e| Reply::Answer(e.response())),
        }
    };
    let mut response = match reply {
        Reply::Answer(r) => r,
        Reply::Drop => return Err(Dropped),
    };
    admission.write_headers(response.headers_mut());
    Ok(response)
}

enum Route {
    Messages,
    Admins,
    Search,
    Conversations,
}

enum Reply {
    Answer(Response<Full<Bytes>>),
    /// Close the connection unanswered.
    Drop,
}

fn authorize(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    match token {
        Some(expected) if expected != given => Err(ApiError::unauthorized()),
        _ => Ok(()),
    }
}

/// `POST /messages` past auth and the limit: version, body, validation, contacts, then the faults
/// (which apply only to requests that would otherwise succeed), then the message.
async fn create_message(state: &State, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let version = validate::api_version(req.headers().get("intercom-version"))?;
    let bytes = read_body(req).await?;
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) if state.validate => {
            return Err(ApiError::invalid(
                None,
                format!("Invalid JSON in the request body: {e}"),
            ))
        }
        // --no-validate accepts any body; the log keeps it as a string.
        Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    };
    if state.validate {
        state.schemas.check(version, &body)?;
        state.admins.sender(&body)?;
    }
    if let Some(contacts) = &state.contacts {
        contacts.check(&body)?;
    }
    let plan = match faults_of(&state.faults).await {
        Ok(plan) => plan,
        Err(refused) => return Ok(Reply::Answer(refused)),
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed).to_string();
    if let Some(log) = &state.log {
        log.record(&id, &body);
    }
    state.conversations.record(&id, &body, unix_now());
    match plan.outcome {
        Fate::Drop => return Ok(Reply::Drop),
        Fate::FailAfter(status) => return Ok(Reply::Answer(errors::after_the_fact(status))),
        Fate::Answer | Fate::Fail(_) => {}
    }
    Ok(Reply::Answer(json_response(
        StatusCode::OK,
        &message_object(&id, &body, state.admins.owner(&body)),
    )))
}

/// The request's body, up to `MAX_BODY`.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Ok(Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::invalid(None, format!("Cannot read the request body: {e}")))?
        .to_bytes())
}

/// `POST /contacts/search` past auth and the limit: version, body, the query's limits, then the
/// faults' latency and server errors (a search creates nothing, so there is nothing to drop).
async fn search_contacts(state: &State, req: Request<Incoming>) -> Result<Reply, ApiError> {
    validate::api_version(req.headers().get("intercom-version"))?;
    let bytes = read_body(req).await?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(None, format!("Invalid JSON in the request body: {e}")))?;
    if state.validate {
        state.schemas.check_search(&body)?;
    }
    let empty = Contacts::default();
    let known = match (&state.contacts, state.invent_contacts) {
        (Some(c), _) => Some(c),
        (None, true) => None,
        (None, false) => Some(&empty),
    };
    let answer = contacts::search(known, &state.missing, &body)?;
    // A search makes nothing, so an answer after the fact is only an answer.
    if let Err(refused) = faults_of(&state.faults).await {
        return Ok(Reply::Answer(refused));
    }
    Ok(Reply::Answer(json_response(StatusCode::OK, &answer)))
}

/// `POST /conversations/search` past auth and the limit: version, body, the 2.16 schema and the
/// query's limits, then the faults' latency and server errors.
async fn search_conversations(state: &State, req: Request<Incoming>) -> Result<Reply, ApiError> {
    validate::api_version(req.headers().get("intercom-version"))?;
    let bytes = read_body(req).await?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(None, format!("Invalid JSON in the request body: {e}")))?;
    if state.validate {
        state.schemas.check_conversation_search(&body)?;
    }
    let answer = state.conversations.search(&body, unix_now())?;
    // A search makes nothing, so an answer after the fact is only an answer.
    if let Err(refused) = faults_of(&state.faults).await {
        return Ok(Reply::Answer(refused));
    }
    Ok(Reply::Answer(json_response(StatusCode::OK, &answer)))
}

/// The message object Intercom answers with (spec: `message`, the admin example), its fields in
/// the order Intercom sends them (`type`, `id`, `created_at`, `subject`, `body`, ...: the spec's
/// example and the docs' `HTTP/1.1 200 OK`): `campaign` reads an answer only as far as its `id`,
/// and a rehearsal should exercise that as Intercom would.
#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    created_at: u64,
    /// Email only.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Value>,
    body: &'a Value,
    message_type: &'static str,
    owner: Cow<'a, Admin>,
}

fn message_object<'a>(id: &'a str, body: &'a Value, owner: Cow<'a, Admin>) -> Message<'a> {
    // Intercom answers `inapp` whichever spelling the request used.
    let message_type = match body.get("message_type").and_then(Value::as_str) {
        Some("email") => "email",
        Some("whatsapp") => "whatsapp",
        _ => "inapp",
    };
    Message {
        kind: "admin_message",
        id,
        created_at: unix_now(),
        subject: (message_type == "email").then(|| body.get("subject").unwrap_or(&Value::Null)),
        body: body.get("body").unwrap_or(&Value::Null),
        message_type,
        owner,
    }
}

/// The `campaign sandbox` command: prints the address, serves until Ctrl-C.
pub async fn serve_forever(config: SandboxConfig, listen: SocketAddr) -> anyhow::Result<()> {
    let sandbox = start(config, listen).await?;
    {
        // First line of stdout, flushed: scripts read the address from it (port 0 picks one).
        let mut out = std::io::stdout().lock();
        writeln!(out, "sandbox listening on {}", sandbox.base_url())?;
        out.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    crate::say!("sandbox: stopping");
    sandbox.shutdown().await
}

/// Message ids are numeric strings, as Intercom's are, and unique across sandbox starts (a resumed
/// rehearsal appends to the same log): the start time in milliseconds, times a million, plus a
/// counter.
fn first_id() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms.saturating_mul(1_000_000) + 1
}

/// The faults this request gets: its latency waited out here; a failure answered now (no
/// message created: a 503 is shed as Intercom's API sheds load, without a body); otherwise the
/// plan, with what to do after the message is made.
async fn faults_of(faults: &faults::Faults) -> Result<faults::RequestFate, Response<Full<Bytes>>> {
    let plan = faults.plan();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.outcome {
        Fate::Fail(StatusCode::SERVICE_UNAVAILABLE) => Err(errors::shed()),
        Fate::Fail(status) => Err(ApiError::new(
            status,
            "server_error",
            "Something went wrong (sandbox --fail-rate)",
        )
        .response()),
        _ => Ok(plan),
    }
}
