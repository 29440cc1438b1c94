//! Request validation as Intercom does it: the `Intercom-Version` header picks an OpenAPI
//! description (the versions and their cuts: [`crate::input::config::VERSIONS`]), the body is
//! checked against its `create_message_request` schema, after the per-type rules the schema
//! leaves out ([`super::rules`]: its `anyOf` lets an e-mail without `subject` or `template`
//! through as in-app, which Intercom refuses).
use anyhow::Context;
use hyper::header::HeaderValue;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::Validator;
use serde_json::Value;

use super::errors::ApiError;
use crate::input::config::{cut_of, OpenApiCut, VERSIONS};

const SPEC_2_11: &str = include_str!("../../openapi/messages-only-2.11.yaml");
const SPEC_2_16: &str = include_str!("../../openapi/messages-only-2.16.yaml");
/// `POST /contacts/search` and its schemas, cut from the full 2.16 description.
const SEARCH_2_16: &str = include_str!("../../openapi/contacts-search-2.16.yaml");
/// `POST /conversations/search` and its schemas, cut likewise.
const CONVERSATIONS_2_16: &str = include_str!("../../openapi/conversations-search-2.16.yaml");

/// Maps the `Intercom-Version` header to the description its requests follow; a request without
/// the header gets the newest (the app's default version); other values are refused as Intercom
/// does.
pub(super) fn api_version(header: Option<&HeaderValue>) -> Result<OpenApiCut, ApiError> {
    let Some(value) = header else {
        return Ok(newest().1);
    };
    let v = value.to_str().unwrap_or("").trim();
    cut_of(v).ok_or_else(|| {
        ApiError::new(
            hyper::StatusCode::BAD_REQUEST,
            "intercom_version_invalid",
            format!(
                "Requested Intercom-Version '{v}' is not valid: this sandbox knows {} to {}",
                VERSIONS[0].0,
                newest().0
            ),
        )
        .field("Intercom-Version")
    })
}

fn newest() -> (&'static str, OpenApiCut) {
    VERSIONS[VERSIONS.len() - 1]
}

/// The compiled request schemas, one per description, built once at start.
pub(super) struct Schemas {
    v2_11: Validator,
    v2_16: Validator,
    search: Validator,
    conversations: Validator,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schemas")
    }
}

impl Schemas {
    pub(super) fn load() -> anyhow::Result<Self> {
        Ok(Schemas {
            v2_11: compile_schema(SPEC_2_11, "create_message_request")
                .context("the 2.11 description")?,
            v2_16: compile_schema(SPEC_2_16, "create_message_request")
                .context("the 2.16 description")?,
            search: compile_schema(SEARCH_2_16, "contact_search_request")
                .context("the 2.16 search description")?,
            conversations: compile_schema(CONVERSATIONS_2_16, "conversation_search_request")
                .context("the 2.16 conversation search description")?,
        })
    }

    /// Checks a `POST /contacts/search` body against `contact_search_request`; the first error
    /// names where in the body it is.
    pub(super) fn check_search(&self, body: &Value) -> Result<(), ApiError> {
        search_error(&self.search, body)
    }

    /// Checks a `POST /conversations/search` body against 2.16's `search_request`, likewise.
    pub(super) fn check_conversation_search(&self, body: &Value) -> Result<(), ApiError> {
        search_error(&self.conversations, body)
    }

    /// Checks one request body: the per-type rules first (they name the field precisely, as the
    /// real API's messages do), then the schema for everything else.
    pub(super) fn check(&self, version: OpenApiCut, body: &Value) -> Result<(), ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::invalid(
                None,
                "The request body must be a JSON object",
            ));
        };
        super::rules::check(version, obj)?;
        let validator = match version {
            OpenApiCut::V2_11 => &self.v2_11,
            OpenApiCut::V2_16 => &self.v2_16,
        };
        if let Some(err) = schema_error(validator, body) {
            return Err(err);
        }
        Ok(())
    }
}

/// The first error of a search body against `validator`, naming where in the body it is.
fn search_error(validator: &Validator, body: &Value) -> Result<(), ApiError> {
    match validator.iter_errors(body).next() {
        None => Ok(()),
        Some(e) => {
            let path = dotted(e.instance_path().as_str());
            let field = if path.is_empty() {
                "query".to_string()
            } else {
                path
            };
            Err(ApiError::invalid(
                Some(&field),
                format!("{field}: not a valid search request ({e})"),
            ))
        }
    }
}

