//! `POST /api/v1/keys/verify`: the key check for backends that are not behind
//! API Gateway. The caller (a service key with `keys:verify`) asks about a key
//! of its own account; the answer counts against that key's limits, as a
//! request through the gateway would.

use keyhub::aws::ratelimit::WindowState;
use keyhub::domain::refusal::Refusal;
use keyhub::domain::scope::Scopes;
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

pub async fn verify(call: &Call<'_>) -> Reply {
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
                return invalid(refusal, Some(&principal), rejection.rate.as_ref());
            }
            Denied::Failed(e) => return Err(e.clone()),
        },
    };
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
}
