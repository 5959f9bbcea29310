//! What `keys:write` lets a key do to other keys, and to itself: no way up
//! (scopes, expiry, limits), and no way back for a rotated or expired key.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn path(k: &Value) -> String {
    format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap())
}

fn in_secs(s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(s)).to_rfc3339()
}

async fn key(app: &TestApp, body: Value) -> (String, Value) {
    app.create_key(body).await
}

#[tokio::test]
async fn a_rotated_key_cannot_be_given_back_its_life() {
    let app = spawn_app().await;
    let (_, x) = key(&app, json!({"name": "x"})).await;
    let r = app
        .post(
            &format!("{}/rotate", path(&x)),
            &app.admin_key,
            json!({"grace_period_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for expires_at in [Value::Null, Value::from(in_secs(30 * 86_400))] {
        let r = app
            .patch(
                &path(&x),
                &app.admin_key,
                json!({ "expires_at": expires_at }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.code(), "conflict");
    }
    // Its other settings can still change.
    let r = app
        .patch(&path(&x), &app.admin_key, json!({"name": "retiring"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn an_expired_key_cannot_be_revived() {
    let app = spawn_app().await;
    let (_, k) = key(&app, json!({"name": "brief", "expires_at": in_secs(2)})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for body in [
        json!({"expires_at": null}),
        json!({"expires_at": in_secs(3600)}),
        json!({"is_active": true}),
    ] {
        let r = app.patch(&path(&k), &app.admin_key, body.clone()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{body}: {}", r.body);
    }
}

#[tokio::test]
async fn a_narrow_key_cannot_change_or_delete_a_broader_one() {
    let app = spawn_app().await;
    let narrow = app.key_with(&["keys:write", "keys:read"]).await;
    let (_, broad) = key(
        &app,
        json!({"name": "broad", "scopes": ["keys:write", "keys:read", "webhooks:write"]}),
    )
    .await;
    for body in [
        json!({"is_active": false}),
        json!({"rate_limits": {"per_minute": 1}}),
        json!({"name": "mine now"}),
    ] {
        let r = app.patch(&path(&broad), &narrow, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.code(), "insufficient_scope");
    }
    let r = app.delete(&path(&broad), &narrow).await;
    assert_eq!(r.code(), "insufficient_scope");
    let r = app
        .post(&format!("{}/rotate", path(&broad)), &narrow, json!({}))
        .await;
    assert_eq!(r.code(), "insufficient_scope");
    // The broader key is untouched, and the admin key may do all of it.
    let r = app.get(&path(&broad), &app.admin_key).await;
    assert_eq!(r.body["is_active"], true);
    assert_eq!(r.body["name"], "broad");
    assert_eq!(
        app.delete(&path(&broad), &app.admin_key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_cannot_extend_its_own_life_or_limits() {
    let app = spawn_app().await;
    let (me, my) = key(
        &app,
        json!({"name": "self", "scopes": ["keys:write", "keys:read"],
               "expires_at": in_secs(3600), "rate_limits": {"per_minute": 10}}),
    )
    .await;
    for body in [
        json!({"expires_at": null}),
        json!({"expires_at": in_secs(7200)}),
        json!({"rate_limits": {"per_minute": 11}}),
        json!({"rate_limits": null}),
    ] {
        let r = app.patch(&path(&my), &me, body.clone()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{body}: {}", r.body);
    }
    for body in [
        json!({"expires_at": in_secs(1800)}),
        json!({"rate_limits": {"per_minute": 5}}),
    ] {
        let r = app.patch(&path(&my), &me, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.body);
    }
}

#[tokio::test]
async fn a_child_key_gets_no_more_time_or_quota_than_its_maker() {
    let app = spawn_app().await;
    let maker_expiry = in_secs(3600);
    let (maker, _) = key(
        &app,
        json!({"name": "maker", "scopes": ["keys:write", "keys:read"],
               "expires_at": maker_expiry, "rate_limits": {"per_minute": 10, "per_hour": 100}}),
    )
    .await;
    for body in [
        json!({"name": "c", "expires_at": in_secs(7200)}),
        json!({"name": "c", "rate_limits": {"per_minute": 50}}),
    ] {
        let r = app.post("/api/v1/api-keys", &maker, body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["details"]["required_scope"], "keys:admin");
    }
    // Asking for nothing inherits the maker's bounds.
    let (_, child) = app
        .create_key_as(&maker, json!({"name": "child", "scopes": ["keys:read"]}))
        .await;
    let expiry =
        chrono::DateTime::parse_from_rfc3339(child["expires_at"].as_str().unwrap()).unwrap();
    let bound = chrono::DateTime::parse_from_rfc3339(&maker_expiry).unwrap();
    assert!(expiry <= bound, "{expiry} after {bound}");
    assert_eq!(child["rate_limits"]["per_minute"], 10);
    assert_eq!(child["rate_limits"]["per_hour"], 100);
    // ...and the maker cannot lift them later.
    let r = app
        .patch(&path(&child), &maker, json!({"expires_at": null}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // The admin key (scope *, so keys:admin) is not bounded.
    let r = app
        .post(
            "/api/v1/api-keys",
            &app.admin_key,
            json!({"name": "big", "rate_limits": {"per_minute": 5000}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn an_account_holds_at_most_its_cap_of_keys_and_rotation_never_fails_on_it() {
    let app = crate::helpers::spawn_app_with(&[
        ("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS),
        ("KEYHUB_MAX_KEYS_PER_ACCOUNT", "3"),
    ])
    .await;
    // The admin key is the first of three.
    let (_, a) = key(&app, json!({"name": "a"})).await;
    let (_, b) = key(&app, json!({"name": "b"})).await;
    let r = app
        .post("/api/v1/api-keys", &app.admin_key, json!({"name": "c"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains('3'));
    // Rotating replaces a key, so the cap does not stop it.
    let r = app
        .post(
            &format!("{}/rotate", path(&a)),
            &app.admin_key,
            json!({"grace_period_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for k in [&a, &b] {
        assert_eq!(
            app.delete(&path(k), &app.admin_key).await.status,
            StatusCode::OK
        );
    }
    let r = app
        .post("/api/v1/api-keys", &app.admin_key, json!({"name": "c"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .post("/api/v1/api-keys", &app.admin_key, json!({"name": "d"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
}