/// The schema `name` of a description as a document that also carries `components`, so that
/// its `#/components/schemas/...` references resolve.
fn compile_schema(spec: &str, name: &str) -> anyhow::Result<Validator> {
    let doc: Value = serde_saphyr::from_str(spec)?;
    let components = doc.get("components").context("no components")?.clone();
    let mut schema = components
        .pointer(&format!("/schemas/{name}"))
        .with_context(|| format!("no {name} schema"))?
        .clone();
    // The spec's enum says `in_app`, but Intercom's own answers and guides say `inapp` and real
    // senders send it: accept both.
    if let Some(Value::Array(e)) = schema.pointer_mut("/properties/message_type/enum") {
        e.push(Value::from("inapp"));
    }
    schema["components"] = components;
    jsonschema::validator_for(&schema).map_err(|e| anyhow::anyhow!("invalid schema: {e}"))
}

/// The first schema error, in Intercom's terms. The root `anyOf` (one required-set per message
/// type) gives no detail, so it is reported only when nothing more precise failed.
fn schema_error(validator: &Validator, body: &Value) -> Option<ApiError> {
    let mut any_of = None;
    for e in validator.iter_errors(body) {
        let path = dotted(e.instance_path().as_str());
        match e.kind() {
            ValidationErrorKind::AnyOf { .. } if path.is_empty() => {
                any_of = Some(ApiError::missing(
                    "message_type",
                    "Required fields are missing for this message_type",
                ))
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let field = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                return Some(ApiError::missing(&field, format!("No {field} supplied")));
            }
            ValidationErrorKind::Type { kind } => {
                let want = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(ts) => format!("{ts:?}"),
                };
                return Some(ApiError::invalid(
                    Some(&path),
                    format!("{path} must be of type {want}"),
                ));
            }
            ValidationErrorKind::Enum { options } => {
                return Some(ApiError::invalid(
                    Some(&path),
                    format!("{path} must be one of {options}"),
                ));
            }
            _ => {
                let field = if path.is_empty() {
                    None
                } else {
                    Some(path.as_str())
                };
                return Some(ApiError::invalid(
                    field,
                    format!("{}: {e}", describe(&path)),
                ));
            }
        }
    }
    any_of
}

fn describe(path: &str) -> &str {
    if path.is_empty() {
        "request"
    } else {
        path
    }
}

