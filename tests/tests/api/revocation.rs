//! Revocation through API Gateway's authorizer cache: a key change that a
//! cached answer would contradict flushes the stage's cache
//! (`FlushStageAuthorizersCache`, the API's real SDK call, answered by the
//! local gateway's control-plane endpoint), so with a 300 s cache a revoked
//! key is refused at once; a change the answer does not depend on leaves
//! the cache alone.

use std::time::Duration;

use keyhub::http::auth::KeyHeader;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Resp, TestApp, spawn_app_served};

const TABLE: &str = r#"{"GET /invoices/{id}": "invoices:read"}"#;

/// The authorizer's own in-process cache off, so that the delay left is
/// API Gateway's cache alone; that one at 300 s. `flush`: whether the API
/// flushes it (the stage listed) or not (a stage nobody told keyhub of).
async fn cached_app(flush: bool) -> TestApp {
    let env = [
        ("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS),
        ("KEYHUB_AUTH_CACHE_TTL_SECONDS", "0"),
        ("KEYHUB_AUTH_NEGATIVE_CACHE_TTL_SECONDS", "0"),
    ];
    spawn_app_served(&env, |gateway, stack, base| {
        let gateway = gateway
            .with_protected_route("GET", "/invoices/{id}")
            .with_authorizer(stack, TABLE, KeyHeader::XApiKey, Duration::from_secs(300))
            .expect("a cacheable table");
        if flush {
            gateway.with_cache_flush(stack, base)
        } else {
            gateway
        }
    })
    .await
}

async fn invoice(app: &TestApp, key: &str) -> Resp {
    app.raw(
        app.client
            .request(Method::GET, app.url("/invoices/1"))
            .header("x-api-key", key),
    )
    .await
}

/// DynamoDB reads so far: the authorizer's key lookups (its own cache is
/// off), so a request answered from API Gateway's cache adds none.
fn reads(app: &TestApp) -> u64 {
    let calls = app.calls.snapshot();
    calls
        .iter()
        .filter(|(op, _)| matches!(op.as_str(), "GetItem" | "Query" | "BatchGetItem"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_through_a_300_s_cache() {
    let app = cached_app(true).await;
    let id_of = |k: &serde_json::Value| k["id"].as_str().unwrap().to_string();
    // (what, method, path under the key, body, then the refusal's status
    // and, for a 403, its code: a 401's body is the gateway's own).
    let revocations = [
        (
            "deleted",
            Method::DELETE,
            "",
            None,
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            "deactivated",
            Method::PATCH,
            "",
            Some(json!({"is_active": false})),
            StatusCode::FORBIDDEN,
            Some("api_key_inactive"),
        ),
        (
            "rotated with no grace",
            Method::POST,
            "/rotate",
            Some(json!({"grace_period_seconds": 0})),
            StatusCode::UNAUTHORIZED,
            None,
        ),
    ];
    for (what, method, suffix, body, status, code) in revocations {
        let (key, k) = app
            .create_key(json!({"name": what, "scopes": ["invoices:read"]}))
            .await;
        let r = invoice(&app, &key).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
        // Now cached for 300 s: the next request reaches no authorizer.
        let before = reads(&app);
        assert_eq!(invoice(&app, &key).await.status, StatusCode::OK);
        assert_eq!(reads(&app), before, "{what}: not answered from the cache");

        let path = format!("/api/v1/api-keys/{}{suffix}", id_of(&k));
        let r = app.call(method, &path, Some(&app.admin_key), body).await;
        assert!(r.status.is_success(), "{what}: {} {}", r.status, r.body);
        let r = invoice(&app, &key).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        if let Some(code) = code {
            assert_eq!(r.code(), code, "{what}");
        }
    }

    // Without the flush (a stage keyhub was not told of), the same delete
    // leaves the cached answer working: what the flush takes away.
    let unflushed = cached_app(false).await;
    let (key, k) = unflushed
        .create_key(json!({"name": "cached", "scopes": ["invoices:read"]}))
        .await;
    assert_eq!(invoice(&unflushed, &key).await.status, StatusCode::OK);
    let r = unflushed
        .delete(
            &format!("/api/v1/api-keys/{}", id_of(&k)),
            &unflushed.admin_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(invoice(&unflushed, &key).await.status, StatusCode::OK);
}

/// A rotated key's grace ends with no request to the API: the sweeper,
/// marking it expired, flushes the cache that still lets it through.
#[tokio::test]
async fn the_sweeper_flushes_when_a_rotated_keys_grace_ends() {
    let app = cached_app(true).await;
    let (old, k) = app
        .create_key(json!({"name": "rotating", "scopes": ["invoices:read"]}))
        .await;
    let r = app
        .post(
            &format!("/api/v1/api-keys/{}/rotate", k["id"].as_str().unwrap()),
            &app.admin_key,
            json!({"grace_period_seconds": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Cached within the grace, then past it: the cache still says yes.
    assert_eq!(invoice(&app, &old).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(invoice(&app, &old).await.status, StatusCode::OK);

    let mut sweeper = app.stack.sweeper_deps().expect("sweeper");
    sweeper.flush = keyhub_tools::gateway::cache_flush(&app.stack, &app.base);
    let report = keyhub_sweeper::sweep(&sweeper, keyhub::domain::time::now())
        .await
        .unwrap();
    assert!(report.expired >= 1, "{report:?}");
    assert_eq!(invoice(&app, &old).await.status, StatusCode::UNAUTHORIZED);
    let new = r.body["key"].as_str().unwrap();
    assert_eq!(invoice(&app, new).await.status, StatusCode::OK);
}

#[tokio::test]
async fn only_a_change_the_cached_answer_depends_on_flushes() {
    let app = cached_app(true).await;
    let (key, k) = app
        .create_key(json!({"name": "steady", "scopes": ["invoices:read", "x:read"]}))
        .await;
    let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
    assert_eq!(invoice(&app, &key).await.status, StatusCode::OK);

    // A new name, description or metadata: the cache keeps its answers.
    let r = app
        .patch(
            &path,
            &app.admin_key,
            json!({"name": "renamed", "description": "d", "metadata": {"team": "a"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = reads(&app);
    assert_eq!(invoice(&app, &key).await.status, StatusCode::OK);
    assert_eq!(reads(&app), before, "a rename flushed the cache");

    // Re-scoped: flushed, and the new scopes apply to the next request.
    let r = app
        .patch(&path, &app.admin_key, json!({"scopes": ["x:read"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = invoice(&app, &key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "insufficient_scope");
}

/// The control-plane endpoint answers as API Gateway's does: a signed call
/// for this gateway's stage is 202, another stage is NotFoundException,
/// an unsigned call is refused.
#[tokio::test]
async fn the_local_gateway_flushes_like_api_gateways_control_plane() {
    let app = cached_app(true).await;
    let sdk = app.stack.sdk.to_builder().endpoint_url(&app.base).build();
    let client = aws_sdk_apigateway::Client::new(&sdk);
    client
        .flush_stage_authorizers_cache()
        .rest_api_id("local")
        .stage_name("local")
        .send()
        .await
        .expect("the gateway's own stage is flushed");
    let e = client
        .flush_stage_authorizers_cache()
        .rest_api_id("local")
        .stage_name("prod")
        .send()
        .await
        .expect_err("no such stage");
    assert!(
        e.as_service_error()
            .is_some_and(|e| e.is_not_found_exception()),
        "{e:?}"
    );
    let r = app
        .raw(
            app.client
                .delete(app.url("/restapis/local/stages/local/cache/authorizers")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
