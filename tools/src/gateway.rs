//! The local gateway: serves the REST API on 127.0.0.1 the way API Gateway
//! does in AWS. It routes like template.yaml (its routes are read from it),
//! runs the authorizer before routes that use one, answers with the
//! template's gateway responses, turns each request into the event API
//! Gateway would send, and calls the same handler the Lambda runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerRequestTypeRequestContext,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentity, ApiGatewayProxyRequest,
    ApiGatewayProxyRequestContext, ApiGatewayRequestIdentity,
};
use aws_lambda_events::iam::IamPolicyEffect;
use aws_lambda_events::query_map::QueryMap;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use keyhub::auth::KeyHeader;
use keyhub_authorizer::routes::{RouteScopes, iam_matches};
use serde_json::Value;

use crate::Error;
use crate::local::LocalStack;
use crate::template::{ApiRoute, EnvValue, GatewayResponseSpec, Template};

/// API Gateway's own limit on a request body.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
pub const STAGE: &str = "local";
const REGION_ACCOUNT_API: &str = "arn:aws:execute-api:us-east-1:000000000000:local";

pub struct Gateway {
    api: keyhub_api::Deps,
    example: keyhub_example::Deps,
    authorizer: keyhub_authorizer::Deps,
    cache: AuthorizerCache,
    routes: Vec<ApiRoute>,
    responses: Vec<GatewayResponseSpec>,
}

/// API Gateway's authorizer cache: answers kept by the value of the
/// identity header for the TTL, then applied to whatever request of that
/// identity comes next. Without an identity header nothing is cached (API
/// Gateway requires one for caching).
struct AuthorizerCache {
    identity: KeyHeader,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, keyhub_authorizer::Response)>>,
}

impl AuthorizerCache {
    fn new(identity: KeyHeader, ttl: Duration) -> Self {
        AuthorizerCache {
            identity,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn header(&self) -> Option<&'static str> {
        match self.identity {
            KeyHeader::Either => None,
            KeyHeader::Authorization => Some("authorization"),
            KeyHeader::XApiKey => Some("x-api-key"),
        }
    }

    fn get(&self, identity: &str) -> Option<keyhub_authorizer::Response> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(identity)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, r)| r.clone())
    }

    fn put(&self, identity: &str, response: &keyhub_authorizer::Response) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(identity.to_string(), (Instant::now(), response.clone()));
        }
    }
}

/// What an authorizer decided, as API Gateway acts on it.
enum Verdict {
    Allow(HashMap<String, Value>),
    Deny(HashMap<String, Value>),
    Unauthorized,
    Failure,
}

