//! The Intercom client: one `POST /messages` attempt, and what it tells us as facts (answered,
//! never reached, or fate unknown) plus the server's rate-limit headers. What to do about an
//! outcome is the sender's business, not this module's.
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use crate::intercom::answer;
pub use crate::intercom::answer::ApiError;
use crate::intercom::redact::Redactor;

/// An access token. It is never printed: `Debug` and `Display` redact it, and it leaves this
/// type only as the `Authorization` header, marked sensitive.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub(crate) fn new(token: String) -> anyhow::Result<Token> {
        let token = token.trim().to_string();
        if token.is_empty() {
            anyhow::bail!("the access token is empty");
        }
        Ok(Token(token))
    }

    /// The sandbox compares tokens; nothing else reads one.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The `X-RateLimit-*` headers, when the server sent them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix seconds at which the window resets.
    pub reset: Option<u64>,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// 2xx with a message id.
    Sent {
        message_id: String,
        status: u16,
        rate: RateInfo,
    },
    /// The server answered with an error status.
    Rejected {
        status: u16,
        error: ApiError,
        rate: RateInfo,
        retry_after: Option<Duration>,
        /// The answer had no body (nothing but white space), read to its end.
        body_empty: bool,
    },
    /// The request never reached the server (connection refused, DNS): safe to send again.
    NotReached(String),
    /// The request may have reached the server, but no answer came (timeout, connection closed,
    /// an unreadable answer): the message may exist.
    Unknown(String),
}

/// What one `POST /contacts/search` (or `/conversations/search`) came to. A search creates nothing, so every failure to hear
/// its answer is only a reason to ask again.
#[derive(Debug, Clone)]
pub enum Search {
    /// 2xx: the answer's body, whole.
    Found { body: Bytes, rate: RateInfo },
    /// The server answered with an error status.
    Rejected {
        status: u16,
        error: ApiError,
        rate: RateInfo,
        retry_after: Option<Duration>,
    },
    /// No whole answer came (never reached, timed out, cut off).
    NoAnswer(String),
}

/// What one `GET` came to: the answer as JSON, or why there is none (one line fit to show), and
/// what the pacing hears of it.
#[derive(Debug, Clone)]
pub struct Got {
    pub answer: Result<serde_json::Value, String>,
    /// The status and rate headers, if the server answered.
    pub status: Option<u16>,
    pub rate: Option<RateInfo>,
    pub retry_after: Option<Duration>,
}

