//! The management API's one entry point: find the route, let the guard check
//! the caller, run the endpoint, answer in the contract's shape. The Lambda
//! (`main.rs`), the local gateway and the tests all call `handle`.

use std::collections::HashMap;
use std::time::Instant;

use keyhub::ApiError;
use keyhub::domain::time;
use keyhub::http::guard::{Metering, Served};
use keyhub::http::request;
use keyhub::http::routes::{self, Route};
use lambda_http::{Body, Request, Response};

use crate::call::{Call, Deps, Reply};
use crate::{
    accounts, conditional, console, health, keys, usage, verify, version, webhooks, whoami,
};

#[tracing::instrument(skip_all, fields(method = %req.method(), request_id))]
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let request_id = request::request_id(&req);
    tracing::Span::current().record("request_id", request_id.as_str());
    // The version first: every answer, errors included, says which one it
    // speaks, and an unknown one is refused before anything else.
    match version::requested(version::REGISTRY, &req) {
        Ok(v) => {
            let mut resp = answer(deps, req, request_id).await;
            version::stamp(&mut resp, v);
            resp
        }
        Err(e) => {
            let mut resp = request::error(&e, &request_id);
            if let Some(current) = version::current(version::REGISTRY) {
                version::stamp(&mut resp, current);
            }
            resp
        }
    }
}

async fn answer(deps: &Deps, req: Request, request_id: String) -> Response<Body> {
    // The console's static files: no key, no metering.
    if let Some(resp) = console::serve(&req, deps.config.console, &request_id) {
        return resp;
    }
    let (route, params) = match find_route(&req) {
        Found::Route(route, params) => (route, params),
        // Answered before the key check: which methods a path has is no
        // secret (openapi.yaml publishes them), and a client that used the
        // wrong one learns so whatever its key.
        Found::OtherMethods(methods) => {
            let allow = methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return request::error(&ApiError::MethodNotAllowed { allow }, &request_id);
        }
        Found::Nothing => {
            return request::error(&ApiError::NotFound { what: "route" }, &request_id);
        }
    };
    // No key and no metering: a status page calls this.
    if route.public {
        return health::answer(deps, &request_id).await;
    }
    let endpoint = endpoint(route);
    let started = Instant::now();
    let now = time::now();
    let metering = if route.metered {
        Metering::Caller
    } else {
        Metering::None
    };
    let (reply, rate, principal) = match deps
        .guard
        .admit(&deps.auth, &req, route.scope, metering, now)
        .await
    {
        Ok(admitted) => {
            let Some(caller) = admitted.record.as_deref() else {
                return request::error(
                    &ApiError::internal("the guard admitted a caller without its key record"),
                    &request_id,
                );
            };
            let call = Call {
                deps,
                req: &req,
                principal: &admitted.principal,
                caller,
                params: &params,
                now,
                body_rule: endpoint.map_or(request::BodyRule::Optional, body_rule),
            };
            (
                dispatch(endpoint, &call).await,
                admitted.rate,
                Some(admitted.principal),
            )
        }
        Err(rejection) => (Err(rejection.error()), rejection.rate, rejection.principal),
    };
    let tag = match (&reply, endpoint) {
        (Ok((200, body)), Some(endpoint)) => entity_tag(endpoint, body),
        _ => None,
    };
    let mut resp = match reply {
        Ok((status, body)) => request::json(status, &body, &request_id),
        Err(e) => request::error(&e, &request_id),
    };
    if let Some(tag) = &tag {
        conditional::apply(&req, &mut resp, tag);
    }
    if endpoint.is_some_and(reveals_secret) {
        request::no_store(&mut resp);
    }
    let served = Served {
        req: &req,
        route: route.path,
        request_id: &request_id,
        started,
        now,
    };
    deps.guard
        .finish(&mut resp, &served, rate.as_ref(), principal.as_ref())
        .await;
    resp
}