impl Gateway {
    /// The gateway of a local stack: its functions' handlers with the
    /// dependencies their `main.rs` would build, and template.yaml's routes
    /// and authorizer settings (its parameters' defaults).
    pub fn new(stack: &LocalStack) -> Result<Self, Error> {
        let template = Template::builtin()?;
        let authorizer_env = template.function_env("AuthorizerFunction");
        let route_scopes = authorizer_env
            .iter()
            .find_map(|(k, v)| match v {
                EnvValue::Literal(s) if k == "KEYHUB_ROUTE_SCOPES" => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or("");
        let identity = KeyHeader::parse(
            &template
                .parameter_default("AuthorizerIdentityHeader")
                .unwrap_or_default(),
        )?;
        let ttl = template
            .parameter_default("AuthorizerCacheTtl")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ok(Gateway {
            api: stack.api_deps(),
            example: stack.example_deps(),
            authorizer: keyhub_authorizer::Deps::new(
                stack.authenticator(),
                stack.config.rate_limits.clone(),
                RouteScopes::parse(route_scopes)?,
                identity,
            )?,
            cache: AuthorizerCache::new(identity, Duration::from_secs(ttl)),
            routes: template.api_routes(),
            responses: template.gateway_responses(),
        })
    }

    /// The same gateway with another authorizer set-up, as a deployment with
    /// other `AuthorizerRouteScopes`, `AuthorizerIdentityHeader` and
    /// `AuthorizerCacheTtl` would have.
    pub fn with_authorizer(
        mut self,
        stack: &LocalStack,
        route_scopes: &str,
        identity: KeyHeader,
        ttl: Duration,
    ) -> Result<Self, Error> {
        self.authorizer = keyhub_authorizer::Deps::new(
            stack.authenticator(),
            stack.config.rate_limits.clone(),
            RouteScopes::parse(route_scopes)?,
            identity,
        )?;
        self.cache = AuthorizerCache::new(identity, ttl);
        Ok(self)
    }

    /// Adds a route behind the authorizer, served by the example function
    /// (which answers any path), as a user's own API would declare it.
    pub fn with_protected_route(mut self, method: &str, path: &str) -> Self {
        self.routes.push(ApiRoute {
            function: "ExampleFunction".to_string(),
            method: method.to_string(),
            path: path.to_string(),
            authorizer: Some("KeyhubAuthorizer".to_string()),
        });
        self
    }

    /// A gateway response as template.yaml declares it: its status (or the
    /// type's default), its headers, its body with `$context` filled in.
    fn gateway_response(
        &self,
        response_type: &str,
        default_status: u16,
        message: &str,
        request_id: &str,
        authorizer: &HashMap<String, Value>,
    ) -> http::Response<axum::body::Body> {
        let fallback = if default_status >= 500 {
            "DEFAULT_5XX"
        } else {
            "DEFAULT_4XX"
        };
        let spec = self
            .responses
            .iter()
            .find(|r| r.response_type == response_type)
            .or_else(|| self.responses.iter().find(|r| r.response_type == fallback));
        let status = spec.and_then(|s| s.status).unwrap_or(default_status);
        let mut body = spec
            .map(|s| s.body_template.clone())
            .unwrap_or_else(|| "{\"message\":$context.error.messageString}".to_string())
            .replace("$context.requestId", request_id)
            .replace(
                "$context.error.messageString",
                &Value::from(message).to_string(),
            );
        // API Gateway substitutes authorizer values as they are, unescaped.
        for (k, v) in authorizer {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            body = body.replace(&format!("$context.authorizer.{k}"), &text);
        }
        let mut resp = http::Response::new(axum::body::Body::from(body));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in spec.map(|s| s.headers.as_slice()).unwrap_or_default() {
            let value = match value.as_str() {
                "context.requestId" => request_id.to_string(),
                v => v.trim_matches('\'').to_string(),
            };
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(n, v);
            }
        }
        resp
    }

    /// The template route for a request: API Gateway prefers static
    /// segments over parameters, and parameters over greedy ones.
    fn route(&self, method: &Method, path: &str) -> Option<(&ApiRoute, HashMap<String, String>)> {
        self.routes
            .iter()
            .filter(|r| r.method == method.as_str() || r.method == "ANY")
            .filter_map(|r| match_template(&r.path, path).map(|(params, rank)| (r, params, rank)))
            .max_by_key(|(r, _, rank)| (*rank, r.method != "ANY"))
            .map(|(r, params, _)| (r, params))
    }

    /// Runs the authorizer on the REQUEST event API Gateway would send, or
    /// takes its cached answer for the same identity, and applies the
    /// policy to this request's method ARN. With an identity header, a
    /// request without it is refused before any authorizer runs.
    async fn authorize(&self, event: ApiGatewayCustomAuthorizerRequestTypeRequest) -> Verdict {
        let Some(method_arn) = event.method_arn.clone() else {
            return Verdict::Failure;
        };
        let identity = match self.cache.header() {
            None => None,
            Some(name) => match event
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.trim().is_empty())
            {
                Some(v) => Some(v.to_string()),
                None => return Verdict::Unauthorized,
            },
        };
        if let Some(cached) = identity.as_deref().and_then(|i| self.cache.get(i)) {
            return apply(cached, &method_arn);
        }
        let Ok(event) = roundtrip(&event) else {
            return Verdict::Failure;
        };
        let response = match keyhub_authorizer::authorize(&self.authorizer, event).await {
            Ok(r) => r,
            Err(keyhub_authorizer::AuthorizerError::Unauthorized) => return Verdict::Unauthorized,
            Err(e) => {
                tracing::error!(error = %e, "authorizer failed");
                return Verdict::Failure;
            }
        };
        let Ok(response) = roundtrip(&response) else {
            return Verdict::Failure;
        };
        if let Some(i) = &identity {
            self.cache.put(i, &response);
        }
        apply(response, &method_arn)
    }
}

/// API Gateway's verdict for one request from an authorizer's answer: an
/// explicit Deny wins, else an Allow must match the method ARN, with IAM's
/// wildcards (where `*` crosses `/`).
fn apply(response: keyhub_authorizer::Response, method_arn: &str) -> Verdict {
    let mut context = response.context;
    if let Some(p) = response.principal_id {
        context.insert("principalId".to_string(), Value::from(p));
    }
    let matching = |effect: IamPolicyEffect| {
        response.policy_document.statement.iter().any(|s| {
            s.effect == effect
                && s.action
                    .iter()
                    .any(|a| a == "execute-api:Invoke" || a == "*")
                && s.resource.iter().any(|r| iam_matches(r, method_arn))
        })
    };
    if matching(IamPolicyEffect::Deny) || !matching(IamPolicyEffect::Allow) {
        Verdict::Deny(context)
    } else {
        Verdict::Allow(context)
    }
}

