//! The authorizer in front of a protected API (the example routes), run by
//! the local gateway as API Gateway runs it.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use aws_lambda_events::iam::IamPolicyEffect;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Resp, TestApp, spawn_app, spawn_app_configured, spawn_app_with};

#[tokio::test]
async fn gateway_responses_carry_the_contract_shape_for_401_and_403() {
    let app = spawn_app().await;
    let r = app.call(Method::GET, "/example/hello", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_api_key");
    let r = app.get("/example/hello", "kh_live_garbage").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let unscoped = app.key_with(&["keys:read"]).await;
    let r = app.get("/example/hello", &unscoped).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "insufficient_scope");
    // A cached answer serves every route, so it names the key's scopes,
    // not the route's.
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys:read"),
        "{}",
        r.body
    );

    let (paused, k) = app
        .create_key(json!({"name": "paused", "scopes": ["example:read"]}))
        .await;
    app.patch(
        &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
        &app.admin_key,
        json!({"is_active": false}),
    )
    .await;
    let r = app.get("/example/hello", &paused).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "api_key_inactive");
}

#[tokio::test]
async fn the_route_table_decides_per_method_with_wildcards() {
    let app = spawn_app().await;
    let reader = app.key_with(&["example:read"]).await;
    let writer = app.key_with(&["example:*"]).await;

    let r = app.get("/example/hello", &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["scopes"], json!(["example:read"]));
    assert!(r.header("x-ratelimit-limit").is_some());
    let r = app.post("/example/hello", &reader, json!({})).await;
    assert_eq!(r.code(), "insufficient_scope");

    assert_eq!(
        app.post("/example/hello", &writer, json!({})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/example/hello", &app.admin_key).await.status,
        StatusCode::OK
    );
    // X-API-Key works behind the authorizer too.
    let r = app
        .raw(
            app.client
                .get(app.url("/example/hello"))
                .header("x-api-key", &reader),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn the_guard_behind_the_authorizer_answers_429() {
    let app = spawn_app().await;
    let (key, _) = app
        .create_key(
            json!({"name": "slow", "scopes": ["example:read"], "rate_limits": {"per_minute": 2}}),
        )
        .await;
    let into = chrono::Utc::now().timestamp() % 60;
    if into > 55 {
        tokio::time::sleep(Duration::from_secs((61 - into) as u64)).await;
    }
    for left in ["1", "0"] {
        let r = app.get("/example/hello", &key).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-ratelimit-remaining"), Some(left));
    }
    let r = app.get("/example/hello", &key).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limit_exceeded");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
}

#[tokio::test]
async fn an_allow_lists_every_route_the_key_may_call_so_a_cached_answer_stays_right() {
    let app = spawn_app().await;
    let reader = app.key_with(&["example:read"]).await;
    let deps = keyhub_authorizer::Deps::new(
        app.stack.authenticator(),
        app.stack.config.rate_limits.clone(),
        keyhub_authorizer::routes::RouteScopes::parse(
            r#"{"GET /example/hello": "example:read", "POST /example/hello": "example:write", "GET /open": null}"#,
        )
        .unwrap(),
        keyhub::http::auth::KeyHeader::XApiKey,
    )
    .unwrap();
    let event: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/GET/example/hello",
        "resource": "/example/hello",
        "path": "/example/hello",
        "httpMethod": "GET",
        "headers": {"X-API-Key": reader},
        "requestContext": {"requestId": "r1", "stage": "v1", "httpMethod": "GET", "resourcePath": "/example/hello"}
    }))
    .unwrap();
    let resp = keyhub_authorizer::authorize(&deps, event).await.unwrap();
    let statement = &resp.policy_document.statement[0];
    assert_eq!(statement.effect, IamPolicyEffect::Allow);
    let base = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1";
    let mut resources = statement.resource.clone();
    resources.sort();
    assert_eq!(
        resources,
        vec![
            format!("{base}/GET/example/hello"),
            format!("{base}/GET/open")
        ]
    );
    assert_eq!(resp.context["scopes"], "example:read");
    assert!(resp.principal_id.unwrap().starts_with("key_"));
}

