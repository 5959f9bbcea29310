//! The local gateway: serves the REST API on 127.0.0.1 the way API Gateway
//! does in AWS. It routes like template.yaml, answers unknown routes and
//! oversize bodies with the template's gateway responses, turns each request
//! into the proxy event API Gateway would send, and calls the same handler
//! the Lambda runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayRequestIdentity,
};
use aws_lambda_events::query_map::QueryMap;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use keyhub::routes::{self, Route};

use crate::template::{GatewayResponseSpec, Template, TemplateError};

/// API Gateway's own limit on a request body.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
pub const STAGE: &str = "local";

pub struct Gateway {
    api: keyhub_api::Deps,
    responses: Vec<GatewayResponseSpec>,
}

impl Gateway {
    pub fn new(api: keyhub_api::Deps) -> Result<Self, TemplateError> {
        Ok(Gateway {
            api,
            responses: Template::builtin()?.gateway_responses(),
        })
    }

    /// A gateway response as template.yaml declares it: its status (or the
    /// type's default), its headers, its body with `$context` filled in.
    fn gateway_response(
        &self,
        response_type: &str,
        default_status: u16,
        message: &str,
        request_id: &str,
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
        let body = spec
            .map(|s| s.body_template.as_str())
            .unwrap_or("{\"message\":$context.error.messageString}");
        let body = body.replace("$context.requestId", request_id).replace(
            "$context.error.messageString",
            &serde_json::Value::from(message).to_string(),
        );
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

/// The REST proxy event for one request, as API Gateway builds it.
#[allow(clippy::too_many_arguments)]
pub fn proxy_event(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    route: &Route,
    params: HashMap<String, String>,
    request_id: &str,
    source_ip: &str,
) -> ApiGatewayProxyRequest {
    let query: QueryMap = query.unwrap_or("").parse().unwrap_or_default();
    let mut single_headers = HeaderMap::new();
    for (name, value) in headers {
        single_headers.insert(name.clone(), value.clone());
    }
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
    ctx.resource_path = Some(route.path.to_string());
    ctx.path = Some(format!("/{STAGE}{path}"));
    ctx.http_method = method.clone();
    ctx.request_time = Some(now.format("%d/%b/%Y:%H:%M:%S +0000").to_string());
    ctx.request_time_epoch = now.timestamp_millis();
    ctx.apiid = Some("local".to_string());
    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(route.path.to_string());
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

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let request_id = new_request_id();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return gw.gateway_response("REQUEST_TOO_LARGE", 413, "Request Too Long", &request_id);
    };
    let path = parts.uri.path();
    let Some((route, params)) = routes::find(&parts.method, path) else {
        // API Gateway answers an unknown method or path itself.
        return gw.gateway_response(
            "MISSING_AUTHENTICATION_TOKEN",
            403,
            "Missing Authentication Token",
            &request_id,
        );
    };
    let event = proxy_event(
        &parts.method,
        path,
        parts.uri.query(),
        &parts.headers,
        &body,
        route,
        params,
        &request_id,
        &peer.ip().to_string(),
    );
    // Through JSON and lambda_http's own decoding, exactly as in Lambda.
    let request = match serde_json::to_string(&event)
        .map_err(|e| e.to_string())
        .and_then(|json| lambda_http::request::from_str(&json).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the proxy event");
            return gw.gateway_response("DEFAULT_5XX", 500, "Internal server error", &request_id);
        }
    };
    to_http(keyhub_api::handle(&gw.api, request).await).into_response()
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
