//! `GET /api/v1/health`: no key, 200 with every dependency's verdict, 503
//! in the contract's shape when one does not answer.

use reqwest::{Method, StatusCode};

use crate::helpers::{Resp, spawn_app};

const HEALTH: &str = "/api/v1/health";

fn assert_no_names(r: &Resp, stack: &str) {
    let text = r.body.to_string();
    assert!(
        !text.contains(stack),
        "the answer names the stack's resources: {text}"
    );
}

#[tokio::test]
async fn health_answers_without_a_key_with_each_dependency() {
    let app = spawn_app().await;
    let r = app.call(Method::GET, HEALTH, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "ok");
    for dep in [
        "keys_table",
        "accounts_table",
        "counters_table",
        "usage_table",
        "webhooks_table",
        "usage_queue",
        "webhook_queue",
    ] {
        assert_eq!(r.body["checks"][dep]["status"], "ok", "{dep}: {}", r.body);
        assert!(r.body["checks"][dep]["latency_ms"].is_u64(), "{dep}");
    }
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("x-request-id").is_some());
    // Not metered: no rate-limit headers, whatever key is sent.
    assert!(r.header("x-ratelimit-limit").is_none());
    assert_no_names(&r, &app.stack.name);
    let r = app
        .call(Method::GET, HEALTH, Some("kh_live_not-a-key"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "a bad key does not matter here");
    let r = app.call(Method::POST, HEALTH, None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn a_missing_table_makes_health_answer_503_and_name_the_check() {
    let app = spawn_app().await;
    let sdk = crate::helpers::sdk_config().await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_table()
        .table_name(&app.stack.config.tables.usage)
        .send()
        .await
        .expect("delete the usage table");
    let r = app.call(Method::GET, HEALTH, None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.code(), "service_unavailable");
    let checks = &r.body["error"]["details"]["checks"];
    assert_eq!(checks["usage_table"]["status"], "unavailable", "{checks}");
    assert_eq!(checks["keys_table"]["status"], "ok", "{checks}");
    assert_eq!(checks["usage_queue"]["status"], "ok", "{checks}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_no_names(&r, &app.stack.name);
}