/// `/to/0/id` -> `to.0.id`.
fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use serde_json::json;

    #[test]
    fn the_searches_lookups_make_fit_the_search_request_schema() {
        use crate::input::config::Address;
        let s = schemas();
        let keys = vec!["a@x.test".to_string(), "b@x.test".to_string()];
        for role in ["user", "lead", "contact"] {
            for after in [None, Some("cursor")] {
                let body = crate::lookup::search_body(Address::Email, role, &keys, after);
                assert!(s.check_search(&body).is_ok(), "{body}");
            }
        }
        let e = s
            .check_search(&json!({"pagination": {"per_page": 5}}))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = s
            .check_search(&json!({"query": {"field": "email", "operator": "LIKE", "value": "a"}}))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    fn schemas() -> Schemas {
        Schemas::load().unwrap()
    }

    fn email() -> Value {
        json!({
            "message_type": "email", "subject": "Hi", "body": "<p>Hello</p>", "template": "plain",
            "from": {"type": "admin", "id": 394051}, "to": {"type": "user", "id": "abc"}
        })
    }

    fn inapp() -> Value {
        json!({
            "message_type": "inapp", "body": "Hello",
            "from": {"type": "admin", "id": 394051}, "to": {"type": "user", "id": "abc"}
        })
    }

    fn check(v: OpenApiCut, body: Value) -> Result<(), (StatusCode, &'static str, Option<String>)> {
        schemas()
            .check(v, &body)
            .map_err(|e| (e.status, e.code, e.field))
    }

    fn err(
        status: u16,
        code: &'static str,
        field: &str,
    ) -> Result<(), (StatusCode, &'static str, Option<String>)> {
        Err((
            StatusCode::from_u16(status).unwrap(),
            code,
            Some(field.to_string()),
        ))
    }

    #[test]
    fn versions() {
        assert_eq!(api_version(None).unwrap(), OpenApiCut::V2_16);
        let h = |s| HeaderValue::from_static(s);
        assert_eq!(api_version(Some(&h("2.11"))).unwrap(), OpenApiCut::V2_11);
        assert_eq!(api_version(Some(&h("2.13"))).unwrap(), OpenApiCut::V2_16);
        let e = api_version(Some(&h("2.9"))).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code),
            (400, "intercom_version_invalid")
        );
        assert!(e.message.contains("2.9"));
    }

    #[test]
    fn valid_messages_pass_both_versions() {
        for v in [OpenApiCut::V2_11, OpenApiCut::V2_16] {
            assert_eq!(check(v, email()), Ok(()));
            assert_eq!(check(v, inapp()), Ok(()));
            let mut b = inapp();
            b["message_type"] = json!("in_app");
            assert_eq!(check(v, b), Ok(()));
        }
    }

    #[test]
    fn email_needs_subject_and_template() {
        let mut b = email();
        b.as_object_mut().unwrap().remove("subject");
        assert_eq!(
            check(OpenApiCut::V2_16, b),
            err(422, "parameter_not_found", "subject")
        );
        let mut b = email();
        b.as_object_mut().unwrap().remove("template");
        assert_eq!(
            check(OpenApiCut::V2_16, b),
            err(422, "parameter_not_found", "template")
        );
    }

    #[test]
    fn template_is_plain_or_personal() {
        let mut b = email();
        b["template"] = json!("fancy");
        assert_eq!(
            check(OpenApiCut::V2_16, b),
            err(400, "parameter_invalid", "template")
        );
        let mut b = email();
        b["template"] = json!("personal");
        assert_eq!(check(OpenApiCut::V2_16, b), Ok(()));
    }

    #[test]
    fn from_id_is_an_integer() {
        let mut b = email();
        b["from"]["id"] = json!("394051");
        assert_eq!(
            check(OpenApiCut::V2_11, b),
            err(400, "parameter_invalid", "from.id")
        );
    }

    #[test]
    fn message_type_enum_depends_on_version() {
        let mut b = inapp();
        b["message_type"] = json!("sms");
        assert_eq!(
            check(OpenApiCut::V2_16, b),
            err(400, "parameter_invalid", "message_type")
        );
        let mut b = inapp();
        b["message_type"] = json!("whatsapp");
        assert_eq!(
            check(OpenApiCut::V2_11, b),
            err(400, "parameter_invalid", "message_type")
        );
    }

    #[test]
    fn schema_catches_what_the_rules_do_not() {
        // A recipient id must be a string (schema: recipient.id).
        let mut b = inapp();
        b["to"]["id"] = json!(42);
        let got = check(OpenApiCut::V2_11, b.clone());
        assert_eq!(got, err(400, "parameter_invalid", "to.id"));
        // In 2.16 `to` is oneOf(recipient, [recipient]): the error is on `to`.
        let got = check(OpenApiCut::V2_16, b).unwrap_err();
        assert_eq!((got.0.as_u16(), got.1), (400, "parameter_invalid"));
        // 2.16 takes an array of recipients; 2.11 does not.
        let mut b = inapp();
        b["to"] = json!([{"type": "user", "id": "a"}, {"type": "lead", "id": "b"}]);
        assert_eq!(check(OpenApiCut::V2_16, b.clone()), Ok(()));
        assert!(check(OpenApiCut::V2_11, b).is_err());
        // A subject must be a string.
        let mut b = email();
        b["subject"] = json!(5);
        assert_eq!(
            check(OpenApiCut::V2_16, b),
            err(400, "parameter_invalid", "subject")
        );
        // Missing recipient id.
        let mut b = inapp();
        b["to"] = json!({"type": "user"});
        assert_eq!(
            check(OpenApiCut::V2_11, b),
            err(422, "parameter_not_found", "to.id")
        );
    }

    #[test]
    fn missing_fields_are_422() {
        for field in ["body", "from", "to", "message_type"] {
            let mut b = inapp();
            b.as_object_mut().unwrap().remove(field);
            assert_eq!(
                check(OpenApiCut::V2_16, b),
                err(422, "parameter_not_found", field),
                "{field}"
            );
        }
        let mut b = inapp();
        b["body"] = Value::Null;
        assert_eq!(
            check(OpenApiCut::V2_16, b),
            err(400, "parameter_invalid", "body")
        );
        assert!(check(OpenApiCut::V2_16, json!([1])).is_err());
    }
}
