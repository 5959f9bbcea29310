//! `POST /api/v1/keys/verify` records usage for the key it verifies, under
//! the route and method the caller names, and the caller's key only for its
//! own calls.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn key(app: &TestApp, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[tokio::test]
async fn five_verify_calls_are_five_requests_of_the_verified_key_on_the_named_route() {
    let app = spawn_app().await;
    let (service, s) = app
        .create_key(json!({"name": "billing backend", "scopes": ["keys:verify"]}))
        .await;
    let (customer, c) = app
        .create_key(json!({"name": "customer", "scopes": ["invoices:read"]}))
        .await;
    let (service_id, customer_id) = (s["id"].as_str().unwrap(), c["id"].as_str().unwrap());
    for _ in 0..5 {
        let v = app
            .post(
                "/api/v1/keys/verify",
                &service,
                json!({"key": customer, "route": "/invoices/{id}", "method": "GET"}),
            )
            .await;
        assert_eq!(v.body["code"], "valid", "{}", v.body);
    }
    // Named nothing: filed under the check itself.
    let v = app
        .post("/api/v1/keys/verify", &service, json!({"key": customer}))
        .await;
    assert_eq!(v.body["code"], "valid", "{}", v.body);
    // Refused before any I/O: not a check, not the customer's usage.
    for bad in [
        json!({"key": customer, "route": "invoices"}),
        json!({"key": customer, "method": "get"}),
    ] {
        let r = app.post("/api/v1/keys/verify", &service, bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.code(), "invalid_request");
    }
    app.drain_usage().await;

    let k = key(&app, customer_id).await;
    assert_eq!(k["usage_count"], 6, "{k}");
    assert!(k["last_used"].is_string());
    let usage = k["usage"].as_array().unwrap();
    let on = |endpoint: &str, method: &str| {
        usage
            .iter()
            .filter(|u| u["endpoint"] == endpoint && u["method"] == method)
            .count()
    };
    assert_eq!(on("/invoices/{id}", "GET"), 5, "{usage:?}");
    assert_eq!(on("/api/v1/keys/verify", "POST"), 1, "{usage:?}");
    assert!(usage.iter().all(|u| u["status_code"] == 200));

    // The service's key: its own calls, every one (the refused ones too),
    // on the verify route; none of the customer's routes.
    let k = key(&app, service_id).await;
    assert_eq!(k["usage_count"], 8, "{k}");
    let usage = k["usage"].as_array().unwrap();
    assert!(
        usage.iter().all(|u| u["endpoint"] == "/api/v1/keys/verify"),
        "{usage:?}"
    );
}

#[tokio::test]
async fn a_rate_limited_check_is_a_429_of_the_verified_key() {
    let app = spawn_app().await;
    let service = app.key_with(&["keys:verify"]).await;
    let (customer, c) = app
        .create_key(json!({"name": "small", "rate_limits": {"per_minute": 1}}))
        .await;
    crate::helpers::clear_of_minute_boundary().await;
    for want in ["valid", "rate_limit_exceeded"] {
        let v = app
            .post(
                "/api/v1/keys/verify",
                &service,
                json!({"key": customer, "route": "/orders", "method": "POST"}),
            )
            .await;
        assert_eq!(v.body["code"], want, "{}", v.body);
    }
    app.drain_usage().await;
    let k = key(&app, c["id"].as_str().unwrap()).await;
    assert_eq!(k["usage_count"], 2, "{k}");
    let statuses: Vec<&Value> = k["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["status_code"])
        .collect();
    assert_eq!(statuses, [&json!(429), &json!(200)]);
}
