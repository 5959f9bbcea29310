//! `POST /api/v1/keys/verify`: the key check for backends that are not behind
//! API Gateway. The caller (a service key with `keys:verify`) asks about a key
//! of its own account; the answer counts against that key's limits and is
//! recorded in that key's usage, under the route and method the caller names,
//! as a request through the gateway would be. The caller's own call is one
//! management API call of its own key (the guard meters it, so a leaked
//! service key is no unbounded lookup oracle), never the verified key's.

use std::time::Instant;

use keyhub::aws::ratelimit::WindowState;
use keyhub::domain::refusal::Refusal;
use keyhub::domain::scope::Scopes;
use keyhub::domain::usage::UsageRecord;
use keyhub::http::auth::Principal;
use keyhub::http::guard::Denied;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::call::{Call, Reply};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    key: String,
    /// Scopes the key must hold for this request to be valid (`null` is
    /// refused: openapi.yaml does not make the field nullable).
    #[serde(default, deserialize_with = "crate::requests::present")]
    scopes: Option<Scopes>,
    /// The route the backend is serving (its resource path), for the
    /// verified key's usage; default this route.
    #[serde(default, deserialize_with = "crate::requests::present")]
    route: Option<CheckedRoute>,
    /// The method of that request; default `POST`.
    #[serde(default, deserialize_with = "crate::requests::present")]
    method: Option<CheckedMethod>,
}

/// Where the verified key's usage is filed when the caller names nothing:
/// the check itself.
const DEFAULT_ROUTE: &str = "/api/v1/keys/verify";
const DEFAULT_METHOD: &str = "POST";
const MAX_ROUTE: usize = 300;

/// A resource path as usage groups by it (`/invoices/{id}`): a `/` and at
/// most 299 more of a URL path's characters (with `{` `}` for parameters),
/// so that the usage function takes the record as the guard's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct CheckedRoute(String);

impl TryFrom<String> for CheckedRoute {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let path_char = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%{}/".contains(c);
        if s.starts_with('/') && s.len() <= MAX_ROUTE && s.chars().all(path_char) {
            Ok(CheckedRoute(s))
        } else {
            Err(format!(
                "route must be a resource path: '/' then at most {} URL path characters",
                MAX_ROUTE - 1
            ))
        }
    }
}

/// An HTTP method in capitals, 1 to 10 letters (`GET`, `PATCH`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct CheckedMethod(String);

impl TryFrom<String> for CheckedMethod {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(CheckedMethod(s))
        } else {
            Err("method must be 1 to 10 capital letters, e.g. GET".to_string())
        }
    }
}

fn ratelimit(state: Option<&WindowState>) -> Value {
    state.map_or(
        Value::Null,
        |s| json!({ "limit": s.limit, "remaining": s.remaining, "reset": s.reset }),
    )
}

/// Verify's words for a refused key: its `code`. A key that is not the
/// caller's account's is `Unknown` before this is asked.
fn code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Missing | Refusal::Malformed | Refusal::Unknown => "invalid_api_key",
        Refusal::Expired => "api_key_expired",
        Refusal::Inactive => "api_key_inactive",
        Refusal::Scope { .. } => "insufficient_scope",
        Refusal::RateLimited { .. } => "rate_limit_exceeded",
    }
}

fn invalid(refusal: &Refusal, principal: Option<&Principal>, state: Option<&WindowState>) -> Reply {
    Ok((
        200,
        json!({
            "valid": false,
            "code": code(refusal),
            "key_id": principal.map(|p| p.key_id.as_str()),
            "account_id": principal.map(|p| p.account_id.as_str()),
            "scopes": principal.map(|p| &p.scopes),
            "ratelimit": ratelimit(state),
        }),
    ))
}

