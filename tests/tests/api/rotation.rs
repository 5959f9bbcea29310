use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_old_key_works_through_the_grace_period_then_expires() {
    let app = spawn_app().await;
    let (old_key, old) = app
        .create_key(json!({"name": "svc", "scopes": ["keys:read"], "metadata": {"a": 1}, "rate_limits": {"per_day": 5}}))
        .await;
    let id = old["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            &app.admin_key,
            json!({"grace_period_seconds": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let new_key = r.body["key"].as_str().unwrap().to_string();
    assert_ne!(r.body["id"], old["id"]);
    assert_eq!(r.body["previous_key"]["id"], id);
    for field in ["name", "scopes", "metadata", "rate_limits", "environment"] {
        assert_eq!(r.body[field], old[field], "{field} carried over");
    }

    assert_eq!(
        app.get("/api/v1/whoami", &new_key).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/whoami", &old_key).await.status,
        StatusCode::OK,
        "old key in grace"
    );
    let old_now = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    assert_eq!(old_now.body["rotated_to"], r.body["id"]);
    assert!(old_now.body["expires_at"].is_string());

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let after = app.get("/api/v1/whoami", &old_key).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "api_key_expired");
    assert_eq!(
        app.get("/api/v1/whoami", &new_key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_zero_grace_rotation_retires_the_old_key_at_once() {
    let app = spawn_app().await;
    let (old_key, old) = app.create_key(json!({"name": "svc"})).await;
    // Used first, so this environment has it cached when it is rotated.
    assert_eq!(
        app.get("/api/v1/whoami", &old_key).await.status,
        StatusCode::OK
    );
    let path = format!("/api/v1/api-keys/{}/rotate", old["id"].as_str().unwrap());
    let r = app
        .post(&path, &app.admin_key, json!({"grace_period_seconds": 0}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        app.get("/api/v1/whoami", &old_key).await.code(),
        "api_key_expired"
    );

    // The default grace is a day.
    let (_, other) = app.create_key(json!({"name": "svc2"})).await;
    let r = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/api-keys/{}/rotate", other["id"].as_str().unwrap()),
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let expires = chrono::DateTime::parse_from_rfc3339(
        r.body["previous_key"]["expires_at"].as_str().unwrap(),
    )
    .unwrap();
    let in_a_day = chrono::Utc::now() + chrono::Duration::seconds(86_400);
    assert!((in_a_day - expires.to_utc()).num_seconds().abs() < 60);
}

#[tokio::test]
async fn a_key_rotates_once_and_only_while_usable() {
    let app = spawn_app().await;
    let (_, k) = app.create_key(json!({"name": "svc"})).await;
    let id = k["id"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{id}/rotate");
    assert_eq!(
        app.post(&path, &app.admin_key, json!({})).await.status,
        StatusCode::CREATED
    );
    let again = app.post(&path, &app.admin_key, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "conflict");

    let (_, paused) = app.create_key(json!({"name": "paused"})).await;
    let pid = paused["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/api-keys/{pid}"),
        &app.admin_key,
        json!({"is_active": false}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/api-keys/{pid}/rotate"),
            &app.admin_key,
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "conflict");

    let r = app
        .post(
            &path,
            &app.admin_key,
            json!({"grace_period_seconds": 40 * 86_400}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"]["field"], "grace_period_seconds");
}