pub struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    /// Strikes the token from whatever the server says back.
    redact: Redactor,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    pub(crate) fn new(
        base_url: &str,
        token: &Token,
        version: &str,
        timeout: Duration,
        pool: usize,
    ) -> anyhow::Result<Client> {
        let url = reqwest::Url::parse(&format!("{}/messages", base_url.trim_end_matches('/')))
            .with_context(|| format!("invalid API base URL `{base_url}`"))?;
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.0)).map_err(|_| {
            anyhow::anyhow!("the access token contains characters a header cannot carry")
        })?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            "Intercom-Version",
            HeaderValue::from_str(version)
                .with_context(|| format!("invalid Intercom-Version `{version}`"))?,
        );
        // reqwest is built without a crypto provider (its default, aws-lc-rs, needs cmake and a C
        // build): ring is the process's. Installed once; a later call finds it there.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("campaign/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(pool)
            // Intercom answers `POST /messages` itself. A redirect means a wrong base URL, and
            // following one would post the message somewhere else (or, for 301/302, turn it
            // into a GET); the row fails instead, saying where it was sent.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            url,
            redact: Redactor::new(token.expose()),
        })
    }

    /// One attempt. `body` is the serialized request, shared between attempts. Nothing the
    /// server or the transport says back carries the token, whole or in part: an error page
    /// that echoes the request would otherwise put it in the results file and on the screen. Each
    /// string is struck where it is made, before any cut.
    pub(crate) async fn send(&self, body: Bytes) -> Attempt {
        let response = match self.http.post(self.url.clone()).body(body).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Attempt::NotReached(self.describe(&e)),
            Err(e) => return Attempt::Unknown(self.describe(&e)),
        };
        let status = response.status().as_u16();
        let rate = rate_info(response.headers());
        let retry_after = retry_after(response.headers());
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .map(|v| self.redact.text(&v, answer::TEXT_CHARS));
        let body = read_capped(response, MAX_ANSWER_BYTES).await;
        if (200..300).contains(&status) {
            return self.success(status, rate, body);
        }
        // An error answer that stopped coming, or went on too long, still says what came of it.
        let body_empty =
            matches!(body.end, End::Whole) && body.bytes.iter().all(u8::is_ascii_whitespace);
        let mut error = answer::error_list(status, &body.bytes, &self.redact);
        if (300..400).contains(&status) {
            error.code = "redirected".into();
            error.message = format!(
                "the server answered HTTP {status}, a redirect to `{location}`; campaign does not follow redirects: check base_url",
                location = location.as_deref().unwrap_or("(no Location)")
            );
        }
        Attempt::Rejected {
            status,
            error,
            rate,
            retry_after,
            body_empty,
        }
    }

    /// One `POST /contacts/search` (the body is the search request).
    pub(crate) async fn search(&self, body: Bytes) -> Search {
        self.search_at("contacts/search", body).await
    }

    /// One search of any kind beside `/messages` (`contacts/search`, `conversations/search`):
    /// the body is the search request. Errors are struck of the token like [`Client::send`]'s.
    pub(crate) async fn search_at(&self, route: &str, body: Bytes) -> Search {
        let url = match self.url.join(route) {
            Ok(url) => url,
            Err(e) => return Search::NoAnswer(format!("invalid route `{route}`: {e}")),
        };
        let response = match self.http.post(url).body(body).send().await {
            Ok(r) => r,
            Err(e) => return Search::NoAnswer(self.describe(&e)),
        };
        let status = response.status().as_u16();
        let rate = rate_info(response.headers());
        let retry_after = retry_after(response.headers());
        // 150 contacts a page of a few KiB each: well under the cap, which only stops a server
        // that never ends its answer.
        let body = read_capped(response, 16 * MAX_ANSWER_BYTES).await;
        match (status, body.end) {
            (200..=299, End::Whole) => Search::Found {
                body: body.bytes,
                rate,
            },
            (200..=299, End::TooLong) => Search::NoAnswer(format!(
                "HTTP {status} with an answer longer than {} MiB",
                (16 * MAX_ANSWER_BYTES) >> 20
            )),
            (200..=299, End::Failed(e)) => Search::NoAnswer(format!(
                "HTTP {status} but the answer could not be read: {}",
                self.describe(&e)
            )),
            _ => Search::Rejected {
                status,
                error: answer::error_list(status, &body.bytes, &self.redact),
                rate,
                retry_after,
            },
        }
    }

    /// A 2xx: the server has decided, and a message id in what came of the body is the message
    /// it made, however the body ended; without one the row's fate is unknown.
    fn success(&self, status: u16, rate: RateInfo, body: Body) -> Attempt {
        let id = match body.end {
            End::Whole => answer::message_id(&body.bytes),
            End::TooLong | End::Failed(_) => answer::message_id_in_part(&body.bytes),
        };
        if let Some(id) = id {
            return Attempt::Sent {
                message_id: self.redact.id(&id, answer::FIELD_CHARS),
                status,
                rate,
            };
        }
        Attempt::Unknown(match body.end {
            End::Whole => format!("HTTP {status} without a message id in the answer"),
            End::TooLong => format!(
                "HTTP {status} without a message id in the answer's first {} MiB (campaign reads no more)",
                MAX_ANSWER_BYTES >> 20
            ),
            End::Failed(e) => format!(
                "HTTP {status} but the answer could not be read: {}",
                self.describe(&e)
            ),
        })
    }

    /// `GET` of another route beside `/messages` (`admins`), with the same headers, the same
    /// 1 MiB bound and the same striking of the token.
    pub(crate) async fn get_json(&self, route: &str) -> Got {
        let url = match self.url.join(route) {
            Ok(url) => url,
            Err(e) => return Got::none(format!("invalid route `{route}`: {e}")),
        };
        let response = match self.http.get(url).send().await {
            Ok(r) => r,
            Err(e) => return Got::none(self.describe(&e)),
        };
        let status = response.status().as_u16();
        let rate = rate_info(response.headers());
        let retry_after = retry_after(response.headers());
        let answer = self.json_answer(status, response).await;
        Got {
            answer,
            status: Some(status),
            rate: Some(rate),
            retry_after,
        }
    }

    async fn json_answer(
        &self,
        status: u16,
        response: reqwest::Response,
    ) -> Result<serde_json::Value, String> {
        let body = read_capped(response, MAX_ANSWER_BYTES).await;
        if !(200..300).contains(&status) {
            let error = answer::error_list(status, &body.bytes, &self.redact);
            return Err(format!("HTTP {status} {}: {}", error.code, error.message));
        }
        match body.end {
            End::Whole => {}
            End::TooLong => {
                return Err(format!(
                    "HTTP {status}, but the answer goes on past {} MiB",
                    MAX_ANSWER_BYTES >> 20
                ))
            }
            End::Failed(e) => {
                return Err(format!(
                    "HTTP {status}, but the answer could not be read: {}",
                    self.describe(&e)
                ))
            }
        }
        let mut value: serde_json::Value = serde_json::from_slice(&body.bytes)
            .map_err(|e| format!("HTTP {status}, but the answer is not JSON: {e}"))?;
        // Its strings are shown (an admin's name and e-mail): a server that echoes the token
        // into one must not get it on the screen.
        self.strike(&mut value);
        Ok(value)
    }

    fn strike(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => *s = self.redact.text(s, answer::FIELD_CHARS),
            Value::Array(items) => items.iter_mut().for_each(|v| self.strike(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.strike(v)),
            _ => {}
        }
    }

    /// reqwest's error, struck of the token and bounded.
    fn describe(&self, e: &reqwest::Error) -> String {
        self.redact.text(&describe(e), answer::FIELD_CHARS)
    }
}

