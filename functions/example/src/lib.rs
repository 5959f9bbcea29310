//! An example API behind the keyhub authorizer. The authorizer has checked
//! the key and the route's scope; the guard takes the key's and account's
//! rate limits, adds the `X-RateLimit-*` headers and records the request's
//! usage. Your own Rust backend does the same in a few lines.

use std::time::Instant;

use keyhub::domain::time;
use keyhub::http::guard::{Guard, Served};
use keyhub::http::request;
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub struct Deps {
    pub guard: Guard,
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let started = Instant::now();
    let now = time::now();
    let request_id = request::request_id(&req);
    let (mut resp, rate, principal) = match deps.guard.admit_authorized(&req, now).await {
        Ok(admitted) => {
            let p = &admitted.principal;
            let body = json!({
                "message": "hello from a route keyhub protects",
                "method": req.method().as_str(),
                "key_id": p.key_id,
                "account_id": p.account_id,
                "scopes": p.scopes,
                "plan": p.plan,
            });
            (
                request::json(200, &body, &request_id),
                admitted.rate,
                Some(admitted.principal),
            )
        }
        Err(rejection) => (
            request::error(&rejection.error(), &request_id),
            rejection.rate,
            rejection.principal,
        ),
    };
    let route = request::resource(&req)
        .map(|(r, _)| r)
        .unwrap_or_else(|| req.uri().path().to_string());
    let served = Served {
        req: &req,
        route: &route,
        request_id: &request_id,
        started,
        now,
    };
    deps.guard
        .finish(&mut resp, &served, rate.as_ref(), principal.as_ref())
        .await;
    resp
}
