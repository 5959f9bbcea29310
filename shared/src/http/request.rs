//! The edges of a lambda_http handler: request ids, JSON bodies and query
//! strings in, contract-shaped responses out.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::base62;
use crate::http::error::ApiError;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// API Gateway's request id, or a fresh one where there is none (a direct
/// invoke), so every response can carry `X-Request-Id`.
pub fn request_id(req: &Request) -> String {
    let from_gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_gateway
        .filter(|id| !id.is_empty())
        .unwrap_or_else(new_request_id)
}

/// Lambda's request id for the invocation (empty outside Lambda): not
/// [`request_id`], API Gateway's, but the `requestId` every log line of the
/// invocation carries, which its EMF line must carry too.
pub fn lambda_request_id(req: &Request) -> String {
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}

pub fn new_request_id() -> String {
    base62::random(24).unwrap_or_else(|_| "unavailable".to_string())
}

/// The API Gateway resource path (`/api/v1/api-keys/{id}`) and the path
/// parameters, where API Gateway provided them.
pub fn resource(req: &Request) -> Option<(String, HashMap<String, String>)> {
    let resource = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.resource_path.clone(),
        _ => None,
    }?;
    let params = req
        .path_parameters_ref()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Some((resource, params))
}

pub fn json(status: u16, body: &Value, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body.to_string()));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// The error response. A system failure's cause is logged here, once: the
/// one place every error response is made.
pub fn error(err: &ApiError, request_id: &str) -> Response<Body> {
    if err.status() >= 500 {
        tracing::error!(
            code = err.code(),
            cause = err.cause().unwrap_or_default(),
            "request failed"
        );
    }
    let mut resp = json(err.status(), &err.body(request_id), request_id);
    if let Some(secs) = err.retry_after() {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    if let Some(allow) = err
        .allow()
        .and_then(|a| http::HeaderValue::from_str(a).ok())
    {
        resp.headers_mut().insert(http::header::ALLOW, allow);
    }
    resp
}

/// Marks a response that carries a secret (a plaintext key, a `whsec_`
/// signing secret) as not to be kept by any cache, shared or private.
pub fn no_store(resp: &mut Response<Body>) {
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
}

fn is_json_content_type(req: &Request) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Whether an operation needs a request body (openapi.yaml's
/// `requestBody.required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// No body is an error, even where every field is optional (an update
    /// with nothing in it is a client's mistake, not a no-op).
    Required,
    /// No body reads as `{}`.
    Optional,
}

/// Parses a JSON body into `T`.
pub fn parse_body<T: DeserializeOwned>(
    req: &Request,
    max_bytes: usize,
    rule: BodyRule,
) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge { limit: max_bytes });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return match rule {
            BodyRule::Optional => from_json(b"{}"),
            BodyRule::Required => Err(ApiError::invalid_body(
                "required_field_missing",
                "this request needs a JSON body",
            )),
        };
    }
    if !is_json_content_type(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // serde would read a struct from an array, field by field; a request
    // body is always an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(json_error(".", &e)),
            Ok(_) => Err(ApiError::invalid_body(
                "invalid_type",
                "the request body must be a JSON object",
            )),
        };
    }
    from_json(bytes)
}

/// Deserializes with the failing field's path, and sorts serde's errors into
/// the contract's reasons.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let text = e.to_string();
    // serde_json appends " at line L column C"; the field path says more.
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::invalid_body(
            "malformed_json",
            format!("the request body is not valid JSON: {text}"),
        ),
        Category::Data => {
            let backticked = text.split('`').nth(1).unwrap_or("").to_string();
            let (field, reason, message) = if text.starts_with("missing field") {
                let field = join_path(path, &backticked);
                (
                    field.clone(),
                    "required_field_missing",
                    format!("{field} is required"),
                )
            } else if text.starts_with("unknown field") {
                let field = if path == "." || path.is_empty() {
                    backticked.clone()
                } else {
                    path.to_string()
                };
                (
                    field.clone(),
                    "unknown_field",
                    format!("unknown field '{field}'"),
                )
            } else if text.starts_with("invalid type") || text.starts_with("invalid length") {
                (path.to_string(), "invalid_type", format!("{path}: {text}"))
            } else {
                (path.to_string(), "invalid_value", format!("{path}: {text}"))
            };
            if field == "." || field.is_empty() {
                ApiError::invalid_body(reason, message.trim_start_matches(".: ").to_string())
            } else {
                ApiError::invalid(field, reason, message)
            }
        }
    }
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." || parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// The query string as single values; a repeated parameter is an error
/// rather than a silent pick of one of them.
pub fn query(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    if let Some(q) = req.query_string_parameters_ref() {
        for (k, _) in q.iter() {
            if out.contains_key(k) {
                continue;
            }
            let all = q.all(k).unwrap_or_default();
            if all.len() > 1 {
                return Err(ApiError::invalid(
                    k,
                    "repeated_parameter",
                    format!("{k} is given more than once"),
                ));
            }
            out.insert(
                k.to_string(),
                all.first().map(|v| v.to_string()).unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        limits: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        per_minute: Option<u64>,
    }

    fn err(json: &str) -> ApiError {
        from_json::<Body>(json.as_bytes()).unwrap_err()
    }

    fn details(e: &ApiError) -> (Option<String>, &'static str) {
        match e {
            ApiError::InvalidRequest { field, reason, .. } => (field.clone(), reason),
            other => panic!("not invalid_request: {other:?}"),
        }
    }

    #[test]
    fn serde_errors_become_contract_reasons() {
        assert_eq!(details(&err("{")), (None, "malformed_json"));
        assert_eq!(
            details(&err("{}")),
            (Some("name".into()), "required_field_missing")
        );
        assert_eq!(
            details(&err(r#"{"name": 3}"#)),
            (Some("name".into()), "invalid_type")
        );
        assert_eq!(
            details(&err(r#"{"name": "a", "x": 1}"#)),
            (Some("x".into()), "unknown_field")
        );
        assert_eq!(
            details(&err(r#"{"name": "a", "limits": {"per_minute": "x"}}"#)),
            (Some("limits.per_minute".into()), "invalid_type")
        );
        assert_eq!(
            details(&err(r#"{"name": "a", "limits": {"burst": 1}}"#)),
            (Some("limits.burst".into()), "unknown_field")
        );
        assert_eq!(details(&err("[1]")).1, "invalid_type");
        let deep = "[".repeat(10_000);
        let e = from_json::<serde_json::Value>(deep.as_bytes()).unwrap_err();
        assert_eq!(details(&e).1, "malformed_json");
    }

    #[test]
    fn messages_carry_no_line_numbers() {
        let ApiError::InvalidRequest { message, .. } = err(r#"{"name": 3}"#) else {
            panic!()
        };
        assert!(!message.contains("line"), "{message}");
        assert!(message.starts_with("name: invalid type"), "{message}");
    }
}