/// The verified key's usage record: one per check that reached its limits
/// (allowed, 200, or rate limited, 429), as the guard records a request
/// that passed the key check. Under the verify call's request id: usage
/// counts a request id once per key, so this and the caller's own record
/// are both kept, and a redelivery of either is not counted twice.
async fn record_usage(
    call: &Call<'_>,
    body: &VerifyRequest,
    principal: &Principal,
    status: u16,
    started: Instant,
) {
    let Some(sink) = &call.deps.usage else {
        return;
    };
    let record = UsageRecord {
        request_id: keyhub::http::request::request_id(call.req),
        key_id: principal.key_id.clone(),
        account_id: principal.account_id.clone(),
        environment: principal.environment,
        method: body
            .method
            .as_ref()
            .map_or(DEFAULT_METHOD, |m| m.0.as_str())
            .to_string(),
        route: body
            .route
            .as_ref()
            .map_or(DEFAULT_ROUTE, |r| r.0.as_str())
            .to_string(),
        status,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        time: call.now,
        // The address is the calling service's, not the verified client's.
        source_ip: None,
        refused: false,
    };
    sink.send(&record).await;
}

pub async fn verify(call: &Call<'_>) -> Reply {
    let started = Instant::now();
    let body: VerifyRequest = call.body()?;
    let guard = &call.deps.guard;
    // Whose key it is comes first: another account's key is as unknown as
    // one that does not exist, whatever state it is in.
    let record = match call.deps.auth.identify(Some(&body.key)).await? {
        Ok(r) if r.account_id != call.principal.account_id => {
            return invalid(&Refusal::Unknown, None, None);
        }
        Ok(r) => r,
        Err(refusal) => return invalid(&refusal, None, None),
    };
    if let Some(refusal) = Refusal::of_state(record.state(call.now)) {
        return invalid(&refusal, None, None);
    }
    let principal = Principal::from_record(&record, guard.policy());
    if let Some(required) = &body.scopes
        && let Some(missing) = principal.scopes.first_not_covered(required)
    {
        let refusal = Refusal::Scope {
            required: missing.to_string(),
        };
        return invalid(&refusal, Some(&principal), None);
    }
    let state = match guard.limit(&principal, call.now).await {
        Ok(state) => state,
        Err(rejection) => match &rejection.denied {
            Denied::Refused(refusal) => {
                record_usage(call, &body, &principal, 429, started).await;
                return invalid(refusal, Some(&principal), rejection.rate.as_ref());
            }
            Denied::Failed(e) => return Err(e.clone()),
        },
    };
    record_usage(call, &body, &principal, 200, started).await;
    Ok((
        200,
        json!({
            "valid": true,
            "code": "valid",
            "key_id": principal.key_id,
            "account_id": principal.account_id,
            "scopes": principal.scopes,
            "plan": principal.plan,
            "environment": record.environment,
            "ratelimit": ratelimit(state.as_ref()),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_may_be_absent_but_not_null() {
        let ok: VerifyRequest = keyhub::http::request::from_json(br#"{"key": "k"}"#).unwrap();
        assert!(ok.scopes.is_none());
        let e =
            keyhub::http::request::from_json::<VerifyRequest>(br#"{"key": "k", "scopes": null}"#)
                .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }

    fn parse(body: &str) -> Result<VerifyRequest, keyhub::ApiError> {
        keyhub::http::request::from_json(body.as_bytes())
    }

    #[test]
    fn the_checked_route_and_method_are_a_resource_path_and_capitals() {
        let ok = parse(r#"{"key": "k", "route": "/invoices/{id}", "method": "GET"}"#).unwrap();
        assert_eq!(ok.route.unwrap().0, "/invoices/{id}");
        assert_eq!(ok.method.unwrap().0, "GET");
        let long = format!("/{}", "a".repeat(MAX_ROUTE - 1));
        assert!(parse(&format!(r#"{{"key": "k", "route": "{long}"}}"#)).is_ok());
        for bad in [
            r#"{"key": "k", "route": "invoices"}"#,
            r#"{"key": "k", "route": "/a b"}"#,
            r#"{"key": "k", "route": "/a?b=1"}"#,
            r#"{"key": "k", "route": "/é"}"#,
            r#"{"key": "k", "route": null}"#,
            r#"{"key": "k", "route": 7}"#,
            r#"{"key": "k", "method": "get"}"#,
            r#"{"key": "k", "method": ""}"#,
            r#"{"key": "k", "method": "VERYLONGMETHOD"}"#,
            r#"{"key": "k", "method": null}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().code(), "invalid_request", "{bad}");
        }
        let too_long = format!("/{}", "a".repeat(MAX_ROUTE));
        assert!(parse(&format!(r#"{{"key": "k", "route": "{too_long}"}}"#)).is_err());
    }
}