impl Got {
    fn none(why: String) -> Got {
        Got {
            answer: Err(why),
            status: None,
            rate: None,
            retry_after: None,
        }
    }
}

/// The most of an answer's body that is read. Intercom's answers are a few kilobytes; a server
/// that sends gigabytes would otherwise have them all held in memory: it gets its first MiB read
/// and its connection closed.
pub(crate) const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What came of an answer's body.
struct Body {
    /// All of it, or its first bytes (at most the cap).
    bytes: Bytes,
    end: End,
}

enum End {
    Whole,
    /// Longer than the cap: the rest was not read.
    TooLong,
    /// It stopped coming: the connection failed, or the request's timeout passed (which also
    /// ends a body that trickles forever).
    Failed(reqwest::Error),
}

/// Reads a body chunk by chunk up to `cap` bytes. A body in one chunk (the usual answer) is
/// kept as it came, without a copy.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Body {
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    let end = loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break End::Whole,
            Err(e) => break End::Failed(e),
        };
        // Once a second chunk came, `more` holds everything.
        let had = if more.is_empty() {
            first.as_ref().map_or(0, Bytes::len)
        } else {
            more.len()
        };
        let take = chunk.len().min(cap - had);
        match &first {
            None => first = Some(chunk.slice(..take)),
            Some(f) => {
                if more.is_empty() {
                    more.extend_from_slice(f);
                }
                more.extend_from_slice(&chunk[..take]);
            }
        }
        if take < chunk.len() {
            break End::TooLong;
        }
    };
    let bytes = if more.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(more)
    };
    Body { bytes, end }
}

/// reqwest's error and its causes on one line, without the URL (it is known and long).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out waiting for the answer".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        without_url(e)
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s = s.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = std::error::Error::source(source.unwrap());
    }
    text
}

/// reqwest's own message for `e`, without the URL it names.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(&format!(" for url ({url})"), "");
    }
    text
}

/// `Retry-After` in seconds, as Intercom (and most proxies) send it.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn rate_info(h: &HeaderMap) -> RateInfo {
    // Looked up by `HeaderName`, not by `&str`: a `&str` is lower-cased and checked against the
    // standard names on every lookup, three times an answer.
    static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    let num = |name: &HeaderName| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    RateInfo {
        limit: num(&LIMIT),
        remaining: num(&REMAINING),
        reset: num(&RESET),
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted() {
        let t = Token::new("secret-token-123".into()).unwrap();
        assert!(!format!("{t:?}").contains("secret"));
        let c = Client::new("http://127.0.0.1:9", &t, "2.16", Duration::from_secs(1), 1).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9/messages");
    }

    /// The client speaks TLS to an `https` base URL with the ring provider it installs: what
    /// reaches a loopback listener is a TLS handshake record (Intercom itself is never reached).
    #[tokio::test]
    async fn https_opens_with_a_tls_handshake() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 2];
            socket.read_exact(&mut head).await.unwrap();
            head
        });
        let token = Token::new("tok".into()).unwrap();
        let c = Client::new(
            &format!("https://{addr}"),
            &token,
            "2.16",
            Duration::from_secs(5),
            1,
        )
        .unwrap();
        let attempt = tokio::spawn(async move { c.send(Bytes::from_static(b"{}")).await });
        // 0x16: a handshake record; 0x03: TLS's major version.
        assert_eq!(server.await.unwrap(), [0x16, 0x03]);
        let _ = attempt.await;
    }

    #[test]
    fn reads_the_rate_limit_headers_whatever_their_case() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("X-RateLimit-Limit", "1666"),
            ("x-ratelimit-remaining", " 12 "),
            ("X-RATELIMIT-RESET", "1767225600"),
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        assert_eq!(
            rate_info(&h),
            RateInfo {
                limit: Some(1666),
                remaining: Some(12),
                reset: Some(1_767_225_600),
            }
        );
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("lots"));
        h.remove("x-ratelimit-reset");
        let info = rate_info(&h);
        assert_eq!((info.remaining, info.reset), (None, None));
    }
}