enum Found {
    Route(&'static Route, HashMap<String, String>),
    /// A known path, but not with this method (template.yaml's `ANY` routes
    /// bring these here): 405 with these in `Allow`.
    OtherMethods(Vec<&'static lambda_http::http::Method>),
    Nothing,
}

/// The route by API Gateway's resource path when there is one (in AWS and
/// behind the local gateway), else by matching the raw path.
fn find_route(req: &Request) -> Found {
    let (found, methods) = match request::resource(req) {
        Some((resource, params)) => (
            routes::by_resource(req.method(), &resource).map(|r| (r, params)),
            routes::methods_of_resource(&resource),
        ),
        None => (
            routes::find(req.method(), req.uri().path()),
            routes::methods_of_path(req.uri().path()),
        ),
    };
    match found {
        Some((route, params)) => Found::Route(route, params),
        None if !methods.is_empty() => Found::OtherMethods(methods),
        None => Found::Nothing,
    }
}

/// Operations whose body is required in openapi.yaml; the rest read a
/// missing body as `{}`.
fn body_rule(endpoint: Endpoint) -> request::BodyRule {
    use Endpoint::*;
    match endpoint {
        CreateAccount | UpdateAccount | CreateKey | UpdateKey | BulkKeys | Verify
        | CreateWebhook | UpdateWebhook => request::BodyRule::Required,
        _ => request::BodyRule::Optional,
    }
}

/// The reads that carry an `ETag` and answer `If-None-Match`.
fn entity_tag(endpoint: Endpoint, body: &serde_json::Value) -> Option<conditional::EntityTag> {
    use Endpoint::*;
    match endpoint {
        GetKey => Some(conditional::EntityTag::of_key(body)),
        GetWebhook | ListKeys | ListWebhooks => Some(conditional::EntityTag::strong(body)),
        _ => None,
    }
}

/// Operations whose answer carries a plaintext key or a signing secret.
fn reveals_secret(endpoint: Endpoint) -> bool {
    use Endpoint::*;
    matches!(
        endpoint,
        CreateAccount | CreateKey | RotateKey | CreateWebhook | RotateWebhookSecret
    )
}

/// The endpoints, one per route of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    CreateAccount,
    GetAccount,
    UpdateAccount,
    CreateKey,
    ListKeys,
    GetKey,
    UpdateKey,
    DeleteKey,
    RotateKey,
    BulkKeys,
    WhoAmI,
    Verify,
    KeyUsage,
    Dashboard,
    AccountUsage,
    CreateWebhook,
    ListWebhooks,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    TestWebhook,
    ListDeliveries,
    GetDelivery,
    RetryDelivery,
}

fn endpoint(route: &Route) -> Option<Endpoint> {
    use lambda_http::http::Method;
    Some(match (&route.method, route.path) {
        (&Method::POST, "/api/v1/accounts") => Endpoint::CreateAccount,
        (&Method::GET, "/api/v1/accounts/{id}") => Endpoint::GetAccount,
        (&Method::PATCH, "/api/v1/accounts/{id}") => Endpoint::UpdateAccount,
        (&Method::POST, "/api/v1/api-keys") => Endpoint::CreateKey,
        (&Method::GET, "/api/v1/api-keys") => Endpoint::ListKeys,
        (&Method::GET, "/api/v1/api-keys/{id}") => Endpoint::GetKey,
        (&Method::PUT | &Method::PATCH, "/api/v1/api-keys/{id}") => Endpoint::UpdateKey,
        (&Method::DELETE, "/api/v1/api-keys/{id}") => Endpoint::DeleteKey,
        (&Method::POST, "/api/v1/api-keys/{id}/rotate") => Endpoint::RotateKey,
        (&Method::POST, "/api/v1/api-keys/bulk") => Endpoint::BulkKeys,
        (&Method::GET, "/api/v1/whoami") => Endpoint::WhoAmI,
        (&Method::POST, "/api/v1/keys/verify") => Endpoint::Verify,
        (&Method::GET, "/api/v1/api-keys/{id}/usage") => Endpoint::KeyUsage,
        (&Method::GET, "/api/v1/dashboard/stats") => Endpoint::Dashboard,
        (&Method::GET, "/api/v1/dashboard/usage") => Endpoint::AccountUsage,
        (&Method::POST, "/api/v1/webhooks") => Endpoint::CreateWebhook,
        (&Method::GET, "/api/v1/webhooks") => Endpoint::ListWebhooks,
        (&Method::GET, "/api/v1/webhooks/{id}") => Endpoint::GetWebhook,
        (&Method::PUT, "/api/v1/webhooks/{id}") => Endpoint::UpdateWebhook,
        (&Method::DELETE, "/api/v1/webhooks/{id}") => Endpoint::DeleteWebhook,
        (&Method::POST, "/api/v1/webhooks/{id}/rotate-secret") => Endpoint::RotateWebhookSecret,
        (&Method::POST, "/api/v1/webhooks/{id}/test") => Endpoint::TestWebhook,
        (&Method::GET, "/api/v1/webhooks/{id}/deliveries") => Endpoint::ListDeliveries,
        (&Method::GET, "/api/v1/webhooks/{id}/deliveries/{delivery_id}") => Endpoint::GetDelivery,
        (&Method::POST, "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry") => {
            Endpoint::RetryDelivery
        }
        _ => return None,
    })
}

async fn dispatch(endpoint: Option<Endpoint>, call: &Call<'_>) -> Reply {
    let Some(endpoint) = endpoint else {
        return Err(ApiError::NotFound { what: "route" });
    };
    match endpoint {
        Endpoint::CreateAccount => accounts::create(call).await,
        Endpoint::GetAccount => accounts::get(call).await,
        Endpoint::UpdateAccount => accounts::update(call).await,
        Endpoint::CreateKey => keys::create(call).await,
        Endpoint::ListKeys => keys::list(call).await,
        Endpoint::GetKey => keys::get(call).await,
        Endpoint::UpdateKey => keys::update(call).await,
        Endpoint::DeleteKey => keys::delete(call).await,
        Endpoint::RotateKey => keys::rotate(call).await,
        Endpoint::BulkKeys => keys::bulk(call).await,
        Endpoint::WhoAmI => whoami::get(call).await,
        Endpoint::Verify => verify::verify(call).await,
        Endpoint::KeyUsage => usage::series(call).await,
        Endpoint::Dashboard => usage::dashboard(call).await,
        Endpoint::AccountUsage => usage::account_series(call).await,
        Endpoint::CreateWebhook => webhooks::create(call).await,
        Endpoint::ListWebhooks => webhooks::list(call).await,
        Endpoint::GetWebhook => webhooks::get(call).await,
        Endpoint::UpdateWebhook => webhooks::update(call).await,
        Endpoint::DeleteWebhook => webhooks::delete(call).await,
        Endpoint::RotateWebhookSecret => webhooks::rotate_secret(call).await,
        Endpoint::TestWebhook => webhooks::test(call).await,
        Endpoint::ListDeliveries => webhooks::deliveries(call).await,
        Endpoint::GetDelivery => webhooks::delivery(call).await,
        Endpoint::RetryDelivery => webhooks::retry(call).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_in_the_table_has_an_endpoint() {
        // The public route (health) is answered before the guard.
        for route in routes::ROUTES.iter().filter(|r| !r.public) {
            assert!(endpoint(route).is_some(), "no endpoint for {route:?}");
        }
    }
}
