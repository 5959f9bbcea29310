//! The authorizer in front of a protected API (the example routes), run by
//! the local gateway as API Gateway runs it.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use aws_lambda_events::iam::IamPolicyEffect;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

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
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("example:read")
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
    let deps = keyhub_authorizer::Deps {
        auth: app.stack.authenticator(),
        policy: app.stack.config.rate_limits.clone(),
        routes: keyhub_authorizer::routes::RouteScopes::parse(
            r#"{"GET /example/hello": "example:read", "POST /example/hello": "example:write", "GET /open": null}"#,
        )
        .unwrap(),
    };
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
async fn a_protected_request_costs_one_read_uncached_none_cached_and_one_write_per_counter() {
    let app = spawn_app().await;
    let key = app.key_with(&["example:read"]).await;
    // The key's three windows, and the enterprise plan's one (per minute).
    let counters = 4;
    for (round, reads) in [(1, 1), (2, 0), (3, 0)] {
        app.calls.reset();
        let r = app.get("/example/hello", &key).await;
        assert_eq!(r.status, StatusCode::OK);
        let calls = app.calls.snapshot();
        assert_eq!(
            calls.get("GetItem").copied().unwrap_or(0),
            reads,
            "request {round}: {calls:?}"
        );
        assert_eq!(
            calls.get("UpdateItem").copied().unwrap_or(0),
            counters,
            "request {round}: {calls:?}"
        );
        assert_eq!(
            calls.values().sum::<u64>(),
            reads + counters,
            "request {round}: {calls:?}"
        );
    }
}