/// Through JSON and back, as the event and the answer travel in AWS.
fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(
    value: &T,
) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::to_value(value)?)
}

/// Matches a resource path (`/a/{id}`, `/p/{proxy+}`) against a request path;
/// returns the path parameters and a specificity rank.
pub fn match_template(template: &str, path: &str) -> Option<(HashMap<String, String>, usize)> {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut params = HashMap::new();
    let mut rank = 0;
    for (i, seg) in t.iter().enumerate() {
        let name = seg.strip_prefix('{').and_then(|n| n.strip_suffix('}'));
        match name {
            Some(n) if n.ends_with('+') => {
                let rest = p.get(i..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(n.trim_end_matches('+').to_string(), rest);
                return Some((params, rank));
            }
            Some(n) => {
                let v = p.get(i).filter(|v| !v.is_empty())?;
                params.insert(n.to_string(), v.to_string());
                rank += 1;
            }
            None => {
                if p.get(i) != Some(seg) {
                    return None;
                }
                rank += 2;
            }
        }
    }
    (t.len() == p.len()).then_some((params, rank))
}

/// A request id shaped like API Gateway's (a UUID, version 4).
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        return keyhub::http::new_request_id();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// What API Gateway puts in an event's single-valued fields: the last value
/// of each header, and the query string parsed.
fn single_values(headers: &HeaderMap, query: Option<&str>) -> (HeaderMap, QueryMap) {
    let mut single = HeaderMap::new();
    for (name, value) in headers {
        single.insert(name.clone(), value.clone());
    }
    (single, query.unwrap_or("").parse().unwrap_or_default())
}

/// The REST proxy event for one request, as API Gateway builds it.
#[allow(clippy::too_many_arguments)]
pub fn proxy_event(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    resource: &str,
    params: HashMap<String, String>,
    request_id: &str,
    source_ip: &str,
    authorizer: HashMap<String, Value>,
) -> ApiGatewayProxyRequest {
    let (single_headers, query) = single_values(headers, query);
    let (body, is_base64_encoded) = if body.is_empty() {
        (None, false)
    } else {
        match std::str::from_utf8(body) {
            Ok(text) => (Some(text.to_string()), false),
            Err(_) => (
                Some(base64::engine::general_purpose::STANDARD.encode(body)),
                true,
            ),
        }
    };
    let mut identity = ApiGatewayRequestIdentity::default();
    identity.source_ip = Some(source_ip.to_string());
    identity.user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let now = chrono::Utc::now();
    let mut ctx = ApiGatewayProxyRequestContext::default();
    ctx.account_id = Some("000000000000".to_string());
    ctx.resource_id = Some("local".to_string());
    ctx.stage = Some(STAGE.to_string());
    ctx.domain_name = Some("127.0.0.1".to_string());
    ctx.request_id = Some(request_id.to_string());
    ctx.protocol = Some("HTTP/1.1".to_string());
    ctx.identity = identity;
    ctx.resource_path = Some(resource.to_string());
    ctx.authorizer.fields = authorizer;
    ctx.path = Some(format!("/{STAGE}{path}"));
    ctx.http_method = method.clone();
    ctx.request_time = Some(now.format("%d/%b/%Y:%H:%M:%S +0000").to_string());
    ctx.request_time_epoch = now.timestamp_millis();
    ctx.apiid = Some("local".to_string());
    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(resource.to_string());
    event.path = Some(path.to_string());
    event.http_method = method.clone();
    event.headers = single_headers;
    event.multi_value_headers = headers.clone();
    event.query_string_parameters = query.clone();
    event.multi_value_query_string_parameters = query;
    event.path_parameters = params;
    event.request_context = ctx;
    event.body = body;
    event.is_base64_encoded = is_base64_encoded;
    event
}

/// Turns a handler's response into the HTTP response API Gateway would send.
fn to_http(resp: http::Response<lambda_http::Body>) -> http::Response<axum::body::Body> {
    let (parts, body) = resp.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    http::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The REQUEST authorizer event for one request, as API Gateway builds it.
#[allow(clippy::too_many_arguments)]
pub fn authorizer_event(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    resource: &str,
    params: HashMap<String, String>,
    request_id: &str,
    source_ip: &str,
) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let (single_headers, query) = single_values(headers, query);
    let mut identity = ApiGatewayCustomAuthorizerRequestTypeRequestIdentity::default();
    identity.source_ip = Some(source_ip.to_string());
    let mut ctx = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
    ctx.path = Some(format!("/{STAGE}{path}"));
    ctx.account_id = Some("000000000000".to_string());
    ctx.resource_id = Some("local".to_string());
    ctx.stage = Some(STAGE.to_string());
    ctx.request_id = Some(request_id.to_string());
    ctx.identity = Some(identity);
    ctx.resource_path = Some(resource.to_string());
    ctx.http_method = Some(method.clone());
    ctx.apiid = Some("local".to_string());
    let mut event = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    event.type_ = Some("REQUEST".to_string());
    event.method_arn = Some(format!(
        "{REGION_ACCOUNT_API}/{STAGE}/{}{path}",
        method.as_str()
    ));
    event.resource = Some(resource.to_string());
    event.path = Some(path.to_string());
    event.http_method = Some(method.clone());
    event.headers = single_headers;
    event.multi_value_headers = headers.clone();
    event.query_string_parameters = query.clone();
    event.multi_value_query_string_parameters = query;
    event.path_parameters = params;
    event.request_context = ctx;
    event
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let request_id = new_request_id();
    let none = HashMap::new();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return gw.gateway_response(
            "REQUEST_TOO_LARGE",
            413,
            "Request Too Long",
            &request_id,
            &none,
        );
    };
    let path = parts.uri.path();
    let Some((route, params)) = gw.route(&parts.method, path) else {
        // API Gateway answers an unknown method or path itself.
        return gw.gateway_response(
            "MISSING_AUTHENTICATION_TOKEN",
            403,
            "Missing Authentication Token",
            &request_id,
            &none,
        );
    };
    let source_ip = peer.ip().to_string();
    let authorizer_context = match &route.authorizer {
        None => HashMap::new(),
        Some(_) => {
            let event = authorizer_event(
                &parts.method,
                path,
                parts.uri.query(),
                &parts.headers,
                &route.path,
                params.clone(),
                &request_id,
                &source_ip,
            );
            match gw.authorize(event).await {
                Verdict::Allow(ctx) => ctx,
                Verdict::Deny(ctx) => {
                    return gw.gateway_response(
                        "ACCESS_DENIED",
                        403,
                        "User is not authorized to access this resource",
                        &request_id,
                        &ctx,
                    );
                }
                Verdict::Unauthorized => {
                    return gw.gateway_response(
                        "UNAUTHORIZED",
                        401,
                        "Unauthorized",
                        &request_id,
                        &none,
                    );
                }
                Verdict::Failure => {
                    return gw.gateway_response(
                        "AUTHORIZER_FAILURE",
                        500,
                        "Internal server error",
                        &request_id,
                        &none,
                    );
                }
            }
        }
    };
    let event = proxy_event(
        &parts.method,
        path,
        parts.uri.query(),
        &parts.headers,
        &body,
        &route.path,
        params,
        &request_id,
        &source_ip,
        authorizer_context,
    );
    // Through JSON and lambda_http's own decoding, exactly as in Lambda.
    let request = match serde_json::to_string(&event)
        .map_err(|e| e.to_string())
        .and_then(|json| lambda_http::request::from_str(&json).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the proxy event");
            return gw.gateway_response(
                "DEFAULT_5XX",
                500,
                "Internal server error",
                &request_id,
                &none,
            );
        }
    };
    let resp = match route.function.as_str() {
        "ApiFunction" => keyhub_api::handle(&gw.api, request).await,
        "ExampleFunction" => keyhub_example::handle(&gw.example, request).await,
        other => {
            tracing::error!(function = other, "no local handler for this function");
            return gw.gateway_response(
                "DEFAULT_5XX",
                502,
                "Internal server error",
                &request_id,
                &none,
            );
        }
    };
    to_http(resp).into_response()
}

pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(gw)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(gw).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_like_api_gateway() {
        let (p, _) = match_template("/api/v1/api-keys/{id}", "/api/v1/api-keys/key_1").unwrap();
        assert_eq!(p["id"], "key_1");
        assert!(match_template("/api/v1/api-keys/{id}", "/api/v1/api-keys/").is_none());
        assert!(match_template("/api/v1/api-keys/{id}", "/api/v1/api-keys/a/b").is_none());
        let (p, _) = match_template("/p/{proxy+}", "/p/a/b/c").unwrap();
        assert_eq!(p["proxy"], "a/b/c");
        assert!(match_template("/p/{proxy+}", "/p").is_none());
        let (_, static_rank) = match_template("/a/b", "/a/b").unwrap();
        let (_, param_rank) = match_template("/a/{x}", "/a/b").unwrap();
        assert!(static_rank > param_rank);
    }
}
