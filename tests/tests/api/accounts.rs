use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_account_comes_with_a_working_admin_key_without_accounts_write() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/accounts",
            &app.admin_key,
            json!({"name": "Acme", "plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["account"]["name"], "Acme");
    assert_eq!(r.body["account"]["plan"], "pro");
    assert_eq!(
        r.body["api_key"]["scopes"],
        json!(["keys:*", "usage:*", "webhooks:*"])
    );
    let key = r.body["api_key"]["key"].as_str().unwrap();

    let me = app.get("/api/v1/whoami", key).await;
    assert_eq!(me.body["account"]["id"], r.body["account"]["id"]);
    assert_eq!(me.body["plan"], "pro");
    assert_eq!(me.body["limits"]["account"]["per_minute"], 100000);

    let r = app
        .post("/api/v1/accounts", key, json!({"name": "sneaky"}))
        .await;
    assert_eq!(r.code(), "insufficient_scope");

    let r = app
        .post(
            "/api/v1/accounts",
            &app.admin_key,
            json!({"name": "x", "plan": "platinum"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"]["field"], "plan");
}

#[tokio::test]
async fn another_accounts_keys_are_not_found_never_forbidden() {
    let app = spawn_app().await;
    let (_, other_key) = app.other_account().await;
    let (_, mine) = app.create_key(json!({"name": "mine"})).await;
    let id = mine["id"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{id}");

    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::PUT, path.clone(), Some(json!({"name": "stolen"}))),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"is_active": false})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate"), Some(json!({}))),
    ] {
        let r = app.call(method.clone(), &p, Some(&other_key), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {p}");
        assert_eq!(r.code(), "not_found");
    }
    // Untouched.
    let r = app.get(&path, &app.admin_key).await;
    assert_eq!(r.body["name"], "mine");
    assert_eq!(r.body["is_active"], true);

    let list = app.get("/api/v1/api-keys?size=100", &other_key).await;
    assert_eq!(list.body["total"], 1, "only the other account's own key");
    assert_ne!(list.body["api_keys"][0]["id"], id);
}

/// A plan change reaches the account's existing keys: the 6th request of a
/// minute on free (5/min here) is refused, and after moving to pro it passes.
#[tokio::test]
async fn a_plan_change_reaches_the_accounts_existing_keys() {
    let app = crate::helpers::spawn_app_with(&[(
        "KEYHUB_RATE_LIMITS",
        r#"{"key_default": {"per_minute": 1000}, "free": {"per_minute": 5}, "pro": {"per_minute": 50}, "enterprise": {}}"#,
    )])
    .await;
    let r = app
        .post(
            "/api/v1/accounts",
            &app.admin_key,
            json!({"name": "growing", "plan": "free"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let account = r.body["account"]["id"].as_str().unwrap().to_string();
    let key = r.body["api_key"]["key"].as_str().unwrap().to_string();
    crate::helpers::clear_of_minute_boundary().await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
    }
    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    let path = format!("/api/v1/accounts/{account}");
    let r = app
        .patch(&path, &app.admin_key, json!({"plan": "pro"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["plan"], "pro");
    assert_eq!(r.body["limits"]["per_minute"], 50);
    assert_eq!(r.body["key_count"], 1);
    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["plan"], "pro");

    // Operators only, any account; a made-up id is simply not found.
    assert_eq!(app.get(&path, &key).await.code(), "insufficient_scope");
    let r = app
        .get("/api/v1/accounts/acct_00000000000000000000", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .patch(&path, &app.admin_key, json!({"plan": "gold"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Issue 13's done-when with the deployment's default plans (free 50 a
/// minute, pro 500; a key's own default 100): the 51st request of a minute
/// is refused on free and, once the plan is pro, passes through the gateway.
#[tokio::test]
async fn on_the_default_plans_moving_to_pro_lets_the_51st_request_of_a_minute_through() {
    let app = crate::helpers::spawn_app_with(&[]).await;
    let r = app
        .post(
            "/api/v1/accounts",
            &app.admin_key,
            json!({"name": "upgrading", "plan": "free"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let account = r.body["account"]["id"].as_str().unwrap().to_string();
    let key = r.body["api_key"]["key"].as_str().unwrap().to_string();
    crate::helpers::clear_of_minute_boundary().await;
    for i in 1..=50 {
        let r = app.get("/api/v1/whoami", &key).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.body);
    }
    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.code(), "rate_limit_exceeded");
    assert_eq!(r.header("x-ratelimit-limit"), Some("50"));

    let r = app
        .patch(
            &format!("/api/v1/accounts/{account}"),
            &app.admin_key,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["limits"]["per_minute"], 500);
    // The same minute: the 51st request now passes, under the key's own
    // 100 a minute, the tightest window left.
    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["plan"], "pro");
    assert_eq!(r.header("x-ratelimit-limit"), Some("100"));
}
