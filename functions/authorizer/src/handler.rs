//! The API Gateway REST `REQUEST` authorizer: checks the presented key and the
//! route's scope, and answers Allow with the key's identity, scopes, plan and
//! limits as context, `Unauthorized` (API Gateway's 401), or Deny (its 403)
//! with the error code in the context for the gateway response to show.
//!
//! API Gateway may cache an answer per identity source, so an Allow lists
//! every route of the table this key may call, not just the one asked about:
//! a cached answer then stays right for the key's other routes.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use keyhub::ApiError;
use keyhub::auth::{self, Authenticator, Principal};
use keyhub::limits::RateLimitPolicy;
use keyhub::time;
use serde_json::Value;

use crate::routes::RouteScopes;

pub struct Deps {
    pub auth: Authenticator,
    pub policy: RateLimitPolicy,
    pub routes: RouteScopes,
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

fn response(
    principal_id: &str,
    statement: IamPolicyStatement,
    context: HashMap<String, Value>,
) -> Response {
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_string());
    policy.statement = vec![statement];
    let mut r = Response::default();
    r.principal_id = Some(principal_id.to_string());
    r.policy_document = policy;
    r.context = context;
    r
}

fn error_context(e: &ApiError) -> HashMap<String, Value> {
    HashMap::from([
        ("error_code".to_string(), Value::from(e.code())),
        ("error_message".to_string(), Value::from(e.to_string())),
    ])
}

fn deny(principal_id: &str, method_arn: &str, e: &ApiError) -> Response {
    tracing::info!(code = e.code(), "denied");
    response(
        principal_id,
        statement(IamPolicyEffect::Deny, vec![method_arn.to_string()]),
        error_context(e),
    )
}

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
    let record = match deps
        .auth
        .authenticate(auth::presented_key(&event.headers), time::now())
        .await
    {
        Ok(r) => r,
        Err(e @ ApiError::ApiKeyInactive) => return Ok(deny("anonymous", method_arn, &e)),
        Err(e @ (ApiError::MissingApiKey | ApiError::InvalidApiKey | ApiError::ApiKeyExpired)) => {
            tracing::info!(code = e.code(), "unauthorized");
            return Err(AuthorizerError::Unauthorized);
        }
        Err(e) => return Err(AuthorizerError::Failure(e.to_string())),
    };
    let principal = Principal::from_record(&record, &deps.policy);

    let resources = if deps.routes.is_empty() {
        vec![format!("{base}/*/*")]
    } else {
        let method = event.http_method.as_ref().map(|m| m.as_str()).unwrap_or("");
        let resource = event.resource.as_deref().unwrap_or("");
        match deps.routes.find(method, resource) {
            None => {
                let e = ApiError::InsufficientScope {
                    required: format!("a route-table entry for {method} {resource}"),
                };
                return Ok(deny(&principal.key_id, method_arn, &e));
            }
            Some(route) if !route.allows(&principal.scopes) => {
                let e = ApiError::InsufficientScope {
                    required: route
                        .scope
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                };
                return Ok(deny(&principal.key_id, method_arn, &e));
            }
            Some(_) => deps
                .routes
                .iter()
                .filter(|r| r.allows(&principal.scopes))
                .map(|r| r.arn(&base))
                .collect(),
        }
    };
    // A cached Allow reaching a route it does not list becomes API Gateway's
    // ACCESS_DENIED, whose body reads the code from this same context.
    let mut context = principal.to_context();
    context.extend(error_context(&ApiError::InsufficientScope {
        required: "a scope of this route".to_string(),
    }));
    Ok(response(
        &principal.key_id,
        statement(IamPolicyEffect::Allow, resources),
        context,
    ))
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
