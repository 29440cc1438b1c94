//! The sandbox's answers as Intercom words them: the `error.list` body, its `request_id`, and the
//! JSON responses every route sends.
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use rand::Rng;
use serde_json::{json, Value};

/// One error as the API reports it: an HTTP status plus one entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    /// The request field at fault, dotted (`from.id`); `None` when no single field is.
    pub(super) field: Option<String>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub(super) fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422 `parameter_not_found`: a required field is absent.
    pub(super) fn missing(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "parameter_not_found",
            message,
        )
        .field(field)
    }

    /// 400 `parameter_invalid`: a field is there but of the wrong type or value.
    pub(super) fn invalid(field: Option<&str>, message: impl Into<String>) -> Self {
        let e = Self::new(StatusCode::BAD_REQUEST, "parameter_invalid", message);
        match field {
            Some(f) => e.field(f),
            None => e,
        }
    }

    pub(super) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        )
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(super) fn body(&self) -> Value {
        let mut entry = json!({"code": self.code, "message": self.message});
        if let Some(field) = &self.field {
            entry["field"] = json!(field);
        }
        json!({"type": "error.list", "request_id": request_id(), "errors": [entry]})
    }

    pub(super) fn response(&self) -> Response<Full<Bytes>> {
        json_response(self.status, &self.body())
    }
}

/// A 503 as Intercom's API sheds load before doing any work: `Retry-After` and no body, which a
/// sender may take as proof that nothing was created.
pub(super) fn shed() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The answer to a request whose message was made all the same: a 500 from the service (an
/// `error.list`), or a gateway's error page for 502, 503 and 504 (the backend was slow, and the
/// load balancer in front of it gave up waiting). No `Retry-After`: nothing proves that nothing
/// was made.
pub(super) fn after_the_fact(status: StatusCode) -> Response<Full<Bytes>> {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return ApiError::new(
            status,
            "server_error",
            "Something went wrong (sandbox --fail-after-rate)",
        )
        .response();
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>",
        code = status.as_u16()
    );
    let mut resp = Response::new(Full::new(Bytes::from(page)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

/// A uuid-shaped random id (8-4-4-4-12 hex), as Intercom puts in every error body. Random rather
/// than a real v4 uuid: senders only log it, nothing parses it, and no uuid crate is needed.
pub(super) fn request_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(super) fn json_response(
    status: StatusCode,
    body: &impl serde::Serialize,
) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("a Value or a struct of strings always serializes");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_shaped() {
        let id = request_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(id, request_id());
    }

    #[test]
    fn error_body_has_intercom_shape() {
        let b = ApiError::missing("subject", "No subject supplied for email message").body();
        assert_eq!(b["type"], "error.list");
        assert_eq!(b["errors"][0]["code"], "parameter_not_found");
        assert_eq!(b["errors"][0]["field"], "subject");
    }
}
