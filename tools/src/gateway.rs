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
use keyhub::http::auth::KeyHeader;
use keyhub_authorizer::routes::{RouteScopes, iam_matches};
use serde_json::Value;

use crate::Error;
use crate::access_log::{AccessLog, Answered, ResponseType, SeenSlot, note};
use crate::emulator::{Environment, Launch};
use crate::local::LocalStack;
use crate::template::{ApiRoute, EnvValue, GatewayResponseSpec, Template};

/// API Gateway's own limit on a request body.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
pub const STAGE: &str = "local";
/// The one REST API's id, in events and in the control-plane paths.
pub const REST_API_ID: &str = "local";
const REGION_ACCOUNT_API: &str = "arn:aws:execute-api:us-east-1:000000000000:local";

pub struct Gateway {
    api: keyhub_api::Deps,
    example: keyhub_example::Deps,
    authorizer: keyhub_authorizer::Deps,
    cache: AuthorizerCache,
    routes: Vec<ApiRoute>,
    responses: Vec<GatewayResponseSpec>,
    /// Functions in other languages, each run as a real process under the
    /// Runtime API emulator, by logical id.
    processes: HashMap<String, ProcessFunction>,
    /// The stage's access log, delivered to the usage function.
    access_log: Arc<AccessLog>,
}

/// Access-log lines per delivered batch (CloudWatch Logs batches too).
const ACCESS_LOG_BATCH: usize = 100;

/// Functions the gateway runs as processes, the way Lambda runs a managed
/// runtime: (logical id in template.yaml, its CodeUri, its Handler). A
/// test holds these to the template.
pub const PROCESS_FUNCTIONS: &[(&str, &str, &str)] = &[(
    "PythonExampleFunction",
    "functions/python-example",
    "app.handler",
)];

/// template.yaml's Globals Timeout for every function.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A function in another language: one execution environment, started on
/// the first request to one of its routes and kept warm after, as Lambda
/// keeps one; replaced if its process exits or an invocation times out.
struct ProcessFunction {
    launch: Launch,
    environment: tokio::sync::Mutex<Option<Arc<Environment>>>,
}

impl ProcessFunction {
    /// The Python runtime: `python -m awslambdaric <handler>` (Lambda's own
    /// runtime interface client, from `.local/venv`, or `KEYHUB_PYTHON`)
    /// in the function's code directory, with the template's environment.
    fn python(stack: &LocalStack, id: &str, code: &str, handler: &str) -> Result<Self, Error> {
        let root = workspace_root();
        let program = std::env::var_os("KEYHUB_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join(".local/venv/bin/python"));
        let mut env = stack.function_env(id)?;
        env.push(("_HANDLER".to_string(), handler.to_string()));
        // Python's output straight to the pipe, line by line, as in Lambda.
        env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
        Ok(ProcessFunction {
            launch: Launch {
                name: id.to_string(),
                program,
                args: vec!["-m".into(), "awslambdaric".into(), handler.to_string()],
                dir: root.join(code),
                env,
                timeout: FUNCTION_TIMEOUT,
            },
            environment: tokio::sync::Mutex::new(None),
        })
    }

    /// The warm environment, or a new one if there is none or it died.
    async fn environment(&self) -> Result<Arc<Environment>, Error> {
        let mut slot = self.environment.lock().await;
        if let Some(env) = slot.as_ref() {
            if env.alive().await {
                return Ok(env.clone());
            }
            tracing::warn!(function = %self.launch.name, "execution environment gone; starting a new one");
        }
        let env = Arc::new(Environment::start(&self.launch).await?);
        tracing::info!(function = %self.launch.name, pid = ?env.pid(), "execution environment started");
        *slot = Some(env.clone());
        Ok(env)
    }
}

/// The workspace's root, where template.yaml and `functions/` are.
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