#[tokio::test]
async fn a_revoked_key_is_rejected_everywhere_within_the_cache_ttl() {
    let app = spawn_app_with(&[
        ("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS),
        ("KEYHUB_AUTH_CACHE_TTL_SECONDS", "1"),
    ])
    .await;
    let (key, k) = app
        .create_key(json!({"name": "revoked", "scopes": ["example:read"]}))
        .await;
    // The authorizer's environment has now seen (and cached) the key.
    assert_eq!(app.get("/example/hello", &key).await.status, StatusCode::OK);
    app.delete(
        &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
        &app.admin_key,
    )
    .await;
    // The management API changed it, so its own environment knows at once...
    assert_eq!(
        app.get("/api/v1/whoami", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    // ...and every other environment once its cache entry expires.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app.get("/example/hello", &key).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_protected_request_costs_one_read_uncached_none_cached_and_one_write_per_subject() {
    let app = spawn_app().await;
    // No window turns over during the test (the minute is the shortest).
    crate::helpers::clear_of_minute_boundary().await;
    let started = chrono::Utc::now().timestamp();
    let key = app.key_with(&["example:read"]).await;
    // One write for the key's item (its three windows) and one for the
    // account's (the enterprise plan's minute), which making the key through
    // the API has already started; the key's first request makes its item,
    // which takes one more.
    for (round, reads, writes) in [(1, 1, 3), (2, 0, 2), (3, 0, 2)] {
        app.calls.reset();
        let r = app.get("/example/hello", &key).await;
        assert_eq!(r.status, StatusCode::OK);
        let calls = app.calls.snapshot();
        assert_eq!(
            calls.get("GetItem").copied().unwrap_or(0),
            reads,
            "request {round}: {calls:?}"
        );
        // Unless a loaded machine let the minute turn over since the key
        // was made: that costs each subject one more write, once.
        let most = writes + 2 * crate::helpers::minutes_since(started);
        let updates = calls.get("UpdateItem").copied().unwrap_or(0);
        assert!(
            (writes..=most).contains(&updates),
            "request {round}: {calls:?}"
        );
        assert_eq!(
            calls.values().sum::<u64>(),
            reads + updates,
            "request {round}: {calls:?}"
        );
    }
}

/// A user's API with nested routes and `ANY` beside a method on one path,
/// behind an authorizer whose answers API Gateway caches by `X-API-Key`.
const NESTED: &str = r#"{
    "GET /invoices/{id}": "invoices:read",
    "GET /invoices/{id}/refunds": "refunds:read",
    "ANY /x/{id}": "x:write",
    "GET /x/{id}": "x:read"
}"#;

async fn cached_app(env: &[(&str, &str)], ttl: Duration) -> TestApp {
    spawn_app_configured(env, |gateway, stack| {
        gateway
            .with_protected_route("GET", "/invoices/{id}")
            .with_protected_route("GET", "/invoices/{id}/refunds")
            // Behind the authorizer but missing from its table.
            .with_protected_route("GET", "/invoices/{id}/secret")
            .with_protected_route("ANY", "/x/{id}")
            .with_protected_route("GET", "/x/{id}")
            .with_authorizer(stack, NESTED, keyhub::http::auth::KeyHeader::XApiKey, ttl)
            .expect("a cacheable table")
    })
    .await
}

async fn with_x_api_key(app: &TestApp, method: Method, path: &str, key: &str) -> Resp {
    app.raw(
        app.client
            .request(method, app.url(path))
            .header("x-api-key", key),
    )
    .await
}

#[tokio::test]
async fn a_cached_allow_reaches_no_route_the_key_may_not_call() {
    let app = cached_app(
        &[("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS)],
        Duration::from_secs(300),
    )
    .await;
    let reader = app.key_with(&["invoices:read"]).await;
    // The first answer is cached for the key, and then applies to all of these.
    let r = with_x_api_key(&app, Method::GET, "/invoices/1", &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for path in ["/invoices/2/refunds", "/invoices/2/secret"] {
        let r = with_x_api_key(&app, Method::GET, path, &reader).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        assert_eq!(r.code(), "insufficient_scope");
    }
    assert_eq!(
        with_x_api_key(&app, Method::GET, "/invoices/3", &reader)
            .await
            .status,
        StatusCode::OK
    );

    // ANY on a path, and a method of the same path needing another scope.
    let writer = app.key_with(&["x:write"]).await;
    let r = with_x_api_key(&app, Method::POST, "/x/1", &writer).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = with_x_api_key(&app, Method::GET, "/x/1", &writer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = with_x_api_key(&app, Method::DELETE, "/x/2", &writer).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_cached_refusal_keeps_the_keys_other_routes_open() {
    let app = cached_app(
        &[("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS)],
        Duration::from_secs(300),
    )
    .await;
    let reader = app.key_with(&["invoices:read", "x:read"]).await;
    // Refused first: that answer is what the cache now holds for the key.
    let r = with_x_api_key(&app, Method::GET, "/invoices/1/refunds", &reader).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for path in ["/invoices/1", "/x/9"] {
        let r = with_x_api_key(&app, Method::GET, path, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    let r = with_x_api_key(&app, Method::PUT, "/x/9", &reader).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// The local gateway caches as API Gateway does: by the identity header's
/// value, for the TTL, so a deleted key still passes until its answer
/// expires; with a TTL of 0 every request reaches the authorizer; a request
/// without the identity header never does.
#[tokio::test]
async fn the_gateway_caches_answers_by_identity_header_for_the_ttl() {
    // The authorizer's own in-process cache off, so only the gateway's counts.
    let env = [
        ("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS),
        ("KEYHUB_AUTH_CACHE_TTL_SECONDS", "0"),
        ("KEYHUB_AUTH_NEGATIVE_CACHE_TTL_SECONDS", "0"),
    ];
    for ttl in [Duration::from_secs(2), Duration::ZERO] {
        let app = cached_app(&env, ttl).await;
        let (key, k) = app
            .create_key(json!({"name": "soon gone", "scopes": ["invoices:read"]}))
            .await;
        assert_eq!(
            with_x_api_key(&app, Method::GET, "/invoices/1", &key)
                .await
                .status,
            StatusCode::OK
        );
        app.delete(
            &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
        let r = with_x_api_key(&app, Method::GET, "/invoices/2", &key).await;
        let expected = if ttl.is_zero() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status, expected, "ttl {ttl:?}");
        tokio::time::sleep(ttl + Duration::from_millis(300)).await;
        let r = with_x_api_key(&app, Method::GET, "/invoices/2", &key).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "ttl {ttl:?}");
        // The key in Authorization is not the identity source: refused
        // before any authorizer runs.
        let r = app.get("/invoices/1", &app.admin_key).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn only_the_identity_header_is_read_and_two_keys_are_refused() {
    let app = cached_app(
        &[("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS)],
        Duration::from_secs(300),
    )
    .await;
    let (revoked, k) = app
        .create_key(json!({"name": "revoked", "scopes": ["invoices:read"]}))
        .await;
    app.delete(
        &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
        &app.admin_key,
    )
    .await;
    let valid = app.key_with(&["invoices:read"]).await;
    // The cache files answers under X-API-Key: a valid Bearer beside a
    // revoked X-API-Key must not become an Allow filed under the revoked key.
    let r = app
        .raw(
            app.client
                .get(app.url("/invoices/1"))
                .header("x-api-key", &revoked)
                .bearer_auth(&valid),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = with_x_api_key(&app, Method::GET, "/invoices/1", &revoked).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Another system's token in Authorization does not hide a valid X-API-Key.
    let r = app
        .raw(
            app.client
                .get(app.url("/invoices/1"))
                .header("x-api-key", &valid)
                .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The management API refuses two different keys too.
    let r = app
        .raw(
            app.client
                .get(app.url("/api/v1/whoami"))
                .header("x-api-key", &valid)
                .bearer_auth(&app.admin_key),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_api_key");
}

#[tokio::test]
async fn a_table_that_cannot_be_cached_safely_stops_the_authorizer() {
    let app = spawn_app().await;
    let unsafe_table =
        r#"{"GET /a/{x}": "s:one", "GET /a/{x}/b/{y}": "s:two", "GET /a/{x}/b/{y}/c": "s:one"}"#;
    let table = keyhub_authorizer::routes::RouteScopes::parse(unsafe_table).unwrap();
    let cached = keyhub_authorizer::Deps::new(
        app.stack.authenticator(),
        app.stack.config.rate_limits.clone(),
        table.clone(),
        keyhub::http::auth::KeyHeader::XApiKey,
    );
    assert!(cached.is_err());
    // Uncached (no identity header), every answer serves one request: fine.
    assert!(
        keyhub_authorizer::Deps::new(
            app.stack.authenticator(),
            app.stack.config.rate_limits.clone(),
            table,
            keyhub::http::auth::KeyHeader::Either,
        )
        .is_ok()
    );
}
