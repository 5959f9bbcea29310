//! An example API behind the keyhub authorizer. The authorizer has checked
//! the key and the route's scope; the guard takes the key's and account's
//! rate limits and adds the `X-RateLimit-*` headers. Your own Rust backend
//! does the same in a few lines.

use keyhub::guard::{self, Guard};
use keyhub::{http, time};
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub struct Deps {
    pub guard: Guard,
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let (mut resp, rate) = match deps.guard.admit_authorized(&req, time::now()).await {
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
            (http::json(200, &body, &request_id), admitted.rate)
        }
        Err(rejection) => (http::error(&rejection.error, &request_id), rejection.rate),
    };
    guard::rate_headers(&mut resp, rate.as_ref());
    resp
}