    /// `FlushStageAuthorizersCache`: every cached answer goes.
    fn flush(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
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
            processes: PROCESS_FUNCTIONS
                .iter()
                .map(|(id, code, handler)| {
                    Ok((
                        id.to_string(),
                        ProcessFunction::python(stack, id, code, handler)?,
                    ))
                })
                .collect::<Result<_, Error>>()?,
            access_log: Arc::new(AccessLog::new(stack.usage_deps(), ACCESS_LOG_BATCH)),
        })
    }

    /// The stage's access log: `flush` it to have the usage function count
    /// every request answered so far; `run` it to deliver on a timer.
    pub fn access_log(&self) -> Arc<AccessLog> {
        self.access_log.clone()
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

    /// The management API flushes this gateway's authorizer cache after a
    /// revocation through API Gateway's own SDK call, pointed at
    /// `endpoint` (this gateway's address), as a deployment lists its
    /// caching stages in `KEYHUB_AUTHORIZER_CACHE_STAGES`.
    pub fn with_cache_flush(mut self, stack: &LocalStack, endpoint: &str) -> Self {
        self.api = stack.api_deps().with_flush(cache_flush(stack, endpoint));
        self
    }

    /// Starts the execution environment of every function that runs as a
    /// process (the Python example), so that `make dev` shows at once
    /// whether its runtime is installed, and the first request is warm.
    pub async fn warm_up(&self) -> Result<(), Error> {
        for process in self.processes.values() {
            process.environment().await?;
        }
        Ok(())
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
        resp.extensions_mut()
            .insert(ResponseType(response_type.to_string()));
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

impl Gateway {
    /// Invokes a function that runs as a process with the proxy event, and
    /// answers as API Gateway does with a Lambda proxy integration: the
    /// function's answer becomes the response; an error, a timeout or an
    /// answer that is not a proxy response is a 502.
    ///
    /// Takes its arguments by value: a future holding `&str`s across its
    /// awaits trips rustc's higher-ranked `Send` check in axum's handler.
    async fn invoke_process(
        &self,
        function: String,
        event: Value,
        request_id: String,
    ) -> axum::response::Response {
        match self.answer_of(&function, event, &request_id).await {
            Ok(resp) => resp.into_response(),
            Err(e) => {
                tracing::error!(%function, error = %e, "no usable answer from the function");
                self.gateway_response(
                    "DEFAULT_5XX",
                    502,
                    "Internal server error",
                    &request_id,
                    &HashMap::new(),
                )
            }
        }
    }

    /// The function's proxy answer as an HTTP response, or why there is none.
    async fn answer_of(
        &self,
        function: &str,
        event: Value,
        request_id: &str,
    ) -> Result<http::Response<axum::body::Body>, String> {
        let process = self.processes.get(function).ok_or("no such function")?;
        let environment = process
            .environment()
            .await
            .map_err(|e| format!("cannot start it (run `scripts/stack.sh setup`): {e}"))?;
        match environment.invoke(event).await {
            Ok(Ok(answer)) => proxy_response(&answer, request_id)
                .map_err(|e| format!("malformed Lambda proxy response: {e}")),
            Ok(Err(error)) => Err(format!("the function failed: {error}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A Lambda proxy integration's answer (`statusCode`, `headers`,
/// `multiValueHeaders`, `body`, `isBase64Encoded`) as the HTTP response
/// API Gateway sends: a header in both maps takes `multiValueHeaders`'
/// values, a base64 body is decoded, and API Gateway's request id header
/// is added.
pub fn proxy_response(
    answer: &Value,
    request_id: &str,
) -> Result<http::Response<axum::body::Body>, String> {
    let object = answer
        .as_object()
        .ok_or_else(|| format!("not an object: {answer}"))?;
    let allowed = [
        "statusCode",
        "headers",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
    ];
    if let Some(k) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unexpected field {k}"));
    }
    let status = object
        .get("statusCode")
        .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()))
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("statusCode is missing or not a status")?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &Value| -> Result<(), String> {
        let Some(value) = text(value) else {
            return Ok(());
        };
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
        headers.append(name, value);
        Ok(())
    };
    let multi = object.get("multiValueHeaders").and_then(Value::as_object);
    for (name, values) in multi.into_iter().flatten() {
        for v in values.as_array().into_iter().flatten() {
            add(name, v)?;
        }
    }
    let single = object.get("headers").and_then(Value::as_object);
    for (name, v) in single.into_iter().flatten() {
        let in_multi = multi.is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(name)));
        if !in_multi {
            add(name, v)?;
        }
    }
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(request_id).map_err(|e| e.to_string())?,
    );
    let body = object.get("body").and_then(text).unwrap_or_default();
    let bytes = if object.get("isBase64Encoded") == Some(&Value::Bool(true)) {
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("body is not base64: {e}"))?
    } else {
        body.into_bytes()
    };
    let mut resp = http::Response::new(axum::body::Body::from(bytes));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
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
        return keyhub::http::request::new_request_id();
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

/// Header values as text for the events: HTTP/1.1 header bytes beyond
/// ASCII are ISO-8859-1 (RFC 9110 §5.5 calls them obs-text), and an event is
/// JSON, so a value that is not UTF-8 already is read as Latin-1 and written
/// as UTF-8 (API Gateway's event is JSON too; how it decodes such bytes is
/// not documented, and the functions treat non-ASCII values as unknown
/// either way). Without this a client's `If-None-Match: ê` (one byte, 0xEA,
/// as schemathesis sends it) could not be put into the event at all and the
/// local gateway answered 500.
fn latin1_as_utf8(headers: HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        let value = match std::str::from_utf8(value.as_bytes()) {
            Ok(_) => value.clone(),
            Err(_) => {
                let text: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
                HeaderValue::from_str(&text).unwrap_or_else(|_| value.clone())
            }
        };
        out.append(name.clone(), value);
    }
    out
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
    ctx.apiid = Some(REST_API_ID.to_string());
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
    ctx.apiid = Some(REST_API_ID.to_string());
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

/// A flusher of this gateway's one stage through the gateway at
/// `endpoint`, for the API (`Gateway::with_cache_flush`) and the sweeper.
pub fn cache_flush(stack: &LocalStack, endpoint: &str) -> Option<keyhub::aws::flush::CacheFlush> {
    let sdk = stack.sdk.to_builder().endpoint_url(endpoint).build();
    let stage = keyhub::aws::flush::Stage {
        region: "us-east-1".to_string(),
        rest_api_id: REST_API_ID.to_string(),
        stage: STAGE.to_string(),
    };
    keyhub::aws::flush::CacheFlush::new(&sdk, vec![stage], stack.config.aws.side_effect)
}

/// API Gateway's control-plane call `FlushStageAuthorizersCache`, `DELETE
/// /restapis/{id}/stages/{stage}/cache/authorizers`, for this gateway's one
/// API and stage (both `local`): 202 and an empty cache, as API Gateway
/// answers; another stage is a `NotFoundException`, an unsigned call a
/// `MissingAuthenticationTokenException`. `None` for any other request.
fn control_plane(
    gw: &Gateway,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<axum::response::Response> {
    let rest = path.strip_prefix("/restapis/")?;
    let (api, rest) = rest.split_once('/')?;
    let stage = rest
        .strip_prefix("stages/")?
        .strip_suffix("/cache/authorizers")?;
    if method != Method::DELETE {
        return None;
    }
    let error = |status: StatusCode, kind: &'static str, message: &str| {
        let mut resp = (
            status,
            serde_json::json!({ "message": message }).to_string(),
        )
            .into_response();
        resp.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(kind));
        resp
    };
    let signed = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "));
    if !signed {
        return Some(error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    }
    if api != REST_API_ID || stage != STAGE {
        return Some(error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "Invalid stage identifier specified",
        ));
    }
    gw.cache.flush();
    tracing::info!(api, stage, "authorizer cache flushed");
    Some(StatusCode::ACCEPTED.into_response())
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    if let Some(resp) = control_plane(&gw, req.method(), req.uri().path(), req.headers()) {
        return resp;
    }
    let request_id = new_request_id();
    let none = HashMap::new();
    let (mut parts, body) = req.into_parts();
    parts.headers = latin1_as_utf8(parts.headers);
    let seen = parts.extensions.get::<SeenSlot>().cloned();
    note(seen.as_ref(), |s| s.request_id = Some(request_id.clone()));
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
    note(seen.as_ref(), |s| {
        s.resource_path = Some(route.path.clone())
    });
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
            let verdict = gw.authorize(event).await;
            if let Verdict::Allow(ctx) | Verdict::Deny(ctx) = &verdict {
                note(seen.as_ref(), |s| s.authorizer = ctx.clone());
            }
            match verdict {
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
    if gw.processes.contains_key(&route.function) {
        let function = route.function.clone();
        return match serde_json::to_value(&event) {
            Ok(event) => gw.invoke_process(function, event, request_id).await,
            Err(_) => gw.gateway_response(
                "DEFAULT_5XX",
                500,
                "Internal server error",
                &request_id,
                &none,
            ),
        };
    }
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

/// Writes the access-log line of every request the gateway answers (the
/// control plane's calls aside: they are not the stage's).
async fn logged(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let request_time_ms = chrono::Utc::now().timestamp_millis();
    let slot = SeenSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().to_string();
    let resp = handle(State(gw.clone()), ConnectInfo(peer), req).await;
    let seen = slot.lock().map(|s| s.clone()).unwrap_or_default();
    if seen.request_id.is_some() {
        let response_type = resp
            .extensions()
            .get::<ResponseType>()
            .map(|t| t.0.as_str());
        gw.access_log.write(crate::access_log::line(&Answered {
            seen: &seen,
            method: &method,
            source_ip: &peer.ip().to_string(),
            status: resp.status().as_u16(),
            response_type,
            latency: started.elapsed(),
            request_time_ms,
        }));
    }
    resp
}

pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(logged).with_state(gw)
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

    fn body(resp: http::Response<axum::body::Body>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn proxy_answers_become_responses_as_api_gateway_makes_them() {
        let resp = proxy_response(
            &serde_json::json!({
                "statusCode": 201,
                "headers": {"Content-Type": "text/plain", "X-One": "single"},
                "multiValueHeaders": {"x-one": ["a", "b"], "Set-Cookie": ["c=1", "d=2"]},
                "body": "aGk=",
                "isBase64Encoded": true,
            }),
            "req-1",
        )
        .unwrap();
        assert_eq!(resp.status(), 201);
        let h = resp.headers();
        assert_eq!(h["content-type"], "text/plain");
        // multiValueHeaders win over headers for the same name.
        assert_eq!(h.get_all("x-one").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        assert_eq!(h["x-amzn-requestid"], "req-1");
        assert_eq!(body(resp), b"hi");

        let empty = proxy_response(&serde_json::json!({"statusCode": 204}), "r").unwrap();
        assert_eq!(empty.status(), 204);
        assert!(body(empty).is_empty());
    }

    #[test]
    fn malformed_proxy_answers_are_refused() {
        for bad in [
            serde_json::json!("hello"),
            serde_json::json!({"body": "no status"}),
            serde_json::json!({"statusCode": 99}),
            serde_json::json!({"statusCode": 200, "extra": 1}),
            serde_json::json!({"statusCode": 200, "body": "*", "isBase64Encoded": true}),
            serde_json::json!({"statusCode": 200, "headers": {"bad name": "v"}}),
        ] {
            assert!(proxy_response(&bad, "r").is_err(), "{bad}");
        }
    }
}
