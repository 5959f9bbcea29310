//! The API Gateway REST `REQUEST` authorizer: checks the presented key and the
//! route's scope, and answers Allow with the key's identity, scopes, plan and
//! limits as context, `Unauthorized` (API Gateway's 401), or Deny (its 403)
//! with the error code in the context for the gateway response to show.
//!
//! API Gateway may cache an answer per identity source and apply it to any
//! route of the same key, so every answer is the key's whole policy (see
//! `routes`), never one shaped by the route that happened to ask first: an
//! out-of-scope request does not lock the key out of its other routes, and
//! an Allow never reaches a route the key may not call.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use keyhub::ApiError;
use keyhub::domain::limits::RateLimitPolicy;
use keyhub::domain::refusal::Refusal;
use keyhub::domain::time;
use keyhub::http::auth::{Authenticator, KeyHeader, Principal};
use serde_json::Value;

use crate::routes::{Policy, RouteScopes};

pub struct Deps {
    pub auth: Authenticator,
    pub policy: RateLimitPolicy,
    pub routes: RouteScopes,
    /// The header API Gateway caches answers by, if any: the only one read.
    pub identity: KeyHeader,
}

impl Deps {
    /// Refuses a set-up whose cached answers could be wrong: with an
    /// identity header API Gateway may cache, and then every policy must be
    /// right for every route of the table.
    pub fn new(
        auth: Authenticator,
        policy: RateLimitPolicy,
        routes: RouteScopes,
        identity: KeyHeader,
    ) -> Result<Self, String> {
        if identity != KeyHeader::Either {
            routes.check_cacheable()?;
        }
        Ok(Deps {
            auth,
            policy,
            routes,
            identity,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// API Gateway turns exactly this message into its 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// Anything else becomes API Gateway's AUTHORIZER_FAILURE (503 here).
    #[error("authorizer failure: {0}")]
    Failure(String),
}

impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        let error_type = match e {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::Failure(_) => "AuthorizerFailure",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: e.to_string(),
        }
    }
}

pub type Response = ApiGatewayCustomAuthorizerResponse<HashMap<String, Value>>;

/// `arn:aws:execute-api:region:account:api-id/stage` of a method ARN.
fn arn_base(method_arn: &str) -> Option<String> {
    let mut parts = method_arn.splitn(3, '/');
    let (api, stage) = (parts.next()?, parts.next()?);
    (!api.is_empty() && !stage.is_empty()).then(|| format!("{api}/{stage}"))
}

fn statement(effect: IamPolicyEffect, resource: Vec<String>) -> IamPolicyStatement {
    let mut s = IamPolicyStatement::default();
    s.action = vec!["execute-api:Invoke".to_string()];
    s.effect = effect;
    s.resource = resource;
    s
}

/// The answer API Gateway gets, with the policy's resources under `base`.
/// An empty Allow list becomes a Deny of everything: IAM needs a statement.
fn response(
    principal_id: &str,
    base: &str,
    policy: &Policy,
    context: HashMap<String, Value>,
) -> Response {
    let arns = |v: &[String]| v.iter().map(|p| format!("{base}/{p}")).collect::<Vec<_>>();
    let mut statements = Vec::new();
    if !policy.allow.is_empty() {
        statements.push(statement(IamPolicyEffect::Allow, arns(&policy.allow)));
    }
    if !policy.deny.is_empty() || policy.allow.is_empty() {
        let deny = if policy.allow.is_empty() {
            vec![format!("{base}/*")]
        } else {
            arns(&policy.deny)
        };
        statements.push(statement(IamPolicyEffect::Deny, deny));
    }
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".to_string());
    document.statement = statements;
    let mut r = Response::default();
    r.principal_id = Some(principal_id.to_string());
    r.policy_document = document;
    r.context = context;
    r
}

/// The authorizer's words for a refused key. API Gateway's 401 can say
/// nothing of why, so a key that cannot be identified, or has expired, is
/// `Unauthorized`; an inactive key is a Deny of everything (a 403) whose
/// context carries the contract's code and message. (Scope is decided per
/// route in the policy, and the authorizer takes no rate limits.)
fn refused(refusal: Refusal, base: &str) -> Result<Response, AuthorizerError> {
    let error = ApiError::from(refusal.clone());
    keyhub::metrics::key_refused(error.code());
    match refusal {
        Refusal::Inactive | Refusal::Scope { .. } | Refusal::RateLimited { .. } => {
            tracing::info!(code = error.code(), "denied");
            let context = HashMap::from([
                ("error_code".to_string(), Value::from(error.code())),
                ("error_message".to_string(), Value::from(error.to_string())),
            ]);
            Ok(response("anonymous", base, &Policy::default(), context))
        }
        Refusal::Missing | Refusal::Malformed | Refusal::Unknown | Refusal::Expired => {
            tracing::info!(code = error.code(), "unauthorized");
            Err(AuthorizerError::Unauthorized)
        }
    }
}

/// What an answer says when its policy refuses a route: words about the
/// key, never about the route that asked, since API Gateway reuses the
/// answer for all the key's routes.
fn scope_refusal(principal: &Principal) -> HashMap<String, Value> {
    HashMap::from([
        ("error_code".to_string(), Value::from("insufficient_scope")),
        (
            "error_message".to_string(),
            Value::from(format!(
                "this route needs a scope the key does not hold (it holds: {})",
                principal.scopes.joined()
            )),
        ),
    ])
}

/// An answer that holds for every request of this key, so API Gateway may
/// cache it by the identity source: the key's whole policy and one context.
#[tracing::instrument(skip_all, fields(method = ?event.http_method, resource = ?event.resource))]
pub async fn authorize(
    deps: &Deps,
    event: ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<Response, AuthorizerError> {
    let method_arn = event
        .method_arn
        .as_deref()
        .ok_or_else(|| AuthorizerError::Failure("the event has no methodArn".into()))?;
    let base = arn_base(method_arn)
        .ok_or_else(|| AuthorizerError::Failure(format!("unexpected methodArn {method_arn}")))?;
    let checked = deps
        .auth
        .authenticate_headers(&event.headers, deps.identity, time::now())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the key check failed");
            AuthorizerError::Failure(e.to_string())
        })?;
    let record = match checked {
        Ok(r) => r,
        Err(refusal) => return refused(refusal, &base),
    };
    let principal = Principal::from_record(&record, &deps.policy);
    let mut context = principal.to_context();
    context.extend(scope_refusal(&principal));
    if deps.routes.is_empty() {
        keyhub::metrics::key_accepted();
        let all = Policy {
            allow: vec!["*".to_string()],
            deny: Vec::new(),
        };
        return Ok(response(&principal.key_id, &base, &all, context));
    }
    let method = event.http_method.as_ref().map(|m| m.as_str()).unwrap_or("");
    let resource = event.resource.as_deref().unwrap_or("");
    let mut policy = deps.routes.policy(&principal.scopes);
    match deps.routes.find(method, resource) {
        // A route the table does not list is refused; this very request is
        // denied by name, which no other route's request can match.
        None => {
            tracing::info!(method, resource, "route not in the table");
            keyhub::metrics::key_refused("insufficient_scope");
            if let Some(tail) = method_arn.strip_prefix(&format!("{base}/")) {
                policy.deny.push(tail.to_string());
            }
        }
        Some(route) if !route.allows(&principal.scopes) => {
            tracing::info!(code = "insufficient_scope", "denied");
            keyhub::metrics::key_refused("insufficient_scope");
        }
        // Only a table that is not cached can need this: one whose whole
        // policy would refuse an allowed route; the answer then serves just
        // this request, which is all an uncached answer ever serves.
        Some(_) => {
            keyhub::metrics::key_accepted();
            if let Some(tail) = method_arn.strip_prefix(&format!("{base}/"))
                && !policy.permits(tail)
            {
                policy = Policy {
                    allow: vec![tail.to_string()],
                    deny: Vec::new(),
                };
            }
        }
    }
    Ok(response(&principal.key_id, &base, &policy, context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_bases() {
        assert_eq!(
            arn_base("arn:aws:execute-api:us-east-1:123:abc/v1/GET/invoices/1").as_deref(),
            Some("arn:aws:execute-api:us-east-1:123:abc/v1")
        );
        assert_eq!(arn_base("nonsense"), None);
    }
}
